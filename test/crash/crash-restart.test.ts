/**
 * Crash-and-restart suite (issue #3, SPEC §2 "Delivery"): the real server as a child process,
 * loaded over both protocols, SIGKILLed at random moments, restarted on the same --db, then
 * drained. Seeded: set CRASH_SEED=<n> to replay a run (the seed is printed); CRASH_CYCLES sets
 * the number of kill cycles (default 24).
 *
 * What a client saw answered is the contract:
 * - every answered publish is delivered again after the restarts unless its ACK was answered;
 * - a message whose ACK was answered is never delivered again;
 * - nothing is delivered that was never published;
 * - messages never delivered before the final drain come out in publish order per publisher;
 * - an answered DACK's delay survives crashes (no delivery before its due time) and so does its
 *   dackCount.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { test } from 'node:test';
import { type ChildServer, letTimePass, type MiniReply, MiniRespClient, prng, removeDir, startChild, tempDir } from '../helpers/index.js';

const SEED = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 1e9));
const CYCLES = Number(process.env.CRASH_CYCLES ?? 24);
const DACK_SECONDS = 1;


interface Delivery {
  payload: string;
  atMs: number;
  cycle: number;
  dackCount: number;
}

class Ledger {
  /** payload -> topic, for every publish attempted. */
  readonly attempted = new Map<string, string>();
  readonly answeredPublish = new Set<string>();
  /** payload -> time the ACK was answered. */
  readonly ackAnswered = new Map<string, number>();
  /** payloads whose ACK was sent, answered or not: such a message may legitimately be gone. */
  readonly ackSent = new Set<string>();
  /** payload -> list of {sentAtMs} of answered DACKs. */
  readonly dackAnswered = new Map<string, number[]>();
  readonly dackSent = new Map<string, number>();
  /** payloads that were ever NACKed/BACKed/DACKed (sent), which may reorder. */
  readonly reordered = new Set<string>();
  readonly deliveries: Delivery[] = [];
  published = 0;
  acked = 0;
}

function payloadOf(reply: MiniReply): { id: string; payload: string; dackCount: number } | null {
  if (!Array.isArray(reply)) return null;
  const [id, payload, dackCount] = reply as [Buffer, Buffer, number];
  return { id: id.toString(), payload: payload.toString(), dackCount };
}

async function respPublisher(port: number, name: string, topic: string, seq: { n: number }, ledger: Ledger, stop: { v: boolean }): Promise<void> {
  const c = new MiniRespClient(port);
  try {
    await c.ready;
    while (!stop.v) {
      const payload = `${name}:${seq.n++}`;
      ledger.attempted.set(payload, topic);
      const r = await c.send('PUBLISH', topic, payload);
      if (r === 'OK') {
        ledger.answeredPublish.add(payload);
        ledger.published++;
      }
    }
  } catch {
    // the server was killed
  } finally {
    c.close();
  }
}

async function httpPublisher(port: number, name: string, topic: string, seq: { n: number }, ledger: Ledger, stop: { v: boolean }): Promise<void> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  try {
    while (!stop.v && !session.destroyed) {
      const payload = `${name}:${seq.n++}`;
      ledger.attempted.set(payload, topic);
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': `/publish/${topic}` });
        let s = 0;
        req.on('response', (h) => (s = Number(h[':status'])));
        req.on('data', () => {});
        req.on('end', () => resolve(s));
        req.on('close', () => resolve(s));
        req.on('error', reject);
        req.end(payload);
      });
      if (status === 201) {
        ledger.answeredPublish.add(payload);
        ledger.published++;
      }
    }
  } catch {
    // killed
  } finally {
    session.destroy();
  }
}

async function respConsumer(port: number, topic: string, cycle: number, rng: () => number, ledger: Ledger, stop: { v: boolean }): Promise<void> {
  const c = new MiniRespClient(port);
  try {
    await c.ready;
    while (!stop.v) {
      const r = await c.send('RESERVE', topic, 100);
      const got = payloadOf(r);
      if (got === null) continue;
      ledger.deliveries.push({ payload: got.payload, atMs: Date.now(), cycle, dackCount: got.dackCount });
      const x = rng();
      if (x < 0.78) {
        ledger.ackSent.add(got.payload);
        const a = await c.send('ACK', topic, got.id);
        if (a === 'OK') {
          ledger.ackAnswered.set(got.payload, Date.now());
          ledger.acked++;
        }
      } else if (x < 0.85) {
        ledger.reordered.add(got.payload);
        await c.send('NACK', topic, got.id);
      } else if (x < 0.92) {
        ledger.reordered.add(got.payload);
        await c.send('BACK', topic, got.id);
      } else {
        ledger.reordered.add(got.payload);
        ledger.dackSent.set(got.payload, (ledger.dackSent.get(got.payload) ?? 0) + 1);
        const sentAt = Date.now();
        const a = await c.send('DACK', topic, got.id, DACK_SECONDS);
        if (a === 'OK') {
          const list = ledger.dackAnswered.get(got.payload) ?? [];
          list.push(sentAt);
          ledger.dackAnswered.set(got.payload, list);
        }
      }
    }
  } catch {
    // killed
  } finally {
    c.close();
  }
}

