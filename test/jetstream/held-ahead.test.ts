/**
 * A message one gateway pulled ahead must not stay hidden from a consumer waiting on another
 * gateway (issue 15, new-user finding). Gateway 1's consumer holds m1, a consumer on gateway 2
 * waits, and m2 is published: gateway 1, whose batched pull was still out, pulled m2 ahead and
 * kept it while m1 was in flight there (spares wait for older deliveries, for the order after a
 * NACK), renewing its lease: gateway 2's 15 s RESERVE answered nil, in 3 rounds of 3.
 * Two real gateway processes, RESP through ioredis, a three-node cluster.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { type ChildServer, startChild } from '../helpers/index.js';
import { startCluster, type NatsCluster } from './cluster.js';

let cluster: NatsCluster;
const gateways: ChildServer[] = [];

before(async () => {
  cluster = await startCluster(3);
  for (let i = 0; i < 2; i++) {
    const args = ['--engine', 'jetstream', '--nats', cluster.urls, '--nats-stream', 'HELDAHEAD', '--nats-replicas', '3', '--nats-lease', '10s'];
    gateways.push(await startChild(null, args, 30_000, { env: {}, until: 'ready' }));
  }
});

after(async () => {
  await Promise.all(gateways.map((g) => g.kill('SIGKILL')));
  await cluster?.stop();
});

test('a message pulled ahead by one gateway while its consumer holds an older one reaches a consumer waiting on the other gateway within seconds', { timeout: 60_000 }, async (t) => {
  const [g1, g2] = gateways as [ChildServer, ChildServer];
  const a = new Redis({ port: g1.respPort, lazyConnect: true });
  const b = new Redis({ port: g2.respPort, lazyConnect: true });
  const p2 = new Redis({ port: g2.respPort, lazyConnect: true }); // b blocks in its RESERVE
  t.after(() => {
    a.disconnect();
    b.disconnect();
    p2.disconnect();
  });
  await Promise.all([a.connect(), b.connect(), p2.connect()]);
  const topic = 'heldahead';
  await a.call('PUBLISH', topic, 'm0');
  const first = (await b.call('RESERVE', topic, '3000')) as [Buffer | string, Buffer | string];
  await b.call('ACK', topic, String(first[0]));
  await a.call('PUBLISH', topic, 'm1');
  const held = (await a.call('RESERVE', topic, '3000')) as [Buffer | string, Buffer | string];
  assert.equal(String(held[1]), 'm1');
  const waiting = b.call('RESERVE', topic, '15000').then((r) => ({ r: r as [unknown, unknown] | null, atMs: Date.now() }));
  await new Promise((r) => setTimeout(r, 200));
  await p2.call('PUBLISH', topic, 'm2');
  const publishedAtMs = Date.now();
  const { r, atMs } = await waiting;
  t.diagnostic(`gateway 2's RESERVE answered ${r === null ? 'nil' : String(r[1])} ${atMs - publishedAtMs} ms after m2 was published`);
  assert.ok(r !== null, `gateway 2's RESERVE answered nil ${atMs - publishedAtMs} ms after m2 was published`);
  assert.equal(String(r[1]), 'm2');
  assert.ok(atMs - publishedAtMs < 5000, `m2 reached gateway 2 after ${atMs - publishedAtMs} ms`);
  await b.call('ACK', topic, String(r[0]));
  await a.call('ACK', topic, String(held[0]));
});
