/**
 * Background compaction (issue #4, SPEC §5) with the real server as a child process:
 *
 * 1. Endless publish+ack over pipelined RESP with `--segment-bytes 1048576` and a few messages
 *    left in flight or DACKed for an hour, pinning old segments: the data directory, sampled
 *    every 250 ms, stays under 8 MiB plus the live data, during the load and at the end, and the
 *    pinned messages survive a SIGKILL and restart intact and in order.
 * 2. SIGKILL at random moments while compaction is busy copying messages forward, restart,
 *    repeat: no answered publish is lost, no answered ACK is undone, a never-delivered backlog
 *    comes out complete and in publish order, DACK delays and dackCounts survive.
 *
 * COMPACTION_MIB sets the volume of test 1 (default 64); COMPACTION_SEED replays a run (printed);
 * COMPACTION_CYCLES sets the kills of test 2 (default 10); COMPACTION_KEEP_DB=1 keeps the data directories.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { asReserved, type ChildServer, letTimePass, logLines, type MiniReply, MiniRespClient, prng, randInt, removeDir, RespConn, startChild, statsOf, tempDir } from '../helpers/index.js';
import { RecordType, decodeRecord } from '../../src/log/record.js';

const MiB = 1024 * 1024;
const TOTAL_BYTES = Number(process.env.COMPACTION_MIB ?? 64) * MiB;
const SEED = Number(process.env.COMPACTION_SEED ?? Math.floor(Math.random() * 1e9));
const CYCLES = Number(process.env.COMPACTION_CYCLES ?? 10);
/** COMPACTION_KEEP_DB=1 keeps the data directories for a look afterwards. */
const KEEP_DB = process.env.COMPACTION_KEEP_DB === '1';
/** Record overhead per live message allowed on top of its payload (header, topic, RESTORE fields). */
const RECORD_OVERHEAD_BYTES = 64;

/** Bytes of the files directly in `dir` (the segments). */
function dirBytes(dir: string): number {
  let total = 0;
  for (const name of fs.readdirSync(dir)) {
    try {
      const st = fs.statSync(path.join(dir, name));
      if (st.isFile()) total += st.size;
    } catch {
      // deleted by compaction between readdir and stat
    }
  }
  return total;
}

