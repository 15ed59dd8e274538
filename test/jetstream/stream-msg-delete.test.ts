/**
 * An ACK's removal of its message through the stream's group (src/jetstream/stream-msg-delete.ts,
 * issue 15) on a real three-node nats-server cluster: the answers as JetStream gives them (a
 * removal, one already done, a stream that is not there), what a consumer leader does with a
 * pending message removed this way (it takes it as acked: not redelivered, not pending), an
 * idempotent request sent again after a timeout, and the engine's ACKs: the removal is sent, in
 * parallel with the +ACK, while the stream has more than one replica (also once an R1 stream was
 * scaled to R3 by hand), and not for an R1 stream.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { AckRequests } from '../../src/jetstream/ack-requests.js';
import { judgeMsgDelete, msgDeleteBody, msgDeleteSubject } from '../../src/jetstream/stream-msg-delete.js';
import { startCluster, type NatsCluster } from './cluster.js';
import { openEngine, publish, TestConsumer } from './engine-fixtures.js';

let cluster: NatsCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;
const dec = new TextDecoder();

before(async () => {
  cluster = await startCluster(3);
  nc = await connect({ servers: cluster.urls.split(',') });
  jsm = await jetstreamManager(nc);
});

after(async () => {
  await nc?.close();
  await cluster?.stop();
});

/** The outcome of one removal of `seq` from `stream`. */
function remove(acks: AckRequests, stream: string, seq: number): Promise<Error | null> {
  return new Promise((resolve) => acks.call(msgDeleteSubject(stream), msgDeleteBody(seq), judgeMsgDelete, true, resolve));
}

/** A raw pull of one message of consumer `durable`: its ack subject (`$JS.ACK...`). */
async function pullOne(stream: string, durable: string): Promise<string> {
  const m = await nc.request(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`, '{"batch":1}', { timeout: 5000, noMux: true });
  assert.match(m.reply ?? '', /^\$JS\.ACK\./, `a message, not a status (${m.headers?.code ?? ''} ${m.headers?.description ?? ''})`);
  return m.reply!;
}

/** Whether a pull of one message of `durable` waiting `expiresMs` gets none (a 408/404 status). */
async function pullsNothing(stream: string, durable: string, expiresMs: number): Promise<boolean> {
  const m = await nc.request(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`, JSON.stringify({ batch: 1, expires: expiresMs * 1_000_000 }), { timeout: expiresMs + 3000, noMux: true });
  return m.data.length === 0 && (m.headers?.code === 408 || m.headers?.code === 404);
}

