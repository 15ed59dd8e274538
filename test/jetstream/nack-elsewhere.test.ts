/**
 * A message NACKed on one gateway and taken by a consumer waiting on another must not hold back
 * what the first gateway pulled ahead (issue 15): since a NACK no longer gives those back, they
 * wait on that gateway for the NACKed message to come back, and are handed on once it is known
 * to have gone elsewhere (a pull sent after the NAK was answered brought another message) or,
 * at the latest, given back a second after the NAK. Two real gateway processes, RESP through
 * ioredis, a three-node cluster.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type ConsumerInfo, type JetStreamManager } from '@nats-io/jetstream';
import { type ChildServer, startChild, waitFor } from '../helpers/index.js';
import { topicSubjects } from '../../src/jetstream/subjects.js';
import { startCluster, type NatsCluster } from './cluster.js';

const STREAM = 'NACKELSEWHERE';
let cluster: NatsCluster;
const gateways: ChildServer[] = [];
let nc: NatsConnection;
let jsm: JetStreamManager;

before(async () => {
  cluster = await startCluster(3);
  for (let i = 0; i < 2; i++) {
    const args = ['--engine', 'jetstream', '--nats', cluster.urls, '--nats-stream', STREAM, '--nats-replicas', '1'];
    gateways.push(await startChild(null, args, 30_000, { env: {}, until: 'ready' }));
  }
  nc = await connect({ servers: cluster.urls.split(',') });
  jsm = await jetstreamManager(nc);
});

after(async () => {
  await nc?.close();
  await Promise.all(gateways.map((g) => g.kill('SIGKILL')));
  await cluster?.stop();
});

type Reserved = [Buffer | string, Buffer | string];

test('a message NACKed on gateway 1 and taken on gateway 2: what gateway 1 pulled ahead goes on to its consumers, in order', { timeout: 60_000 }, async (t) => {
  const [g1, g2] = gateways as [ChildServer, ChildServer];
  const a = new Redis({ port: g1.respPort, lazyConnect: true });
  const b = new Redis({ port: g2.respPort, lazyConnect: true });
  const p = new Redis({ port: g2.respPort, lazyConnect: true }); // b blocks in its RESERVE
  t.after(() => [a, b, p].forEach((c) => c.disconnect()));
  await Promise.all([a.connect(), b.connect(), p.connect()]);
  const topic = 'nackelsewhere';
  const durable = topicSubjects(STREAM, topic).durable;
  for (const m of ['m1', 'm2', 'm3', 'm4']) assert.equal(await a.call('PUBLISH', topic, m), 'OK');
  const first = (await a.call('RESERVE', topic, '5000')) as Reserved;
  assert.equal(String(first[1]), 'm1');
  let info: ConsumerInfo | undefined;
  const consumer = async (): Promise<ConsumerInfo> => (info = await jsm.consumers.info(STREAM, durable));
  // Gateway 1 holds m1 and has pulled m2-m4 ahead (pending for JetStream).
  await waitFor(async () => (await consumer()).num_ack_pending === 4, 10_000, 20, () => `gateway 1 holding m1-m4; consumer: ${JSON.stringify(info)}`);
  const waiting = b.call('RESERVE', topic, '10000') as Promise<Reserved | null>;
  await waitFor(async () => (await consumer()).num_waiting >= 1, 10_000, 20, () => `gateway 2's pull waiting; consumer: ${JSON.stringify(info)}`);
  assert.equal(await a.call('NACK', topic, String(first[0])), 'OK');
  const onB = await waiting;
  assert.ok(onB !== null, "gateway 2's RESERVE answered nil");
  assert.equal(String(onB[1]), 'm1', 'the NACKed message went to the pull waiting on gateway 2');
  const t0 = Date.now();
  const next = a.call('RESERVE', topic, '5000') as Promise<Reserved | null>;
  assert.equal(await p.call('PUBLISH', topic, 'm5'), 'OK');
  const r2 = await next;
  t.diagnostic(`gateway 1's RESERVE after m1 went to gateway 2 answered ${r2 === null ? 'nil' : String(r2[1])} after ${Date.now() - t0} ms`);
  assert.ok(r2 !== null, "gateway 1's RESERVE answered nil");
  assert.equal(String(r2[1]), 'm2');
  const order = [String(r2[1])];
  assert.equal(await a.call('ACK', topic, String(r2[0])), 'OK');
  for (let i = 0; i < 3; i++) {
    const r = (await a.call('RESERVE', topic, '5000')) as Reserved | null;
    assert.ok(r !== null, `RESERVE answered nil after ${order.join(', ')}`);
    order.push(String(r[1]));
    assert.equal(await a.call('ACK', topic, String(r[0])), 'OK');
  }
  assert.deepEqual(order, ['m2', 'm3', 'm4', 'm5']);
  assert.equal(await b.call('ACK', topic, String(onB[0])), 'OK');
});
