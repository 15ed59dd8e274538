/**
 * The JetStream features the jetstream engine relies on, checked against the nats-server the
 * tests run (Debian 12's 2.9.10) in a real three-node cluster: work-queue retention with one
 * pull consumer per subject, raw pull requests (batch 1, expires, no_wait and their status
 * replies), the ack reply ("double ack") for +ACK and -NAK, NAK with a delay, +WPI extending
 * the ack wait, ack-wait redelivery, NAKed messages delivered before new ones, purge by
 * subject, last-by-subject gets, and unlimited max_ack_pending.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { startCluster, type NatsCluster } from './cluster.js';

let cluster: NatsCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;
const enc = new TextEncoder();
const dec = new TextDecoder();

before(async () => {
  cluster = await startCluster(3);
  nc = await connect({ servers: cluster.urls.split(',') });
  jsm = await jetstreamManager(nc);
  await jsm.streams.add({
    name: 'FEAT',
    subjects: ['FEAT.>'],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: 3,
  });
});

after(async () => {
  await nc?.close();
  await cluster?.stop();
});

async function consumer(name: string, ackWaitMs: number): Promise<void> {
  await jsm.consumers.add('FEAT', {
    durable_name: name,
    filter_subject: `FEAT.${name}`,
    ack_policy: AckPolicy.Explicit,
    ack_wait: ackWaitMs * 1_000_000,
    max_deliver: -1,
    max_ack_pending: -1,
    max_waiting: 4096,
  });
}

/** One raw pull request of one message; resolves with it, or with the status reply. */
async function pull(name: string, opts: { expiresMs?: number; noWait?: boolean }): Promise<Msg> {
  const body: Record<string, unknown> = { batch: 1 };
  if (opts.expiresMs !== undefined) body['expires'] = opts.expiresMs * 1_000_000;
  if (opts.noWait === true) body['no_wait'] = true;
  return nc.request(`$JS.API.CONSUMER.MSG.NEXT.FEAT.${name}`, enc.encode(JSON.stringify(body)), { timeout: (opts.expiresMs ?? 1000) + 2000, noMux: true });
}

function status(m: Msg): number {
  return m.headers?.code ?? 0;
}

/** num_delivered from the ack subject `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`. */
function delivered(m: Msg): number {
  return Number(m.reply!.split('.')[4]);
}

test('publish answered after the store; a pull of one delivers it with num_delivered 1', async () => {
  await consumer('a', 30_000);
  const ack = JSON.parse(dec.decode((await nc.request('FEAT.a', enc.encode('one'), { timeout: 5000 })).data)) as { seq: number };
  assert.ok(ack.seq > 0);
  const m = await pull('a', { expiresMs: 2000 });
  assert.equal(dec.decode(m.data), 'one');
  assert.equal(delivered(m), 1);
  // +ACK as a request: the server answers (the "double ack") and the work queue drops the message.
  const reply = await nc.request(m.reply!, enc.encode('+ACK'), { timeout: 5000 });
  assert.equal(reply.data.length, 0);
  const none = await pull('a', { noWait: true });
  assert.equal(status(none), 404, 'no_wait on an empty consumer answers 404');
  const info = await jsm.streams.info('FEAT', { subjects_filter: 'FEAT.a' });
  assert.equal(info.state.subjects?.['FEAT.a'] ?? 0, 0);
});

test('a pull that expires answers 408', async () => {
  await consumer('b', 30_000);
  const m = await pull('b', { expiresMs: 300 });
  assert.equal(status(m), 408);
});

