/**
 * Broker tests of SPEC §7 ack timeout (`ackTimeoutMs`, TOUCH) and dead letters
 * (`maxDeliveries`), including their replay and their interplay with compaction. The ack ticker
 * is driven by hand through expireAckTimeouts(now) with a timeout far longer than the test, so
 * nothing here depends on timing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AckDeadlines } from '../../src/broker/ack-deadlines.js';
import type { Broker } from '../../src/broker/broker.js';
import { MessageState } from '../../src/broker/message.js';
import { BrokerError } from '../../src/errors.js';
import { harness, letTimePass, publish, readyTexts, recorder, settle, text, throwsCode } from '../helpers/index.js';

const HOUR_MS = 3_600_000;

/** Waits until the broker's writer has completed everything appended so far. */
async function settled(broker: Broker): Promise<void> {
  // drain() waits for what is written and synced; a completion may append follow-up records
  // (a dead letter's ACK after its RESTORE), so drain a few rounds.
  for (let i = 0; i < 5; i++) {
    await broker.writer.drain();
    await new Promise((r) => setImmediate(r));
  }
}

test('ack timeout: an unsettled delivery returns to the front, its consumer is told, a late settle is refused', async (t) => {
  const broker = harness(t).open({ ackTimeoutMs: HOUR_MS });
  await publish(broker, 'jobs', 'one');
  await publish(broker, 'jobs', 'two');
  const hung = recorder(broker);
  hung.consumer.request('jobs');
  const msg = hung.got[0]!;
  const now = performance.now();
  assert.equal(broker.expireAckTimeouts(now + HOUR_MS - 1000), 0, 'not before the deadline');
  assert.equal(broker.expireAckTimeouts(now + HOUR_MS + 1000), 1);
  assert.deepEqual(hung.expired, [[msg, false]]);
  assert.deepEqual(readyTexts(broker, 'jobs'), ['one', 'two'], 'back at the front');
  throwsCode(() => hung.consumer.settle(msg.deliveryId, 'ACK', 0, () => {}), 'MQ_ERR_NOT_IN_FLIGHT');
  throwsCode(() => hung.consumer.touch(msg.deliveryId), 'MQ_ERR_NOT_IN_FLIGHT');
  throwsCode(() => hung.consumer.deliveryOf(msg.id), 'MQ_ERR_NOT_IN_FLIGHT');
  const other = recorder(broker);
  other.consumer.request('jobs');
  assert.equal(other.got[0]!.id, msg.id, 'another consumer gets it');
  assert.equal(other.got[0]!.deliveries, 2);
  const counters = broker.topicCounters('jobs')!;
  assert.equal(counters.ackTimeouts, 1);
  assert.equal(counters.redelivered, 1);
  await settle(other.consumer, other.got[0]!, 'ACK');
  assert.equal(broker.expireAckTimeouts(now + 10 * HOUR_MS), 0, 'a settled delivery never expires');
});

test('ack timeout: TOUCH restarts the timer; expired messages keep their delivery order at the front', async (t) => {
  const broker = harness(t).open({ ackTimeoutMs: HOUR_MS });
  for (const p of ['a', 'b', 'c', 'd']) await publish(broker, 'q', p);
  const { consumer } = recorder(broker);
  const a = consumer.take('q')!;
  const b = consumer.take('q')!;
  const c = consumer.take('q')!;
  await letTimePass(30); // time itself is the subject: b's deadline must move past a's and c's
  consumer.touch(consumer.deliveryOf(b.id, 'q').deliveryId); // b's deadline moves 30 ms or more past a's and c's
  const touchedAt = performance.now();
  throwsCode(() => consumer.deliveryOf(b.id, 'other'), 'MQ_ERR_NOT_IN_FLIGHT');
  assert.equal(broker.expireAckTimeouts(touchedAt - 30 + HOUR_MS - 1000), 0);
  assert.equal(broker.expireAckTimeouts(touchedAt - 10 + HOUR_MS), 2, 'a and c expire, b does not');
  const state = broker.inspect('q')!;
  assert.ok(state.inFlight.includes(b), 'the touched message is still in flight');
  assert.deepEqual(readyTexts(broker, 'q'), ['a', 'c', 'd'], 'a and c back at the front, in delivery order');
  assert.equal(a.state, MessageState.READY);
  assert.equal(c.state, MessageState.READY);
  await settle(consumer, b, 'ACK');
});

