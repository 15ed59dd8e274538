/**
 * The jetstream engine's double-acked signals (src/jetstream/ack-requests.ts) against a real
 * nats-server (one node): an answered +ACK removes the message; a signal nobody answers fails
 * with a timeout and is not sent twice; one nobody receives (no responders) is sent again until
 * someone answers, or fails once the retry time is over; close() fails what still waits.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { AckRequests } from '../../src/jetstream/ack-requests.js';
import { startCluster, type NatsCluster } from './cluster.js';

let node: NatsCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;
const enc = new TextEncoder();

before(async () => {
  node = await startCluster(1);
  nc = await connect({ servers: node.urls.split(',') });
  jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'ACKR', subjects: ['ACKR.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
});

after(async () => {
  await nc?.close();
  await node?.stop();
});

/** The outcome of one signal: its error (null on success) and how long it took (ms). */
function outcome(acks: AckRequests, subject: string, body: string): Promise<{ err: Error | null; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => acks.send(subject, enc.encode(body), (err) => resolve({ err, ms: Date.now() - t0 })));
}

test('+ACK answered by JetStream: success, and the work queue drops the message', async () => {
  const acks = new AckRequests(nc, 5000);
  try {
    const js = jetstream(nc);
    await js.publish('ACKR.a', 'one');
    await js.publish('ACKR.a', 'two');
    await jsm.consumers.add('ACKR', { durable_name: 'a', filter_subject: 'ACKR.a', ack_policy: AckPolicy.Explicit });
    // Raw pulls of one message each: the reply subject of what comes back is its ack subject.
    const replies: string[] = [];
    for (let i = 0; i < 2; i++) {
      const m = await nc.request('$JS.API.CONSUMER.MSG.NEXT.ACKR.a', '{"batch":1}', { timeout: 2000, noMux: true });
      assert.match(m.reply ?? '', /^\$JS\.ACK\.ACKR\.a\./);
      replies.push(m.reply!);
    }
    let sync = true;
    const first = outcome(acks, replies[0]!, '+ACK');
    const second = outcome(acks, replies[1]!, '+ACK');
    assert.equal(acks.pending, 2);
    const idle = acks.idle().then(() => sync);
    sync = false;
    assert.deepEqual([(await first).err, (await second).err], [null, null]);
    assert.equal(await idle, false, 'idle() resolves once both were answered, not before');
    assert.equal(acks.pending, 0);
    const info = await jsm.streams.info('ACKR');
    assert.equal(info.state.messages, 0, 'both acked messages are gone');
  } finally {
    acks.close();
  }
});

test('no answer within the timeout: a TimeoutError, and the signal was sent once', async () => {
  const acks = new AckRequests(nc, 300);
  let received = 0;
  const silent = nc.subscribe('ackr.silent', {
    callback: () => {
      received++;
    },
  });
  try {
    const { err, ms } = await outcome(acks, 'ackr.silent', '+ACK');
    assert.equal(err?.name, 'TimeoutError');
    assert.ok(ms >= 290 && ms < 2000, `timed out after ${ms} ms`);
    await nc.flush();
    assert.equal(received, 1, 'a signal that may have been processed is not sent again');
    assert.equal(acks.pending, 0);
  } finally {
    silent.unsubscribe();
    acks.close();
  }
});

test('nobody receives it (no responders): sent again until someone answers', async () => {
  const acks = new AckRequests(nc, 2000, 5000);
  let received = 0;
  const pending = outcome(acks, 'ackr.late', '-NAK');
  await new Promise((r) => setTimeout(r, 300));
  const responder = nc.subscribe('ackr.late', {
    callback: (_err, msg) => {
      received++;
      msg.respond();
    },
  });
  try {
    const { err, ms } = await pending;
    assert.equal(err, null);
    assert.ok(ms >= 300, `answered after ${ms} ms, once the responder was there`);
    assert.equal(received, 1);
  } finally {
    responder.unsubscribe();
    acks.close();
  }
});

test('nobody receives it for the whole retry time: fails with no responders', async () => {
  const acks = new AckRequests(nc, 2000, 400);
  try {
    const { err, ms } = await outcome(acks, 'ackr.nobody', '+ACK');
    assert.equal(err?.name, 'NoResponders');
    assert.match(err!.message, /no responders: 'ackr\.nobody'/);
    assert.ok(ms >= 100 && ms < 2000, `failed after ${ms} ms`);
    assert.equal(acks.pending, 0);
  } finally {
    acks.close();
  }
});

test('close(): what still waits fails at once, and idle() resolves', async () => {
  const acks = new AckRequests(nc, 10_000);
  const silent = nc.subscribe('ackr.closing', { callback: () => undefined });
  try {
    const pending = outcome(acks, 'ackr.closing', '+ACK');
    const idle = acks.idle();
    await nc.flush();
    acks.close();
    const { err, ms } = await pending;
    assert.match(err?.message ?? '', /closed before JetStream answered on ackr\.closing/);
    assert.ok(ms < 5000);
    await idle;
  } finally {
    silent.unsubscribe();
  }
});

test('a closed connection: the signal fails, never synchronously', async () => {
  const other = await connect({ servers: node.urls.split(',') });
  const acks = new AckRequests(other, 1000);
  await other.close();
  let sync = true;
  const pending = outcome(acks, 'ackr.x', '+ACK').then((r) => ({ ...r, sync }));
  sync = false;
  const { err, sync: wasSync } = await pending;
  assert.equal(wasSync, false);
  assert.equal(err?.name, 'ClosedConnectionError');
  acks.close();
});
