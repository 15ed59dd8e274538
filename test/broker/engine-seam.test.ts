/**
 * The segment-log broker through the engine seam only (engine/queue-engine.ts): what the
 * protocol adapters will see. Deliveries carry a deliveryId that a settle names (a stale one is
 * refused) and an attempt; the limits are the engine's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Broker } from '../../src/broker/broker.js';
import {
  MAX_DACK_DELAY_MS,
  MAX_DACK_SECONDS,
  MAX_IN_FLIGHT_PER_CONSUMER,
  type ConsumerHandle,
  type Delivery,
  type QueueEngine,
} from '../../src/engine/queue-engine.js';
import { BrokerError } from '../../src/errors.js';
import { brokerOptions, deleteTopic, harness, publish, settle, silentLogger, throwsCode, waitFor } from '../helpers/index.js';

const HOUR_MS = 3_600_000;

/** A consumer through the seam, recording what it is handed. */
function open(engine: QueueEngine): { consumer: ConsumerHandle; got: Delivery[]; expired: [Delivery, boolean][] } {
  const got: Delivery[] = [];
  const expired: [Delivery, boolean][] = [];
  const consumer = engine.openConsumer({ onDelivery: (d) => got.push(d), onExpired: (d, dead) => expired.push([d, dead]) });
  return { consumer, got, expired };
}

test('a delivery has a deliveryId unique per delivery and an attempt that counts redeliveries, across a restart too', async (t) => {
  const h = harness(t);
  let broker = h.open();
  const id = await publish(broker, 'jobs', 'x');
  let { consumer } = open(broker);
  const first = consumer.take('jobs')!;
  assert.deepEqual([first.messageId, first.topic, first.attempt, first.dackCount, first.payload.toString()], [id, 'jobs', 1, 0, 'x']);
  await settle(consumer, first, 'DACK', 0);
  broker.tick(Date.now() + 1);
  const second = consumer.take('jobs')!;
  assert.equal(second.messageId, id);
  assert.equal(second.attempt, 2);
  assert.equal(second.dackCount, 1);
  assert.notEqual(second.deliveryId, first.deliveryId);
  throwsCode(() => consumer.settle(first.deliveryId, 'ACK', 0, () => assert.fail('stale')), 'MQ_ERR_NOT_IN_FLIGHT');
  throwsCode(() => consumer.touch(first.deliveryId), 'MQ_ERR_NOT_IN_FLIGHT');
  assert.equal(broker.topicStats('jobs')!.inFlight, 1, 'a stale settle changes nothing');
  broker = await h.restart(broker);
  ({ consumer } = open(broker));
  const third = consumer.take('jobs')!;
  assert.equal(third.attempt, 3, 'the DELIVER records count after a restart');
  await settle(consumer, third, 'ACK');
  assert.equal(broker.messageCount, 0);
});

test('deliveryOf finds a delivery by message id (RESP names messages); one of a deleted topic answers MQ_ERR_TOPIC_DELETED once', async (t) => {
  const broker = harness(t).open();
  const idA = await publish(broker, 'a', 'x');
  await publish(broker, 'b', 'y');
  const mine = open(broker);
  const other = open(broker);
  const d = mine.consumer.take('a')!;
  const e = other.consumer.take('b')!;
  assert.equal(mine.consumer.deliveryOf(idA), d);
  assert.equal(mine.consumer.deliveryOf(idA, 'a'), d);
  throwsCode(() => mine.consumer.deliveryOf(idA, 'b'), 'MQ_ERR_NOT_IN_FLIGHT');
  throwsCode(() => mine.consumer.deliveryOf(e.messageId), 'MQ_ERR_NOT_IN_FLIGHT');
  throwsCode(() => mine.consumer.deliveryOf(123456), 'MQ_ERR_NOT_IN_FLIGHT');
  await deleteTopic(broker, 'a');
  const gone = mine.consumer.deliveryOf(idA, 'a');
  throwsCode(() => gone.payload, 'MQ_ERR_NOT_IN_FLIGHT');
  throwsCode(() => mine.consumer.settle(gone.deliveryId, 'ACK', 0, () => assert.fail('no callback')), 'MQ_ERR_TOPIC_DELETED');
  throwsCode(() => mine.consumer.deliveryOf(idA), 'MQ_ERR_NOT_IN_FLIGHT');
  assert.equal(mine.consumer.inFlightCount, 0);
  other.consumer.close();
  assert.equal(broker.topicStats('b')!.ready, 1);
});