test('-NAK is answered; a NAKed message is delivered before newer ones, num_delivered + 1', async () => {
  await consumer('c', 30_000);
  for (const p of ['c1', 'c2']) await nc.request('FEAT.c', enc.encode(p), { timeout: 5000 });
  const m1 = await pull('c', { expiresMs: 2000 });
  assert.equal(dec.decode(m1.data), 'c1');
  const m2 = await pull('c', { expiresMs: 2000 });
  assert.equal(dec.decode(m2.data), 'c2');
  await nc.request('FEAT.c', enc.encode('c3'), { timeout: 5000 });
  const nakReply = await nc.request(m2.reply!, enc.encode('-NAK'), { timeout: 5000 });
  assert.equal(nakReply.data.length, 0);
  const again = await pull('c', { expiresMs: 2000 });
  assert.equal(dec.decode(again.data), 'c2', 'the NAKed message comes before c3');
  assert.equal(delivered(again), 2);
  for (const m of [m1, again]) await nc.request(m.reply!, enc.encode('+ACK'), { timeout: 5000 });
  const m3 = await pull('c', { expiresMs: 2000 });
  assert.equal(dec.decode(m3.data), 'c3');
  await nc.request(m3.reply!, enc.encode('+ACK'), { timeout: 5000 });
});

test('NAK with a delay holds the message that long, then delivers it before newer ones', async () => {
  await consumer('d', 30_000);
  await nc.request('FEAT.d', enc.encode('d1'), { timeout: 5000 });
  const m = await pull('d', { expiresMs: 2000 });
  const nakAt = Date.now();
  await nc.request(m.reply!, enc.encode('-NAK {"delay":800000000}'), { timeout: 5000 });
  await nc.request('FEAT.d', enc.encode('d2'), { timeout: 5000 });
  const first = await pull('d', { expiresMs: 3000 });
  assert.equal(dec.decode(first.data), 'd2', 'the delayed message is not delivered before its delay');
  const later = await pull('d', { expiresMs: 3000 });
  assert.equal(dec.decode(later.data), 'd1');
  assert.ok(Date.now() - nakAt >= 750, `held ${Date.now() - nakAt} ms`);
  for (const x of [first, later]) await nc.request(x.reply!, enc.encode('+ACK'), { timeout: 5000 });
});

test('ack wait: redelivered after it; +WPI restarts it', async () => {
  await consumer('e', 1000);
  await nc.request('FEAT.e', enc.encode('e1'), { timeout: 5000 });
  const m = await pull('e', { expiresMs: 2000 });
  const start = Date.now();
  // Two in-progress signals 600 ms apart keep it past the 1 s ack wait.
  for (let i = 0; i < 2; i++) {
    await new Promise((r) => setTimeout(r, 600));
    nc.publish(m.reply!, enc.encode('+WPI'));
  }
  const none = await pull('e', { expiresMs: 700 });
  assert.equal(status(none), 408, 'not redelivered while touched');
  const again = await pull('e', { expiresMs: 3000 });
  assert.equal(dec.decode(again.data), 'e1');
  assert.equal(delivered(again), 2);
  assert.ok(Date.now() - start >= 1900, `redelivered after ${Date.now() - start} ms`);
  await nc.request(again.reply!, enc.encode('+ACK'), { timeout: 5000 });
});

test('purge by subject removes one subject only; headers survive a store; last-by-subject get', async () => {
  await consumer('f', 30_000);
  await consumer('g', 30_000);
  const h = headers();
  h.set('Mq-Dack-Count', '3');
  await nc.request('FEAT.f', enc.encode('f1'), { timeout: 5000, headers: h });
  await nc.request('FEAT.g', enc.encode('g1'), { timeout: 5000 });
  const got = await jsm.streams.getMessage('FEAT', { last_by_subj: 'FEAT.f' });
  assert.equal(got?.header.get('Mq-Dack-Count'), '3');
  const purged = await jsm.streams.purge('FEAT', { filter: 'FEAT.f' });
  assert.equal(purged.purged, 1);
  const info = await jsm.streams.info('FEAT', { subjects_filter: '>' });
  assert.equal(info.state.subjects?.['FEAT.f'], undefined);
  assert.equal(info.state.subjects?.['FEAT.g'], 1);
  const m = await pull('g', { expiresMs: 2000 });
  assert.equal(dec.decode(m.data), 'g1');
  await nc.request(m.reply!, enc.encode('+ACK'), { timeout: 5000 });
});
