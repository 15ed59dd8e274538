/**
 * The power-loss (crash-consistency) checker of issue #13, in the spirit of ALICE and CrashMonkey:
 *
 * 1. Record: the server as shipped (dist/bundle/miniqueue.js) runs under strace on an empty data
 *    directory while real RESP clients publish, reserve and settle (workload.ts). The trace holds
 *    every write, sync, create, rename, unlink and truncate it made, and the bytes it read from
 *    and wrote to each client connection.
 * 2. Construct: fs-model.ts turns the trace into the states a power cut at a chosen position (a
 *    cut) could leave: synced data kept, any prefix of each file's unsynced writes kept (some with
 *    the next write torn), unsynced directory operations kept or lost. Each state is written out
 *    as a real directory; identical states are checked once.
 * 3. Check: the real server is started on each state (`--fsync always`, never `--repair`), every
 *    message is drained over RESP, and contract.ts compares what came back with what had been
 *    received and answered by the cut.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isErrorReply, prng, recordingLogger, type Reply, RespConn, ROOT, startChild, startInProcess } from '../../helpers/index.js';
import { checkObservation, Ledger, lostAnswered, type Observation, type Strictness, type Violation } from './contract.js';
import { FsModel, type CrashChoice, type CutPending } from './fs-model.js';
import { startTracedServer, type CompactionSeen } from './traced-server.js';
import { runWorkload, type WorkloadRecord } from './workload.js';

export interface PowerLossOptions {
  /** PUBLISHes in the workload. */
  publishes: number;
  producers: number;
  pipeline: number;
  consumers: number;
  /** `--segment-bytes` of the recorded server (small: many rolls, compaction). */
  segmentBytes: number;
  /** `--fsync` of the recorded server. States are always checked by a server with `--fsync always`. */
  fsync: 'always' | 'interval' | 'never';
  /** Cut positions to try. */
  cuts: number;
  /** Crash states per cut at most (from the list in {@link VARIANTS}). */
  variantsPerCut: number;
  /** Distinct states started at most (the rest are counted as skipped). */
  maxStates: number;
  /** Servers checking states at the same time. */
  parallel: number;
  checkWith: CheckWith;
  seed: number;
  straceBin?: string;
  /** Keep the directories of states that broke the contract (their paths are in the report). */
  keepFailures?: boolean;
  log?: (line: string) => void;
}

export interface StateResult {
  id: string;
  cut: number;
  variant: string;
  violations: Violation[];
  keptAt: string | undefined;
}

export interface PowerLossReport {
  compaction: CompactionSeen;
  syscalls: number;
  traceBytes: number;
  dataOps: number;
  syncs: number;
  nameOps: { kind: string; count: number }[];
  publishesAnswered: number;
  acksAnswered: number;
  cutsTried: number;
  /** (cut, variant) pairs checked. */
  statesChecked: number;
  /** Distinct directories a server was started on. */
  distinctStates: number;
  /** Pairs whose directory was beyond maxStates. */
  statesSkipped: number;
  tornTailsCut: number;
  failures: StateResult[];
  /** With a relaxed fsync mode: answered publishes lost, summed over states (expected). */
  lostAnsweredInRelaxedMode: number;
  problems: string[];
  durationMs: number;
}

/** The kinds of crash state tried at each cut, in order of preference. */
export const VARIANTS = ['lose-unsynced', 'keep-unsynced', 'torn-partial', 'lose-dir-ops', 'random', 'torn-zeros', 'dir-subset'] as const;
export type Variant = (typeof VARIANTS)[number];

