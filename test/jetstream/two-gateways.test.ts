/**
 * Several gateways on one JetStream cluster (issue 15): competing consumers on two engines, each
 * message in flight to one consumer at a time and none lost; a gateway process SIGKILLed while
 * holding a message (the other gateway gets it after the lease); DELETE on one gateway refusing
 * the other's in-flight settles; one NATS node SIGKILLed under publish and consume load (R3);
 * health once the whole cluster is gone.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import type { JetStreamEngine } from '../../src/jetstream/jetstream-engine.js';
import { ROOT, waitFor } from '../helpers/index.js';
import { startCluster, type NatsCluster } from './cluster.js';
import { codeOf, openEngine, publish, TestConsumer } from './engine-fixtures.js';

let cluster: NatsCluster;
let a: JetStreamEngine;
let b: JetStreamEngine;

before(async () => {
  cluster = await startCluster(3);
  [a, b] = await Promise.all([openEngine(cluster), openEngine(cluster)]);
});

after(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await cluster?.stop();
});

/** Consumes `topic` until `stop()` says so, acking each message after a short hold; records who held what. */
async function consumeLoop(
  c: TestConsumer,
  name: string,
  topic: string,
  held: Map<string, string>,
  got: string[],
  stop: () => boolean,
): Promise<void> {
  while (!stop()) {
    let d;
    try {
      d = await c.next(topic, 1500);
    } catch {
      continue;
    }
    const payload = d.payload.toString();
    const holder = held.get(payload);
    assert.equal(holder, undefined, `${payload} is in flight to ${holder} and ${name} at once`);
    held.set(payload, name);
    got.push(payload);
    await new Promise((r) => setImmediate(r));
    held.delete(payload);
    await c.settle(d, 'ACK');
  }
}

test('competing consumers on two gateways: every message delivered once, to one consumer at a time, none lost', async () => {
  const N = 200;
  // Warm-up: both gateways have the topic's consumer (creating a replicated consumer takes the
  // first one up to a second, which would let the other gateway take every message meanwhile).
  for (const engine of [a, b]) {
    await publish(engine, 'compete', 'warm-up');
    const c = new TestConsumer(engine);
    await c.settle(await c.next('compete'), 'ACK');
    c.handle.close();
  }
  const published: string[] = [];
  await Promise.all(
    Array.from({ length: N }, (_, i) => {
      const payload = `m${i}`;
      published.push(payload);
      return publish(i % 2 === 0 ? a : b, 'compete', payload);
    }),
  );
  const held = new Map<string, string>();
  const byConsumer: Record<string, string[]> = { a1: [], a2: [], b1: [], b2: [] };
  const all = (): number => Object.values(byConsumer).reduce((n, g) => n + g.length, 0);
  const consumers = { a1: new TestConsumer(a), a2: new TestConsumer(a), b1: new TestConsumer(b), b2: new TestConsumer(b) };
  await Promise.all(Object.entries(consumers).map(([name, c]) => consumeLoop(c, name, 'compete', held, byConsumer[name]!, () => all() >= N)));
  const got = Object.values(byConsumer).flat();
  assert.equal(got.length, N, 'no message delivered twice');
  assert.deepEqual([...got].sort(), [...published].sort(), 'none lost');
  assert.ok(byConsumer['a1']!.length + byConsumer['a2']!.length > 0 && byConsumer['b1']!.length + byConsumer['b2']!.length > 0, 'both gateways consumed');
  for (const c of Object.values(consumers)) c.handle.close();
});

test('a gateway SIGKILLed while holding a message: the other gateway gets it after the lease', async () => {
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'test', 'jetstream', 'fixtures', 'gateway-child.js'), cluster.urls, 'gwdeath', '2000'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  try {
    const id = await publish(a, 'gwdeath', 'held');
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
    assert.deepEqual(JSON.parse(line), { messageId: id, payload: 'held', attempt: 1 });
    child.kill('SIGKILL');
    await exited;
    const killedAt = Date.now();
    const c = new TestConsumer(a);
    const d = await c.next('gwdeath', 8000);
    assert.equal(d.payload.toString(), 'held');
    assert.equal(d.messageId, id);
    assert.equal(d.attempt, 2);
    assert.ok(Date.now() - killedAt < 4000, `redelivered ${Date.now() - killedAt} ms after the kill`);
    await c.settle(d, 'ACK');
    c.handle.close();
  } finally {
    child.kill('SIGKILL');
  }
});

test('DELETE on one gateway: the other gateway refuses settles of its deliveries of the topic', async () => {
  await publish(a, 'shared-del', 'x');
  const c = new TestConsumer(b);
  const d = await c.next('shared-del');
  await new Promise<void>((resolve, reject) => a.deleteTopic('shared-del', (err) => (err === null ? resolve() : reject(err))));
  await waitFor(() => codeOf(() => c.handle.touch(d.deliveryId)) === 'MQ_ERR_TOPIC_DELETED', 5000);
  assert.equal(codeOf(() => c.handle.settle(d.deliveryId, 'ACK', 0, () => {})), 'MQ_ERR_TOPIC_DELETED');
  c.handle.close();
});

test('one NATS node SIGKILLed under load (R3): every answered publish is consumed, no answered ACK undone', async () => {
  const N = 300;
  const answered: string[] = [];
  const failed: string[] = [];
  const got: string[] = [];
  const acked = new Set<string>();
  const held = new Map<string, string>();
  let publishing = true;
  const producer = (async () => {
    for (let i = 0; i < N; i++) {
      const payload = `k${i}`;
      try {
        await publish(i % 2 === 0 ? a : b, 'killnode', payload);
        answered.push(payload);
      } catch {
        failed.push(payload);
      }
      if (i === 100) await cluster.kill(2);
    }
    publishing = false;
  })();
  const consume = async (engine: JetStreamEngine, name: string): Promise<void> => {
    const c = new TestConsumer(engine);
    const done = (): boolean => !publishing && answered.every((p) => acked.has(p));
    while (!done()) {
      let d;
      try {
        d = await c.next('killnode', 1500);
      } catch {
        continue;
      }
      const payload = d.payload.toString();
      assert.ok(!acked.has(payload), `${payload} came back after an answered ACK`);
      held.set(payload, name);
      got.push(payload);
      try {
        await c.settle(d, 'ACK');
        acked.add(payload);
      } catch {
        // Not answered: it may come again.
      }
      held.delete(payload);
    }
    c.handle.close();
  };
  await Promise.all([producer, consume(a, 'a'), consume(b, 'b')]);
  assert.ok(answered.length >= N - 20, `answered ${answered.length}, failed ${failed.length}`);
  for (const p of answered) assert.ok(acked.has(p), `${p} was answered but never consumed`);
});

test('health names NATS once the cluster is unreachable; publishes fail with MQ_ERR_STORAGE', async () => {
  assert.deepEqual(await a.health(), { loading: false, storageFailure: null });
  await cluster.stop();
  const h = await a.health();
  assert.equal(h.loading, false);
  assert.match(String(h.storageFailure?.message), /NATS JetStream unreachable/);
  const err = await publish(a, 'down', 'x').then(
    () => null,
    (e: unknown) => e,
  );
  assert.equal((err as { code?: string } | null)?.code, 'MQ_ERR_STORAGE');
});
