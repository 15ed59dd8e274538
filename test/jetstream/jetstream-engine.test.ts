/**
 * The jetstream engine (issue 15) driven directly through the engine seam, against a real
 * three-node JetStream cluster (R3 streams): publish, consume, ACK / NACK / BACK / DACK, TOUCH
 * and the ack timeout, dead letters, a consumer closing, DELETE, stats, too-large messages.
 * Each test uses its own topics; the engines share one cluster and one stream.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { JetStreamEngine } from '../../src/jetstream/jetstream-engine.js';
import { waitFor } from '../helpers/index.js';
import { startCluster, type NatsCluster } from './cluster.js';
import { codeOf, deleteTopic, openEngine, publish, TestConsumer } from './engine-fixtures.js';

let cluster: NatsCluster;
let engine: JetStreamEngine;

before(async () => {
  cluster = await startCluster(3);
  engine = await openEngine(cluster);
});

after(async () => {
  await engine?.close();
  await cluster?.stop();
});

test('publish is answered with the stream sequence; a request delivers it; ACK removes it for good', async () => {
  const id = await publish(engine, 'basic', 'hello');
  assert.ok(id > 0);
  const c = new TestConsumer(engine);
  const d = await c.next('basic');
  assert.equal(d.payload.toString(), 'hello');
  assert.equal(d.messageId, id);
  assert.equal(d.attempt, 1);
  assert.equal(d.dackCount, 0);
  assert.equal(c.handle.inFlightCount, 1);
  assert.equal(c.handle.deliveryOf(id, 'basic'), d);
  await c.settle(d, 'ACK');
  assert.equal(c.handle.inFlightCount, 0);
  assert.equal(codeOf(() => c.handle.settle(d.deliveryId, 'ACK', 0, () => {})), 'MQ_ERR_NOT_IN_FLIGHT');
  assert.ok(await c.nothingWithin('basic', 1500), 'an acked message never comes back');
  await engine.refreshStats();
  const s = engine.topicStats('basic')!;
  assert.deepEqual({ ready: s.ready, inFlight: s.inFlight, published: s.published, acked: s.acked }, { ready: 0, inFlight: 0, published: 1, acked: 1 });
  c.handle.close();
});

test('publish order; NACK makes a message the next one delivered, attempt 2', async () => {
  for (const p of ['n1', 'n2', 'n3']) await publish(engine, 'nack', p);
  const c = new TestConsumer(engine);
  const a = await c.next('nack');
  const b = await c.next('nack');
  assert.deepEqual([a.payload.toString(), b.payload.toString()], ['n1', 'n2']);
  await c.settle(b, 'NACK');
  const again = await c.next('nack');
  assert.equal(again.payload.toString(), 'n2');
  assert.equal(again.messageId, b.messageId);
  assert.equal(again.attempt, 2);
  await c.settle(a, 'ACK');
  await c.settle(again, 'ACK');
  const last = await c.next('nack');
  assert.equal(last.payload.toString(), 'n3');
  await c.settle(last, 'ACK');
  c.handle.close();
});

test('NACK right after the first delivery of a topic: the NACKed message is next, then the rest in order (40 topics at once)', async () => {
  // The first request of a topic also pulls ahead what is ready: those messages may still be on
  // their way when the NAK goes out, and must not be handed on before the NACKed one.
  const topics = Array.from({ length: 40 }, (_, i) => `nackfirst.${i}`);
  await Promise.all(topics.map(async (topic) => {
    for (const p of ['a', 'b', 'c']) await publish(engine, topic, p);
  }));
  const orders = await Promise.all(
    topics.map(async (topic) => {
      const c = new TestConsumer(engine);
      const first = await c.next(topic);
      await c.settle(first, 'NACK');
      const got = [first.payload.toString()];
      for (let i = 0; i < 3; i++) {
        const d = await c.next(topic);
        got.push(d.payload.toString());
        await c.settle(d, 'ACK');
      }
      c.handle.close();
      return `${topic}:${got.join('')}`;
    }),
  );
  assert.deepEqual(orders.filter((o) => !o.endsWith(':aabc')), [], 'every topic gives a, then a again, b, c');
});

test('a NACKed message is handed on before a message that arrived after it (a redelivery is admitted after a lookup; 20 topics)', async () => {
  // The ioredis case of the parity suite: NACK s, BACK p (a copy of p at the end), and the next
  // request must get s. JetStream redelivers s first, but a redelivered message is admitted after
  // its delivery record is looked up, and p's copy (a first delivery) came right behind it.
  const topics = Array.from({ length: 20 }, (_, i) => `nackback.${i}`);
  const orders = await Promise.all(
    topics.map(async (topic) => {
      await publish(engine, topic, 's');
      await publish(engine, topic, 'p');
      const a = new TestConsumer(engine);
      const s = await a.next(topic);
      const p = await a.next(topic);
      // Two requests wait (two pulls out at the server) while s is NACKed and p is BACKed.
      const w1 = new TestConsumer(engine);
      const w2 = new TestConsumer(engine);
      const first = w1.next(topic);
      const second = w2.next(topic);
      await new Promise((r) => setTimeout(r, 50));
      await a.settle(s, 'NACK');
      await a.settle(p, 'BACK');
      const got = [(await first).payload.toString(), (await second).payload.toString()];
      for (const c of [a, w1, w2]) c.handle.close();
      return `${topic}:${got.join('')}`;
    }),
  );
  assert.deepEqual(orders.filter((o) => !o.endsWith(':sp')), [], 'the consumer waiting longest gets s, the next one p');
});

test('pulls ahead: the first request of a topic brings its ready messages, taken in order without another pull', async () => {
  for (let i = 1; i <= 5; i++) await publish(engine, 'ahead', `b${i}`);
  const c = new TestConsumer(engine);
  const first = await c.next('ahead');
  assert.equal(first.payload.toString(), 'b1');
  const puller = engine.puller('ahead');
  // One pull of one message per waiting consumer (before) leaves no spare here.
  await waitFor(() => puller.spareCount === 4 && puller.pulls === 0, 5000, 5, () => `4 spares and no pull out; saw ${puller.spareCount} spares, ${puller.pulls} pulls`);
  const got = [first.payload.toString()];
  await c.settle(first, 'ACK');
  for (let i = 0; i < 4; i++) {
    const d = c.handle.take('ahead');
    assert.ok(d !== undefined, 'a spare is taken at once');
    got.push(d.payload.toString());
    await c.settle(d, 'ACK');
  }
  assert.deepEqual(got, ['b1', 'b2', 'b3', 'b4', 'b5']);
  c.handle.close();
});

test('BACK puts a message behind every waiting one, keeping its id, attempts and dackCount', async () => {
  for (const p of ['b1', 'b2', 'b3']) await publish(engine, 'back', p);
  const c = new TestConsumer(engine);
  const first = await c.next('back');
  assert.equal(first.payload.toString(), 'b1');
  await c.settle(first, 'BACK');
  const order: string[] = [];
  let moved;
  for (let i = 0; i < 3; i++) {
    const d = await c.next('back');
    order.push(d.payload.toString());
    if (d.payload.toString() === 'b1') moved = d;
    await c.settle(d, 'ACK');
  }
  assert.deepEqual(order, ['b2', 'b3', 'b1']);
  assert.equal(moved!.messageId, first.messageId);
  assert.equal(moved!.attempt, 2);
  c.handle.close();
});

test('DACK n holds a message n seconds, then returns it first with dackCount + 1 (twice)', async () => {
  await publish(engine, 'dack', 'd1');
  const c = new TestConsumer(engine);
  const d = await c.next('dack');
  const heldFrom = Date.now();
  await c.settle(d, 'DACK', 1000);
  await publish(engine, 'dack', 'd2');
  const other = await c.next('dack');
  assert.equal(other.payload.toString(), 'd2', 'd1 is held, d2 comes first');
  await engine.refreshStats();
  assert.equal(engine.topicStats('dack')!.delayed, 1);
  await c.settle(other, 'ACK');
  const back = await c.next('dack');
  assert.ok(Date.now() - heldFrom >= 950, `held ${Date.now() - heldFrom} ms`);
  assert.equal(back.payload.toString(), 'd1');
  assert.equal(back.dackCount, 1);
  assert.equal(back.attempt, 2);
  await c.settle(back, 'DACK', 0);
  const twice = await c.next('dack');
  assert.equal(twice.dackCount, 2);
  await c.settle(twice, 'BACK');
  const copied = await c.next('dack');
  assert.equal(copied.dackCount, 2, 'a BACK copy carries the dackCount');
  assert.equal(copied.attempt, 4);
  await c.settle(copied, 'ACK');
  assert.equal(codeOf(() => c.handle.settle(copied.deliveryId, 'DACK', -1, () => {})), 'MQ_ERR_NOT_IN_FLIGHT');
  c.handle.close();
});

test('a bad DACK delay is refused and changes nothing', async () => {
  await publish(engine, 'dackbad', 'x');
  const c = new TestConsumer(engine);
  const d = await c.next('dackbad');
  assert.equal(codeOf(() => c.handle.settle(d.deliveryId, 'DACK', 1.5, () => {})), 'MQ_ERR_BAD_ARGUMENT');
  assert.equal(c.handle.inFlightCount, 1);
  await c.settle(d, 'ACK');
  c.handle.close();
});

test('a closing consumer returns what it held at once, in order, to the front', async () => {
  for (const p of ['c1', 'c2', 'c3']) await publish(engine, 'close', p);
  const a = new TestConsumer(engine);
  await a.next('close');
  await a.next('close');
  a.handle.close();
  const b = new TestConsumer(engine);
  const got: string[] = [];
  for (let i = 0; i < 3; i++) {
    const d = await b.next('close', 3000);
    got.push(d.payload.toString());
    await b.settle(d, 'ACK');
  }
  assert.deepEqual(got, ['c1', 'c2', 'c3']);
  b.handle.close();
});

test('stream subscribers count as consumers; topics are listed; an unknown topic has no stats', async () => {
  await publish(engine, 'listed.a:b', 'x');
  const c = new TestConsumer(engine);
  c.handle.subscribe('listed.a:b');
  await engine.refreshStats();
  assert.ok(engine.topicNames().includes('listed.a:b'));
  const s = engine.topicStats('listed.a:b')!;
  assert.deepEqual({ ready: s.ready, consumers: s.consumers }, { ready: 1, consumers: 1 });
  assert.equal(engine.topicStats('never-published'), undefined);
  c.handle.close();
  assert.equal(engine.topicStats('listed.a:b')!.consumers, 0);
  const d = await new TestConsumer(engine).next('listed.a:b');
  assert.equal(d.payload.toString(), 'x');
});

test('bad topics and too-large messages are refused synchronously', () => {
  assert.equal(codeOf(() => engine.publish('bad topic', Buffer.from('x'), () => {})), 'MQ_ERR_BAD_TOPIC');
  assert.equal(codeOf(() => engine.publish('t', Buffer.alloc(engine.maxMessageBytes + 1), () => {})), 'MQ_ERR_TOO_LARGE');
  const c = new TestConsumer(engine);
  assert.equal(codeOf(() => c.handle.request('x/y')), 'MQ_ERR_BAD_TOPIC');
  c.handle.close();
});

test('DELETE purges a topic: waiting messages are gone, a settle of an in-flight one is MQ_ERR_TOPIC_DELETED', async () => {
  for (const p of ['x1', 'x2', 'x3']) await publish(engine, 'deleted', p);
  const c = new TestConsumer(engine);
  const d = await c.next('deleted');
  assert.equal(await deleteTopic(engine, 'deleted'), true);
  assert.equal(codeOf(() => c.handle.touch(d.deliveryId)), 'MQ_ERR_TOPIC_DELETED');
  assert.equal(c.handle.deliveryOf(d.messageId), d);
  assert.equal(codeOf(() => c.handle.settle(d.deliveryId, 'ACK', 0, () => {})), 'MQ_ERR_TOPIC_DELETED');
  assert.equal(codeOf(() => c.handle.settle(d.deliveryId, 'ACK', 0, () => {})), 'MQ_ERR_NOT_IN_FLIGHT');
  assert.ok(!engine.topicNames().includes('deleted'));
  assert.equal(engine.topicStats('deleted'), undefined);
  assert.ok(await c.nothingWithin('deleted', 1500), 'purged messages are not delivered');
  // The topic comes back with the next publish; a waiting consumer gets it.
  const waiting = c.next('deleted');
  await publish(engine, 'deleted', 'after');
  assert.equal((await waiting).payload.toString(), 'after');
  assert.equal(await deleteTopic(engine, 'never-there'), false);
  c.handle.close();
});

test('--ack-timeout: an unsettled delivery goes back to the front (onExpired), TOUCH restarts the timer', async () => {
  const timed = await openEngine(cluster, { ackTimeoutMs: 600 });
  try {
    await publish(timed, 'timeout', 't1');
    await publish(timed, 'timeout', 't2');
    const c = new TestConsumer(timed);
    const d = await c.next('timeout');
    assert.equal(d.payload.toString(), 't1');
    const from = Date.now();
    // TOUCH every 250 ms for 1.2 s keeps it past two timeouts.
    while (Date.now() - from < 1200) {
      await new Promise((r) => setTimeout(r, 250));
      c.handle.touch(d.deliveryId);
    }
    assert.equal(c.expired.length, 0);
    assert.equal(c.handle.inFlightCount, 1);
    // Left alone, it expires: back to the front, ahead of t2, attempt 2.
    await new Promise((r) => setTimeout(r, 900));
    assert.equal(c.expired.length, 1);
    assert.equal(c.expired[0]!.delivery, d);
    assert.equal(c.expired[0]!.deadLettered, false);
    assert.equal(codeOf(() => c.handle.settle(d.deliveryId, 'ACK', 0, () => {})), 'MQ_ERR_NOT_IN_FLIGHT');
    const again = await c.next('timeout');
    assert.equal(again.payload.toString(), 't1');
    assert.equal(again.attempt, 2);
    assert.equal(timed.topicCounters('timeout')!.ackTimeouts, 1);
    await c.settle(again, 'ACK');
    const second = await c.next('timeout');
    assert.equal(second.payload.toString(), 't2');
    await c.settle(second, 'ACK');
    c.handle.close();
  } finally {
    await timed.close();
  }
});

test('--max-deliveries: the Nth delivery ending without ACK moves the message to <topic>.dead, deliveries and dackCount kept', async () => {
  const limited = await openEngine(cluster, { maxDeliveries: 2, ackTimeoutMs: 500 });
  try {
    await publish(limited, 'dl', 'poison');
    await publish(limited, 'dl2', 'slow');
    const c = new TestConsumer(limited);
    const first = await c.next('dl');
    await c.settle(first, 'DACK', 0);
    const second = await c.next('dl');
    assert.equal(second.attempt, 2);
    assert.equal(second.dackCount, 1);
    await c.settle(second, 'NACK');
    assert.ok(await c.nothingWithin('dl', 1200), 'moved away after two deliveries');
    const dead = await c.next('dl.dead');
    assert.equal(dead.payload.toString(), 'poison');
    assert.equal(dead.dackCount, 1);
    assert.equal(dead.attempt, 3);
    assert.notEqual(dead.messageId, first.messageId);
    await c.settle(dead, 'NACK');
    const deadAgain = await c.next('dl.dead');
    assert.equal(deadAgain.payload.toString(), 'poison', 'dead letters are never dead-lettered again');
    await c.settle(deadAgain, 'ACK');
    assert.equal(limited.topicCounters('dl')!.deadLettered, 1);
    // The ack timeout path: the second delivery expires and the message is moved.
    const s1 = await c.next('dl2');
    await c.settle(s1, 'NACK');
    const s2 = await c.next('dl2');
    await new Promise((r) => setTimeout(r, 900));
    assert.deepEqual(c.expired.map((e) => [e.delivery.deliveryId, e.deadLettered]), [[s2.deliveryId, true]]);
    const moved = await c.next('dl2.dead');
    assert.equal(moved.payload.toString(), 'slow');
    await c.settle(moved, 'ACK');
    c.handle.close();
  } finally {
    await limited.close();
  }
});
