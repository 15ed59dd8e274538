import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Broker } from '../../src/broker/broker.js';
import type { Message } from '../../src/broker/message.js';
import type { WriterFs } from '../../src/log/log-writer.js';
import { brokerOptions, deleteTopic, drainTexts, harness, peekTexts, prng, publish, randInt, recorder, rejectsCode, settle, takeAll, text, throwsCode, waitFor } from '../helpers/index.js';

test('publish then request delivers in publish order', async (t) => {
  const broker = harness(t).open();
  const ids: number[] = [];
  for (let i = 0; i < 10; i++) ids.push(await publish(broker, 'jobs', `m${i}`));
  assert.deepEqual([...ids].sort((a, b) => a - b), ids, 'ids increase');
  assert.equal(new Set(ids).size, 10);
  assert.deepEqual(broker.topicNames(), ['jobs']);
  const { consumer, got } = recorder(broker);
  for (let i = 0; i < 10; i++) {
    consumer.request('jobs');
    assert.equal(got.length, i + 1, 'delivered synchronously when a message is ready');
    const msg = got[i]!;
    assert.equal(msg.id, ids[i]);
    assert.equal(msg.topic, 'jobs');
    assert.equal(text(msg), `m${i}`);
    assert.equal(msg.dackCount, 0);
    await settle(consumer, msg, 'ACK');
  }
  consumer.request('jobs');
  assert.equal(got.length, 10, 'nothing more to deliver');
  assert.deepEqual(broker.topicStats('jobs'), {
    topic: 'jobs',
    ready: 0,
    inFlight: 0,
    delayed: 0,
    consumers: 0,
    published: 10,
    acked: 10,
  });
});

test('topics are independent queues', async (t) => {
  const broker = harness(t).open();
  await publish(broker, 'a', 'a1');
  await publish(broker, 'b', 'b1');
  await publish(broker, 'a', 'a2');
  assert.deepEqual(broker.topicNames(), ['a', 'b']);
  assert.deepEqual(peekTexts(broker, 'a'), ['a1', 'a2']);
  assert.deepEqual(peekTexts(broker, 'b'), ['b1']);
});

test('a waiting consumer receives a message published later', async (t) => {
  const broker = harness(t).open();
  const { consumer, got } = recorder(broker);
  consumer.request('later');
  assert.equal(got.length, 0);
  assert.deepEqual(broker.topicNames(), [], 'waiting on a topic does not create it');
  const id = await publish(broker, 'later', 'hello');
  assert.equal(got.length, 1);
  assert.equal(got[0]!.id, id);
  assert.equal(text(got[0]!), 'hello');
  assert.equal(broker.topicStats('later')!.inFlight, 1);
  assert.equal(broker.topicStats('later')!.ready, 0);
});

test('waiting consumers are served first come, first served; a new request replaces the old one', async (t) => {
  const broker = harness(t).open();
  const a = recorder(broker);
  const b = recorder(broker);
  const c = recorder(broker);
  a.consumer.request('q');
  b.consumer.request('q');
  c.consumer.request('other');
  c.consumer.request('q'); // replaces the wait on 'other'
  await publish(broker, 'other', 'o');
  assert.equal(c.got.length, 0);
  await publish(broker, 'q', '1');
  await publish(broker, 'q', '2');
  await publish(broker, 'q', '3');
  assert.deepEqual(a.got.map((m) => text(m)), ['1']);
  assert.deepEqual(b.got.map((m) => text(m)), ['2']);
  assert.deepEqual(c.got.map((m) => text(m)), ['3']);
  const d = recorder(broker);
  d.consumer.request('q');
  d.consumer.cancel();
  await publish(broker, 'q', '4');
  assert.equal(d.got.length, 0);
  assert.equal(broker.topicStats('q')!.ready, 1);
});