test('ack timeout: deadline bookkeeping stays proportional to deliveries in flight', () => {
  const deadlines = new AckDeadlines();
  const msgs = Array.from({ length: 10 }, (_, i) => {
    // A delivery's view, as the deadlines see it: its ack token and its state.
    const m = { id: i, ackToken: 0, state: MessageState.IN_FLIGHT };
    return m;
  });
  let now = 0;
  for (let round = 0; round < 100_000; round++) deadlines.track(msgs[round % 10]!, (now += 0.001));
  assert.ok(deadlines.size <= 1024, `stale entries are dropped (size ${deadlines.size})`);
  assert.equal(deadlines.expire(now).length, 10, 'each message once, under its newest entry');
});

test('max deliveries: the Nth unsuccessful delivery moves the message to <topic>.dead with its counts', async (t) => {
  const h = harness(t);
  let broker = h.open({ maxDeliveries: 3 });
  await publish(broker, 'orders', 'poison');
  await publish(broker, 'orders', 'fine');
  const { consumer, got } = recorder(broker);
  consumer.request('orders');
  await settle(consumer, got[0]!, 'NACK');
  consumer.request('orders');
  await settle(consumer, got[1]!, 'DACK', 0);
  broker.tick(Date.now() + 1000);
  consumer.request('orders');
  assert.equal(got[2]!.id, got[0]!.id, 'the third delivery is the same message');
  assert.equal(got[2]!.dackCount, 1);
  await settle(consumer, got[2]!, 'BACK');
  assert.deepEqual(readyTexts(broker, 'orders'), ['fine']);
  assert.deepEqual(readyTexts(broker, 'orders.dead'), ['poison']);
  const dead = broker.inspect('orders.dead')!.ready[0]!;
  assert.notEqual(dead.id, got[0]!.id, 'a new message id');
  assert.equal(dead.dackCount, 1);
  assert.equal(dead.deliveries, 3);
  await settled(broker);
  assert.equal(broker.topicCounters('orders')!.deadLettered, 1);
  assert.equal(broker.topicStats('orders')!.acked, 1, 'the original left through an ACK record, as replay counts it');
  assert.deepEqual(broker.topicNames(), ['orders', 'orders.dead']);
  // Durable: a restart has it in the dead-letter topic only, with its counts.
  broker = await h.restart(broker, { maxDeliveries: 3 });
  assert.deepEqual(readyTexts(broker, 'orders'), ['fine']);
  assert.deepEqual(readyTexts(broker, 'orders.dead'), ['poison']);
  const replayed = broker.inspect('orders.dead')!.ready[0]!;
  assert.equal(replayed.id, dead.id);
  assert.equal(replayed.dackCount, 1);
  assert.equal(replayed.deliveries, 3);
  assert.equal(broker.topicCounters('orders')!.deadLettered, 1, 'counted by replay too');
  assert.equal(broker.topicStats('orders')!.acked, 1);
  // The dead-letter topic is consumed like any other and is never dead-lettered itself.
  const reader = recorder(broker);
  for (let i = 0; i < 5; i++) {
    reader.consumer.request('orders.dead');
    await settle(reader.consumer, reader.got[i]!, 'NACK');
  }
  assert.deepEqual(readyTexts(broker, 'orders.dead'), ['poison']);
  assert.equal(broker.topicCounters('orders.dead')!.redelivered, 4, 'the first delivery in .dead is not a redelivery');
});

test('max deliveries: disconnects and ack timeouts count as unsuccessful deliveries', async (t) => {
  const broker = harness(t).open({ maxDeliveries: 2, ackTimeoutMs: HOUR_MS });
  await publish(broker, 'q', 'x');
  const first = recorder(broker);
  first.consumer.request('q');
  first.consumer.close(); // delivery 1 ends: back to the front
  assert.deepEqual(readyTexts(broker, 'q'), ['x']);
  const second = recorder(broker);
  second.consumer.request('q');
  broker.expireAckTimeouts(performance.now() + 2 * HOUR_MS); // delivery 2 ends: dead
  await settled(broker);
  assert.deepEqual(readyTexts(broker, 'q'), []);
  assert.deepEqual(readyTexts(broker, 'q.dead'), ['x']);
  assert.equal(broker.topicCounters('q')!.ackTimeouts, 1);
});