function choose(variant: Variant, pending: CutPending, rng: () => number): CrashChoice {
  const choice: CrashChoice = { dataKept: new Map(), tear: new Map(), namesKept: new Set() };
  const keepAllData = (): void => {
    for (const [id, ops] of pending.data) choice.dataKept.set(id, ops.length);
  };
  const randomPrefixes = (): void => {
    for (const [id, ops] of pending.data) choice.dataKept.set(id, Math.floor(rng() * (ops.length + 1)));
  };
  const tearNext = (kind: 'partial' | 'zeros'): void => {
    for (const [id, ops] of pending.data) {
      // Tear the last unsynced write (keep everything before it), or a random one.
      let kept = ops.length - 1;
      if (rng() < 0.3) kept = Math.floor(rng() * ops.length);
      while (kept >= 0 && ops[kept]!.kind !== 'write') kept--;
      if (kept < 0) continue;
      choice.dataKept.set(id, kept);
      const op = ops[kept]!;
      const len = op.kind === 'write' ? op.data.length : 0;
      choice.tear.set(id, kind === 'zeros' || len < 2 ? { kind: 'zeros' } : { kind: 'partial', bytes: 1 + Math.floor(rng() * (len - 1)) });
    }
  };
  switch (variant) {
    case 'lose-unsynced':
      break;
    case 'keep-unsynced':
      keepAllData();
      for (const op of pending.names) choice.namesKept.add(op.seq);
      break;
    case 'torn-partial':
    case 'torn-zeros':
      tearNext(variant === 'torn-partial' ? 'partial' : 'zeros');
      for (const op of pending.names) choice.namesKept.add(op.seq);
      break;
    case 'lose-dir-ops':
      keepAllData();
      break;
    case 'random': {
      randomPrefixes();
      const keep = Math.floor(rng() * (pending.names.length + 1)); // a prefix, as a journal keeps them
      for (const op of pending.names.slice(0, keep)) choice.namesKept.add(op.seq);
      break;
    }
    case 'dir-subset':
      randomPrefixes();
      for (const op of pending.names) if (rng() < 0.5) choice.namesKept.add(op.seq);
      break;
  }
  return choice;
}

/** Whether two variants at this cut would be the same state (nothing pending that they treat differently). */
function interesting(variant: Variant, pending: CutPending): boolean {
  const hasData = pending.data.size > 0;
  const hasNames = pending.names.length > 0;
  switch (variant) {
    case 'lose-unsynced':
      return true;
    case 'keep-unsynced':
      return hasData || hasNames;
    case 'lose-dir-ops':
    case 'dir-subset':
      return hasNames;
    default:
      return hasData;
  }
}

/**
 * How a state is checked: `child` starts `node dist/bundle/miniqueue.js` (the CLI, as a user
 * would); `in-process` calls the same startServer() with the same parsed command line in this
 * process, which skips Node's start-up and module loading (about 1 s per state on this machine)
 * so the short run in `npm test` can afford many more states.
 */
export type CheckWith = 'child' | 'in-process';

const CHECK_ARGS = ['--fsync', 'always', '--period', '50ms'];

/** Starts the real server on `db` (without --repair) and drains every message it holds. */
export async function observe(db: string, checkWith: CheckWith, timeoutMs = 20_000): Promise<Observation> {
  let respPort: number;
  let stop: () => Promise<unknown>;
  let tornTails: () => number;
  try {
    if (checkWith === 'child') {
      const server = await startChild(db, CHECK_ARGS, timeoutMs);
      respPort = server.respPort;
      stop = () => server.kill('SIGKILL');
      tornTails = () => server.lines.filter((l) => l.includes('truncated a torn record')).length;
    } else {
      const { logger, lines } = recordingLogger();
      logger.level = 'warn';
      const server = await startInProcess(db, CHECK_ARGS, null, logger);
      respPort = server.resp!.port;
      stop = () => server.close();
      tornTails = () => lines.filter((l) => l.msg === 'truncated a torn record at the end of the log').length;
    }
  } catch (err) {
    return { started: false, startError: (err as Error).message.slice(0, 600), messages: new Map(), tornTails: 0 };
  }
  const messages = new Map<string, { count: number; dackCount: number; topic: string }>();
  try {
    const conn = await RespConn.connect(respPort);
    const send = async (...args: (string | number)[]): Promise<Reply> => {
      for (;;) {
        const r = await conn.send(...args);
        if (isErrorReply(r) && r.line.startsWith('LOADING')) continue;
        return r;
      }
    };
    const topics = await send('TOPICS');
    if (!Array.isArray(topics)) throw new Error(`TOPICS answered ${String(topics)}`);
    const deadline = Date.now() + timeoutMs;
    for (const t of topics) {
      const topic = (t as Buffer).toString('latin1');
      for (;;) {
        if (Date.now() > deadline) throw new Error(`draining ${topic} took over ${timeoutMs} ms`);
        const stats = await send('STATS', topic);
        const field = (name: string): number => {
          const arr = stats as Reply[];
          const i = arr.findIndex((x) => (Buffer.isBuffer(x) ? x.toString() : x) === name);
          return Number(arr[i + 1]);
        };
        const ready = field('ready');
        const delayed = field('delayed');
        if (ready === 0 && delayed === 0) break;
        // Delayed (DACKed) messages are due at once here; a blocking RESERVE waits for the tick.
        const r = await send('RESERVE', topic, ready > 0 ? 0 : 1000);
        if (!Array.isArray(r)) continue;
        const payload = (r[1] as Buffer).toString('latin1');
        const seen = messages.get(payload);
        if (seen === undefined) messages.set(payload, { count: 1, dackCount: Number(r[2]), topic });
        else seen.count++;
      }
    }
    conn.close();
  } finally {
    await stop();
  }
  return { started: true, startError: '', messages, tornTails: tornTails() };
}