test('competing consumers get different messages, one delivery per message at a time', async (t) => {
  const broker = harness(t).open();
  for (let i = 0; i < 4; i++) await publish(broker, 'work', `w${i}`);
  const c1 = recorder(broker);
  const c2 = recorder(broker);
  c1.consumer.request('work');
  c2.consumer.request('work');
  const m1 = c1.got[0]!;
  const m2 = c2.got[0]!;
  assert.notEqual(m1.id, m2.id);
  assert.deepEqual([text(m1), text(m2)], ['w0', 'w1']);
  // c1 cannot settle c2's delivery, nor find c2's message among its own.
  throwsCode(() => c1.consumer.settle(m2.deliveryId, 'ACK', 0, () => assert.fail('no callback')), 'MQ_ERR_NOT_IN_FLIGHT');
  throwsCode(() => c1.consumer.deliveryOf(m2.id), 'MQ_ERR_NOT_IN_FLIGHT');
  // NACK puts w0 back; the next taker gets it, and the old owner can no longer settle it.
  await settle(c1.consumer, m1, 'NACK');
  const again = c2.consumer.take('work')!;
  assert.equal(again.id, m1.id);
  throwsCode(() => c1.consumer.settle(m1.deliveryId, 'ACK', 0, () => {}), 'MQ_ERR_NOT_IN_FLIGHT');
  throwsCode(() => c1.consumer.deliveryOf(m1.id), 'MQ_ERR_NOT_IN_FLIGHT');
  assert.equal(broker.topicStats('work')!.inFlight, 2);
  assert.equal(broker.topicStats('work')!.ready, 2);
});

test('random competing consumers: no message is in flight twice, each is acked exactly once', async (t) => {
  const broker = harness(t).open({ fsync: 'never' });
  const rand = prng(99);
  const N = 200;
  for (let i = 0; i < N; i++) await publish(broker, 'stress', `s${i}`);
  const owner = new Map<number, number>();
  const acked = new Set<number>();
  const consumers = Array.from({ length: 4 }, (_, k) =>
    broker.openConsumer({
      onDelivery: (msg) => {
        assert.equal(owner.has(msg.messageId), false, `message ${msg.messageId} delivered while in flight`);
        assert.equal(acked.has(msg.messageId), false, `acked message ${msg.messageId} delivered again`);
        owner.set(msg.messageId, k);
      },
    }),
  );
  let steps = 0;
  while (acked.size < N) {
    assert.ok(steps++ < 20_000, 'progress');
    const k = randInt(rand, 0, consumers.length);
    const c = consumers[k]!;
    const mine = [...c.inFlight.values()];
    if (mine.length === 0 || rand() < 0.4) {
      c.request('stress');
      continue;
    }
    const msg = mine[randInt(rand, 0, mine.length)]!;
    const id = msg.id;
    assert.equal(owner.get(id), k);
    owner.delete(id);
    const r = rand();
    const kind = r < 0.6 ? 'ACK' : r < 0.75 ? 'NACK' : r < 0.9 ? 'BACK' : 'DACK';
    await settle(c, msg, kind, 0);
    if (kind === 'ACK') acked.add(id);
    if (kind === 'DACK') broker.tick(Date.now());
  }
  assert.equal(broker.messageCount, 0);
  assert.equal(broker.topicStats('stress')!.acked, N);
});

test('ACK removes the message for good', async (t) => {
  const broker = harness(t).open();
  const id = await publish(broker, 'q', 'x');
  const { consumer } = recorder(broker);
  const msg = consumer.take('q')!;
  assert.equal(msg.id, id);
  await settle(consumer, msg, 'ACK');
  assert.equal(broker.messageCount, 0);
  assert.equal(consumer.take('q'), undefined);
  assert.deepEqual(broker.topicStats('q'), { topic: 'q', ready: 0, inFlight: 0, delayed: 0, consumers: 0, published: 1, acked: 1 });
  throwsCode(() => consumer.settle(msg.deliveryId, 'ACK', 0, () => {}), 'MQ_ERR_NOT_IN_FLIGHT');
  throwsCode(() => consumer.settle(msg.deliveryId, 'NACK', 0, () => {}), 'MQ_ERR_NOT_IN_FLIGHT');
  throwsCode(() => consumer.deliveryOf(id), 'MQ_ERR_NOT_IN_FLIGHT');
});

