import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Message } from '../../src/broker/message.js';
import { LogAppend } from '../../src/log/log-append.js';
import { LogWriter } from '../../src/log/log-writer.js';
import { Placement } from '../../src/log/record.js';
import { LogCorruptError } from '../../src/log/segment-log.js';
import { append, deleteTopic, drainTexts, harness, openLog, silentLogger, peekTexts, prng, publish, randInt, recorder, recordingLogger, scanFile, segmentNames, settle, takeAll, text, waitFor } from '../helpers/index.js';

test('replay keeps the ready order of every topic and the message ids', async (t) => {
  const h = harness(t);
  let broker = h.open();
  const ids = new Map<string, number>();
  for (let i = 0; i < 30; i++) {
    const topic = `t${i % 3}`;
    ids.set(`${topic}/${i}`, await publish(broker, topic, `${topic}/${i}`));
  }
  const before = ['t0', 't1', 't2'].map((tp) => peekTexts(broker, tp));
  broker = await h.restart(broker);
  assert.deepEqual(broker.topicNames(), ['t0', 't1', 't2']);
  assert.equal(broker.messageCount, 30);
  assert.deepEqual(['t0', 't1', 't2'].map((tp) => peekTexts(broker, tp)), before);
  const { consumer } = recorder(broker);
  for (const m of takeAll(consumer, 't1')) assert.equal(m.id, ids.get(text(m)));
  for (const tp of ['t0', 't1', 't2']) {
    const s = broker.topicStats(tp)!;
    assert.equal(s.published, 10);
  }
});

test('replay keeps NACK (front) and BACK (back) placements', async (t) => {
  const h = harness(t);
  let broker = h.open();
  for (const s of ['a', 'b', 'c', 'd', 'e']) await publish(broker, 'q', s);
  const { consumer } = recorder(broker);
  const a = consumer.take('q')!;
  const b = consumer.take('q')!;
  const c = consumer.take('q')!;
  await settle(consumer, a, 'BACK');
  await settle(consumer, c, 'NACK');
  await settle(consumer, b, 'NACK');
  const expected = ['b', 'c', 'd', 'e', 'a'];
  assert.deepEqual(peekTexts(broker, 'q'), expected);
  broker = await h.restart(broker);
  assert.deepEqual(peekTexts(broker, 'q'), expected);
  // And again, after more moves on the replayed state.
  const { consumer: c2 } = recorder(broker);
  const first = c2.take('q')!;
  assert.equal(text(first), 'b');
  await settle(c2, first, 'BACK');
  broker = await h.restart(broker);
  assert.deepEqual(await drainTexts(broker, 'q'), ['c', 'd', 'e', 'a', 'b']);
});

test('acked messages are gone after a restart', async (t) => {
  const h = harness(t);
  let broker = h.open();
  const ids: number[] = [];
  for (let i = 1; i <= 5; i++) ids.push(await publish(broker, 'q', `m${i}`));
  const { consumer } = recorder(broker);
  const msgs = takeAll(consumer, 'q');
  await settle(consumer, msgs[1]!, 'ACK');
  await settle(consumer, msgs[3]!, 'ACK');
  for (const i of [4, 2, 0]) await settle(consumer, msgs[i]!, 'NACK');
  broker = await h.restart(broker);
  assert.equal(broker.messageCount, 3);
  assert.deepEqual(broker.topicStats('q'), { topic: 'q', ready: 3, inFlight: 0, delayed: 0, consumers: 0, published: 5, acked: 2 });
  assert.deepEqual(await drainTexts(broker, 'q'), ['m1', 'm3', 'm5']);
  broker = await h.restart(broker);
  assert.equal(broker.messageCount, 0);
  assert.deepEqual(broker.topicNames(), ['q'], 'a topic emptied by acks still exists');
});

test('DACKed messages come back delayed with their due time and dackCount', async (t) => {
  const h = harness(t);
  let broker = h.open();
  for (const s of ['a', 'b', 'c']) await publish(broker, 'q', s);
  const { consumer } = recorder(broker);
  const a = consumer.take('q')!;
  const before = Date.now();
  await settle(consumer, a, 'DACK', 30_000);
  const after = Date.now();
  broker = await h.restart(broker);
  assert.deepEqual(broker.topicStats('q'), { topic: 'q', ready: 2, inFlight: 0, delayed: 1, consumers: 0, published: 3, acked: 0 });
  broker.tick(Date.now());
  broker.tick(before + 30_000 - 1);
  assert.equal(broker.topicStats('q')!.delayed, 1, 'still held: the due time survived the restart');
  broker.tick(after + 30_000);
  assert.equal(broker.topicStats('q')!.delayed, 0);
  const c2 = recorder(broker);
  const back = c2.consumer.take('q')!;
  assert.equal(back.id, a.id);
  assert.equal(text(back), 'a');
  assert.equal(back.dackCount, 1);
});