/**
 * HTTP/2 subscriber that ACKs everything. The stream protocol never answers a settle (the next
 * delivery does not wait for the ACK to be durable), so its ACKs count as sent, not answered.
 */
async function httpConsumer(port: number, topic: string, cycle: number, ledger: Ledger, stop: { v: boolean }): Promise<void> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  await new Promise<void>((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': `/subscribe/${topic}` });
    let buffered = '';
    req.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffered.slice(0, nl)) as { msg?: string; dackCount?: number; error?: string };
        buffered = buffered.slice(nl + 1);
        if (line.msg === undefined) continue;
        const payload = Buffer.from(line.msg, 'base64').toString();
        ledger.deliveries.push({ payload, atMs: Date.now(), cycle, dackCount: line.dackCount ?? 0 });
        if (stop.v) return;
        ledger.ackSent.add(payload);
        req.write('"ACK"\n');
      }
    });
    req.on('close', () => resolve());
    req.on('error', () => resolve());
    req.write('"INIT"\n');
  });
  session.destroy();
}

test('crash and restart: nothing answered is lost or undone', { timeout: 240_000 }, async (t) => {
  t.diagnostic(`CRASH_SEED=${SEED} CRASH_CYCLES=${CYCLES}`);
  console.log(`# crash suite: CRASH_SEED=${SEED} CRASH_CYCLES=${CYCLES}`);
  const rng = prng(SEED);
  const db = tempDir('mq-crash-');
  t.after(() => removeDir(db));
  const ledger = new Ledger();
  const seqs = { a: { n: 0 }, b: { n: 0 }, h: { n: 0 } };
  const args = ['--period', '50ms', '--segment-bytes', '65536'];
  let server: ChildServer | null = null;
  t.after(async () => {
    await server?.kill('SIGKILL');
  });

  for (let cycle = 0; cycle < CYCLES; cycle++) {
    server = await startChild(db, args);
    const stop = { v: false };
    const workers = [
      respPublisher(server.respPort, 'a', 't0', seqs.a, ledger, stop),
      respPublisher(server.respPort, 'b', 't1', seqs.b, ledger, stop),
      httpPublisher(server.httpPort, 'h', 't0', seqs.h, ledger, stop),
      respConsumer(server.respPort, 't0', cycle, prng(SEED + cycle * 7919), ledger, stop),
      respConsumer(server.respPort, 't1', cycle, prng(SEED + cycle * 7919 + 1), ledger, stop),
      httpConsumer(server.httpPort, 't0', cycle, ledger, stop),
    ];
    const killAfterMs = 100 + Math.floor(rng() * 500);
    await letTimePass(killAfterMs); // the kill lands at a random moment of the load
    await server.kill('SIGKILL');
    stop.v = true;
    await Promise.all(workers);
  }

  // Final drain on a clean server: everything still live comes out.
  server = await startChild(db, args);
  const drainStartMs = Date.now();
  const drained: Delivery[] = [];
  const c = new MiniRespClient(server.respPort);
  await c.ready;
  for (const topic of ['t0', 't1']) {
    for (;;) {
      const r = await c.send('RESERVE', topic, (DACK_SECONDS + 1) * 1000);
      const got = payloadOf(r);
      if (got === null) break;
      const d = { payload: got.payload, atMs: Date.now(), cycle: CYCLES, dackCount: got.dackCount };
      drained.push(d);
      ledger.deliveries.push(d);
      assert.equal(await c.send('ACK', topic, got.id), 'OK');
    }
  }
  c.close();
  await server.kill('SIGTERM');

  const drainedSet = new Set(drained.map((d) => d.payload));
  // 1. Every answered publish is delivered after the restarts unless it was ACKed (an ACK that
  //    was sent but not answered may or may not have become durable before the kill).
  const lost = [...ledger.answeredPublish].filter((p) => !ledger.ackSent.has(p) && !drainedSet.has(p));
  assert.deepEqual(lost, [], `answered publishes lost (seed ${SEED})`);
  // 2. No answered ACK's message is delivered again.
  for (const d of ledger.deliveries) {
    const ackedAt = ledger.ackAnswered.get(d.payload);
    assert.ok(ackedAt === undefined || d.atMs <= ackedAt, `${d.payload} delivered after its ACK was answered (seed ${SEED})`);
  }
  // 3. Nothing appears that was never published.
  for (const d of ledger.deliveries) {
    assert.ok(ledger.attempted.has(d.payload), `${d.payload} was never published (seed ${SEED})`);
  }
  // 4. Order: messages first delivered in the final drain come out in publish order per publisher.
  const deliveredBefore = new Set(ledger.deliveries.filter((d) => d.cycle < CYCLES).map((d) => d.payload));
  const lastSeq = new Map<string, number>();
  for (const d of drained) {
    if (deliveredBefore.has(d.payload) || ledger.reordered.has(d.payload)) continue;
    const [pub, seqText] = d.payload.split(':') as [string, string];
    const seq = Number(seqText);
    assert.ok((lastSeq.get(pub) ?? -1) < seq, `order broken at ${d.payload} (seed ${SEED})`);
    lastSeq.set(pub, seq);
  }
  // 5. DACK delays and dackCounts survive crashes.
  const byPayload = new Map<string, Delivery[]>();
  for (const d of ledger.deliveries) {
    const list = byPayload.get(d.payload) ?? [];
    list.push(d);
    byPayload.set(d.payload, list);
  }
  let dackChecked = 0;
  for (const [payload, sentTimes] of ledger.dackAnswered) {
    const deliveries = byPayload.get(payload) ?? [];
    for (const sentAt of sentTimes) {
      const next = deliveries.find((d) => d.atMs > sentAt);
      if (next === undefined) continue; // acked by the HTTP consumer race or still delayed: checked by 1.
      assert.ok(next.atMs >= sentAt + DACK_SECONDS * 1000 - 5, `${payload} returned before its DACK delay (seed ${SEED})`);
      const answeredBefore = sentTimes.filter((s) => s < next.atMs).length;
      assert.ok(next.dackCount >= answeredBefore, `${payload} lost its dackCount (seed ${SEED})`);
      assert.ok(next.dackCount <= (ledger.dackSent.get(payload) ?? 0), `${payload} dackCount too high (seed ${SEED})`);
      dackChecked++;
    }
  }
  const redelivered = ledger.deliveries.length - new Set(ledger.deliveries.map((d) => d.payload)).size;
  const summary =
    `cycles=${CYCLES} published(answered)=${ledger.published} attempted=${ledger.attempted.size} ` +
    `acked(answered)=${ledger.acked} drained=${drained.length} deliveries=${ledger.deliveries.length} ` +
    `redeliveries=${redelivered} dackChecks=${dackChecked} drainMs=${Date.now() - drainStartMs}`;
  t.diagnostic(summary);
  console.log(`# crash suite: ${summary}`);
  assert.ok(ledger.published > CYCLES * 10, 'the load must actually publish');
});

