/**
 * Issue 13, fault class "Ack timeout and dead letters", over a real in-process server with RESP
 * and HTTP/2 clients, and restarts on the same data directory:
 *
 * - an ACK racing the `--ack-timeout` deadline is either answered `+OK` and never delivered again,
 *   or refused and delivered again exactly once (RESERVE mode and the HTTP/2 subscribe stream);
 * - delivery counts (for `--max-deliveries`) and dackCounts survive restarts and compaction.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RunningServer } from '../../src/server/server.js';
import { asReserved, describeReply, h2connect, H2Subscriber, isErrorReply, letTimePass, removeDir, RespConn, startInProcess, tempDir, waitFor } from '../helpers/index.js';

const TIMEOUT_MS = 150;

test('RESP: ACKs racing the ack deadline are either +OK and final, or refused and redelivered exactly once', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-ackrace-');
  t.after(() => removeDir(db));
  const server = await startInProcess(db, ['--fsync', 'never', '--ack-timeout', `${TIMEOUT_MS}ms`]);
  t.after(() => server.close());
  const conn = await RespConn.connect(server.resp!.port);
  t.after(() => conn.close());
  const topic = 'ack.race';
  const count = 120;
  assert.ok((await conn.pipeline(Array.from({ length: count }, (_, i) => ['PUBLISH', topic, `p${i}`]))).every((r) => r === 'OK'));
  const reserved = (await conn.pipeline(Array.from({ length: count }, () => ['RESERVE', topic]))).map(asReserved);
  const start = performance.now();
  // ACK them spread over the deadline: from 0 to 2x the timeout after the reserve.
  const answers = new Map<string, 'ok' | 'refused'>();
  for (let i = 0; i < count; i++) {
    const at = start + (TIMEOUT_MS * 2 * i) / count;
    const wait = at - performance.now();
    if (wait > 0) await letTimePass(wait); // time is the subject: the ACKs are spread over the deadline
    const m = reserved[i]!;
    void conn.send('ACK', topic, m.id).then((r) => {
      if (r === 'OK') answers.set(m.payload.toString(), 'ok');
      else {
        assert.ok(isErrorReply(r) && /^ERR no message .* is in flight/.test(r.line), describeReply(r));
        answers.set(m.payload.toString(), 'refused');
      }
    });
  }
  await waitFor(() => answers.size === count);
  const refused = [...answers].filter(([, a]) => a === 'refused').map(([p]) => p);
  t.diagnostic(`${count - refused.length} ACKs answered +OK, ${refused.length} refused`);
  // Every message whose ACK was refused comes back exactly once; none whose ACK was answered +OK.
  const other = await RespConn.connect(server.resp!.port);
  t.after(() => other.close());
  const again: string[] = [];
  for (;;) {
    const r = await other.send('RESERVE', topic, 3 * TIMEOUT_MS);
    if (r === null) break;
    const m = asReserved(r);
    again.push(m.payload.toString());
    assert.equal(await other.send('ACK', topic, m.id), 'OK');
  }
  assert.deepEqual(again.slice().sort(), refused.slice().sort());
  const stats = server.broker.topicStats(topic)!;
  assert.equal(stats.acked, count);
  assert.equal(stats.ready + stats.inFlight, 0);
});

test('HTTP/2: an "ACK" racing the ack deadline is applied or refused, and a refused one is redelivered exactly once', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-ackrace-h2-');
  t.after(() => removeDir(db));
  const server = await startInProcess(db, ['--fsync', 'never', '--ack-timeout', `${TIMEOUT_MS}ms`]);
  t.after(() => server.close());
  const session = h2connect(server.http.port);
  t.after(() => session.destroy());
  const producer = await RespConn.connect(server.resp!.port);
  t.after(() => producer.close());
  const topic = 'ack.race.h2';
  const count = 24;
  assert.ok((await producer.pipeline(Array.from({ length: count }, (_, i) => ['PUBLISH', topic, `h${i}`]))).every((r) => r === 'OK'));
  assert.equal(await producer.send('PUBLISH', topic, 'END'), 'OK');
  const sub = new H2Subscriber(session, topic);
  sub.send('INIT');
  const deliveries = new Map<string, number>();
  let refusals = 0;
  let i = 0;
  for (;;) {
    const line = await sub.next(5000);
    if (line.error !== undefined) {
      // The timeout notice (code MQ_ERR_ACK_TIMEOUT), or the refusal of our late ACK.
      if (line.error.includes('is no longer in flight')) refusals++;
      continue;
    }
    const payload = Buffer.from(line.msg!, 'base64').toString();
    deliveries.set(payload, (deliveries.get(payload) ?? 0) + 1);
    if (payload === 'END') {
      sub.send('ACK');
      break;
    }
    // ACK around the deadline: 0.7x to 1.3x the timeout after the delivery.
    await letTimePass(TIMEOUT_MS * (0.7 + (0.6 * ((i++ * 7) % 10)) / 10)); // time is the subject: the ACK lands near the deadline
    sub.send('ACK');
  }
  await waitFor(() => server.broker.topicStats(topic)!.acked === count + 1);
  const stats = server.broker.topicStats(topic)!;
  assert.equal(stats.ready + stats.inFlight, 0);
  assert.equal(deliveries.size, count + 1);
  // Every ACK refused because the deadline won is followed by exactly one more delivery of that
  // message; an ACK that won is final (no message is delivered more often than it was refused + 1).
  const redelivered = [...deliveries.values()].reduce((a, n) => a + n - 1, 0);
  const counters = server.broker.topicCounters(topic)!;
  t.diagnostic(`${refusals} late ACKs refused, ${redelivered} redeliveries, ${counters.ackTimeouts} timeouts`);
  assert.equal(redelivered, refusals);
  assert.equal(counters.ackTimeouts, refusals);
  sub.close();
});

async function startOn(db: string): Promise<RunningServer> {
  return startInProcess(db, ['--fsync', 'never', '--segment-bytes', '4096', '--max-deliveries', '4']);
}

test('delivery counts and dackCounts survive restarts and compaction: the 4th delivery dead-letters', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-deliveries-');
  t.after(() => removeDir(db));
  const topic = 'dl.count';
  let server = await startOn(db);
  let conn = await RespConn.connect(server.resp!.port);
  assert.equal(await conn.send('PUBLISH', topic, 'victim'), 'OK');
  // Delivery 1, DACKed (dackCount 1); delivery 2, NACKed.
  let m = asReserved(await conn.send('RESERVE', topic));
  assert.equal(await conn.send('DACK', topic, m.id, 0), 'OK');
  await waitFor(() => server.broker.topicStats(topic)!.ready === 1, 5000);
  m = asReserved(await conn.send('RESERVE', topic));
  assert.equal(m.dackCount, 1);
  assert.equal(await conn.send('NACK', topic, m.id), 'OK');
  conn.close();
  await server.close();

  // Restart; delivery 3, then the connection drops (NACK by disconnect). Filler published and
  // acked around it makes the victim's segments mostly dead, so compaction copies it forward.
  server = await startOn(db);
  conn = await RespConn.connect(server.resp!.port);
  const filler = await conn.pipeline(Array.from({ length: 150 }, (_, i) => ['PUBLISH', 'dl.filler', `f${i}-${'z'.repeat(40)}`]));
  assert.ok(filler.every((r) => r === 'OK'));
  m = asReserved(await conn.send('RESERVE', topic));
  assert.equal(m.payload.toString(), 'victim');
  assert.equal(m.dackCount, 1);
  conn.close();
  await waitFor(() => server.broker.topicStats(topic)!.ready === 1);
  conn = await RespConn.connect(server.resp!.port);
  const fill = (await conn.pipeline(Array.from({ length: 150 }, () => ['RESERVE', 'dl.filler']))).map(asReserved);
  assert.ok((await conn.pipeline(fill.map((f) => ['ACK', 'dl.filler', f.id]))).every((r) => r === 'OK'));
  const copiedBefore = server.broker.compactionStats.messagesCopied;
  await server.broker.compactNow();
  await server.broker.compactNow();
  assert.ok(server.broker.compactionStats.messagesCopied > copiedBefore, 'compaction copied the victim forward');
  conn.close();
  await server.close();

  // Restart again: delivery 4 is the last allowed; its NACK moves the message to dl.count.dead.
  server = await startOn(db);
  t.after(() => server.close());
  conn = await RespConn.connect(server.resp!.port);
  t.after(() => conn.close());
  m = asReserved(await conn.send('RESERVE', topic));
  assert.equal(m.payload.toString(), 'victim');
  assert.equal(m.dackCount, 1, 'dackCount survived two restarts and compaction');
  assert.equal(await conn.send('NACK', topic, m.id), 'OK');
  assert.equal(await conn.send('RESERVE', topic), null, 'not delivered a 5th time');
  const dead = asReserved(await conn.send('RESERVE', `${topic}.dead`, 2000));
  assert.equal(dead.payload.toString(), 'victim');
  assert.equal(dead.dackCount, 1);
});
