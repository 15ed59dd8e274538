/**
 * A redelivered message whose delivery record is read back slowly keeps its lease (issue 15,
 * src/jetstream/pull-requests.ts): a gateway that pulls a message JetStream delivered before
 * reads its record in `<stream>_DACKS` first, and that read can take the whole request timeout
 * (the DACK stream's node gone or electing), longer than `--nats-lease`. Before, the lease was
 * not renewed meanwhile: JetStream delivered the message again elsewhere, that copy could be
 * ACKed +OK, and then the gateway handed its own copy on (seen in the node-kill test with
 * `--nats-lease 2s`). Here the DACK stream's leader is stopped (SIGSTOP) while the gateway
 * reads: nobody else gets the message meanwhile (renewed); the read outlasting the lease, that
 * copy is not handed on (logged), and the message comes again and is delivered to one client once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { topicSubjects } from '../../src/jetstream/subjects.js';
import { startCluster, type NatsCluster } from './cluster.js';
import { openEngine, TestConsumer } from './engine-fixtures.js';
import { recordingLogger } from '../helpers/index.js';

const STREAM = 'RRL';
const DACKS = `${STREAM}_DACKS`;
const LEASE_MS = 800;

let cluster: NatsCluster;
let stopped: number | null = null;

before(async () => {
  cluster = await startCluster(3);
});

after(async () => {
  if (stopped !== null) cluster.nodes[stopped]!.process.kill('SIGCONT');
  await cluster?.stop();
});

/** The index of the node leading `stream`. */
async function leaderOf(jsm: JetStreamManager, stream: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const leader = (await jsm.streams.info(stream)).cluster?.leader;
    const index = cluster.nodes.findIndex((n) => n.name === leader);
    if (index >= 0) return index;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${stream} has no leader`);
}

test('a redelivery whose record read outlasts the lease: renewed meanwhile, not delivered elsewhere, that copy dropped, delivered once', async () => {
  const setup = await connect({ servers: cluster.urls.split(',') });
  const jsm0 = await jetstreamManager(setup);
  // The topic's stream R1; the DACK stream R3, led by another node (stepped down until it is):
  // that leader is the one stopped, and reads wait for it until they time out.
  await jsm0.streams.add({ name: STREAM, subjects: [`${STREAM}.>`], retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: 1 });
  const main = await leaderOf(jsm0, STREAM);
  await jsm0.streams.add({ name: DACKS, subjects: [`${DACKS}.>`], retention: RetentionPolicy.Limits, storage: StorageType.File, num_replicas: 3, max_msgs_per_subject: 1 });
  let dacks = await leaderOf(jsm0, DACKS);
  for (let i = 0; i < 20 && dacks === main; i++) {
    await setup.request(`$JS.API.STREAM.LEADER.STEPDOWN.${DACKS}`, '', { timeout: 5000 });
    await new Promise((r) => setTimeout(r, 500));
    dacks = await leaderOf(jsm0, DACKS);
  }
  assert.notEqual(dacks, main, 'the DACK stream led by another node than the topic stream');
  const names = topicSubjects(STREAM, 't');
  await jsm0.consumers.add(STREAM, { durable_name: names.durable, filter_subject: names.subject, ack_policy: AckPolicy.Explicit, ack_wait: LEASE_MS * 1_000_000, max_deliver: -1, max_ack_pending: -1, max_waiting: 4096 });
  await setup.close();

  // The gateway and this test talk to the main stream's node only.
  const url = `nats://127.0.0.1:${cluster.nodes[main]!.clientPort}`;
  const nc: NatsConnection = await connect({ servers: [url] });
  const log = recordingLogger();
  const engine = await openEngine(cluster, { servers: [url], stream: STREAM, replicas: 1, leaseMs: LEASE_MS, requestTimeoutMs: 3000, logger: log.logger });
  try {
    // A message JetStream delivered once (to this test, never acked): the gateway's pull of it
    // after the ack wait is a redelivery it knows nothing of, so it reads its record.
    await nc.request(`${names.subject}`, 'one', { timeout: 5000 });
    const first = await nc.request(`$JS.API.CONSUMER.MSG.NEXT.${STREAM}.${names.durable}`, '{"batch":1}', { timeout: 5000, noMux: true });
    assert.equal(first.string(), 'one');
    // The gateway's record read is a plain message too: seen here once it is sent.
    const reading = new Promise<void>((resolve) => {
      nc.subscribe(`$JS.API.STREAM.MSG.GET.${DACKS}`, { max: 1, callback: () => resolve() });
    });
    await nc.flush();
    cluster.nodes[dacks]!.process.kill('SIGSTOP');
    stopped = dacks;
    const c = new TestConsumer(engine);
    const delivered = c.next('t', 15_000);
    // Once the gateway holds the redelivery and reads its record, this test pulls too, for two
    // leases: JetStream gives it the message again only if the gateway's lease was not renewed.
    await reading;
    const again = await nc.request(`$JS.API.CONSUMER.MSG.NEXT.${STREAM}.${names.durable}`, JSON.stringify({ batch: 1, expires: 2 * LEASE_MS * 1_000_000 }), { timeout: 10_000, noMux: true });
    const againText = again.data.length === 0 ? `status ${again.headers?.code ?? '?'}` : `the message again: ${again.string()} (${again.reply ?? ''})`;
    cluster.nodes[dacks]!.process.kill('SIGCONT');
    stopped = null;
    const d = await delivered;
    assert.equal(d.payload.toString(), 'one');
    assert.equal(againText, 'status 408', 'nobody else gets it while the gateway reads its record');
    assert.ok(log.lines.some((l) => /took the lease or longer to read is not handed on/.test(String(l.msg))), 'the copy read past its lease was dropped');
    await c.settle(d, 'ACK');
    assert.ok(await c.nothingWithin('t', 2 * LEASE_MS), 'handed on once');
    c.handle.close();
  } finally {
    await engine.close();
    await nc.close();
  }
});