/**
 * RESERVE consumer for the dead-letter run: NACKs, BACKs, lets the ack timeout take some
 * deliveries back (holds them unsettled), and ACKs the rest. Each delivery is recorded with its
 * topic.
 */
async function unreliableConsumer(
  port: number,
  topic: string,
  cycle: number,
  rng: () => number,
  ledger: Ledger,
  dead: DeadLedger,
  stop: { v: boolean },
): Promise<void> {
  const c = new MiniRespClient(port);
  try {
    await c.ready;
    while (!stop.v) {
      const got = payloadOf(await c.send('RESERVE', topic, 100));
      if (got === null) continue;
      const d = { payload: got.payload, atMs: Date.now(), cycle, dackCount: got.dackCount };
      ledger.deliveries.push(d);
      dead.deliveriesByTopic.get(topic)!.push(d);
      const x = rng();
      if (x < 0.4) {
        ledger.ackSent.add(got.payload);
        if ((await c.send('ACK', topic, got.id)) === 'OK') {
          ledger.ackAnswered.set(got.payload, Date.now());
          ledger.acked++;
        }
      } else if (x < 0.7) {
        await c.send('NACK', topic, got.id);
      } else if (x < 0.85) {
        await c.send('BACK', topic, got.id);
      }
      // else: never settled on this connection; --ack-timeout takes it back.
    }
  } catch {
    // killed
  } finally {
    c.close();
  }
}

interface DeadLedger {
  deliveriesByTopic: Map<string, Delivery[]>;
}