test('the DACK bound is the engine\'s: 0 .. MAX_DACK_DELAY_MS whole ms; a refused DACK changes nothing', async (t) => {
  assert.equal(MAX_DACK_SECONDS, 999_999_999);
  assert.equal(MAX_DACK_DELAY_MS, 999_999_999_000);
  const broker = harness(t).open();
  await publish(broker, 'jobs', 'x');
  const { consumer } = open(broker);
  const d = consumer.take('jobs')!;
  for (const bad of [MAX_DACK_DELAY_MS + 1, -1, 0.5, Number.NaN, Infinity]) {
    throwsCode(() => consumer.settle(d.deliveryId, 'DACK', bad, () => assert.fail('refused')), 'MQ_ERR_BAD_ARGUMENT');
  }
  assert.equal(broker.topicStats('jobs')!.inFlight, 1);
  await settle(consumer, d, 'DACK', MAX_DACK_DELAY_MS);
  assert.equal(broker.topicStats('jobs')!.delayed, 1);
  broker.tick(Date.now() + HOUR_MS);
  assert.equal(broker.topicStats('jobs')!.delayed, 1, 'held for the whole delay');
});

test('the in-flight limit per consumer is the engine\'s: take and request refuse past it', async (t) => {
  assert.equal(MAX_IN_FLIGHT_PER_CONSUMER, 65_536);
  const broker = harness(t).open({ maxInFlightPerConsumer: 2 });
  for (let i = 0; i < 4; i++) await publish(broker, 'jobs', `m${i}`);
  const { consumer, got } = open(broker);
  const taken = [consumer.take('jobs')!, consumer.take('jobs')!];
  throwsCode(() => consumer.take('jobs'), 'MQ_ERR_BAD_ARGUMENT');
  throwsCode(() => consumer.request('jobs'), 'MQ_ERR_BAD_ARGUMENT');
  assert.equal(consumer.inFlightCount, 2);
  await settle(consumer, taken[0]!, 'ACK');
  consumer.request('jobs');
  assert.equal(got.length, 1);
  assert.equal(broker.topicStats('jobs')!.ready, 1);
});

test('topic names are checked by the engine: MQ_ERR_BAD_TOPIC everywhere a name comes in', async (t) => {
  const broker = harness(t).open();
  const { consumer } = open(broker);
  throwsCode(() => broker.publish('no spaces', Buffer.from('x'), () => assert.fail()), 'MQ_ERR_BAD_TOPIC');
  throwsCode(() => broker.deleteTopic('', () => assert.fail()), 'MQ_ERR_BAD_TOPIC');
  throwsCode(() => consumer.request('a/b'), 'MQ_ERR_BAD_TOPIC');
  throwsCode(() => consumer.take('x'.repeat(256)), 'MQ_ERR_BAD_TOPIC');
  throwsCode(() => consumer.subscribe('é'), 'MQ_ERR_BAD_TOPIC');
  assert.deepEqual(broker.topicNames(), []);
});

test('request, cancel and close through the handle; an ack timeout tells the handler whether the message was dead-lettered', async (t) => {
  const broker = harness(t).open({ ackTimeoutMs: HOUR_MS, maxDeliveries: 2 });
  const { consumer, got, expired } = open(broker);
  consumer.request('jobs');
  consumer.cancel();
  await publish(broker, 'jobs', 'x');
  assert.equal(got.length, 0, 'a cancelled request gets nothing');
  consumer.request('jobs');
  assert.equal(got.length, 1);
  broker.expireAckTimeouts(performance.now() + 2 * HOUR_MS);
  consumer.request('jobs');
  broker.expireAckTimeouts(performance.now() + 4 * HOUR_MS);
  assert.deepEqual(
    expired.map(([d, dead]) => [d.attempt, dead]),
    [
      [1, false],
      [2, true],
    ],
  );
  await waitFor(() => broker.topicStats('jobs.dead') !== undefined); // the dead-letter record is durable
  consumer.subscribe('jobs');
  assert.equal(broker.topicStats('jobs')!.consumers, 1);
  consumer.close();
  consumer.close();
  assert.equal(broker.topicStats('jobs')!.consumers, 0);
  assert.equal(broker.topicStats('jobs.dead')!.ready, 1);
});

test('health and storage figures: loading before open, storage failing from a failed write until a write works again', async (t) => {
  const h = harness(t);
  const unopened = new Broker(brokerOptions(h.dir, { logger: silentLogger }));
  assert.deepEqual(await unopened.health(), { loading: true, storageFailure: null });
  assert.equal(unopened.storageStats(), undefined);
  const broker = h.open();
  assert.deepEqual(await broker.health(), { loading: false, storageFailure: null });
  await publish(broker, 'jobs', 'x');
  const stats = broker.storageStats()!;
  assert.ok(stats.writtenRecords >= 1 && stats.logSegments >= 1 && stats.logBytes > 0, JSON.stringify(stats));
  const real = broker.writer.fs.write;
  broker.writer.fs.write = ((_fd: number, _b: Buffer, _o: number, _l: number, _p: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void) => {
    setImmediate(() => cb(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }), 0));
  }) as typeof real;
  await assert.rejects(publish(broker, 'jobs', 'y'), (err: unknown) => err instanceof BrokerError && err.code === 'MQ_ERR_STORAGE');
  const failing = await broker.health();
  assert.equal((failing.storageFailure as NodeJS.ErrnoException | null)?.code, 'ENOSPC');
  broker.writer.fs.write = real;
  await publish(broker, 'jobs', 'z');
  assert.deepEqual(await broker.health(), { loading: false, storageFailure: null });
});
