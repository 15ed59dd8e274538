/**
 * RESERVE without a timeout on the jetstream engine (issue 15): `requestIfReady` asks the cluster
 * once without waiting, so a message ready in JetStream is returned even by a gateway that holds
 * none (a fresh one), and an empty topic is answered "none" at once. Before it, such a RESERVE
 * answered nil unless the gateway already held an unclaimed message (README difference).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Delivery } from '../../src/engine/queue-engine.js';
import type { JetStreamEngine } from '../../src/jetstream/jetstream-engine.js';
import type { JetStreamConsumer } from '../../src/jetstream/js-consumer.js';
import { startCluster, type NatsCluster } from './cluster.js';
import { openEngine, publish, TestConsumer } from './engine-fixtures.js';

let cluster: NatsCluster;
let a: JetStreamEngine;

before(async () => {
  cluster = await startCluster(3);
  a = await openEngine(cluster, { stream: 'MQNOWAIT' });
});

after(async () => {
  await a?.close();
  await cluster?.stop();
});

/** A consumer whose `ifReady` resolves with the delivery, or null when the engine said none is ready. */
function pollingConsumer(engine: JetStreamEngine): { handle: JetStreamConsumer; ifReady(topic: string): Promise<Delivery | null> } {
  let pending: ((d: Delivery | null) => void) | null = null;
  const handle = engine.openConsumer({
    onDelivery: (d) => {
      const p = pending;
      pending = null;
      assert.ok(p !== null, `a delivery nobody asked for: ${d.payload.toString()}`);
      p(d);
    },
  });
  return {
    handle,
    ifReady: (topic) =>
      new Promise((resolve) => {
        assert.equal(pending, null);
        pending = resolve;
        let sync = true;
        handle.requestIfReady(topic, () => {
          assert.equal(sync, false, 'onNone was called synchronously');
          const p = pending;
          pending = null;
          p?.(null);
        });
        sync = false;
      }),
  };
}

function settle(handle: JetStreamConsumer, d: Delivery, kind: 'ACK' | 'NACK'): Promise<void> {
  return new Promise((resolve, reject) => handle.settle(d.deliveryId, kind, 0, (err) => (err === null ? resolve() : reject(err))));
}

test('a fresh gateway answers a RESERVE without a timeout with the messages ready in JetStream, in order, then none', async () => {
  for (let i = 1; i <= 3; i++) await publish(a, 'ready', `r${i}`);
  const b = await openEngine(cluster, { stream: 'MQNOWAIT' });
  try {
    const c = pollingConsumer(b);
    const got: string[] = [];
    for (let i = 0; i < 3; i++) {
      const d = await c.ifReady('ready');
      assert.ok(d !== null, `poll ${i + 1} found nothing (got so far: ${got.join(',')})`);
      got.push(d.payload.toString());
      await settle(c.handle, d, 'ACK');
    }
    assert.deepEqual(got, ['r1', 'r2', 'r3']);
    assert.equal(await c.ifReady('ready'), null);
    c.handle.close();
  } finally {
    await b.close();
  }
});

test('an empty topic is answered "none" within a round trip once its consumer exists; a NACKed message is the next one', async () => {
  const c = pollingConsumer(a);
  assert.equal(await c.ifReady('empty'), null); // makes the topic's consumer
  const t0 = Date.now();
  assert.equal(await c.ifReady('empty'), null);
  const tookMs = Date.now() - t0;
  assert.ok(tookMs < 1000, `"none" took ${tookMs} ms`);
  await publish(a, 'empty', 'n1');
  await publish(a, 'empty', 'n2');
  const first = await c.ifReady('empty');
  assert.equal(first?.payload.toString(), 'n1');
  await settle(c.handle, first!, 'NACK');
  const again = await c.ifReady('empty');
  assert.equal(again?.payload.toString(), 'n1');
  assert.equal(again?.attempt, 2);
  await settle(c.handle, again!, 'ACK');
  const second = await c.ifReady('empty');
  assert.equal(second?.payload.toString(), 'n2');
  await settle(c.handle, second!, 'ACK');
  assert.equal(await c.ifReady('empty'), null);
  c.handle.close();
});

test('a RESERVE without a timeout does not take a message from a consumer waiting on the same gateway', async () => {
  const waiting = new TestConsumer(a);
  const next = waiting.next('shared', 10_000);
  const c = pollingConsumer(a);
  assert.equal(await c.ifReady('shared'), null);
  await publish(a, 'shared', 's1');
  const d = await next;
  assert.equal(d.payload.toString(), 's1');
  await waiting.settle(d, 'ACK');
  waiting.handle.close();
  c.handle.close();
});
