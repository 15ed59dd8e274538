#!/usr/bin/env node
// The long run of the power-loss (crash-consistency) checker, issue #13 (the short one is
// test/durability/powerloss.test.ts, in `npm test`). It records the compiled server under strace
// during a real workload, constructs the states a power cut could leave at many points of it,
// starts the real server on each and checks the contract (README "Durability, and how it is
// tested"). Needs `npm run build` first and strace (Debian package `strace`).
//
// Knobs (environment variables):
//   PUBLISHES=3000 PRODUCERS=3 PIPELINE=8 CONSUMERS=2   workload size
//   SEGMENT_BYTES=4096                                  small: many segment rolls and compaction
//   FSYNC=always                                        --fsync of the recorded server (interval/never: relaxed check)
//   CUTS=200 VARIANTS=7 MAX_STATES=600 PARALLEL=2 SEED=1
//   CHECK_WITH=child                                    child: node dist/bundle/miniqueue.js per state;
//                                                       in-process: the same startServer() here (faster)
//   KEEP_FAILURES=1                                     keep the directories of failing states
// Exit code: 0 when every state kept the contract, 1 otherwise.
import { checkPowerLoss } from '../dist/test/durability/powerloss/checker.js';

const num = (name, dflt) => (process.env[name] === undefined ? dflt : Number(process.env[name]));
const opts = {
  publishes: num('PUBLISHES', 3000),
  producers: num('PRODUCERS', 3),
  pipeline: num('PIPELINE', 8),
  consumers: num('CONSUMERS', 2),
  segmentBytes: num('SEGMENT_BYTES', 4096),
  fsync: process.env.FSYNC ?? 'always',
  cuts: num('CUTS', 200),
  variantsPerCut: num('VARIANTS', 7),
  maxStates: num('MAX_STATES', 600),
  parallel: num('PARALLEL', 2),
  checkWith: process.env.CHECK_WITH ?? 'child',
  seed: num('SEED', 1),
  keepFailures: process.env.KEEP_FAILURES === '1',
  log: (line) => console.log(`[powerloss] ${line}`),
};
console.log(`[powerloss] ${JSON.stringify({ ...opts, log: undefined })}`);
const report = await checkPowerLoss(opts);
const { failures, ...summary } = report;
console.log(JSON.stringify(summary, null, 2));
const byKind = new Map();
for (const f of failures) for (const v of f.violations) byKind.set(v.kind, (byKind.get(v.kind) ?? 0) + 1);
console.log(
  `[powerloss] checked ${report.statesChecked} crash states (${report.distinctStates} distinct directories, ` +
    `${report.cutsTried} cuts) in ${(report.durationMs / 1000).toFixed(0)} s: ` +
    (failures.length === 0 ? 'every state kept the contract' : `${failures.length} broke it: ${JSON.stringify(Object.fromEntries(byKind))}`),
);
for (const f of failures.slice(0, 20)) {
  console.log(`  state ${f.id} cut ${f.cut} ${f.variant}${f.keptAt ? ` (kept at ${f.keptAt})` : ''}: ${f.violations.slice(0, 3).map((v) => `${v.kind}: ${v.detail}`).join('; ')}`);
}
process.exit(failures.length === 0 && report.problems.length === 0 ? 0 : 1);
