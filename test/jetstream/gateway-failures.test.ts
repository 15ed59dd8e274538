/**
 * Failures under load through real gateway processes (issue 15): two `miniqueue --engine
 * jetstream` processes on one three-node cluster (`--nats-replicas 3`, `--nats-lease 2s`),
 * producers and consumers on both over RESP. A gateway SIGKILLed while its consumers hold
 * messages: the other gateway delivers them again, and every answered publish is consumed. A NATS
 * node SIGKILLed: every answered publish is consumed and no answered ACK is undone (a message
 * whose ACK was answered +OK is never delivered again).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { asReserved, RespConn, RespErrorReply, startChild, type ChildServer } from '../helpers/index.js';
import { startCluster, type NatsCluster } from './cluster.js';
import { topicSubjects } from '../../src/jetstream/subjects.js';

const LEASE = '2s';

/** The version the cluster's nats-server prints (`nats-server --version`). */
function serverVersion(): string {
  return execFileSync('nats-server', ['--version'], { encoding: 'utf8' }).trim();
}

let cluster: NatsCluster;
const gateways: ChildServer[] = [];

function startGateway(): Promise<ChildServer> {
  return startChild(null, ['--engine', 'jetstream', '--nats', cluster.urls, '--nats-stream', 'FAIL', '--nats-replicas', '3', '--nats-lease', LEASE], 30_000).then((gw) => {
    gateways.push(gw);
    return gw;
  });
}

before(async () => {
  cluster = await startCluster(3);
});

after(async () => {
  for (const gw of gateways) await gw.kill('SIGKILL');
  await cluster?.stop();
});

/** What one load run saw. */
class LoadRecord {
  readonly answered = new Set<string>();
  readonly failedPublishes: string[] = [];
  /** Payloads whose ACK was answered +OK. */
  readonly acked = new Set<string>();
  /** When each ACK in {@link acked} was answered (Date.now()). */
  readonly ackedAtMs = new Map<string, number>();
  /** When the test SIGKILLed a NATS node (null: it does not). */
  nodeKilledAtMs: number | null = null;
  /** Payloads answered and not yet acked when the node was killed (stored, ready or in flight then). */
  unackedAtKill = new Set<string>();
  /**
   * Messages of {@link unackedAtKill} delivered again after an ACK answered +OK: with nats-server
   * 2.9.10 this happened to the message published just before the kill until an ACK also removed
   * its message through the stream's group (README, "An ACK answered +OK around the moment the
   * node leading the topic's consumer is killed"). Reported (with their deliveries); any fails
   * the test, as does any other acked message coming back.
   */
  readonly undoneNearKill: string[] = [];
  /** The gateways' log lines so far (for failure messages). */
  gatewayLines: () => string[] = () => [];
  /**
   * Payloads whose ACK was sent to a gateway that died before answering it, or was answered
   * `storage failure` (its answer from JetStream was lost): JetStream may have applied that ACK
   * (then the message is gone, rightly) or not (then it comes back). Either is correct
   * at-least-once behaviour, so these are not counted as lost.
   */
  readonly ackUnanswered = new Set<string>();
  /** ACKs answered with an error, by payload: the error lines (for the failure message). */
  readonly ackRefused = new Map<string, string[]>();
  /** Every delivery: payload, the consumer's name, when. */
  readonly deliveries: { payload: string; id: string; consumer: string; atMs: number }[] = [];
  publishing = true;

  done(): boolean {
    return !this.publishing && [...this.answered].every((p) => this.acked.has(p) || this.ackUnanswered.has(p));
  }
}

/** Publishes `n` messages, `pick(i)` choosing the connection; a refused or lost publish is recorded as failed. */
async function produce(rec: LoadRecord, topic: string, n: number, pick: (i: number) => RespConn, onSent: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < n; i++) {
    const payload = `p${i}`;
    const reply = await pick(i).send('PUBLISH', topic, payload).catch((err: unknown) => err);
    if (reply === 'OK') rec.answered.add(payload);
    else rec.failedPublishes.push(`${payload}: ${reply instanceof RespErrorReply ? reply.line : String(reply)}`);
    await onSent(i);
  }
  rec.publishing = false;
}

