/**
 * StreamConsumer (engine/stream-consumer.ts): one delivery held at a time, the next requested on
 * each settle, and after an ack timeout the next settle refused once before delivery goes on.
 * Run over the segment-log broker (a real log in a temp directory); the ack ticker is driven by
 * hand through expireAckTimeouts with a timeout far longer than the test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Broker } from '../../src/broker/broker.js';
import { MAX_DACK_DELAY_MS, type Delivery } from '../../src/engine/queue-engine.js';
import { StreamConsumer } from '../../src/engine/stream-consumer.js';
import { BrokerError } from '../../src/errors.js';
import { deleteTopic, harness, publish, throwsCode } from '../helpers/index.js';

const HOUR_MS = 3_600_000;

/** A stream on `topic` whose deliveries, notices and settle outcomes go to one ordered event list. */
function stream(broker: Broker, topic: string): { s: StreamConsumer; events: string[]; got: Delivery[]; notices: BrokerError[] } {
  const events: string[] = [];
  const got: Delivery[] = [];
  const notices: BrokerError[] = [];
  const s = new StreamConsumer(broker, topic, {
    onDelivery(d) {
      got.push(d);
      events.push(`deliver ${d.payload.toString()}`);
    },
    onExpired(d, notice) {
      notices.push(notice);
      events.push(`expired ${d.payload.toString()}`);
    },
  });
  return { s, events, got, notices };
}

/** Settles and records the outcome in `events` ("ok" once durable, else the error code). */
function settleInto(s: StreamConsumer, events: string[], kind: 'ACK' | 'NACK' | 'BACK' | 'DACK', delayMs = 0): Promise<string> {
  return new Promise((resolve) => {
    s.settle(kind, delayMs, (err) => {
      const outcome = err === null ? 'ok' : err.code;
      events.push(`${kind} ${outcome}`);
      resolve(outcome);
    });
  });
}

test('a stream holds one delivery; a settle requests the next at once and is answered when durable', async (t) => {
  const broker = harness(t).open();
  for (const p of ['a', 'b', 'c']) await publish(broker, 'jobs', p);
  const { s, events, got } = stream(broker, 'jobs');
  s.start();
  assert.deepEqual(events, ['deliver a']);
  assert.equal(s.current, got[0]);
  assert.equal(broker.topicStats('jobs')!.consumers, 1);
  assert.equal(broker.topicStats('jobs')!.inFlight, 1, 'only one in flight though three are ready');
  const acked = settleInto(s, events, 'ACK');
  assert.deepEqual(events, ['deliver a', 'deliver b'], 'the next is delivered before the ACK is durable');
  assert.equal(await acked, 'ok');
  assert.equal(await settleInto(s, events, 'NACK'), 'ok');
  assert.deepEqual(events, ['deliver a', 'deliver b', 'ACK ok', 'deliver b', 'NACK ok']);
  assert.equal(got[2]!.messageId, got[1]!.messageId, 'NACK puts it at the front: delivered again');
  assert.equal(got[2]!.attempt, 2);
  assert.notEqual(got[2]!.deliveryId, got[1]!.deliveryId);
  s.close();
  assert.equal(broker.topicStats('jobs')!.consumers, 0);
  assert.equal(broker.topicStats('jobs')!.inFlight, 0, 'close NACKs the held delivery');
  assert.equal(broker.topicStats('jobs')!.ready, 2);
});

test('a settle with nothing held is refused synchronously with MQ_ERR_BAD_COMMAND; the waiting request stays', async (t) => {
  const broker = harness(t).open();
  const { s, events } = stream(broker, 'empty');
  s.start();
  assert.equal(s.waiting, true);
  const outcome = settleInto(s, events, 'ACK');
  assert.deepEqual(events, ['ACK MQ_ERR_BAD_COMMAND'], 'answered before settle() returned');
  assert.equal(await outcome, 'MQ_ERR_BAD_COMMAND');
  throwsCode(() => s.touch(), 'MQ_ERR_BAD_COMMAND');
  await publish(broker, 'empty', 'late');
  assert.deepEqual(events, ['ACK MQ_ERR_BAD_COMMAND', 'deliver late']);
  assert.equal(s.waiting, false);
  s.close();
});

test('after an ack timeout the next settle is refused once, before anything else is delivered; TOUCH is refused without using the refusal', async (t) => {
  const broker = harness(t).open({ ackTimeoutMs: HOUR_MS });
  for (const p of ['a', 'b']) await publish(broker, 'jobs', p);
  const { s, events, got, notices } = stream(broker, 'jobs');
  s.start();
  const first = got[0]!;
  assert.equal(broker.expireAckTimeouts(performance.now() + 2 * HOUR_MS), 1);
  assert.deepEqual(events, ['deliver a', 'expired a']);
  assert.equal(notices[0]!.code, 'MQ_ERR_ACK_TIMEOUT');
  assert.match(notices[0]!.message, new RegExp(`message ${first.messageId} was not settled within --ack-timeout and went back to the queue`));
  assert.equal(s.current, null);
  assert.equal(broker.topicStats('jobs')!.ready, 2, 'nothing delivered after the expiry, though two are ready');
  throwsCode(() => s.touch(), 'MQ_ERR_DELIVERY_EXPIRED');
  assert.equal(got.length, 1, 'a refused TOUCH does not go on');
  const refused = settleInto(s, events, 'NACK');
  assert.deepEqual(events.slice(2), ['NACK MQ_ERR_DELIVERY_EXPIRED', 'deliver a'], 'the refusal comes before the next delivery');
  assert.equal(await refused, 'MQ_ERR_DELIVERY_EXPIRED');
  // The client library recognises the refusal by this text (client/subscription.ts).
  const text: string[] = [];
  s.settle('ACK', 0, () => {}); // settles the redelivered a
  s.settle('ACK', 0, () => {}); // settles b
  s.settle('ACK', 0, (err) => text.push(err!.message));
  assert.deepEqual(text, ['invalid command: ACK: no message is in flight on this subscription']);
  assert.equal(got[1]!.attempt, 2, 'the redelivery of a');
  assert.equal(new BrokerError('MQ_ERR_DELIVERY_EXPIRED', ['NACK', 7]).message.startsWith('NACK: message 7 is no longer in flight'), true);
  s.close();
});

