#!/usr/bin/env node
// A/B of two broker builds on one scenario, alternating A B A B … so that drift in the machine's
// speed hits both alike; prints each run and the ratio B/A pair by pair.
//   node bench/ab.mjs <A main.js> <B main.js> <scenario script> [pairs]
// e.g. A=a copy of main's dist (git worktree + npm run build), B=this checkout's dist:
//   PIPELINE=16 DURATION_S=5 node bench/ab.mjs /tmp/mq-a/dist/bundle/miniqueue.js \
//     dist/bundle/miniqueue.js bench/e2e/resp-publish.mjs 3
// (builds older than the bundle run from dist/src/server/main.js)
// Knobs for the scenario (CONNECTIONS, PIPELINE, PAYLOAD_BYTES, FSYNC, …) pass through the env.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './lib/procs.mjs';

const [a, b, script, pairsArg] = process.argv.slice(2);
if (!a || !b || !script) {
  console.error('usage: node bench/ab.mjs <A main.js> <B main.js> <scenario script> [pairs=3]');
  process.exit(2);
}
const pairs = Number(pairsArg ?? 3);

/** Runs the scenario once against `main`; returns its RESULT object. */
function runOnce(main) {
  const r = spawnSync(process.execPath, [path.resolve(script)], {
    cwd: ROOT,
    env: { ...process.env, MQ_BENCH_MAIN: path.resolve(main) },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const line = (r.stdout ?? '').split('\n').reverse().find((l) => l.startsWith('RESULT '));
  if (!line) return { error: `no RESULT (exit ${r.status}): ${(r.stderr ?? '').slice(-400)}` };
  return JSON.parse(line.slice(7));
}

// A scenario with a baseline of its own in the same run (jetstream-gateway: nats.js) also shows
// it and the ratio to it, which drift in the machine's speed changes less than the ops/s.
const fmt = (x) =>
  x.error
    ? `error: ${x.error}`
    : `${Math.round(x.opsPerSec)} ops/s${x.p50Ms != null ? ` p50 ${x.p50Ms.toFixed(3)} ms` : ''}${x.p99Ms != null ? ` p99 ${x.p99Ms.toFixed(3)} ms` : ''}${x.serverCpuUsPerOp != null ? ` cpu ${x.serverCpuUsPerOp.toFixed(1)} us/op` : ''}${x.ownBaselineOps != null ? ` (own baseline ${Math.round(x.ownBaselineOps)}: ${(x.opsPerSec / x.ownBaselineOps).toFixed(2)}x)` : ''}`;
console.log(`A/B ${path.basename(script)} pairs=${pairs} load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const ratios = [];
for (let i = 0; i < pairs; i++) {
  const ra = runOnce(a);
  const rb = runOnce(b);
  const ratio = !ra.error && !rb.error ? rb.opsPerSec / ra.opsPerSec : NaN;
  ratios.push(ratio);
  console.log(`pair ${i + 1}: A ${fmt(ra)} | B ${fmt(rb)} | B/A ${ratio.toFixed(3)}`);
}
const sorted = ratios.filter(Number.isFinite).sort((x, y) => x - y);
console.log(`B/A ratios: ${ratios.map((r) => r.toFixed(3)).join(' ')}; median ${sorted.length ? sorted[Math.floor(sorted.length / 2)].toFixed(3) : 'n/a'}; load average after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