test('disk use stays under 8 MiB plus the live data under endless publish+ack', { timeout: 180_000 }, async (t) => {
  const rand = prng(SEED);
  t.diagnostic(`COMPACTION_SEED=${SEED} COMPACTION_MIB=${TOTAL_BYTES / MiB}`);
  const db = tempDir('mq-compaction-');
  t.after(() => (KEEP_DB ? t.diagnostic(`kept ${db}`) : removeDir(db)));
  let server = await startChild(db, ['--segment-bytes', '1048576']);
  t.after(() => server.kill('SIGKILL'));
  const load = await RespConn.connect(server.respPort);
  const holder = await RespConn.connect(server.respPort); // keeps its reserved messages in flight
  t.after(() => {
    load.close();
    holder.close();
  });

  /** Payload bytes of messages published and not yet acked, and their count. */
  let liveBytes = 0;
  let liveCount = 0;
  let maxBytes = 0;
  let maxOverLiveBytes = 0;
  let samples = 0;
  const violations: string[] = [];
  const sample = (): void => {
    const size = dirBytes(db);
    const bound = 8 * MiB + liveBytes + liveCount * RECORD_OVERHEAD_BYTES;
    samples++;
    maxBytes = Math.max(maxBytes, size);
    maxOverLiveBytes = Math.max(maxOverLiveBytes, size - liveBytes);
    if (size > bound) violations.push(`${size} bytes > bound ${bound} (live ${liveBytes} in ${liveCount})`);
  };
  const sampler = setInterval(sample, 250);
  t.after(() => clearInterval(sampler));

  // Pins: every ~6 MiB one message stays in flight on `holder` and one is DACKed for an hour.
  const held: string[] = [];
  const delayed: string[] = [];
  const pin = async (i: number): Promise<void> => {
    for (const kind of ['hold', 'dack']) {
      const payload = `${kind}-${i}-${'z'.repeat(randInt(rand, 10, 4096))}`;
      assert.equal(await holder.send('PUBLISH', 'pinned', payload), 'OK');
      liveBytes += payload.length;
      liveCount++;
      const got = asReserved(await holder.send('RESERVE', 'pinned'));
      assert.equal(got.payload.toString(), payload);
      if (kind === 'dack') {
        assert.equal(await holder.send('DACK', 'pinned', got.id, 3600), 'OK');
        delayed.push(payload);
      } else {
        held.push(payload);
      }
    }
  };

  const started = performance.now();
  let written = 0;
  let nextPinAt = 0;
  const BATCH = 64;
  while (written < TOTAL_BYTES) {
    if (written >= nextPinAt) {
      await pin(held.length);
      nextPinAt += 6 * MiB;
    }
    const payloads: Buffer[] = [];
    let batchBytes = 0;
    for (let i = 0; i < BATCH; i++) {
      const p = Buffer.alloc(randInt(rand, 10, 4097), 97 + (i % 26));
      payloads.push(p);
      batchBytes += p.length;
    }
    liveBytes += batchBytes;
    liveCount += BATCH;
    const published = await load.pipeline(payloads.map((p) => ['PUBLISH', 'load', p]));
    for (const r of published) assert.equal(r, 'OK');
    const reserved = (await load.pipeline(payloads.map(() => ['RESERVE', 'load']))).map(asReserved);
    const acks = await load.pipeline(reserved.map((r) => ['ACK', 'load', r.id]));
    for (const r of acks) assert.equal(r, 'OK');
    liveBytes -= batchBytes;
    liveCount -= BATCH;
    written += batchBytes;
  }
  const loadMs = performance.now() - started;
  sample();
  const atEnd = dirBytes(db);
  // Then look again once the periodic check (every 1 s) has had a chance to reclaim the last
  // segments: a check that finds nothing to do logs nothing, so there is no event to wait on.
  await letTimePass(1500);
  sample();
  clearInterval(sampler);
  const runs = logLines<Record<string, number>>(server, 'compaction run');
  const summary =
    `wrote ${(written / MiB).toFixed(1)} MiB in ${(loadMs / 1000).toFixed(1)} s; ${samples} samples; ` +
    `max dir ${(maxBytes / MiB).toFixed(2)} MiB, max over live ${(maxOverLiveBytes / MiB).toFixed(2)} MiB, ` +
    `at the end ${(atEnd / MiB).toFixed(2)} MiB then ${(dirBytes(db) / MiB).toFixed(2)} MiB; live ${(liveBytes / 1024).toFixed(0)} KiB; ` +
    `${runs.length} compaction runs, ${runs.reduce((n, r) => n + r.segmentsRemoved!, 0)} segments removed, ` +
    `${runs.reduce((n, r) => n + r.messagesCopied!, 0)} messages copied`;
  t.diagnostic(summary);
  console.log(`# compaction: ${summary}`);
  assert.deepEqual(violations, [], 'the data directory stays under 8 MiB plus the live data');
  assert.ok(runs.length > 0 && runs.some((r) => r.messagesCopied! > 0), 'pinned messages were copied forward');
  assert.ok(held.length >= 2);

  // The pinned messages survive a crash: the held ones at the front in delivery order, the
  // DACKed ones still delayed.
  holder.close();
  await server.kill('SIGKILL');
  server = await startChild(db, ['--segment-bytes', '1048576']);
  const check = await RespConn.connect(server.respPort);
  t.after(() => check.close());
  const stats = await statsOf(check, 'pinned');
  assert.equal(stats['ready'], held.length);
  assert.equal(stats['delayed'], delayed.length);
  assert.equal((await statsOf(check, 'load'))['ready'], 0);
  const back: string[] = [];
  for (let i = 0; i < held.length; i++) {
    const r = asReserved(await check.send('RESERVE', 'pinned'));
    assert.equal(r.dackCount, 0);
    back.push(r.payload.toString());
  }
  assert.deepEqual(back, held);
  assert.ok(dirBytes(db) < 8 * MiB + liveBytes + liveCount * RECORD_OVERHEAD_BYTES);
});