test('NACK puts the message at the front: it is the next one delivered', async (t) => {
  const broker = harness(t).open();
  for (const s of ['a', 'b', 'c']) await publish(broker, 'q', s);
  const { consumer } = recorder(broker);
  const a = consumer.take('q')!;
  const b = consumer.take('q')!;
  await settle(consumer, b, 'NACK');
  await settle(consumer, a, 'NACK');
  assert.deepEqual(await drainTexts(broker, 'q'), ['a', 'b', 'c']);
});

test('NACK hands the message to a waiting consumer at once', async (t) => {
  const broker = harness(t).open();
  await publish(broker, 'q', 'only');
  const c1 = recorder(broker);
  const c2 = recorder(broker);
  c1.consumer.request('q');
  c2.consumer.request('q');
  assert.equal(c2.got.length, 0);
  await settle(c1.consumer, c1.got[0]!, 'NACK');
  assert.equal(c2.got.length, 1);
  assert.equal(c2.got[0]!.id, c1.got[0]!.id);
});

test('BACK puts the message at the end of the queue', async (t) => {
  const broker = harness(t).open();
  for (const s of ['a', 'b', 'c']) await publish(broker, 'q', s);
  const { consumer } = recorder(broker);
  const a = consumer.take('q')!;
  await settle(consumer, a, 'BACK');
  assert.equal(a.dackCount, 0);
  assert.deepEqual(await drainTexts(broker, 'q'), ['b', 'c', 'a']);
});

test('DACK n holds the message for n seconds, then returns it to the front with dackCount + 1', async (t) => {
  const broker = harness(t).open();
  for (const s of ['a', 'b', 'c']) await publish(broker, 'q', s);
  const { consumer, got } = recorder(broker);
  const a = consumer.take('q')!;
  const before = Date.now();
  await settle(consumer, a, 'DACK', 5000);
  const after = Date.now();
  assert.equal(broker.topicStats('q')!.delayed, 1);
  assert.equal(broker.topicStats('q')!.ready, 2);
  assert.equal(broker.topicStats('q')!.inFlight, 0);
  broker.tick(before + 5000 - 1);
  assert.equal(broker.topicStats('q')!.delayed, 1, 'not returned before its due time (ms, not rounded)');
  broker.tick(after + 5000 + 1);
  assert.equal(broker.topicStats('q')!.delayed, 0);
  consumer.request('q');
  assert.equal(got[0]!.id, a.id, 'returned to the front');
  assert.equal(got[0]!.dackCount, 1);
  assert.equal(text(got[0]!), 'a');
  await settle(consumer, got[0]!, 'DACK', 1000); // its new delivery: a's has ended
  broker.tick(Date.now() + 1000 + 1);
  consumer.request('q');
  assert.equal(got[1]!.id, a.id);
  assert.equal(got[1]!.dackCount, 2);
});

test('DACK 0 returns the message on the next tick', async (t) => {
  const broker = harness(t).open();
  for (const s of ['a', 'b']) await publish(broker, 'q', s);
  const { consumer } = recorder(broker);
  const a = consumer.take('q')!;
  await settle(consumer, a, 'DACK', 0);
  assert.equal(broker.topicStats('q')!.delayed, 1, 'held until the tick');
  const b = consumer.take('q')!;
  assert.equal(text(b), 'b');
  broker.tick(Date.now());
  const back = consumer.take('q')!;
  assert.equal(back.id, a.id);
  assert.equal(back.dackCount, 1);
});

test('the period ticker returns DACK 0 messages on its own', async (t) => {
  const broker = harness(t).open({ periodMs: 10 });
  await publish(broker, 'q', 'a');
  const { consumer, got } = recorder(broker);
  const a = consumer.take('q')!;
  await settle(consumer, a, 'DACK', 0);
  // No tick() from the test: whether the 10 ms ticker already ran during the settle's fsync (the
  // request is then answered at once) or runs later, only the ticker can have returned it.
  consumer.request('q');
  await waitFor(() => got.length > 0, 2000);
  assert.equal(got.length, 1, 'the waiting consumer got it from the ticker');
  assert.equal(got[0]!.dackCount, 1);
});