/** Records the server under strace during the workload. */
async function record(
  opts: PowerLossOptions,
  work: string,
): Promise<{ model: FsModel; records: WorkloadRecord; traceBytes: number; syscalls: number; respPort: number; compaction: CompactionSeen }> {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(work, 'root-')));
  const db = path.join(root, 'db');
  const server = await startTracedServer(
    db,
    ['--fsync', opts.fsync, '--segment-bytes', String(opts.segmentBytes), '--period', '100ms'],
    path.join(work, 'trace.txt'),
    Math.max(opts.segmentBytes, 1 << 20) * 2,
    opts.straceBin,
  );
  const { respPort, compaction } = server;
  const rng = prng(opts.seed);
  const run = await runWorkload({
    respPort,
    publishes: opts.publishes,
    producers: opts.producers,
    pipeline: opts.pipeline,
    consumers: opts.consumers,
    hotTopics: 2,
    coldEvery: 7,
    payloadMinBytes: 20,
    payloadMaxBytes: Math.max(40, Math.floor(opts.segmentBytes / 12)),
    settleTarget: Math.floor(opts.publishes * 0.9),
    rng,
  });
  await run.drained;
  // The power cut: the server dies while consumers are still busy.
  const traced = server.killAndTrace();
  await run.stopConsumers();
  for (const c of run.record.connections) c.close();
  const { calls, traceBytes } = await traced;
  const model = new FsModel(root, ROOT, respPort);
  for (const sc of calls) model.feed(sc);
  return { model, records: run.record, traceBytes, syscalls: calls.length, respPort, compaction };
}

/** Picks `n` cut positions: after answers, after directory operations, after unsynced writes, after syncs. */
function pickCuts(model: FsModel, n: number, rng: () => number): number[] {
  const replies = model.socketIo.filter((io) => io.direction === 'out').map((io) => io.seq);
  const names = model.nameOps.map((op) => op.seq);
  const writes = model.dataSeqs;
  const syncs = model.syncs.map((s) => s.seq);
  const pools: [number[], number][] = [
    [replies, 0.35],
    [names, 0.3],
    [writes, 0.2],
    [syncs, 0.15],
  ];
  const cuts = new Set<number>([model.lastSeq]);
  for (const [pool, share] of pools) {
    const want = Math.max(1, Math.round(n * share));
    if (pool.length <= want) for (const s of pool) cuts.add(s);
    else for (let i = 0; i < want; i++) cuts.add(pool[Math.floor(rng() * pool.length)]!);
  }
  while (cuts.size < n && cuts.size < model.lastSeq + 1) cuts.add(Math.floor(rng() * (model.lastSeq + 1)));
  return [...cuts].sort((a, b) => a - b);
}

function hashTree(tree: Map<string, Buffer | 'dir'>): string {
  const h = createHash('sha1');
  for (const [p, c] of [...tree].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    h.update(p);
    h.update('\0');
    if (c === 'dir') h.update('dir');
    else h.update(c);
    h.update('\0');
  }
  return h.digest('hex').slice(0, 12);
}