/**
 * Whether a kill left a message both in an older segment and in a RESTORE record of a newer one:
 * compaction had copied it forward and not yet deleted the old segment. Reads a torn tail as the end.
 */
function hasSupersededCopies(dir: string): boolean {
  const seen = new Set<number>();
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.log')).sort()) {
    const data = fs.readFileSync(path.join(dir, name));
    for (let position = 0; position < data.length; ) {
      const rec = decodeRecord(data, position, data.length, 2 ** 31);
      if (typeof rec === 'string') break;
      if (rec.type === RecordType.RESTORE && seen.has(rec.messageId)) return true;
      if (rec.type === RecordType.PUBLISH || rec.type === RecordType.RESTORE) seen.add(rec.messageId);
      position += rec.sizeBytes;
    }
  }
  return false;
}

/** What the clients of test 2 saw answered. */
class Ledger {
  readonly attempted = new Set<string>();
  readonly answeredPublish = new Set<string>();
  readonly ackSent = new Set<string>();
  readonly ackAnswered = new Map<string, number>();
  readonly dackSent = new Map<string, number>();
  /** payload -> times its DACKs were sent, for the answered ones. */
  readonly dackAnswered = new Map<string, number[]>();
  /** Payloads delivered at least once before the final drain (their order may change). */
  readonly delivered = new Set<string>();
  readonly deliveries: { payload: string; atMs: number; dackCount: number }[] = [];
}

const DACK_SECONDS = 1;

async function crashPublisher(port: number, rand: () => number, seq: { c: number; b: number }, ledger: Ledger, stop: { v: boolean }): Promise<void> {
  const c = new MiniRespClient(port);
  try {
    await c.ready;
    while (!stop.v) {
      // A window of pipelined publishes; one in ten goes to the backlog nobody consumes.
      const window: Promise<void>[] = [];
      for (let i = 0; i < 8; i++) {
        const backlog = rand() < 0.1;
        const payload = backlog ? `b:${seq.b++}:${'b'.repeat(randInt(rand, 100, 2000))}` : `c:${seq.c++}:${'c'.repeat(randInt(rand, 100, 3000))}`;
        const key = payload.slice(0, payload.indexOf(':', 2));
        ledger.attempted.add(key);
        window.push(
          c.send('PUBLISH', backlog ? 'backlog' : 'churn', payload).then((r) => {
            if (r === 'OK') ledger.answeredPublish.add(key);
          }),
        );
      }
      await Promise.all(window);
    }
  } catch {
    // killed
  } finally {
    c.close();
  }
}

function keyOf(payload: Buffer): string {
  const s = payload.toString('latin1');
  return s.slice(0, s.indexOf(':', 2));
}

/** Reserves 8 at a time (pipelined) and settles them (pipelined): mostly ACK, some left in flight, DACKed or NACKed. */
async function crashConsumer(port: number, rand: () => number, ledger: Ledger, stop: { v: boolean }): Promise<void> {
  const c = new MiniRespClient(port);
  try {
    await c.ready;
    let idle = false;
    while (!stop.v) {
      // On an empty topic the first RESERVE waits for a message (up to 50 ms) instead of polling.
      const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => c.send('RESERVE', 'churn', i === 0 && idle ? 50 : 0)));
      idle = replies.every((r) => !Array.isArray(r));
      const settles: Promise<void>[] = [];
      for (const r of replies) {
        if (!Array.isArray(r)) continue;
        const [id, payload, dackCount] = r as [Buffer, Buffer, number];
        const key = keyOf(payload);
        ledger.delivered.add(key);
        ledger.deliveries.push({ payload: key, atMs: Date.now(), dackCount });
        const x = rand();
        if (x < 0.8) {
          ledger.ackSent.add(key);
          settles.push(c.send('ACK', 'churn', id).then((a) => void (a === 'OK' && ledger.ackAnswered.set(key, Date.now()))));
        } else if (x < 0.9) {
          // left in flight until the kill: pins its segment
        } else if (x < 0.96) {
          ledger.dackSent.set(key, (ledger.dackSent.get(key) ?? 0) + 1);
          const sentAt = Date.now();
          settles.push(
            c.send('DACK', 'churn', id, DACK_SECONDS).then((a) => {
              if (a === 'OK') ledger.dackAnswered.set(key, [...(ledger.dackAnswered.get(key) ?? []), sentAt]);
            }),
          );
        } else {
          settles.push(c.send('NACK', 'churn', id).then(() => {}));
        }
      }
      await Promise.all(settles);
    }
  } catch {
    // killed
  } finally {
    c.close();
  }
}

