/**
 * `--max-deliveries` across two gateways (issue 15): it counts deliveries to clients. A gateway
 * that pulled a message for a RESERVE that had timed out meanwhile keeps it unclaimed for a
 * second and gives it back; JetStream counts that delivery, no client saw it, and the next
 * gateway to get the message must not count it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { JetStreamEngine } from '../../src/jetstream/jetstream-engine.js';
import { startCluster, type NatsCluster } from './cluster.js';
import { openEngine, publish, TestConsumer } from './engine-fixtures.js';

let cluster: NatsCluster;
let a: JetStreamEngine;
let b: JetStreamEngine;

before(async () => {
  cluster = await startCluster(3);
  const opts = { maxDeliveries: 3, pullExpiresMs: 5000, requestTimeoutMs: 5000 };
  [a, b] = await Promise.all([openEngine(cluster, opts), openEngine(cluster, opts)]);
});

after(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await cluster?.stop();
});

test('--max-deliveries 3 with a message alternating between gateways: dead-lettered after the third delivery to a client, not before', async () => {
  const topic = 'poison';
  const ca = new TestConsumer(a);
  const cb = new TestConsumer(b);
  await publish(a, topic, 'poison');
  const d1 = await ca.next(topic);
  assert.equal(d1.attempt, 1);
  // A RESERVE on gateway b times out while the message is in flight on a: b's pull stays out.
  assert.ok(await cb.nothingWithin(topic, 1500));
  // NACK on a: JetStream hands the message to b's pull, which nobody waits for any more; b keeps
  // it a second, gives it back, and a (waiting again) gets it.
  await ca.settle(d1, 'NACK');
  const d2 = await ca.next(topic, 10_000);
  assert.equal(d2.payload.toString(), 'poison');
  assert.equal(d2.attempt, 2, 'the second delivery to a client is attempt 2 (the one no client saw is not counted)');
  await ca.settle(d2, 'NACK');
  const d3 = await cb.next(topic, 10_000);
  assert.equal(d3.payload.toString(), 'poison');
  assert.equal(d3.attempt, 3);
  await cb.settle(d3, 'NACK'); // the third delivery to a client ends unsuccessfully: dead-lettered
  const dead = await ca.next(`${topic}.dead`, 10_000);
  assert.equal(dead.payload.toString(), 'poison');
  await ca.settle(dead, 'ACK');
  assert.ok(await ca.nothingWithin(topic, 1000), 'the message left its topic');
  ca.handle.close();
  cb.handle.close();
});