/**
 * RESERVE (1 s) and ACK on `conn` until the run is done, the connection dies, or the deadline;
 * fails the test when a message comes again after its ACK was answered.
 */
async function consume(rec: LoadRecord, conn: RespConn, name: string, topic: string, deadlineMs: number): Promise<void> {
  while (!rec.done() && Date.now() < deadlineMs) {
    let reply;
    try {
      reply = await conn.send('RESERVE', topic, '1000');
    } catch {
      return; // the gateway died
    }
    if (reply === null || !Array.isArray(reply)) continue;
    const m = asReserved(reply);
    const payload = m.payload.toString();
    if (rec.acked.has(payload)) {
      const fromKillMs = rec.nodeKilledAtMs === null ? NaN : rec.ackedAtMs.get(payload)! - rec.nodeKilledAtMs;
      const warnings = rec.gatewayLines().filter((l) => /"level":(40|50)/.test(l));
      const killedAtMs = rec.nodeKilledAtMs ?? 0;
      const before = rec.deliveries.filter((d) => d.payload === payload).map((d) => `id ${d.id} to ${d.consumer} at ${d.atMs - killedAtMs} ms`);
      assert.ok(
        rec.unackedAtKill.has(payload),
        `${payload} delivered to ${name} as id ${m.id} at ${Date.now() - killedAtMs} ms from the node kill after its ACK was answered +OK (${fromKillMs} ms from the kill); earlier deliveries: ${before.join(', ')}; gateway warnings:\n${warnings.join('\n')}`,
      );
      rec.undoneNearKill.push(`${payload}: ACK answered ${fromKillMs} ms from the node kill, delivered again to ${name} as id ${m.id} (earlier: ${before.join(', ')})`);
      rec.acked.delete(payload);
    }
    rec.deliveries.push({ payload, id: String(m.id), consumer: name, atMs: Date.now() });
    let ack;
    try {
      ack = await conn.send('ACK', topic, m.id);
    } catch {
      rec.ackUnanswered.add(payload);
      return;
    }
    if (ack === 'OK') {
      rec.acked.add(payload);
      rec.ackedAtMs.set(payload, Date.now());
    }
    else {
      const line = ack instanceof RespErrorReply ? ack.line : String(ack);
      rec.ackRefused.set(payload, [...(rec.ackRefused.get(payload) ?? []), line]);
      // `storage failure ... timeout`: the ACK's answer was lost (the gateway's NATS node died),
      // not necessarily the ACK: JetStream may have applied it (seen: the message gone from the
      // work queue, the consumer's ack floor past it). Its outcome is unknown, as for an ACK
      // sent to a gateway that died.
      if (line.startsWith('ERR storage failure')) rec.ackUnanswered.add(payload);
    }
  }
}

async function assertAllConsumed(rec: LoadRecord, n: number, topic: string, gws: ChildServer[]): Promise<void> {
  assert.ok(rec.answered.size >= n - 20, `answered ${rec.answered.size} of ${n}; failed ${rec.failedPublishes.length}`);
  const missing = [...rec.answered].filter((p) => !rec.acked.has(p) && !rec.ackUnanswered.has(p));
  if (missing.length > 0) assert.deepEqual(missing, [], `answered publishes never consumed; ${await whereAre(topic, missing, rec, gws)}`);
}

/**
 * What the cluster and the gateways say of `payloads` that were never consumed: whether the stream
 * still stores them (at which sequence), the topic consumer's state, their deliveries seen by the
 * test, and the gateways' warnings (to tell a message JetStream lost track of from one a gateway holds).
 */