test('several due messages return to the front earliest due first; a waiting consumer gets one', async (t) => {
  const broker = harness(t).open();
  for (const s of ['a', 'b', 'c', 'd']) await publish(broker, 'q', s);
  const { consumer } = recorder(broker);
  const [a, b, c] = [consumer.take('q')!, consumer.take('q')!, consumer.take('q')!];
  await settle(consumer, a, 'DACK', 3000);
  await settle(consumer, b, 'DACK', 1000);
  await settle(consumer, c, 'DACK', 2000);
  broker.tick(Date.now() + 10_000);
  assert.equal(broker.topicStats('q')!.delayed, 0);
  assert.deepEqual(peekTexts(broker, 'q'), ['b', 'c', 'a', 'd']);
  // Returned by separate ticks: each tick puts what is due in front of what is ready.
  const again = [consumer.take('q')!, consumer.take('q')!, consumer.take('q')!];
  // Each delivery gets a view of its own: compare the messages by id.
  assert.deepEqual(again.map((m) => m.id), [b.id, c.id, a.id]);
  const [b2, c2, a2] = again as [Message, Message, Message];
  await settle(consumer, a2, 'DACK', 3000);
  await settle(consumer, b2, 'DACK', 1000);
  await settle(consumer, c2, 'DACK', 2000);
  broker.tick(Date.now() + 1500);
  assert.equal(broker.topicStats('q')!.delayed, 2);
  assert.deepEqual(peekTexts(broker, 'q'), ['b', 'd']);
  broker.tick(Date.now() + 10_000);
  assert.deepEqual(await drainTexts(broker, 'q'), ['c', 'a', 'b', 'd']);

  await publish(broker, 'r', 'x');
  const w = recorder(broker);
  const x = consumer.take('r')!;
  await settle(consumer, x, 'DACK', 2000);
  w.consumer.request('r');
  assert.equal(w.got.length, 0);
  broker.tick(Date.now() + 2001);
  assert.equal(w.got.length, 1);
  assert.equal(w.got[0]!.id, x.id);
});

test('closing a consumer NACKs all its in-flight messages, keeping their order at the front', async (t) => {
  const broker = harness(t).open();
  for (let i = 1; i <= 6; i++) await publish(broker, 'q', `m${i}`);
  const c = recorder(broker);
  const other = recorder(broker);
  const taken = [c.consumer.take('q')!, c.consumer.take('q')!];
  const keep = other.consumer.take('q')!; // m3 stays with the other consumer
  taken.push(c.consumer.take('q')!); // m4
  assert.deepEqual(taken.map((m) => text(m)), ['m1', 'm2', 'm4']);
  c.consumer.close();
  assert.equal(c.consumer.inFlight.size, 0);
  assert.deepEqual(peekTexts(broker, 'q'), ['m1', 'm2', 'm4', 'm5', 'm6']);
  assert.equal(broker.topicStats('q')!.inFlight, 1);
  throwsCode(() => c.consumer.settle(taken[0]!.deliveryId, 'ACK', 0, () => {}), 'MQ_ERR_NOT_IN_FLIGHT');
  throwsCode(() => c.consumer.deliveryOf(taken[0]!.id), 'MQ_ERR_NOT_IN_FLIGHT');
  await settle(other.consumer, keep, 'ACK');
  c.consumer.close(); // twice: no-op
  assert.deepEqual(await drainTexts(broker, 'q'), ['m1', 'm2', 'm4', 'm5', 'm6']);
});

