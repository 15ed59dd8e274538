/**
 * The broker's half of compaction (issue #4: segment-accounting.ts, live-accounting.ts,
 * evacuate.ts) paired with the real compactor, on real temp directories: what replay rebuilds after a
 * compaction and a restart must be exactly what it rebuilds from the uncompacted log (queue
 * order, delayed set with due times, dackCounts, the in-flight-at-front rule, deleted topics,
 * acked messages), also when a crash left both the old segment and its copies.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Broker, type BrokerOptions } from '../../src/broker/broker.js';
import type { Consumer } from '../../src/broker/consumer.js';
import type { Message } from '../../src/broker/message.js';
import { listSegments } from '../../src/log/files.js';
import { Placement, RecordType } from '../../src/log/record.js';
import { type AfterHook, brokerOptions, deleteTopic, harness, prng, publish, randInt, recorder, recordingLogger, removeDir, scanFile, settle, tempDir, text } from '../helpers/index.js';

const SEGMENT_BYTES = 2048;
const NEVER_MS = 2 ** 31 - 1;

/** Small segments, payloads read back from disk, no timers: every pass and tick is the test's. */
function compacting(overrides: Partial<BrokerOptions> = {}): Partial<BrokerOptions> {
  return {
    segmentBytes: SEGMENT_BYTES,
    payloadCacheBytes: 0,
    periodMs: NEVER_MS,
    compaction: { auto: false, maxLiveRatio: 1, graceSegments: 0, copyMinGarbageBytes: 0 },
    ...overrides,
  };
}

/** Opens a broker on `dir` (closed after the test). */
function openAt(t: AfterHook, dir: string, overrides: Partial<BrokerOptions> = {}): Broker {
  const broker = new Broker(brokerOptions(dir, overrides));
  broker.open();
  t.after(() => broker.close());
  return broker;
}

/** Copies a data directory (after the writer drained), for a reference replay of the uncompacted log. */
async function copyLog(broker: Broker, dir: string): Promise<string> {
  await broker.writer.drain();
  const copy = tempDir('mq-compact-ref-');
  fs.cpSync(dir, copy, { recursive: true });
  return copy;
}

function describe(broker: Broker, m: Message): string {
  return `${text(m)}#dack=${m.dackCount}#deliveries=${m.deliveries}`;
}

/** Everything replay rebuilds for `topics`, by payload (ids differ once compaction wrote records). */
function snapshot(broker: Broker, topics: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { topics: broker.topicNames(), messages: broker.messageCount };
  for (const name of topics) {
    const s = broker.inspect(name);
    // A deleted topic leaves an empty Topic object behind only while its records are in the log.
    if (s === undefined || (broker.topicStats(name) === undefined && s.ready.length + s.delayed.length + s.inFlight.length === 0)) continue;
    out[name] = {
      ready: s.ready.map((m) => describe(broker, m)),
      delayed: s.delayed.map((m) => `${describe(broker, m)}#due=${m.dueAtMs}`).sort(),
      inFlight: s.inFlight.map((m) => describe(broker, m)).sort(),
      // published and acked included: COUNTERS records keep them exact (issue 13 finding 8).
      stats: broker.topicStats(name) ?? null,
    };
  }
  return out;
}

/** Publishes and acks `n` messages on a scratch topic: whole segments of garbage. */
async function garbage(broker: Broker, n: number, tag: string): Promise<void> {
  const c = recorder(broker).consumer;
  for (let i = 0; i < n; i++) await publish(broker, 'garbage', `${tag}-${i}-${'x'.repeat(40)}`);
  for (;;) {
    const m = c.take('garbage');
    if (m === undefined) break;
    await settle(c, m, 'ACK');
  }
}

function logBytes(dir: string): number {
  return listSegments(dir).reduce((n, base) => n + fs.statSync(path.join(dir, `${String(base).padStart(20, '0')}.log`)).size, 0);
}