async function whereAre(topic: string, payloads: string[], rec: LoadRecord, gws: ChildServer[]): Promise<string> {
  const nc = await connect({ servers: cluster.urls.split(',') });
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    const state = (await jsm.streams.info('FAIL')).state;
    const stored: string[] = [];
    for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage('FAIL', { seq }).catch(() => null);
      if (m !== null && payloads.includes(m.string())) stored.push(`${m.string()}@${seq}`);
    }
    const consumer = await jsm.consumers.info('FAIL', topicSubjects('FAIL', topic).durable).catch((err: unknown) => String(err));
    const seen = rec.deliveries.filter((d) => payloads.includes(d.payload));
    const warnings = gws.flatMap((gw) => gw.lines.filter((l) => /"level":(40|50)/.test(l)));
    return `stored: ${JSON.stringify(stored)} (stream ${JSON.stringify(state)}); consumer: ${JSON.stringify(consumer)}; delivered to the test: ${JSON.stringify(seen)}; ACKs refused: ${JSON.stringify(payloads.map((p) => [p, rec.ackRefused.get(p) ?? []]))}; gateway warnings:\n${warnings.join('\n')}`;
  } finally {
    await nc.close();
  }
}

/** Both gateways have made the topic's durable consumer (else the first to pull would take everything meanwhile). */
async function warmUp(conns: RespConn[], topic: string): Promise<void> {
  for (const c of conns) {
    assert.equal(await c.send('PUBLISH', topic, 'warm-up'), 'OK');
    const m = asReserved(await c.send('RESERVE', topic, '5000'));
    assert.equal(await c.send('ACK', topic, m.id), 'OK');
  }
}

test('a gateway SIGKILLed under publish and consume load: the other gateway delivers what its consumers held; every answered publish is consumed', async () => {
  const [g1, g2] = await Promise.all([startGateway(), startGateway()]);
  const topic = 'gwkill';
  const N = 200;
  const rec = new LoadRecord();
  const conn = (gw: ChildServer): Promise<RespConn> => RespConn.connect(gw.respPort);
  const [p1, p2, c1, holder, c2a, c2b] = await Promise.all([conn(g1), conn(g2), conn(g1), conn(g1), conn(g2), conn(g2)]);
  try {
    await warmUp([c1, c2a], topic);
    let g1Dead = false;
    const held: string[] = [];
    let killedAtMs = 0;
    const deadlineMs = Date.now() + 45_000;
    // A consumer of g1 reserves three messages and holds them: they are g1's when it dies.
    const holding = (async () => {
      while (held.length < 3 && Date.now() < deadlineMs) {
        const reply = await holder.send('RESERVE', topic, '1000');
        if (reply !== null) held.push(asReserved(reply).payload.toString());
      }
    })();
    const producer = produce(rec, topic, N, (i) => (i % 2 === 0 && !g1Dead ? p1 : p2), async (i) => {
      if (i >= 100 && !g1Dead && held.length === 3) {
        g1Dead = true;
        await g1.kill('SIGKILL');
        killedAtMs = Date.now();
      }
    });
    await Promise.all([holding, producer, consume(rec, c1, 'g1', topic, deadlineMs), consume(rec, c2a, 'g2a', topic, deadlineMs), consume(rec, c2b, 'g2b', topic, deadlineMs)]);
    assert.equal(held.length, 3);
    assert.ok(g1Dead, 'g1 was killed while its consumer held three messages');
    for (const payload of held) {
      const again = rec.deliveries.find((d) => d.payload === payload && d.consumer.startsWith('g2') && d.atMs >= killedAtMs);
      assert.ok(again !== undefined, `${payload}, held by g1's consumer when g1 died, was not delivered again by g2`);
      assert.ok(again.atMs - killedAtMs < 15_000, `${payload} delivered again ${again.atMs - killedAtMs} ms after the kill (lease ${LEASE})`);
    }
    assert.ok(rec.deliveries.some((d) => d.consumer === 'g1'), 'g1 consumed before it died');
    await assertAllConsumed(rec, N, topic, [g1, g2]);
  } finally {
    for (const c of [p1, p2, c1, holder, c2a, c2b]) c.close();
    await g2.kill('SIGTERM');
  }
});