/** Runs the whole checker: record, construct states, check each. */
export async function checkPowerLoss(opts: PowerLossOptions): Promise<PowerLossReport> {
  const started = performance.now();
  const log = opts.log ?? (() => {});
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-powerloss-'));
  try {
    const rec = await record(opts, work);
    const { model } = rec;
    const ledger = new Ledger(rec.records.connections, model.socketIo);
    const problems = [...model.unsupported, ...ledger.consistencyProblems(model.lastSeq)];
    for (const port of ledger.unseenConnections()) problems.push(`connection :${port} never seen in the trace`);
    const nameKinds = new Map<string, number>();
    for (const op of model.nameOps) {
      const what = `${op.kind} ${op.path.replace(/\d{20}/, 'N')}`;
      nameKinds.set(what, (nameKinds.get(what) ?? 0) + 1);
    }
    const final = ledger.summaryAt(model.lastSeq);
    log(
      `recorded ${rec.syscalls} system calls (${(rec.traceBytes / 1e6).toFixed(1)} MB of trace): ${model.dataSeqs.length} writes/truncates, ` +
        `${model.syncs.length} syncs, ${model.nameOps.length} directory operations ` +
        `(${[...nameKinds].map(([k, n]) => `${n}× ${k}`).join(', ')}); ${final.publishesAnswered} publishes and ` +
        `${final.acksAnswered} acks answered before the kill; compaction: ${JSON.stringify(rec.compaction)}`,
    );

    const rng = prng(opts.seed ^ 0x5eed);
    const cuts = pickCuts(model, opts.cuts, rng);
    const strictness: Strictness = opts.fsync === 'always' ? 'always' : 'relaxed';
    // Construct every (cut, variant) state and group identical ones.
    const groups = new Map<string, { tree: Map<string, Buffer | 'dir'>; pairs: { cut: number; variant: Variant }[] }>();
    let pairs = 0;
    for (const cut of cuts) {
      const pending = model.pending(cut);
      let made = 0;
      for (const variant of VARIANTS) {
        if (made >= opts.variantsPerCut) break;
        if (!interesting(variant, pending)) continue;
        made++;
        pairs++;
        const tree = model.build(cut, choose(variant, pending, rng));
        const id = hashTree(tree);
        const g = groups.get(id);
        if (g === undefined) groups.set(id, { tree, pairs: [{ cut, variant }] });
        else g.pairs.push({ cut, variant });
      }
    }
    const ids = [...groups.keys()];
    const checkedIds = ids.slice(0, opts.maxStates);
    let skipped = 0;
    for (const id of ids.slice(opts.maxStates)) skipped += groups.get(id)!.pairs.length;
    log(`${cuts.length} cuts, ${pairs} crash states, ${ids.length} distinct; starting a server on ${checkedIds.length} of them`);

    const failures: StateResult[] = [];
    let statesChecked = 0;
    let tornTailsCut = 0;
    let lostRelaxed = 0;
    let nextIndex = 0;
    const worker = async (): Promise<void> => {
      while (nextIndex < checkedIds.length) {
        const id = checkedIds[nextIndex++]!;
        const g = groups.get(id)!;
        const dir = path.join(work, `state-${id}`);
        FsModel.writeTree(g.tree, dir);
        const obs = await observe(path.join(dir, 'db'), opts.checkWith);
        if (obs.tornTails > 0) tornTailsCut++;
        let failed = false;
        for (const { cut, variant } of g.pairs) {
          statesChecked++;
          const violations = checkObservation(ledger, cut, obs, strictness);
          if (strictness === 'relaxed') lostRelaxed += lostAnswered(ledger, cut, obs);
          if (violations.length === 0) continue;
          failed = true;
          const keptAt = opts.keepFailures === true ? dir : undefined;
          failures.push({ id, cut, variant, violations, keptAt });
          log(`state ${id} (cut ${cut}, ${variant}): ${violations.length} violations, first: ${violations[0]!.kind} ${violations[0]!.detail}`);
        }
        if (!failed || opts.keepFailures !== true) fs.rmSync(dir, { recursive: true, force: true });
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.parallel) }, () => worker()));
    return {
      compaction: rec.compaction,
      syscalls: rec.syscalls,
      traceBytes: rec.traceBytes,
      dataOps: model.dataSeqs.length,
      syncs: model.syncs.length,
      nameOps: [...nameKinds].map(([kind, count]) => ({ kind, count })),
      publishesAnswered: final.publishesAnswered,
      acksAnswered: final.acksAnswered,
      cutsTried: cuts.length,
      statesChecked,
      distinctStates: checkedIds.length,
      statesSkipped: skipped,
      tornTailsCut,
      failures,
      lostAnsweredInRelaxedMode: lostRelaxed,
      problems,
      durationMs: Math.round(performance.now() - started),
    };
  } finally {
    if (opts.keepFailures !== true) fs.rmSync(work, { recursive: true, force: true });
  }
}