test('closing a consumer hands the returned messages to waiting consumers and drops its own wait', async (t) => {
  const broker = harness(t).open();
  for (const s of ['a', 'b']) await publish(broker, 'q', s);
  const c = recorder(broker);
  const w = recorder(broker);
  const a = c.consumer.take('q')!;
  c.consumer.take('q');
  w.consumer.request('q');
  assert.equal(w.got.length, 0);
  c.consumer.close();
  assert.deepEqual(w.got.map((m) => m.id), [a.id], 'the waiting consumer gets the first returned message');

  const gone = recorder(broker);
  gone.consumer.request('empty');
  gone.consumer.close();
  await publish(broker, 'empty', 'x');
  assert.equal(gone.got.length, 0, 'a closed consumer receives nothing');
  assert.equal(broker.topicStats('empty')!.ready, 1);
});

test('closing a stream subscriber updates the consumer count', async (t) => {
  const broker = harness(t).open();
  await publish(broker, 'q', 'x');
  const c = recorder(broker);
  c.consumer.subscribe('q');
  assert.equal(broker.topicStats('q')!.consumers, 1);
  c.consumer.close();
  assert.equal(broker.topicStats('q')!.consumers, 0);
});

test('settle of an unknown delivery, or a message id not in flight or of another topic, is MQ_ERR_NOT_IN_FLIGHT and changes nothing', async (t) => {
  const broker = harness(t).open();
  const id = await publish(broker, 'q', 'x');
  const { consumer } = recorder(broker);
  for (const kind of ['ACK', 'NACK', 'BACK', 'DACK'] as const) {
    throwsCode(() => consumer.settle(12345, kind, 1000, () => assert.fail('no callback')), 'MQ_ERR_NOT_IN_FLIGHT');
  }
  throwsCode(() => consumer.deliveryOf(id), 'MQ_ERR_NOT_IN_FLIGHT'); // ready, not in flight
  const taken = consumer.take('q')!;
  throwsCode(() => consumer.deliveryOf(id, 'other'), 'MQ_ERR_NOT_IN_FLIGHT');
  assert.equal(broker.topicStats('q')!.inFlight, 1, 'still in flight after the refused settles');
  assert.equal(consumer.deliveryOf(id, 'q'), taken);
  await settle(consumer, consumer.deliveryOf(id, 'q'), 'ACK');
  assert.equal(broker.messageCount, 0);
});

test('deleteTopic removes ready, delayed and in-flight messages; settling a deleted in-flight message is MQ_ERR_TOPIC_DELETED', async (t) => {
  const broker = harness(t).open();
  for (let i = 0; i < 5; i++) await publish(broker, 'doomed', `d${i}`);
  await publish(broker, 'kept', 'k');
  const { consumer } = recorder(broker);
  const inFlight = consumer.take('doomed')!;
  const delayed = consumer.take('doomed')!;
  await settle(consumer, delayed, 'DACK', 1000);
  const alsoInFlight = consumer.take('doomed')!;
  assert.deepEqual(broker.topicStats('doomed'), { topic: 'doomed', ready: 2, inFlight: 2, delayed: 1, consumers: 0, published: 5, acked: 0 });

  assert.equal(await deleteTopic(broker, 'doomed'), true);
  assert.deepEqual(broker.topicNames(), ['kept']);
  assert.equal(broker.topicStats('doomed'), undefined);
  assert.equal(broker.messageCount, 1);
  assert.equal(consumer.take('doomed'), undefined);
  broker.tick(Date.now() + 10_000);
  assert.equal(consumer.take('doomed'), undefined, 'the delayed message does not come back');
  throwsCode(() => consumer.settle(inFlight.deliveryId, 'ACK', 0, () => assert.fail('no callback')), 'MQ_ERR_TOPIC_DELETED');
  throwsCode(() => consumer.settle(inFlight.deliveryId, 'ACK', 0, () => {}), 'MQ_ERR_NOT_IN_FLIGHT');

  // Publishing again recreates the topic; the old in-flight message still cannot be settled.
  const fresh = await publish(broker, 'doomed', 'new');
  assert.deepEqual(broker.topicNames(), ['doomed', 'kept']);
  throwsCode(() => consumer.settle(consumer.deliveryOf(alsoInFlight.id, 'doomed').deliveryId, 'NACK', 0, () => {}), 'MQ_ERR_TOPIC_DELETED');
  assert.deepEqual(broker.topicStats('doomed'), { topic: 'doomed', ready: 1, inFlight: 0, delayed: 0, consumers: 0, published: 1, acked: 0 });
  const got = consumer.take('doomed')!;
  assert.equal(got.id, fresh);
  assert.equal(text(got), 'new');
  assert.deepEqual(await drainTexts(broker, 'kept'), ['k']);
});