/** The index in `cluster.nodes` of the node leading `stream` (killing it makes JetStream elect another). */
async function streamLeader(stream: string): Promise<number> {
  const nc = await connect({ servers: cluster.urls.split(',') });
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    const leader = (await jsm.streams.info(stream)).cluster?.leader;
    const index = cluster.nodes.findIndex((n) => n.name === leader);
    assert.ok(index >= 0, `leader ${String(leader)} is not one of ${cluster.nodes.map((n) => n.name).join(',')}`);
    return index;
  } finally {
    await nc.close();
  }
}

test('the NATS node leading the stream SIGKILLed under load through two gateway processes (R3): no publish fails (retried through the election), every answered publish is consumed, no answered ACK undone (but for a message not yet acked at the kill)', async (t) => {
  const [g1, g2] = await Promise.all([startGateway(), startGateway()]);
  const topic = 'nodekill';
  const N = 300;
  const rec = new LoadRecord();
  rec.gatewayLines = () => [...g1.lines, ...g2.lines];
  const conn = (gw: ChildServer): Promise<RespConn> => RespConn.connect(gw.respPort);
  const [p1, p2, c1a, c1b, c2a, c2b] = await Promise.all([conn(g1), conn(g2), conn(g1), conn(g1), conn(g2), conn(g2)]);
  try {
    await warmUp([c1a, c2a], topic);
    const deadlineMs = Date.now() + 60_000;
    const leader = await streamLeader('FAIL');
    const producer = produce(rec, topic, N, (i) => (i % 2 === 0 ? p1 : p2), async (i) => {
      if (i === 100) {
        rec.nodeKilledAtMs = Date.now();
        rec.unackedAtKill = new Set([...rec.answered].filter((p) => !rec.acked.has(p)));
        await cluster.kill(leader);
      }
    });
    await Promise.all([
      producer,
      consume(rec, c1a, 'g1a', topic, deadlineMs),
      consume(rec, c1b, 'g1b', topic, deadlineMs),
      consume(rec, c2a, 'g2a', topic, deadlineMs),
      consume(rec, c2b, 'g2b', topic, deadlineMs),
    ]);
    // A publish meeting the election is sent again (same Nats-Msg-Id) for up to 10 s: none fails.
    assert.deepEqual(rec.failedPublishes, [], 'publishes failed');
    // With nats-server 2.9.10, in 8 of about 125 runs at load 1-10, a message in flight at the
    // kill came back after its ACK was answered (4-7 s after the kill, past the election): the
    // +ACK is answered before the consumer's group has it. Since an ACK also removes its message
    // through the stream's group (stream-msg-delete.ts), none did (README): any fails.
    t.diagnostic(`messages not acked at the kill: ${rec.unackedAtKill.size}; ACKs answered with an error: ${rec.ackRefused.size}`);
    if (rec.undoneNearKill.length > 0) t.diagnostic(`ACKs undone by the node kill (${serverVersion()}): ${rec.undoneNearKill.join('; ')}`);
    assert.deepEqual(rec.undoneNearKill, [], 'ACKs answered +OK undone by the node kill');
    await assertAllConsumed(rec, N, topic, [g1, g2]);
    assert.ok(rec.deliveries.some((d) => d.consumer.startsWith('g1')) && rec.deliveries.some((d) => d.consumer.startsWith('g2')), 'both gateways consumed');
  } finally {
    for (const c of [p1, p2, c1a, c1b, c2a, c2b]) c.close();
    await Promise.all([g1.kill('SIGTERM'), g2.kill('SIGTERM')]);
  }
});