test('dackCount survives restarts: DACK twice gives dackCount 2', async (t) => {
  const h = harness(t);
  let broker = h.open();
  const id = await publish(broker, 'q', 'x');
  const { consumer } = recorder(broker);
  await settle(consumer, consumer.take('q')!, 'DACK', 0);
  broker.tick(Date.now());
  const back = consumer.take('q')!;
  assert.equal(back.dackCount, 1);
  await settle(consumer, back, 'DACK', 0);
  broker = await h.restart(broker);
  assert.equal(broker.topicStats('q')!.delayed, 1);
  broker.tick(Date.now());
  const c2 = recorder(broker);
  const m = c2.consumer.take('q')!;
  assert.equal(m.id, id);
  assert.equal(m.dackCount, 2);
  // A NACK after the DACKs keeps the count too.
  await settle(c2.consumer, m, 'NACK');
  broker = await h.restart(broker);
  const c3 = recorder(broker);
  const again = c3.consumer.take('q')!;
  assert.equal(again.id, id);
  assert.equal(again.dackCount, 2);
  assert.equal(broker.topicStats('q')!.delayed, 0);
});

test('a delayed message whose due time passed during the downtime returns on the first tick, at the front', async (t) => {
  const h = harness(t);
  let broker = h.open();
  for (const s of ['a', 'b']) await publish(broker, 'q', s);
  const { consumer } = recorder(broker);
  const a = consumer.take('q')!;
  await settle(consumer, a, 'DACK', 0);
  broker = await h.restart(broker, { periodMs: 10 });
  const w = recorder(broker);
  await waitFor(() => broker.topicStats('q')!.delayed === 0, 2000);
  w.consumer.request('q');
  assert.equal(w.got[0]!.id, a.id);
  assert.equal(w.got[0]!.dackCount, 1);
});