test('closing a consumer whose in-flight messages were deleted does not bring them back', async (t) => {
  const broker = harness(t).open();
  for (const s of ['a', 'b']) await publish(broker, 'q', s);
  const { consumer } = recorder(broker);
  consumer.take('q');
  consumer.take('q');
  await deleteTopic(broker, 'q');
  consumer.close();
  assert.equal(broker.messageCount, 0);
  assert.deepEqual(broker.topicNames(), []);
  const w = recorder(broker);
  w.consumer.request('q');
  assert.equal(w.got.length, 0);
});

test('deleting a topic that does not exist answers false; waiting consumers keep waiting', async (t) => {
  const broker = harness(t).open();
  assert.equal(await deleteTopic(broker, 'never'), false);
  const w = recorder(broker);
  w.consumer.request('q');
  await publish(broker, 'q', 'a');
  await settle(w.consumer, w.got[0]!, 'ACK');
  assert.equal(await deleteTopic(broker, 'q'), true);
  assert.equal(await deleteTopic(broker, 'q'), false, 'already deleted');
  w.consumer.request('q');
  await publish(broker, 'q', 'b');
  assert.equal(w.got.length, 2);
  assert.equal(text(w.got[1]!), 'b');
});

test('bad topic names are refused with MQ_ERR_BAD_TOPIC by every call', async (t) => {
  const broker = harness(t).open();
  const bad = ['', 'a'.repeat(256), 'a b', ' ', 'a/b', '/', 'é', 'topic-ü', 'トピック', '\u{1F600}', 'a\nb', 'a\0', 'a*', 'a?', '%41', '\t'];
  const { consumer } = recorder(broker);
  for (const name of bad) {
    throwsCode(() => broker.publish(name, Buffer.from('x'), () => assert.fail('no callback')), 'MQ_ERR_BAD_TOPIC');
    throwsCode(() => consumer.request(name), 'MQ_ERR_BAD_TOPIC');
    throwsCode(() => consumer.take(name), 'MQ_ERR_BAD_TOPIC');
    throwsCode(() => broker.deleteTopic(name, () => assert.fail('no callback')), 'MQ_ERR_BAD_TOPIC');
    throwsCode(() => consumer.subscribe(name), 'MQ_ERR_BAD_TOPIC');
  }
  assert.deepEqual(broker.topicNames(), []);
  const good = ['a'.repeat(255), 'A-Za-z0-9._-:', 'x', '...', '1'];
  for (const name of good) await publish(broker, name, 'ok');
  assert.deepEqual(broker.topicNames(), [...good].sort());
});

test('a payload over maxMessageBytes is refused with MQ_ERR_TOO_LARGE; exactly the limit and empty are fine', async (t) => {
  const broker = harness(t).open();
  throwsCode(() => broker.publish('q', Buffer.alloc((1 << 20) + 1), () => assert.fail('no callback')), 'MQ_ERR_TOO_LARGE');
  assert.deepEqual(broker.topicNames(), []);
  const big = Buffer.alloc(1 << 20, 7);
  await publish(broker, 'q', big);
  await publish(broker, 'q', Buffer.alloc(0));
  const { consumer } = recorder(broker);
  assert.ok(consumer.take('q')!.payload.equals(big));
  assert.equal(consumer.take('q')!.payload.length, 0);

  const small = harness(t).open({ maxMessageBytes: 10 });
  throwsCode(() => small.publish('q', Buffer.alloc(11), () => {}), 'MQ_ERR_TOO_LARGE');
  await publish(small, 'q', Buffer.alloc(10));
});