test('an expiry that dead-letters the message says so in the notice', async (t) => {
  const broker = harness(t).open({ ackTimeoutMs: HOUR_MS, maxDeliveries: 1 });
  await publish(broker, 'jobs', 'a');
  const { s, notices } = stream(broker, 'jobs');
  s.start();
  broker.expireAckTimeouts(performance.now() + 2 * HOUR_MS);
  assert.match(notices[0]!.message, /was moved to jobs\.dead; the next settle is refused/);
  s.close();
});

test('a DACK delay out of range is refused and changes nothing: the delivery is still held', async (t) => {
  const broker = harness(t).open();
  await publish(broker, 'jobs', 'a');
  const { s, events, got } = stream(broker, 'jobs');
  s.start();
  assert.equal(await settleInto(s, events, 'DACK', MAX_DACK_DELAY_MS + 1000), 'MQ_ERR_BAD_ARGUMENT');
  assert.equal(await settleInto(s, events, 'DACK', 1.5), 'MQ_ERR_BAD_ARGUMENT');
  assert.equal(s.current, got[0]);
  assert.equal(await settleInto(s, events, 'DACK', 60_000), 'ok');
  assert.deepEqual(broker.topicStats('jobs'), { topic: 'jobs', ready: 0, inFlight: 0, delayed: 1, consumers: 1, published: 1, acked: 0 });
  s.close();
});

test('a settle after the topic was deleted answers MQ_ERR_TOPIC_DELETED and the stream goes on', async (t) => {
  const broker = harness(t).open();
  await publish(broker, 'jobs', 'a');
  const { s, events } = stream(broker, 'jobs');
  s.start();
  await deleteTopic(broker, 'jobs');
  assert.equal(await settleInto(s, events, 'ACK'), 'MQ_ERR_TOPIC_DELETED');
  assert.equal(s.waiting, true, 'the next delivery is requested');
  await publish(broker, 'jobs', 'b');
  assert.deepEqual(events, ['deliver a', 'ACK MQ_ERR_TOPIC_DELETED', 'deliver b']);
  s.close();
});

test('endInput: nothing more is requested; close puts the held delivery back at the front', async (t) => {
  const broker = harness(t).open();
  for (const p of ['a', 'b', 'c']) await publish(broker, 'jobs', p);
  const { s, events } = stream(broker, 'jobs');
  s.start();
  s.endInput();
  assert.equal(await settleInto(s, events, 'BACK'), 'ok');
  assert.deepEqual(events, ['deliver a', 'BACK ok'], 'no next delivery after the input ended');
  assert.equal(s.waiting, false);
  s.close();
  s.close();
  const readers = stream(broker, 'jobs');
  readers.s.start();
  assert.deepEqual(readers.events, ['deliver b'], 'a went to the back');
  readers.s.close();
  assert.throws(() => new StreamConsumer(broker, 'bad topic', { onDelivery() {} }).start(), (err: unknown) => err instanceof BrokerError && err.code === 'MQ_ERR_BAD_TOPIC');
});

test('with onTopicDeleted, a stream whose held delivery is deleted is told at once and goes on without a settle', async (t) => {
  const broker = harness(t).open();
  await publish(broker, 'jobs', 'old');
  const events: string[] = [];
  const s = new StreamConsumer(broker, 'jobs', {
    onDelivery: (d) => events.push(`deliver ${d.payload.toString()}`),
    onTopicDeleted: (d, notice) => events.push(`deleted ${d.messageId} ${notice.code}`),
  });
  s.start();
  const old = s.current!;
  await deleteTopic(broker, 'jobs');
  assert.deepEqual(events, ['deliver old', `deleted ${old.messageId} MQ_ERR_TOPIC_DELETED`]);
  assert.equal(s.current, null);
  assert.ok(s.waiting, 'the next delivery is requested without a settle');
  throwsCode(() => s.touch(), 'MQ_ERR_TOPIC_DELETED');
  // A settle before the next delivery is refused with the same code, and is not applied to it.
  assert.equal(await settleInto(s, events, 'ACK'), 'MQ_ERR_TOPIC_DELETED');
  await publish(broker, 'jobs', 'new');
  assert.equal(events.at(-1), 'deliver new');
  assert.equal(await settleInto(s, events, 'ACK'), 'ok');
  assert.equal(broker.topicStats('jobs')!.acked, 1);
  s.close();
});