test('removal answers on an R3 work queue: removed, removed again (already gone = success), a stream that does not exist fails', async () => {
  await jsm.streams.add({ name: 'SMD1', subjects: ['SMD1.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: 3 });
  const acks = new AckRequests(nc, 5000);
  try {
    const js = jetstream(nc);
    const seq = (await js.publish('SMD1.a', 'one')).seq;
    await js.publish('SMD1.a', 'two');
    assert.equal(await remove(acks, 'SMD1', seq), null);
    assert.equal((await jsm.streams.info('SMD1')).state.messages, 1, 'the removed message is gone, the other stays');
    // JetStream answers this one {"error":{"code":500,"err_code":10057,"description":"no message found"}}.
    const raw = await nc.request(msgDeleteSubject('SMD1'), msgDeleteBody(seq), { timeout: 5000 });
    assert.match(dec.decode(raw.data), /no message found/);
    assert.equal(await remove(acks, 'SMD1', seq), null, 'a message already removed: success');
    const err = await remove(acks, 'SMD1_MISSING', 1);
    assert.match(err?.message ?? '', /did not remove the acked message .*stream not found/);
    assert.equal(acks.pending, 0);
  } finally {
    acks.close();
  }
});

test('a message pending on the consumer (R3) removed through the stream: taken as acked (not pending, never redelivered after the ack wait)', async () => {
  await jsm.streams.add({ name: 'SMD2', subjects: ['SMD2.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: 3 });
  const acks = new AckRequests(nc, 5000);
  try {
    const js = jetstream(nc);
    const seq = (await js.publish('SMD2.a', 'one')).seq;
    await jsm.consumers.add('SMD2', { durable_name: 'a', filter_subject: 'SMD2.a', ack_policy: AckPolicy.Explicit, ack_wait: 1_000_000_000 });
    await pullOne('SMD2', 'a');
    assert.equal((await jsm.consumers.info('SMD2', 'a')).num_ack_pending, 1);
    assert.equal(await remove(acks, 'SMD2', seq), null);
    // The consumer leader learns it from its replica of the stream (decStreamPending -> processTerm).
    let pending = -1;
    for (let i = 0; i < 50 && pending !== 0; i++) {
      pending = (await jsm.consumers.info('SMD2', 'a')).num_ack_pending;
      if (pending !== 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(pending, 0, 'no longer pending on the consumer');
    assert.ok(await pullsNothing('SMD2', 'a', 2500), 'not redelivered past its 1 s ack wait');
    const info = await jsm.consumers.info('SMD2', 'a');
    assert.equal(info.num_redelivered, 0);
    assert.equal(info.num_pending, 0);
  } finally {
    acks.close();
  }
});

test('an idempotent request that gets no answer is sent again until the retry time is over, then fails with the timeout', async () => {
  const acks = new AckRequests(nc, 200, 1000);
  let received = 0;
  const silent = nc.subscribe('smd.silent', {
    callback: () => {
      received++;
    },
  });
  try {
    const t0 = Date.now();
    const err = await new Promise<Error | null>((resolve) => acks.call('smd.silent', msgDeleteBody(1), judgeMsgDelete, true, resolve));
    const ms = Date.now() - t0;
    assert.equal(err?.name, 'TimeoutError');
    assert.ok(ms >= 900 && ms < 3000, `failed after ${ms} ms`);
    await nc.flush();
    assert.ok(received >= 3, `sent ${received} times`);
    assert.equal(acks.pending, 0);
  } finally {
    silent.unsubscribe();
    acks.close();
  }
});

/** Counts the removals sent to `stream` (every JetStream API request is a plain message too). */
function watchRemovals(stream: string): { seqs: number[]; stop: () => void } {
  const seqs: number[] = [];
  const sub = nc.subscribe(msgDeleteSubject(stream), {
    callback: (_err, msg) => {
      const body = msg.json<{ seq: number; no_erase: boolean }>();
      assert.equal(body.no_erase, true);
      seqs.push(body.seq);
    },
  });
  return { seqs, stop: () => sub.unsubscribe() };
}

test('engine ACKs: with --nats-replicas 3 each ACK removes its message through the stream; on R1 none does until the stream is scaled to R3 by hand', async () => {
  await nc.flush();
  const r3 = watchRemovals('SMDR3');
  const engine3 = await openEngine(cluster, { stream: 'SMDR3', replicas: 3 });
  try {
    const c = new TestConsumer(engine3);
    for (const p of ['a', 'b', 'c']) await publish(engine3, 't', p);
    for (let i = 0; i < 2; i++) await c.settle(await c.next('t'), 'ACK');
    // BACK acks the original too: removed as well (its copy stays).
    await c.settle(await c.next('t'), 'BACK');
    await nc.flush();
    assert.equal(r3.seqs.length, 3, `removals sent: ${r3.seqs.join(',')}`);
    assert.deepEqual([...r3.seqs].sort((x, y) => x - y), [1, 2, 3]);
    assert.equal((await jsm.streams.info('SMDR3')).state.messages, 1, 'only the BACK copy is left');
    c.handle.close();
  } finally {
    r3.stop();
    await engine3.close();
  }

  const r1 = watchRemovals('SMDR1');
  const engine1 = await openEngine(cluster, { stream: 'SMDR1', replicas: 1 });
  try {
    const c = new TestConsumer(engine1);
    await publish(engine1, 't', 'one');
    await c.settle(await c.next('t'), 'ACK');
    await nc.flush();
    assert.deepEqual(r1.seqs, [], 'no removal on an R1 stream');
    // Scaled by hand (as `nats stream edit SMDR1 --replicas 3`): seen by the next stats refresh.
    const cfg = (await jsm.streams.info('SMDR1')).config;
    await jsm.streams.update('SMDR1', { ...cfg, num_replicas: 3 });
    await engine1.refreshStats();
    await publish(engine1, 't', 'two');
    await c.settle(await c.next('t'), 'ACK');
    await nc.flush();
    assert.deepEqual(r1.seqs, [2], 'the ACK after the scale-up removes its message');
    assert.equal((await jsm.streams.info('SMDR1')).state.messages, 0);
    c.handle.close();
  } finally {
    r1.stop();
    await engine1.close();
  }
});
