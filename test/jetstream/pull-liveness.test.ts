/**
 * Pull requests that nobody serves (issue 15). NATS 2.9 takes a pull request sent while a
 * topic's consumer has no leader without answering it, so:
 * - two gateways whose consumers wait on a topic before its first message (the durable consumer
 *   is made while both wait: the second create is answered before the consumer has a leader)
 *   must both get deliveries at once, not one of them after its first pulls expire;
 * - a pull sent while the consumer's leader is being elected again (its node SIGKILLed) must be
 *   sent again once a leader serves, not after it expires.
 * Pulls expire after 5 s and requests after 5 s here, as in a gateway (the fixtures' 1 s would
 * hide a pull left unanswered).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { JetStreamEngine } from '../../src/jetstream/jetstream-engine.js';
import { topicSubjects } from '../../src/jetstream/subjects.js';
import { waitFor } from '../helpers/index.js';
import { startCluster, type NatsCluster } from './cluster.js';
import { openEngine, publish, TestConsumer } from './engine-fixtures.js';

const GATEWAY_TIMERS = { pullExpiresMs: 5000, requestTimeoutMs: 5000 };

let cluster: NatsCluster;
let a: JetStreamEngine;
let b: JetStreamEngine;
let nc: NatsConnection;
let jsm: JetStreamManager;

before(async () => {
  cluster = await startCluster(3);
  [a, b] = await Promise.all([openEngine(cluster, GATEWAY_TIMERS), openEngine(cluster, GATEWAY_TIMERS)]);
  nc = await connect({ servers: cluster.urls.split(','), maxReconnectAttempts: -1 });
  jsm = await jetstreamManager(nc, { timeout: 2000, checkAPI: false });
});

after(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await nc?.close();
  await cluster?.stop();
});

for (let round = 1; round <= 3; round++) {
  test(`consumers waiting on two gateways before a topic's first publish: both get deliveries within 1 s of the first (round ${round})`, async (t) => {
    const topic = `fresh${round}`;
    const N = 40;
    const firstAtMs: Record<string, number> = {};
    const counts: Record<string, number> = { a: 0, b: 0 };
    let total = 0;
    const consumers: TestConsumer[] = [];
    let allSettled!: () => void;
    const done = new Promise<void>((resolve) => (allSettled = resolve));
    const loop = async (engine: JetStreamEngine, side: string): Promise<void> => {
      const c = new TestConsumer(engine);
      consumers.push(c);
      while (total < N) {
        let d;
        try {
          d = await c.next(topic, 20_000);
        } catch {
          return;
        }
        firstAtMs[side] ??= Date.now();
        counts[side]!++;
        total++;
        await c.settle(d, 'ACK');
        if (total >= N) allSettled();
      }
    };
    // Two consumers wait on each gateway: both gateways make the topic's consumer at once.
    const loops = [loop(a, 'a'), loop(a, 'a'), loop(b, 'b'), loop(b, 'b')];
    for (let i = 0; i < N; i++) {
      await publish(i % 2 === 0 ? a : b, topic, `m${i}`);
      await new Promise((r) => setTimeout(r, 50)); // a steady trickle over ~2 s
    }
    await done;
    for (const c of consumers) c.handle.close();
    await Promise.allSettled(loops);
    const firstMs = Math.min(...Object.values(firstAtMs));
    const seen = JSON.stringify({ deliveries: counts, firstDeliveryAfterFirstMs: { a: firstAtMs['a'] && firstAtMs['a'] - firstMs, b: firstAtMs['b'] && firstAtMs['b'] - firstMs } });
    t.diagnostic(seen);
    for (const side of ['a', 'b']) {
      assert.ok(firstAtMs[side] !== undefined && firstAtMs[side] - firstMs < 1000, `gateway ${side} starved: ${seen}`);
    }
  });
}

test("a pull sent while the topic consumer's leader is elected again (its node SIGKILLed) is sent again within ~1.5 s of the new leader, not when it expires", async (t) => {
  const topic = 'leaderkill';
  const names = topicSubjects('MQTEST', topic);
  const c = new TestConsumer(a);
  await publish(a, topic, 'warm-up');
  await c.settle(await c.next(topic), 'ACK');
  const leaderOf = async (): Promise<string | undefined> => {
    try {
      return (await jsm.consumers.info('MQTEST', names.durable)).cluster?.leader || undefined;
    } catch {
      return undefined;
    }
  };
  const oldLeader = await leaderOf();
  const index = cluster.nodes.findIndex((n) => n.name === oldLeader);
  assert.ok(index >= 0, `consumer leader ${String(oldLeader)}`);
  await cluster.kill(index);
  // The pull for this request goes out while the consumer has no leader.
  const delivered = c.next(topic, 30_000).then((d) => ({ d, atMs: Date.now() }));
  await publish(b, topic, 'after the kill'); // retried by the engine through the stream's election
  const publishedAtMs = Date.now();
  let newLeader: string | undefined;
  await waitFor(async () => (newLeader = await leaderOf()) !== undefined && newLeader !== oldLeader, 20_000, 20, () => 'a new consumer leader');
  const electedAtMs = Date.now();
  const { d, atMs } = await delivered;
  assert.equal(d.payload.toString(), 'after the kill');
  const waitedMs = atMs - Math.max(publishedAtMs, electedAtMs);
  t.diagnostic(`delivered ${waitedMs} ms after the new leader and the publish`);
  // A pull lost in the election is known lost after 1.25 s of silence (PULL_SILENCE_MS) at most.
  assert.ok(waitedMs < 2500, `delivered ${waitedMs} ms after the new leader (${String(newLeader)}) and the publish were both there (killed ${String(oldLeader)})`);
  await c.settle(d, 'ACK');
  c.handle.close();
});