test('max deliveries: a message in flight at a crash with its last delivery used is dead-lettered on its next request', async (t) => {
  const h = harness(t);
  const broker = h.open({ maxDeliveries: 1 });
  await publish(broker, 'q', 'x');
  await publish(broker, 'q', 'y');
  const { consumer } = recorder(broker);
  consumer.request('q');
  await settled(broker); // the DELIVER record is written
  // A new broker on the same directory, as after a crash (the old one is never closed cleanly
  // before the new one has replayed: its in-flight message is ready again, at the front).
  const again = h.open({ maxDeliveries: 1 });
  assert.deepEqual(readyTexts(again, 'q'), ['x', 'y']);
  const next = recorder(again);
  next.consumer.request('q');
  assert.equal(text(next.got[0]!), 'y', 'x is not delivered a second time');
  await settled(again);
  assert.deepEqual(readyTexts(again, 'q.dead'), ['x']);
});

test('max deliveries: dead letters survive compaction and restart, the original never comes back', async (t) => {
  const h = harness(t);
  const opts = { maxDeliveries: 1, segmentBytes: 4096, compaction: { auto: false } };
  let broker = h.open(opts);
  const { consumer } = recorder(broker);
  for (let i = 0; i < 40; i++) await publish(broker, 'q', `m${i}`.padEnd(200, '.'));
  for (let i = 0; i < 40; i++) {
    const msg = consumer.take('q')!;
    await settle(consumer, msg, i % 4 === 0 ? 'NACK' : 'ACK');
  }
  await settled(broker);
  const dead = readyTexts(broker, 'q.dead');
  assert.equal(dead.length, 10);
  const run = await broker.compactNow();
  assert.ok(run !== null && run.segmentsRemoved > 0, 'compaction removed segments');
  broker = await h.restart(broker, opts);
  assert.deepEqual(readyTexts(broker, 'q'), []);
  assert.deepEqual(readyTexts(broker, 'q.dead'), dead);
  await broker.compactNow();
  broker = await h.restart(broker, opts);
  assert.deepEqual(readyTexts(broker, 'q'), []);
  assert.deepEqual(readyTexts(broker, 'q.dead'), dead);
});

test('max deliveries: a dead-letter record that cannot be written leaves the message at the front of its topic, and no retry spins on the disk', async (t) => {
  const h = harness(t);
  let broker = h.open({ maxDeliveries: 1 });
  await publish(broker, 'q', 'x');
  await publish(broker, 'q', 'y');
  const { consumer } = recorder(broker);
  const msg = consumer.take('q')!;
  const real = broker.writer.fs.write;
  let writes = 0;
  broker.writer.fs.write = ((_fd: number, _b: Buffer, _o: number, _l: number, _p: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void) => {
    writes++;
    setImmediate(() => cb(Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }), 0));
  }) as typeof real;
  await assert.rejects(settle(consumer, msg, 'NACK'), (err: unknown) => err instanceof BrokerError && err.code === 'MQ_ERR_STORAGE');
  assert.deepEqual(readyTexts(broker, 'q'), ['x', 'y'], 'back at the front');
  assert.equal(broker.topicStats('q.dead'), undefined);
  assert.equal(broker.topicCounters('q')!.deadLettered, 0);
  // A consumer waiting on the topic gets it delivered (not moved onto the failing disk again and again).
  const waiting = recorder(broker);
  waiting.consumer.request('q');
  assert.equal(waiting.got[0]?.id, msg.id);
  await letTimePass(50); // time is the subject: a retry loop on the failing disk would write meanwhile
  assert.ok(writes <= 3, `no retry loop on the failing disk (${writes} write attempts)`);
  broker.writer.fs.write = real;
  waiting.consumer.close();
  broker = await h.restart(broker, { maxDeliveries: 1 });
  assert.deepEqual(readyTexts(broker, 'q'), ['x', 'y'], 'nothing moved, nothing lost');
});