test('SIGKILL while compaction copies messages forward: nothing answered is lost or undone, order kept', { timeout: 180_000 }, async (t) => {
  t.diagnostic(`COMPACTION_SEED=${SEED} COMPACTION_CYCLES=${CYCLES}`);
  const rand = prng(SEED);
  const db = tempDir('mq-compaction-crash-');
  t.after(() => (KEEP_DB ? t.diagnostic(`kept ${db}`) : removeDir(db)));
  const args = ['--segment-bytes', '65536'];
  let server: ChildServer | null = null;
  t.after(async () => {
    await server?.kill('SIGKILL');
  });
  const ledger = new Ledger();
  const seq = { c: 0, b: 0 };
  let runsSeen = 0;
  let copiedSeen = 0;
  /** Kills that left some message both in an old segment and in a newer RESTORE (between copy and delete). */
  let interrupted = 0;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    server = await startChild(db, args);
    const stop = { v: false };
    const workers = [
      crashPublisher(server.respPort, prng(SEED + cycle * 31), seq, ledger, stop),
      crashConsumer(server.respPort, prng(SEED + cycle * 31 + 1), ledger, stop),
      crashConsumer(server.respPort, prng(SEED + cycle * 31 + 2), ledger, stop),
    ];
    // Kill at a random moment, most often right after a compaction run was logged (while the
    // next one is likely running: they follow every roll).
    const killAfterMs = 300 + Math.floor(rand() * 900);
    await letTimePass(killAfterMs);
    const lines = server.lines.length;
    const waitForRun = rand() < 0.7;
    const waitDeadline = Date.now() + 500;
    while (waitForRun && Date.now() < waitDeadline && !server.lines.slice(lines).some((l) => l.includes('"compaction run"'))) {
      await new Promise((r) => setImmediate(r));
    }
    if (waitForRun) await letTimePass(Math.floor(rand() * 15)); // a random moment into the next pass
    await server.kill('SIGKILL');
    stop.v = true;
    await Promise.all(workers);
    const runs = logLines<Record<string, number>>(server, 'compaction run');
    runsSeen += runs.length;
    copiedSeen += runs.reduce((n, r) => n + r.messagesCopied!, 0);
    if (hasSupersededCopies(db)) interrupted++;
  }

  // Final drain on a clean server: pipelined, then waiting for the DACKed ones to come back.
  server = await startChild(db, args);
  const c = new MiniRespClient(server.respPort);
  await c.ready;
  const drained: string[] = [];
  for (;;) {
    const replies = await Promise.all(Array.from({ length: 64 }, () => c.send('RESERVE', 'churn', 0)));
    const got = replies.filter((r): r is MiniReply[] => Array.isArray(r));
    if (got.length === 0) {
      const r = await c.send('RESERVE', 'churn', (DACK_SECONDS + 2) * 1000);
      if (!Array.isArray(r)) break;
      got.push(r);
    }
    for (const r of got) {
      const key = keyOf(r[1] as Buffer);
      drained.push(key);
      ledger.deliveries.push({ payload: key, atMs: Date.now(), dackCount: r[2] as number });
    }
    const acks = await Promise.all(got.map((r) => c.send('ACK', 'churn', r[0] as Buffer)));
    for (const a of acks) assert.equal(a, 'OK');
  }
  const backlog: string[] = [];
  for (;;) {
    const replies = await Promise.all(Array.from({ length: 64 }, () => c.send('RESERVE', 'backlog', 0)));
    const got = replies.filter((r): r is MiniReply[] => Array.isArray(r));
    for (const r of got) backlog.push(keyOf(r[1] as Buffer));
    if (got.length < replies.length) break;
  }
  c.close();
  const finalRuns = logLines<Record<string, number>>(server, 'compaction run');
  await server.kill('SIGTERM');

  const drainedSet = new Set(drained);
  // 1. Every answered publish is still there unless an ACK for it was sent.
  const lost = [...ledger.answeredPublish].filter((k) => k.startsWith('c:') && !ledger.ackSent.has(k) && !drainedSet.has(k));
  assert.deepEqual(lost, [], `answered publishes lost (seed ${SEED})`);
  // 2. No message whose ACK was answered comes back.
  const resurrected = drained.filter((k) => ledger.ackAnswered.has(k));
  assert.deepEqual(resurrected, [], `acked messages delivered again (seed ${SEED})`);
  // 3. Nothing that was never published.
  for (const k of [...drained, ...backlog]) assert.ok(ledger.attempted.has(k), `${k} was never published (seed ${SEED})`);
  // 4. Messages first delivered in the drain come out in publish order; the backlog is complete
  //    and in publish order (its messages were copied forward again and again).
  let last = -1;
  for (const k of drained) {
    if (ledger.delivered.has(k)) continue;
    const n = Number(k.slice(2));
    assert.ok(n > last, `order broken at ${k} (seed ${SEED})`);
    last = n;
  }
  const backlogNumbers = backlog.map((k) => Number(k.slice(2)));
  assert.deepEqual(backlogNumbers, [...backlogNumbers].sort((a, b) => a - b), `backlog order (seed ${SEED})`);
  const answeredBacklog = [...ledger.answeredPublish].filter((k) => k.startsWith('b:'));
  const backlogSet = new Set(backlog);
  assert.deepEqual(answeredBacklog.filter((k) => !backlogSet.has(k)), [], `backlog messages lost (seed ${SEED})`);
  // 5. DACK delays and dackCounts survive: the next delivery after an answered DACK is not early
  //    and counts at least the DACKs answered before it.
  let dackChecks = 0;
  for (const [key, sentTimes] of ledger.dackAnswered) {
    const deliveries = ledger.deliveries.filter((d) => d.payload === key);
    for (const sentAt of sentTimes) {
      const next = deliveries.find((d) => d.atMs > sentAt);
      if (next === undefined) continue;
      assert.ok(next.atMs >= sentAt + DACK_SECONDS * 1000 - 5, `${key} came back before its DACK delay (seed ${SEED})`);
      assert.ok(next.dackCount >= sentTimes.filter((s) => s < next.atMs).length, `${key} lost its dackCount (seed ${SEED})`);
      assert.ok(next.dackCount <= (ledger.dackSent.get(key) ?? 0), `${key} dackCount too high (seed ${SEED})`);
      dackChecks++;
    }
  }
  const summary =
    `cycles=${CYCLES} published=${ledger.answeredPublish.size} acked=${ledger.ackAnswered.size} drained=${drained.length} ` +
    `backlog=${backlog.length} dackChecks=${dackChecks} compactionRuns=${runsSeen + finalRuns.length} messagesCopied=${copiedSeen} ` +
    `killsLeavingTwoCopies=${interrupted} ` +
    `segments=${fs.readdirSync(db).filter((n) => n.endsWith('.log')).length}`;
  t.diagnostic(summary);
  console.log(`# compaction crash loop: ${summary}`);
  // The workload must have exercised compaction (how often depends on the machine's speed: on a
  // loaded 2-core machine about one run per cycle), and some kills must have hit a copy.
  assert.ok(runsSeen >= CYCLES / 2 && copiedSeen > 0 && interrupted > 0, 'compaction was busy copying while the server was killed');
  assert.ok(backlog.length > 50);
});