test('messages in flight at close are ready again after restart, at the front, in their original order', async (t) => {
  const h = harness(t);
  let broker = h.open();
  for (let i = 1; i <= 6; i++) await publish(broker, 'q', `m${i}`);
  const c1 = recorder(broker);
  const c2 = recorder(broker);
  c1.consumer.request('q');
  c2.consumer.request('q');
  c1.consumer.take('q');
  assert.equal(broker.topicStats('q')!.inFlight, 3);
  broker = await h.restart(broker);
  assert.deepEqual(broker.topicStats('q'), { topic: 'q', ready: 6, inFlight: 0, delayed: 0, consumers: 0, published: 6, acked: 0 });
  assert.deepEqual(await drainTexts(broker, 'q'), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
});

test('in flight at close after a BACK: the in-flight messages are at the front after restart', async (t) => {
  const h = harness(t);
  let broker = h.open();
  for (const s of ['a', 'b', 'c', 'd']) await publish(broker, 'q', s);
  const { consumer } = recorder(broker);
  const a = consumer.take('q')!;
  await settle(consumer, a, 'BACK'); // b c d a
  consumer.take('q'); // b in flight
  consumer.take('q'); // c in flight
  broker = await h.restart(broker);
  assert.deepEqual(await drainTexts(broker, 'q'), ['b', 'c', 'd', 'a']);
});

test('consumers closed before a restart (graceful shutdown): their messages are at the front after it, in order', async (t) => {
  const h = harness(t);
  let broker = h.open();
  for (const s of ['a', 'b', 'c', 'd']) await publish(broker, 'q', s);
  const { consumer } = recorder(broker);
  const other = recorder(broker);
  const a = consumer.take('q')!;
  consumer.take('q'); // b stays in flight
  other.consumer.take('q'); // c stays in flight on another consumer
  await settle(consumer, a, 'NACK'); // a d; b and c in flight
  // Shutdown drops every connection: each consumer's messages are NACKed to the front.
  other.consumer.close();
  consumer.close();
  const live = peekTexts(broker, 'q');
  assert.deepEqual(live, ['b', 'c', 'a', 'd']);
  broker = await h.restart(broker);
  assert.deepEqual(await drainTexts(broker, 'q'), live);
});

test(
  'in flight at a crash while an earlier message was NACKed: the in-flight message is at the front after restart',
  async (t) => {
    const h = harness(t);
    let broker = h.open();
    for (const s of ['a', 'b', 'c']) await publish(broker, 'q', s);
    const { consumer } = recorder(broker);
    const a = consumer.take('q')!;
    consumer.take('q'); // b stays in flight
    await settle(consumer, a, 'NACK'); // a c, b in flight
    broker = await h.restart(broker); // closes the log without closing the consumer, like a crash
    assert.deepEqual(await drainTexts(broker, 'q'), ['b', 'a', 'c']);
  },
);

test('a deleted topic stays deleted after a restart; publishing to it again works', async (t) => {
  const h = harness(t);
  let broker = h.open();
  for (const s of ['a', 'b', 'c']) await publish(broker, 'gone', s);
  await publish(broker, 'kept', 'k');
  const { consumer } = recorder(broker);
  const a = consumer.take('gone')!;
  await settle(consumer, a, 'DACK', 60_000);
  consumer.take('gone'); // b in flight
  assert.equal(await deleteTopic(broker, 'gone'), true);
  broker = await h.restart(broker);
  assert.deepEqual(broker.topicNames(), ['kept']);
  assert.equal(broker.topicStats('gone'), undefined);
  assert.equal(broker.messageCount, 1);
  broker.tick(Date.now() + 120_000);
  const c2 = recorder(broker);
  assert.equal(c2.consumer.take('gone'), undefined);

  const id = await publish(broker, 'gone', 'reborn');
  assert.deepEqual(broker.topicNames(), ['gone', 'kept']);
  broker = await h.restart(broker);
  assert.deepEqual(broker.topicNames(), ['gone', 'kept']);
  assert.deepEqual(broker.topicStats('gone'), { topic: 'gone', ready: 1, inFlight: 0, delayed: 0, consumers: 0, published: 1, acked: 0 });
  const c3 = recorder(broker);
  const m = c3.consumer.take('gone')!;
  assert.equal(m.id, id);
  assert.equal(text(m), 'reborn');
  assert.equal(m.dackCount, 0);
  assert.deepEqual(await drainTexts(broker, 'kept'), ['k']);
});

test('delete then publish in the same run: only the new messages replay', async (t) => {
  const h = harness(t);
  let broker = h.open();
  await publish(broker, 'q', 'old1');
  await publish(broker, 'q', 'old2');
  await deleteTopic(broker, 'q');
  await publish(broker, 'q', 'new1');
  broker = await h.restart(broker);
  assert.deepEqual(await drainTexts(broker, 'q'), ['new1']);
});

test('payloads read back from disk after a restart are byte-identical (binary, empty, 1 MiB, across segments)', async (t) => {
  const h = harness(t);
  let broker = h.open({ segmentBytes: 64 * 1024 });
  const payloads: Buffer[] = [
    Buffer.alloc(0),
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    Buffer.from('\r\n\0\xff*$-+:', 'latin1'),
    Buffer.alloc(0),
  ];
  const big = Buffer.alloc(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  payloads.push(big);
  for (let i = 0; i < 40; i++) payloads.push(Buffer.from(Array.from({ length: 3000 + i }, (_, k) => (k * i) & 0xff)));
  for (const p of payloads) await publish(broker, 'bin', p);
  broker = await h.restart(broker, { segmentBytes: 64 * 1024 });
  assert.ok(segmentNames(h.dir).length > 2, 'the log spans several segments');
  const { consumer } = recorder(broker);
  const msgs = takeAll(consumer, 'bin');
  assert.equal(msgs.length, payloads.length);
  msgs.forEach((m, i) => {
    assert.equal(m.payloadCached, false, 'replayed payloads are read from disk');
    const got = m.payload;
    assert.equal(got.length, payloads[i]!.length, `length of payload ${i}`);
    assert.ok(got.equals(payloads[i]!), `payload ${i} is byte-identical`);
  });
});

test('new messages after a restart get ids above every replayed one', async (t) => {
  const h = harness(t);
  let broker = h.open();
  const old: number[] = [];
  for (let i = 0; i < 5; i++) old.push(await publish(broker, 'q', `o${i}`));
  broker = await h.restart(broker);
  const fresh = await publish(broker, 'q', 'n');
  assert.ok(fresh > Math.max(...old));
  assert.deepEqual(await drainTexts(broker, 'q'), ['o0', 'o1', 'o2', 'o3', 'o4', 'n']);
});

test('a failed publish never reappears after a restart', async (t) => {
  const h = harness(t);
  let broker = h.open();
  await publish(broker, 'q', 'ok1');
  const real = broker.writer.fs.fdatasync;
  broker.writer.fs.fdatasync = ((_fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
    setImmediate(() => cb(Object.assign(new Error('EIO'), { code: 'EIO' })));
  }) as typeof real;
  await assert.rejects(publish(broker, 'q', 'failed'));
  broker.writer.fs.fdatasync = real;
  await publish(broker, 'q', 'ok2');
  broker = await h.restart(broker);
  assert.deepEqual(await drainTexts(broker, 'q'), ['ok1', 'ok2']);
});

test('a torn last record is dropped on restart and everything before it is kept', async (t) => {
  const h = harness(t);
  let broker = h.open();
  for (const s of ['a', 'b', 'c']) await publish(broker, 'q', s);
  await broker.close();
  const file = path.join(h.dir, segmentNames(h.dir).at(-1)!);
  const entries = scanFile(file);
  const last = entries.at(-1)!;
  fs.truncateSync(file, last.position + 5);
  const { logger, lines } = recordingLogger();
  broker = h.open({ logger });
  assert.deepEqual(peekTexts(broker, 'q'), ['a', 'b']);
  assert.ok(lines.some((l) => l.level === 40 && l.file === file && l.position === last.position));
  await publish(broker, 'q', 'd');
  broker = await h.restart(broker);
  assert.deepEqual(await drainTexts(broker, 'q'), ['a', 'b', 'd']);
});

test('damage before the tail stops the broker from opening; repair opens with every record but the damaged one (issue 13)', async (t) => {
  const h = harness(t);
  let broker = h.open({ segmentBytes: 4096 });
  for (let i = 0; i < 100; i++) await publish(broker, 'q', `m${String(i).padStart(3, '0')}-${'x'.repeat(80)}`);
  await broker.close();
  const names = segmentNames(h.dir);
  assert.ok(names.length >= 3);
  const older = path.join(h.dir, names[1]!);
  const entries = scanFile(older);
  const victim = entries[3]!;
  const data = fs.readFileSync(older);
  data[victim.rec.payloadPosition + 10]! ^= 1;
  fs.writeFileSync(older, data);
  assert.throws(() => h.open(), (err: unknown) => err instanceof LogCorruptError && err.file === older && err.position === victim.position);
  broker = h.open({ repair: true, segmentBytes: 4096 });
  const texts = await drainTexts(broker, 'q');
  const expected = Array.from({ length: 100 }, (_, i) => `m${String(i).padStart(3, '0')}-${'x'.repeat(80)}`).filter((_, i) => i !== victim.rec.offset);
  assert.deepEqual(texts, expected);
});

test('model check: after random publish/take/settle/delete runs, replay rebuilds exactly the logged queue state', async (t) => {
  for (const seed of [1, 2, 3]) {
    const h = harness(t);
    let broker = h.open({ fsync: 'never', segmentBytes: 64 * 1024, periodMs: 1e9 }); // only the test ticks
    const rand = prng(seed);
    const topics = ['m0', 'm1'];
    // The state the log describes: ready order per topic (in-flight messages keep their place
    // until a restart moves them to the front), delayed ids, dackCounts.
    const order = new Map<string, number[]>(topics.map((tp) => [tp, []]));
    const delayed = new Map<string, Set<number>>(topics.map((tp) => [tp, new Set()]));
    const dackCount = new Map<number, number>();
    const textOf = new Map<number, string>();
    const inFlight: { id: number; topic: string }[] = [];
    const messages = new Map<number, Message>();
    const consumer = recorder(broker).consumer;
    let n = 0;
    const removeFrom = (tp: string, id: number): void => {
      const list = order.get(tp)!;
      const i = list.indexOf(id);
      if (i >= 0) list.splice(i, 1);
      delayed.get(tp)!.delete(id);
    };
    const settleSome = async (count: number, kinds: readonly ('ACK' | 'NACK' | 'BACK' | 'DACK')[]): Promise<void> => {
      const done: Promise<void>[] = [];
      for (let k = 0; k < count && inFlight.length > 0; k++) {
        const [{ id, topic }] = inFlight.splice(randInt(rand, 0, inFlight.length), 1) as [{ id: number; topic: string }];
        const kind = kinds[randInt(rand, 0, kinds.length)]!;
        done.push(settle(consumer, messages.get(id)!, kind, rand() < 0.5 ? 0 : 1_000_000));
        removeFrom(topic, id);
        if (kind === 'NACK') order.get(topic)!.unshift(id);
        else if (kind === 'BACK') order.get(topic)!.push(id);
        else if (kind === 'DACK') {
          delayed.get(topic)!.add(id);
          dackCount.set(id, (dackCount.get(id) ?? 0) + 1);
        }
      }
      await Promise.all(done);
    };
    for (let step = 0; step < 400; step++) {
      const r = rand();
      const tp = topics[randInt(rand, 0, topics.length)]!;
      if (r < 0.3) {
        const texts = Array.from({ length: randInt(rand, 1, 40) }, () => `p${n++}`);
        const ids = await Promise.all(texts.map((s) => publish(broker, tp, s)));
        ids.forEach((id, i) => textOf.set(id, texts[i]!));
        order.get(tp)!.push(...ids);
      } else if (r < 0.6) {
        for (let k = randInt(rand, 1, 15); k > 0; k--) {
          const m = consumer.take(tp);
          if (m === undefined) break;
          messages.set(m.id, m);
          inFlight.push({ id: m.id, topic: tp });
        }
      } else if (r < 0.65) {
        // Due delayed messages return to the front, earliest due first (logged since the tick fix).
        const now = Date.now();
        broker.tick(now);
        for (const tp2 of topics) {
          const due = [...delayed.get(tp2)!].map((id) => messages.get(id)!).filter((m) => m.dueAtMs <= now);
          due.sort((x, y) => y.dueAtMs - x.dueAtMs || y.id - x.id);
          for (const m of due) {
            delayed.get(tp2)!.delete(m.id);
            order.get(tp2)!.unshift(m.id);
          }
        }
      } else if (r < 0.995) {
        await settleSome(randInt(rand, 1, 12), ['ACK', 'ACK', 'ACK', 'NACK', 'BACK', 'DACK']);
      } else {
        await deleteTopic(broker, tp);
        order.set(tp, []);
        delayed.get(tp)!.clear();
        for (let i = inFlight.length - 1; i >= 0; i--) if (inFlight[i]!.topic === tp) inFlight.splice(i, 1);
      }
    }
    // A consumer acks most of m0, so replay sees far more stale queue slots than live ones.
    for (let m = consumer.take('m0'); m !== undefined; m = consumer.take('m0')) {
      messages.set(m.id, m);
      inFlight.push({ id: m.id, topic: 'm0' });
    }
    await settleSome(Math.floor(inFlight.length * 0.9), ['ACK', 'ACK', 'ACK', 'ACK', 'ACK', 'ACK', 'ACK', 'ACK', 'NACK', 'BACK']);
    const ctx = `seed ${seed}: ${n} published, ${inFlight.length} left in flight`;

    // In this process: the ready queues are the logged order without the in-flight messages.
    const inFlightIds = new Set(inFlight.map((f) => f.id));
    for (const tp of topics) {
      const ready = order.get(tp)!.filter((id) => !inFlightIds.has(id));
      assert.deepEqual(peekTexts(broker, tp), ready.map((id) => textOf.get(id)), `${ctx}: live order of ${tp}`);
      // After a restart the messages still in flight (DELIVER logged, never settled) come first,
      // in delivery order, then the ready ones (peekTexts NACKed those back: logged, same order).
      order.set(tp, [...inFlight.filter((f) => f.topic === tp).map((f) => f.id), ...ready]);
    }
    for (const tp of topics) {
      const s = broker.topicStats(tp);
      assert.equal(s?.delayed ?? 0, delayed.get(tp)!.size, `${ctx}: live delayed of ${tp}`);
    }
    broker = await h.restart(broker, { fsync: 'never', segmentBytes: 64 * 1024, periodMs: 1e9 });
    for (const tp of topics) {
      const expected = order.get(tp)!.map((id) => textOf.get(id));
      const stats = broker.topicStats(tp);
      if (stats === undefined) {
        assert.equal(expected.length + delayed.get(tp)!.size, 0, `${ctx}: ${tp} missing`);
        continue;
      }
      assert.equal(stats.delayed, delayed.get(tp)!.size, `${ctx}: delayed of ${tp}`);
      assert.equal(stats.inFlight, 0);
      assert.deepEqual(peekTexts(broker, tp), expected, `${ctx}: replayed order of ${tp}`);
    }
    broker.tick(Date.now() + 2_000_000);
    const c = recorder(broker).consumer;
    for (const tp of topics) {
      const back = takeAll(c, tp).slice(0, delayed.get(tp)!.size);
      assert.deepEqual(new Set(back.map((m) => m.id)), delayed.get(tp)!, `${ctx}: delayed ids of ${tp}`);
      for (const m of back) assert.equal(m.dackCount, dackCount.get(m.id), `${ctx}: dackCount of ${m.id}`);
    }
    await broker.close();
  }
});

test('a DACKed message already returned by the tick keeps its place after a restart (a later NACK stays in front)', async (t) => {
  const h = harness(t);
  let broker = h.open();
  for (const s of ['a', 'b']) await publish(broker, 'q', s);
  const { consumer } = recorder(broker);
  const a = consumer.take('q')!;
  await settle(consumer, a, 'DACK', 0);
  const b = consumer.take('q')!;
  broker.tick(Date.now()); // a is ready again, at the front
  await settle(consumer, b, 'NACK'); // b goes in front of a: the next one delivered
  const live = peekTexts(broker, 'q');
  assert.deepEqual(live, ['b', 'a']);
  broker = await h.restart(broker);
  broker.tick(Date.now());
  assert.equal(broker.topicStats('q')!.delayed, 0);
  const c2 = recorder(broker);
  const first = c2.consumer.take('q')!;
  const second = c2.consumer.take('q')!;
  assert.deepEqual([text(first), text(second)], live, 'NACK put b in front; a restart must not undo that');
  assert.equal(second.dackCount, 1);
});

/**
 * Writes, as compaction and dead-lettering would: a dead letter RESTOREd ready on `t.dead`, its
 * ACK, and a second dead letter RESTOREd ready there, which replay gives the first one's freed
 * handle; then `tail` (more records). Returns the two dead letters' ids.
 */
async function writeReusedRestoreLog(dir: string, tail: (writer: LogWriter) => Promise<void>): Promise<[number, number]> {
  const { log } = openLog(dir);
  const writer = new LogWriter(log, { fsync: 'never', fsyncIntervalMs: 1000, segmentBytes: 1 << 20, logger: silentLogger });
  const deadLetter = async (offset: number, payload: string): Promise<number> => {
    const state = { messageId: offset, dackCount: 0, dueAtMs: 0, placement: Placement.BACK, placeOffset: offset, deliveries: 3 };
    const { err, rec } = await append(writer, (done) => LogAppend.forRestore('t.dead', state, Buffer.from(payload), done));
    assert.equal(err, null);
    assert.equal(rec.offset, offset, 'a dead letter is a RESTORE whose id is its own offset');
    return offset;
  };
  const first = await deadLetter(0, 'first');
  assert.equal((await append(writer, (done) => LogAppend.forAck('t.dead', first, done))).err, null);
  const second = await deadLetter(2, 'second');
  await tail(writer);
  await writer.close();
  return [first, second];
}

test('replay: a handle freed and reused by a later RESTORE on the same topic is one message, listed once', async (t) => {
  const h = harness(t);
  const [, second] = await writeReusedRestoreLog(h.dir, async () => {});
  const broker = h.open();
  assert.equal(broker.messageCount, 1);
  assert.deepEqual(broker.inspect('t.dead')!.ready.map((m) => m.id), [second]);
  assert.equal(broker.topicStats('t.dead')!.ready, 1);
  const { consumer } = recorder(broker);
  assert.deepEqual(takeAll(consumer, 't.dead').map(text), ['second']);
});

test('replay: a DELETE_TOPIC after a reused RESTORE handle frees it once (two later publishes stay two messages)', async (t) => {
  // Before the fix, the handle was freed twice, so the next two messages shared it: the first
  // vanished from memory (still in the log) and its segment's live count never went back to 0.
  const h = harness(t);
  await writeReusedRestoreLog(h.dir, async (writer) => {
    assert.equal((await append(writer, (done) => LogAppend.forDeleteTopic('t.dead', done))).err, null);
  });
  let broker = h.open();
  assert.equal(broker.messageCount, 0);
  assert.deepEqual(broker.topicNames(), []);
  await publish(broker, 'u', 'a');
  await publish(broker, 'u', 'b');
  assert.equal(broker.messageCount, 2);
  assert.deepEqual(peekTexts(broker, 'u'), ['a', 'b']);
  const { consumer } = recorder(broker);
  const [a, b] = takeAll(consumer, 'u');
  assert.deepEqual([text(a!), text(b!)], ['a', 'b']);
  await settle(consumer, a!, 'ACK');
  broker = await h.restart(broker);
  assert.deepEqual(peekTexts(broker, 'u'), ['b']);
});