test('crash and restart with --max-deliveries and --ack-timeout: dead letters are never lost', { timeout: 120_000 }, async (t) => {
  const cycles = Math.max(6, Math.floor(CYCLES / 2));
  const seed = SEED + 1;
  console.log(`# dead-letter crash suite: CRASH_SEED=${SEED} cycles=${cycles}`);
  const rng = prng(seed);
  const db = tempDir('mq-crash-dead-');
  t.after(() => removeDir(db));
  const ledger = new Ledger();
  const dead: DeadLedger = { deliveriesByTopic: new Map([['q', []], ['q.dead', []]]) };
  const seq = { n: 0 };
  const maxDeliveries = 3;
  const args = ['--period', '50ms', '--segment-bytes', '65536', '--ack-timeout', '150ms', '--max-deliveries', String(maxDeliveries)];
  let server: ChildServer | null = null;
  t.after(async () => {
    await server?.kill('SIGKILL');
  });
  for (let cycle = 0; cycle < cycles; cycle++) {
    server = await startChild(db, args);
    const stop = { v: false };
    const workers = [
      respPublisher(server.respPort, 'p', 'q', seq, ledger, stop),
      unreliableConsumer(server.respPort, 'q', cycle, prng(seed + cycle * 31), ledger, dead, stop),
      unreliableConsumer(server.respPort, 'q', cycle, prng(seed + cycle * 37), ledger, dead, stop),
    ];
    await letTimePass(200 + Math.floor(rng() * 600)); // the kill lands at a random moment of the load
    await server.kill('SIGKILL');
    stop.v = true;
    await Promise.all(workers);
  }

  // Drain both topics on a clean server.
  server = await startChild(db, args);
  const drained = new Map<string, string[]>([['q', []], ['q.dead', []]]);
  const c = new MiniRespClient(server.respPort);
  await c.ready;
  for (const topic of ['q', 'q.dead']) {
    for (;;) {
      const got = payloadOf(await c.send('RESERVE', topic, 500));
      if (got === null) break;
      drained.get(topic)!.push(got.payload);
      dead.deliveriesByTopic.get(topic)!.push({ payload: got.payload, atMs: Date.now(), cycle: cycles, dackCount: got.dackCount });
      assert.equal(await c.send('ACK', topic, got.id), 'OK');
    }
  }
  const stats = await c.send('STATS', 'q');
  c.close();
  await server.kill('SIGTERM');

  const inDead = new Set(drained.get('q.dead'));
  const inQueue = new Set(drained.get('q'));
  // 1. Every answered publish was acked (ACK sent), or is still in q, or reached q.dead.
  const lost = [...ledger.answeredPublish].filter((p) => !ledger.ackSent.has(p) && !inQueue.has(p) && !inDead.has(p));
  assert.deepEqual(lost, [], `answered publishes lost (seed ${SEED})`);
  // 2. A message whose ACK on q was answered is never delivered again, from q or from q.dead.
  for (const [topic, list] of dead.deliveriesByTopic) {
    for (const d of list) {
      const ackedAt = ledger.ackAnswered.get(d.payload);
      assert.ok(ackedAt === undefined || d.atMs <= ackedAt, `${d.payload} delivered from ${topic} after its ACK was answered (seed ${SEED})`);
    }
  }
  // 3. Only published messages reach q.dead, and each was delivered from q first.
  const deliveredFromQ = new Set(dead.deliveriesByTopic.get('q')!.map((d) => d.payload));
  for (const p of inDead) {
    assert.ok(ledger.attempted.has(p), `${p} in q.dead was never published (seed ${SEED})`);
    assert.ok(deliveredFromQ.has(p), `${p} reached q.dead without a delivery from q (seed ${SEED})`);
  }
  // 4. A message in q.dead is not also still in q (a crash between the copy and the original's
  //    ACK leaves both, but the original is then moved again at its next delivery attempt).
  const both = [...inDead].filter((p) => inQueue.has(p));
  assert.deepEqual(both, [], `messages both in q and q.dead after the drain (seed ${SEED})`);
  const summary =
    `cycles=${cycles} published(answered)=${ledger.published} acked(answered)=${ledger.acked} ` +
    `deliveries=${ledger.deliveries.length} drained q=${inQueue.size} q.dead=${drained.get('q.dead')!.length} ` +
    `(distinct ${inDead.size}) stats=${JSON.stringify((stats as MiniReply[]).map(String))}`;
  t.diagnostic(summary);
  console.log(`# dead-letter crash suite: ${summary}`);
  assert.ok(inDead.size > 0, 'the load must actually dead-letter messages');
});