test('compaction keeps queue order, due times, dackCounts and the in-flight order across a restart', async (t) => {
  const h = harness(t);
  let broker = h.open(compacting());
  const c1 = recorder(broker).consumer;
  const ids: number[] = [];
  for (let i = 0; i < 10; i++) ids.push(await publish(broker, 'q', `m${i}`));
  await garbage(broker, 60, 'a');
  const [m0, m1, m2] = [c1.take('q')!, c1.take('q')!, c1.take('q')!];
  await settle(c1, m1, 'NACK');
  await settle(c1, m2, 'BACK');
  await settle(c1, m0, 'DACK', 30_000);
  await garbage(broker, 60, 'b');
  const again = c1.take('q')!; // m1, from the front
  assert.equal(text(again), 'm1');
  const m3 = c1.take('q')!;
  const m4 = c1.take('q')!;
  await settle(c1, m4, 'NACK'); // m4 to the front; m1 and m3 stay in flight
  for (let i = 10; i < 13; i++) await publish(broker, 'q', `m${i}`);
  await garbage(broker, 60, 'c');
  assert.equal(text(m3), 'm3');

  const refDir = await copyLog(broker, h.dir);
  t.after(() => removeDir(refDir));
  const reference = snapshot(openAt(t, refDir, { compaction: { enabled: false }, periodMs: NEVER_MS }), ['q']);

  const before = listSegments(h.dir).length;
  const bytesBefore = logBytes(h.dir);
  const run = await broker.compactNow();
  assert.ok(run !== null && run.segmentsRemoved > 0 && run.messagesCopied > 0, JSON.stringify(run));
  assert.ok(listSegments(h.dir).length < before);
  assert.ok(logBytes(h.dir) < bytesBefore / 2, `${logBytes(h.dir)} vs ${bytesBefore}`);
  assert.ok(!fs.existsSync(path.join(h.dir, '00000000000000000000.log')), 'the first segment is gone');
  // The messages copied forward are read from their new place.
  assert.deepEqual(broker.inspect('q')!.ready.map((m) => text(m)), ['m4', 'm5', 'm6', 'm7', 'm8', 'm9', 'm2', 'm10', 'm11', 'm12']);
  assert.equal(broker.compactionStats.runs, 1);

  broker = await h.restart(broker, compacting());
  assert.deepEqual(snapshot(broker, ['q']), reference);
  const q = broker.inspect('q')!;
  assert.deepEqual(
    q.ready.map((m) => text(m)),
    ['m1', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9', 'm2', 'm10', 'm11', 'm12'],
    'in flight at the front in delivery order, then NACKed, then publish order with the BACKed one in its place',
  );
  assert.equal(q.delayed.length, 1);
  assert.equal(q.delayed[0]!.dackCount, 1);
  assert.equal(q.delayed[0]!.id, ids[0]);
  // And compacting the replayed log again changes nothing either.
  await garbage(broker, 60, 'd');
  assert.ok((await broker.compactNow()) !== null);
  broker = await h.restart(broker, compacting());
  assert.deepEqual(snapshot(broker, ['q']), reference);
});

test('a crash after the copies are written but before the old segment is deleted replays the same state', async (t) => {
  const h = harness(t);
  let broker = h.open(compacting());
  const c = recorder(broker).consumer;
  for (let i = 0; i < 8; i++) await publish(broker, 'q', `m${i}`);
  const a = c.take('q')!;
  const b = c.take('q')!;
  c.take('q'); // m2 stays in flight
  await settle(c, a, 'DACK', 100_000);
  await settle(c, b, 'NACK');
  await garbage(broker, 80, 'a');
  const before = await copyLog(broker, h.dir);
  t.after(() => removeDir(before));
  const reference = snapshot(openAt(t, tempCopy(t, before), { compaction: { enabled: false }, periodMs: NEVER_MS }), ['q']);
  const run = await broker.compactNow();
  assert.ok(run !== null && run.segmentsRemoved > 0);
  await broker.close();
  // The crash: the new records are there, and so are the segments compaction was about to delete.
  const crashed = tempCopy(t, h.dir);
  const removed = listSegments(before).filter((base) => !listSegments(h.dir).includes(base));
  assert.ok(removed.length > 0);
  for (const base of removed) {
    const name = `${String(base).padStart(20, '0')}.log`;
    fs.copyFileSync(path.join(before, name), path.join(crashed, name));
  }
  let again = openAt(t, crashed, compacting());
  assert.deepEqual(snapshot(again, ['q']), reference);
  // Compaction then finds the old copies superseded and removes them.
  const second = await again.compactNow();
  assert.ok(second !== null && second.segmentsRemoved >= removed.length, JSON.stringify(second));
  await again.close();
  again = openAt(t, crashed, compacting());
  assert.deepEqual(snapshot(again, ['q']), reference);
  broker = h.open(compacting());
  assert.deepEqual(snapshot(broker, ['q']), reference);
});

function tempCopy(t: AfterHook, dir: string): string {
  const copy = tempDir('mq-compact-copy-');
  fs.cpSync(dir, copy, { recursive: true });
  t.after(() => removeDir(copy));
  return copy;
}

test('a deleted topic stays deleted: its DELETE_TOPIC stays while an older segment holds its records', async (t) => {
  const h = harness(t);
  let broker = h.open(compacting({ compaction: { auto: false, maxLiveRatio: 0, graceSegments: 0, copyMinGarbageBytes: 0 } }));
  const keep = await publish(broker, 'keep', 'k'); // pins the first segment (never copied with ratio 0)
  for (let i = 0; i < 5; i++) await publish(broker, 'd', `d${i}`);
  await garbage(broker, 40, 'a');
  assert.equal(await deleteTopic(broker, 'd'), true);
  const deleteSegment = broker.log.active.baseOffset;
  await garbage(broker, 80, 'b');
  const run = await broker.compactNow();
  assert.ok(run !== null && run.segmentsRemoved > 0);
  const left = listSegments(h.dir);
  assert.ok(left.includes(0), 'the segment with the live message stays');
  assert.ok(left.includes(deleteSegment), 'the DELETE_TOPIC stays while segment 0 holds the topic');
  broker = await h.restart(broker, compacting({ compaction: { auto: false, maxLiveRatio: 1, graceSegments: 0, copyMinGarbageBytes: 0 } }));
  assert.deepEqual(broker.topicNames(), ['garbage', 'keep']);
  assert.equal(broker.messageCount, 1);
  // Now copy the live message forward: segment 0 goes, and then the delete is no longer needed.
  assert.ok((await broker.compactNow()) !== null);
  assert.ok(!listSegments(h.dir).includes(0));
  assert.ok(!listSegments(h.dir).includes(deleteSegment));
  broker = await h.restart(broker, compacting());
  assert.deepEqual(broker.topicNames(), ['garbage', 'keep']);
  assert.equal(broker.messageCount, 1);
  assert.equal(broker.inspect('keep')!.ready[0]!.id, keep);
  assert.equal(broker.inspect('d'), undefined);
});

/** Segments (base offsets) holding an ACK of `id`. */
function ackSegments(dir: string, id: number): number[] {
  return listSegments(dir).filter((base) =>
    scanFile(path.join(dir, `${String(base).padStart(20, '0')}.log`)).some((r) => r.rec.type === RecordType.ACK && r.rec.messageId === id),
  );
}

test('acked messages never come back: their ACK stays, or is written again, while an older segment holds the message', async (t) => {
  const h = harness(t);
  let broker = h.open(compacting({ compaction: { auto: false, maxLiveRatio: 0.3, graceSegments: 0, copyMinGarbageBytes: 0 } }));
  const c = recorder(broker).consumer;
  for (let i = 0; i < 20; i++) await publish(broker, 'q', `live-${i}-${'y'.repeat(40)}`);
  await garbage(broker, 40, 'a');
  const first = c.take('q')!; // from the mostly live first segment
  await garbage(broker, 40, 'b');
  await settle(c, first, 'ACK');
  const ackSegment = broker.log.active.baseOffset;
  await garbage(broker, 80, 'c');
  const run = await broker.compactNow();
  assert.ok(run !== null && run.segmentsRemoved > 0);
  assert.ok(listSegments(h.dir).includes(0), 'the mostly live first segment is not worth copying');
  assert.ok(!listSegments(h.dir).includes(ackSegment), 'the ACK was written again and its segment deleted');
  assert.ok(listSegments(h.dir).length <= 3, `${listSegments(h.dir).length} segments: the ACK does not pin the log behind it`);
  const acks = ackSegments(h.dir, first.id);
  assert.ok(acks.length > 0 && acks.every((base) => base > ackSegment), 'the ACK is in the log, later');
  broker = await h.restart(broker, compacting());
  assert.equal(broker.messageCount, 19);
  assert.ok(broker.inspect('q')!.ready.every((m) => m.id !== first.id));
  const run2 = await broker.compactNow(); // ratio 1: everything is copied, then all of it can go
  assert.ok(run2 !== null);
  assert.ok(!listSegments(h.dir).includes(ackSegment));
  broker = await h.restart(broker, compacting());
  assert.equal(broker.messageCount, 19);
  assert.ok(broker.inspect('q')!.ready.every((m) => m.id !== first.id));
});

test('a topic emptied by acks still exists after compaction removed all its records', async (t) => {
  const h = harness(t);
  let broker = h.open(compacting());
  const c = recorder(broker).consumer;
  await publish(broker, 'empty', 'e');
  await settle(c, c.take('empty')!, 'ACK');
  await garbage(broker, 80, 'a');
  assert.ok((await broker.compactNow()) !== null);
  assert.ok(!listSegments(h.dir).includes(0));
  broker = await h.restart(broker, compacting());
  assert.deepEqual(broker.topicNames(), ['empty', 'garbage']);
  await garbage(broker, 80, 'b'); // the TOPIC record itself gets copied forward again
  assert.ok((await broker.compactNow()) !== null);
  broker = await h.restart(broker, compacting());
  assert.deepEqual(broker.topicNames(), ['empty', 'garbage']);
  // Its counters too, though the PUBLISH and the ACK they were counted from are gone (issue 13 finding 8).
  assert.deepEqual(broker.topicStats('empty'), { topic: 'empty', ready: 0, inFlight: 0, delayed: 0, consumers: 0, published: 1, acked: 1 });
});

test('segments with nothing live are deleted without copying; the active segment never is; one log line per run', async (t) => {
  const h = harness(t);
  const { logger, lines } = recordingLogger();
  const broker = h.open(compacting({ logger }));
  await garbage(broker, 200, 'a');
  const segments = listSegments(h.dir).length;
  assert.ok(segments > 5);
  const run = await broker.compactNow();
  assert.ok(run !== null);
  assert.equal(run.messagesCopied, 0);
  assert.ok(run.bytesCopied < 64, 'one TOPIC record: the topic still exists');
  // All of them; and the one active then, as the TOPIC record went into a segment of its own.
  assert.equal(run.segmentsRemoved, segments);
  assert.deepEqual(listSegments(h.dir), [broker.log.active.baseOffset]);
  assert.equal(await broker.compactNow(), null, 'nothing left to do');
  const logged = lines.filter((l) => l['msg'] === 'compaction run');
  assert.equal(logged.length, 1);
  assert.equal(logged[0]!['level'], 30, 'info');
  assert.equal(logged[0]!['segmentsRemoved'], segments);
  assert.equal(logged[0]!['bytesReclaimed'], run.bytesReclaimed);
  assert.equal(typeof logged[0]!['durationMs'], 'number');
  assert.deepEqual(broker.compactionStats, {
    runs: 1,
    segmentsRemoved: segments,
    bytesReclaimed: run.bytesReclaimed,
    messagesCopied: 0,
    bytesCopied: run.bytesCopied,
    failures: 0,
  });
});

/** Live accounting of every segment, by base offset. */
function accounting(broker: Broker): Record<number, string> {
  const out: Record<number, string> = {};
  for (const segment of broker.log.segments) {
    const s = broker.segmentLiveness(segment);
    out[segment.baseOffset] = `live=${s.liveMessages}/${s.liveBytes} ref=${s.refMessages}/${s.refBytes} marks=${s.topicMarks}`;
  }
  return out;
}

/** Where each live message is placed in the log, by id. */
function placements(broker: Broker, topics: string[]): Record<number, string> {
  const out: Record<number, string> = {};
  for (const name of topics) {
    const s = broker.inspect(name);
    if (s === undefined) continue;
    for (const m of [...s.ready, ...s.delayed, ...s.inFlight]) {
      out[m.id] = `${m.placement}@${m.placement === Placement.DELAYED ? m.dueAtMs : m.placeOffset} dack=${m.dackCount} deliveries=${m.deliveries}`;
    }
  }
  return out;
}

test('random workload: a compacted log and the same log uncompacted replay to the same state (seeded)', async (t) => {
  const seed = Number(process.env.COMPACT_SEED ?? Math.floor(Math.random() * 1e9));
  t.diagnostic(`COMPACT_SEED=${seed}`);
  const rand = prng(seed);
  const realNow = Date.now;
  let now = 1_700_000_000_000;
  Date.now = () => now;
  t.after(() => {
    Date.now = realNow;
  });
  const compactedDir = tempDir('mq-compact-a-');
  const plainDir = tempDir('mq-compact-b-');
  t.after(() => {
    removeDir(compactedDir);
    removeDir(plainDir);
  });
  // Half the runs with the production thresholds (grace segment, minimum garbage, merges).
  const production = rand() < 0.5;
  t.diagnostic(`production thresholds: ${production}`);
  const aOpts = compacting({
    compaction: production ? { auto: false } : { auto: false, maxLiveRatio: 0.6, graceSegments: 0, copyMinGarbageBytes: 0 },
  });
  const bOpts = compacting({ compaction: { enabled: false } });
  let a = openAt(t, compactedDir, aOpts);
  let b = openAt(t, plainDir, bOpts);
  const topics = ['t0', 't1', 't2'];
  let ca: Consumer = recorder(a).consumer;
  let cb: Consumer = recorder(b).consumer;
  /** In flight, by payload: [message in a, message in b]. */
  let inFlight = new Map<string, [Message, Message]>();
  let seq = 0;
  let compactions = 0;
  let removed = 0;
  let copied = 0;
  for (let op = 0; op < 1500; op++) {
    const x = rand();
    now += randInt(rand, 0, 50);
    const topic = topics[randInt(rand, 0, topics.length)]!;
    if (x < 0.34) {
      const payload = `${topic}:${seq++}:${'p'.repeat(randInt(rand, 0, 60))}`;
      await Promise.all([publish(a, topic, payload), publish(b, topic, payload)]);
    } else if (x < 0.56) {
      const ma = ca.take(topic);
      const mb = cb.take(topic);
      assert.equal(ma === undefined ? undefined : text(ma), mb === undefined ? undefined : text(mb));
      if (ma !== undefined) inFlight.set(text(ma), [ma, mb!]);
    } else if (x < 0.8 && inFlight.size > 0) {
      const keys = [...inFlight.keys()];
      const key = keys[randInt(rand, 0, keys.length)]!;
      const [ma, mb] = inFlight.get(key)!;
      inFlight.delete(key);
      const y = rand();
      const kind = y < 0.55 ? 'ACK' : y < 0.7 ? 'NACK' : y < 0.85 ? 'BACK' : 'DACK';
      const delayMs = randInt(rand, 0, 3) * 1000;
      const settleBoth = [settle(ca, ma, kind, delayMs).catch((e: { code: string }) => e.code), settle(cb, mb, kind, delayMs).catch((e: { code: string }) => e.code)];
      const [ra, rb] = await Promise.all(settleBoth);
      assert.equal(ra, rb);
    } else if (x < 0.83) {
      a.tick(now);
      b.tick(now);
    } else if (x < 0.85) {
      ca.close();
      cb.close();
      ca = recorder(a).consumer;
      cb = recorder(b).consumer;
      inFlight = new Map();
    } else if (x < 0.86) {
      await Promise.all([deleteTopic(a, topic), deleteTopic(b, topic)]);
      for (const [k, [ma]] of inFlight) if (ma.topic === topic) inFlight.delete(k);
    } else if (x < 0.97) {
      const run = await a.compactNow();
      if (run !== null) {
        compactions++;
        removed += run.segmentsRemoved;
        copied += run.messagesCopied;
      }
    } else {
      // Restart both like a crash (consumers not closed): in-flight messages go to the front.
      await Promise.all([a.writer.drain(), b.writer.drain()]);
      const accountingBefore = accounting(a);
      const placementsBefore = placements(a, topics);
      await Promise.all([a.close(), b.close()]);
      a = openAt(t, compactedDir, aOpts);
      b = openAt(t, plainDir, bOpts);
      assert.deepEqual(snapshot(a, topics), snapshot(b, topics), `after a restart at op ${op} (seed ${seed})`);
      assert.deepEqual(accounting(a), accountingBefore, `live accounting at op ${op} (seed ${seed})`);
      // Placements were noted before their records had offsets; replay reads the real ones.
      const placementsAfter = placements(a, topics);
      for (const [id, p] of Object.entries(placementsBefore)) {
        if (placementsAfter[Number(id)] !== undefined) assert.equal(placementsAfter[Number(id)], p, `placement of ${id} (seed ${seed})`);
      }
      ca = recorder(a).consumer;
      cb = recorder(b).consumer;
      inFlight = new Map();
    }
  }
  await Promise.all([a.writer.drain(), b.writer.drain()]);
  await Promise.all([a.close(), b.close()]);
  a = openAt(t, compactedDir, aOpts);
  b = openAt(t, plainDir, bOpts);
  assert.deepEqual(snapshot(a, topics), snapshot(b, topics), `at the end (seed ${seed})`);
  t.diagnostic(
    `compactions=${compactions} segmentsRemoved=${removed} messagesCopied=${copied} ` +
      `segments a=${listSegments(compactedDir).length} b=${listSegments(plainDir).length}`,
  );
  // The workload exercised compaction. The production thresholds (a grace segment, a minimum of
  // garbage) run fewer passes: COMPACT_SEED=46 ran 2, removing 16 segments.
  assert.ok(compactions >= (production ? 1 : 3) && removed > 0 && (copied > 0 || production), `seed ${seed}`);
  assert.ok(logBytes(compactedDir) < logBytes(plainDir));
});

test('with --fsync interval and never, compaction keeps the same state across a restart', async (t) => {
  for (const fsync of ['interval', 'never'] as const) {
    const h = harness(t);
    let broker = h.open(compacting({ fsync }));
    const c = recorder(broker).consumer;
    for (let i = 0; i < 6; i++) await publish(broker, 'q', `m${i}`);
    const m0 = c.take('q')!;
    await settle(c, m0, 'DACK', 60_000);
    c.take('q'); // m1 in flight
    await garbage(broker, 80, fsync);
    const refDir = await copyLog(broker, h.dir);
    t.after(() => removeDir(refDir));
    const reference = snapshot(openAt(t, refDir, { compaction: { enabled: false }, periodMs: NEVER_MS }), ['q']);
    const run = await broker.compactNow();
    assert.ok(run !== null && run.segmentsRemoved > 0 && run.messagesCopied > 0, `${fsync}: ${JSON.stringify(run)}`);
    broker = await h.restart(broker, compacting({ fsync }));
    assert.deepEqual(snapshot(broker, ['q']), reference, fsync);
  }
});
