/**
 * The one return-to-front path (Dispatcher.returnToFront in broker/dispatch.ts) as its three
 * callers use it: a consumer that goes away, deliveries past `--ack-timeout`, and due DACKed
 * messages (the tick). Each puts messages back at the front in the order they were delivered (or
 * due), logs it so that a restart agrees, and hands them to waiting consumers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Broker } from '../../src/broker/broker.js';
import { harness, publish, readyTexts, recorder, settle, text } from '../helpers/index.js';

const HOUR_MS = 3_600_000;

/** Publishes `texts` to `topic`, in order. */
async function publishAll(broker: Broker, topic: string, texts: string[]): Promise<void> {
  for (const s of texts) await publish(broker, topic, s);
}

test('a closed consumer: its deliveries go back to the front of each topic in delivery order, and stay there after a restart', async (t) => {
  const h = harness(t);
  let broker = h.open();
  await publishAll(broker, 'a', ['a1', 'a2', 'a3', 'a4']);
  await publishAll(broker, 'b', ['b1', 'b2', 'b3']);
  const { consumer } = recorder(broker);
  // Interleaved over two topics; a2 is settled (NACK) and so no longer this consumer's.
  for (const topic of ['a', 'b', 'a', 'b', 'a']) consumer.take(topic);
  const a2 = broker.inspect('a')!.inFlight.find((m) => text(m) === 'a2')!;
  await settle(consumer, a2, 'NACK');
  assert.deepEqual(readyTexts(broker, 'a'), ['a2', 'a4']);
  consumer.close();
  assert.deepEqual(readyTexts(broker, 'a'), ['a1', 'a3', 'a2', 'a4'], 'in front of the message NACKed while they were in flight');
  assert.deepEqual(readyTexts(broker, 'b'), ['b1', 'b2', 'b3']);
  assert.equal(broker.topicCounters('a')!.ackTimeouts, 0, 'a disconnect is no ack timeout');
  broker = await h.restart(broker);
  assert.deepEqual(readyTexts(broker, 'a'), ['a1', 'a3', 'a2', 'a4'], 'logged as NACKs: replay agrees');
  assert.deepEqual(readyTexts(broker, 'b'), ['b1', 'b2', 'b3']);
});

test('a closed consumer: a waiting consumer of another topic is handed the returned message at once', async (t) => {
  const broker = harness(t).open();
  await publishAll(broker, 'a', ['a1']);
  const leaving = recorder(broker);
  leaving.consumer.take('a');
  const waiting = recorder(broker);
  waiting.consumer.request('a');
  assert.equal(waiting.got.length, 0);
  leaving.consumer.close();
  assert.deepEqual(
    waiting.got.map((m) => [text(m), m.attempt]),
    [['a1', 2]],
  );
});

test('ack timeout: the same order at the front, counted, dead-lettered past --max-deliveries, consumers told after the state changed', async (t) => {
  const h = harness(t);
  let broker = h.open({ ackTimeoutMs: HOUR_MS, maxDeliveries: 2 });
  await publishAll(broker, 'a', ['x', 'y', 'z']);
  const seen: [string, boolean, number][] = [];
  const consumer = broker.openConsumer({
    onDelivery: () => {},
    onExpired: (delivery, deadLettered) => {
      // Told after the broker's state is updated: the returned messages are ready already.
      seen.push([delivery.topic, deadLettered, broker.topicStats('a')!.inFlight]);
    },
  });
  const x = consumer.take('a')!;
  await settle(consumer, x, 'NACK'); // x: one delivery used
  consumer.take('a'); // x again: its second delivery
  consumer.take('a'); // y
  assert.equal(broker.expireAckTimeouts(performance.now() + 2 * HOUR_MS), 2);
  assert.deepEqual(seen, [
    ['a', true, 0],
    ['a', false, 0],
  ]);
  assert.deepEqual(readyTexts(broker, 'a'), ['y', 'z'], 'x went to a.dead, y back to the front');
  const counters = broker.topicCounters('a')!;
  assert.equal(counters.ackTimeouts, 2);
  assert.equal(counters.deadLettered, 1);
  broker = await h.restart(broker, { ackTimeoutMs: HOUR_MS, maxDeliveries: 2 });
  assert.deepEqual(readyTexts(broker, 'a'), ['y', 'z']);
  assert.deepEqual(readyTexts(broker, 'a.dead'), ['x']);
});

test('due DACKed messages come back to the front, earliest due first, and keep that place after a restart', async (t) => {
  const h = harness(t);
  let broker = h.open({ periodMs: HOUR_MS }); // only the test ticks
  await publishAll(broker, 'a', ['p', 'q', 'r', 's']);
  const { consumer } = recorder(broker);
  const p = consumer.take('a')!;
  const q = consumer.take('a')!;
  const r = consumer.take('a')!;
  await settle(consumer, p, 'DACK', 30_000);
  await settle(consumer, q, 'DACK', 10_000);
  await settle(consumer, r, 'DACK', 20_000);
  broker.tick(Date.now() + 25_000);
  assert.deepEqual(readyTexts(broker, 'a'), ['q', 'r', 's'], 'p is not due yet');
  broker.tick(Date.now() + 60_000);
  assert.deepEqual(readyTexts(broker, 'a'), ['p', 'q', 'r', 's']);
  assert.equal(broker.topicStats('a')!.delayed, 0);
  broker = await h.restart(broker, { periodMs: HOUR_MS });
  assert.deepEqual(readyTexts(broker, 'a'), ['p', 'q', 'r', 's']);
  const counters = broker.topicStats('a')!;
  assert.equal(counters.delayed, 0, 'not held again after the restart');
});
