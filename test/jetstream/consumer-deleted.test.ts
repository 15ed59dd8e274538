/**
 * A topic's durable consumer deleted by hand, outside miniqueue (`nats consumer rm`, the JS API),
 * while no pull of the gateway waited (issue 15): JetStream then answers the gateway's pulls with
 * silence, not with a "consumer deleted" status. The gateway recreates the consumer only on the
 * evidence that it is gone (consumer info answers 10014 "consumer not found"), and serves the
 * topic again. Before, it pulled in vain until it was restarted.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { JetStreamEngine } from '../../src/jetstream/jetstream-engine.js';
import { topicSubjects } from '../../src/jetstream/subjects.js';
import { startCluster, type NatsCluster } from './cluster.js';
import { openEngine, publish, TestConsumer } from './engine-fixtures.js';

const STREAM = 'MQGONE';

let cluster: NatsCluster;
let engine: JetStreamEngine;
let nc: NatsConnection;
let jsm: JetStreamManager;

before(async () => {
  cluster = await startCluster(3);
  engine = await openEngine(cluster, { stream: STREAM });
  nc = await connect({ servers: cluster.urls.split(',') });
  jsm = await jetstreamManager(nc);
});

after(async () => {
  await engine?.close();
  await nc?.close();
  await cluster?.stop();
});

test('a consumer deleted by hand while no pull waited is made again; the topic is served again', async () => {
  const topic = 'handrm';
  const durable = topicSubjects(STREAM, topic).durable;
  const c = new TestConsumer(engine);
  await publish(engine, topic, 'before');
  const first = await c.next(topic);
  assert.equal(first.payload.toString(), 'before');
  await c.settle(first, 'ACK');
  // No pull of the gateway waits now: nothing is requested.
  assert.equal(await jsm.consumers.delete(STREAM, durable), true);
  await assert.rejects(jsm.consumers.info(STREAM, durable), (err: unknown) => (err as { code?: number }).code === 10014);
  await publish(engine, topic, 'after');
  const t0 = Date.now();
  const again = await c.next(topic, 15_000);
  const tookMs = Date.now() - t0;
  assert.equal(again.payload.toString(), 'after');
  // One lost pull (1.25 s of silence with the test engine's 1 s pulls) and the consumer info.
  assert.ok(tookMs < 6000, `served again after ${tookMs} ms`);
  await c.settle(again, 'ACK');
  const info = await jsm.consumers.info(STREAM, durable);
  assert.equal(info.name, durable);
  c.handle.close();
});