test('payloads not kept in memory are read back from the log byte for byte', async (t) => {
  const broker = harness(t).open({ payloadCacheBytes: 0, segmentBytes: 4096 });
  const payloads = [Buffer.alloc(0), Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.alloc(3000, 0xab), Buffer.from('\r\n\0')];
  for (const p of payloads) await publish(broker, 'bin', p);
  const { consumer } = recorder(broker);
  const msgs = takeAll(consumer, 'bin');
  assert.equal(msgs.length, payloads.length);
  msgs.forEach((m, i) => {
    if (payloads[i]!.length > 0) assert.equal(m.payloadCached, false, 'not cached');
    assert.ok(m.payload.equals(payloads[i]!), `payload ${i}`);
  });
});

test('a publish that cannot be written is answered MQ_ERR_STORAGE and never delivered', async (t) => {
  const broker = harness(t).open();
  await publish(broker, 'q', 'before');
  const real = broker.writer.fs.write;
  broker.writer.fs.write = ((_fd: number, _b: Buffer, _o: number, _l: number, _p: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void) => {
    setImmediate(() => cb(Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }), 0));
  }) as WriterFs['write'];
  await rejectsCode(publish(broker, 'q', 'lost'), 'MQ_ERR_STORAGE');
  assert.equal(broker.topicStats('q')!.ready, 1);
  assert.equal(broker.topicStats('q')!.published, 1);
  // An ACK that cannot be written puts the message back at the front.
  const { consumer } = recorder(broker);
  const m = consumer.take('q')!;
  await rejectsCode(settle(consumer, m, 'ACK'), 'MQ_ERR_STORAGE');
  assert.equal(broker.messageCount, 1);
  assert.equal(broker.topicStats('q')!.acked, 0);
  broker.writer.fs.write = real;
  await publish(broker, 'q', 'after');
  assert.deepEqual(await drainTexts(broker, 'q'), ['before', 'after']);
});

test('before open calls answer MQ_ERR_LOADING; after close, writes answer MQ_ERR_SHUTTING_DOWN', async (t) => {
  const h = harness(t);
  const unopened = new Broker(brokerOptions(h.dir));
  assert.equal(unopened.loading, true);
  const { consumer } = recorder(unopened);
  throwsCode(() => unopened.publish('q', Buffer.from('x'), () => {}), 'MQ_ERR_LOADING');
  throwsCode(() => consumer.request('q'), 'MQ_ERR_LOADING');
  throwsCode(() => consumer.take('q'), 'MQ_ERR_LOADING');
  const broker = h.open();
  assert.equal(broker.loading, false);
  const pending = publish(broker, 'q', 'in time');
  await broker.close();
  assert.ok((await pending) >= 0, 'a publish queued before close is written');
  throwsCode(() => broker.publish('q', Buffer.from('x'), () => {}), 'MQ_ERR_SHUTTING_DOWN');
  throwsCode(() => broker.deleteTopic('q', () => {}), 'MQ_ERR_SHUTTING_DOWN');
});

test('a publish still being written when its topic is deleted is deleted too, as replay will do', async (t) => {
  const h = harness(t);
  let broker = h.open();
  await publish(broker, 'q', 'old');
  const racing = publish(broker, 'q', 'racing'); // appended before the delete, answered after it
  const deleted = deleteTopic(broker, 'q');
  const after = publish(broker, 'q', 'after'); // appended after the delete: kept
  assert.ok((await racing) >= 0, 'the publish itself succeeded');
  assert.equal(await deleted, true);
  await after;
  const live = peekTexts(broker, 'q');
  broker = await h.restart(broker);
  const replayed = peekTexts(broker, 'q');
  assert.deepEqual(replayed, ['after']);
  assert.deepEqual(live, replayed, 'memory agrees with the log');

  // Without a later publish the topic is gone in memory too.
  await publish(broker, 'r', 'x');
  const racing2 = publish(broker, 'r', 'y');
  await deleteTopic(broker, 'r');
  await racing2;
  assert.deepEqual(broker.topicNames(), ['q']);
  assert.equal(broker.topicStats('r'), undefined);
  assert.equal(broker.messageCount, 1);
});
