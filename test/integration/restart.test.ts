/**
 * Restart and durability (SPEC §1 signals, §2 "Delivery", §5 storage) with the real server as a
 * child process: what clients saw answered before a SIGKILL is exactly what a restarted server on
 * the same --db holds; SIGTERM stops cleanly with exit code 0.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { asReserved, type ChildServer, encodeCommand, h2connect, h2request, H2Subscriber, isErrorReply, removeDir, type Reserved, RespConn, startChild, statsOf, tempDir } from '../helpers/index.js';

const TOPIC = 'restart.main';

function payloadOf(i: number): string {
  return `m${String(i).padStart(4, '0')}`;
}

function indexOf(payload: Buffer | string): number {
  return Number(String(payload).slice(1));
}

test('after SIGKILL every answered, unacked publish is back exactly once, in order; acks and DACK delays survive', async (t) => {
  const db = tempDir('mq-restart-');
  t.after(() => removeDir(db));
  const children: ChildServer[] = [];
  t.after(async () => {
    for (const c of children) await c.kill('SIGKILL');
  });

  const first = await startChild(db, ['--period', '100ms']);
  children.push(first);
  const session = h2connect(first.httpPort);
  const resp = await RespConn.connect(first.respPort);
  const consumer = await RespConn.connect(first.respPort);

  // 1. 500 publishes, alternating HTTP/2 and RESP, each awaited: publish order is this order.
  const n = 500;
  const answered = new Set<number>();
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) {
      const res = await h2request(session, 'POST', `/publish/${TOPIC}`, payloadOf(i));
      if (res.status === 201) answered.add(i);
    } else if ((await resp.send('PUBLISH', TOPIC, payloadOf(i))) === 'OK') {
      answered.add(i);
    }
  }
  assert.equal(answered.size, n);

  // 2. Reserve the first 100 on one RESP connection; ACK every third; NACK two; DACK two.
  const reserved: Reserved[] = (await consumer.pipeline(Array.from({ length: 100 }, () => ['RESERVE', TOPIC]))).map(asReserved);
  assert.deepEqual(
    reserved.map((r) => indexOf(r.payload)),
    Array.from({ length: 100 }, (_, i) => i),
  );
  const acked = new Set<number>();
  const ackCommands = reserved.filter((r) => indexOf(r.payload) % 3 === 0);
  const ackReplies = await consumer.pipeline(ackCommands.map((r) => ['ACK', TOPIC, r.id]));
  ackCommands.forEach((r, k) => {
    if (ackReplies[k] === 'OK') acked.add(indexOf(r.payload));
  });
  assert.equal(acked.size, ackCommands.length);
  const NACKED = 50; // not a multiple of 3: goes to an HTTP/2 subscriber, which acks it
  const NACKED_LAST = 70; // NACKed last, so first after the restart
  const DACK_LONG = 52;
  const DACK_SHORT = 53;
  assert.equal(await consumer.send('NACK', TOPIC, reserved[NACKED]!.id), 'OK');
  assert.equal(await consumer.send('DACK', TOPIC, reserved[DACK_LONG]!.id, '3600'), 'OK');
  const shortDackSentAt = Date.now();
  // 15 s, not less: on a loaded 2-core machine the kill, restart and drain below took up to 12 s,
  // and the message must still be delayed when the restarted server is checked.
  assert.equal(await consumer.send('DACK', TOPIC, reserved[DACK_SHORT]!.id, '15'), 'OK');

  // An HTTP/2 subscriber acks two more (the NACKed one comes first) and holds a third in flight.
  const sub = new H2Subscriber(session, TOPIC);
  sub.send('INIT');
  const subSeen: number[] = [];
  for (let k = 0; k < 3; k++) {
    const d = await sub.nextDelivery();
    subSeen.push(indexOf(d.payload));
    if (k < 2) sub.send('ACK');
  }
  assert.deepEqual(subSeen, [NACKED, 100, 101], 'a NACKed message is delivered next');
  // This protocol never answers an ACK, but both are durable before the kill: the log is written
  // in order, and later records (the NACK below, the late publishes) were answered.
  acked.add(NACKED);
  acked.add(100);
  assert.equal(await consumer.send('NACK', TOPIC, reserved[NACKED_LAST]!.id), 'OK');

  // 3. More publishes in flight at the moment of the kill: the answered ones must survive.
  const lateFrom = n;
  const lateCount = 60;
  const late = await RespConn.connect(first.respPort);
  const lateAnswered = new Set<number>();
  const latePending = Array.from({ length: lateCount }, (_, k) =>
    late.next(15_000).then(
      (r) => {
        if (r === 'OK') lateAnswered.add(lateFrom + k);
      },
      () => {},
    ),
  );
  await late.write(Buffer.concat(Array.from({ length: lateCount }, (_, k) => encodeCommand(['PUBLISH', TOPIC, payloadOf(lateFrom + k)]))));
  // Kill as soon as the first of them is answered, while the rest are being written.
  await Promise.race([latePending[0], late.closed]);
  const killed = await first.kill('SIGKILL');
  assert.equal(killed.signal, 'SIGKILL');
  await Promise.all(latePending);
  sub.close();
  session.destroy();
  for (const c of [resp, consumer, late]) c.close();

  // 4. Restart on the same --db and drain.
  const second = await startChild(db, ['--period', '100ms']);
  children.push(second);
  const c = await RespConn.connect(second.respPort);
  t.after(() => c.close());
  const stats = await statsOf(c, TOPIC);
  assert.equal(stats.acked, acked.size, `STATS acked ${stats.acked}`);
  assert.equal(stats.delayed, 2, 'both DACKed messages are delayed after the restart');
  assert.equal(stats.inFlight, 0);

  const drained: Reserved[] = [];
  for (;;) {
    const batch = await c.pipeline(Array.from({ length: 100 }, () => ['RESERVE', TOPIC]));
    for (const r of batch) if (r !== null) drained.push(asReserved(r));
    if (batch.includes(null)) break;
  }
  const order = drained.map((r) => indexOf(r.payload));
  assert.equal(new Set(order).size, order.length, 'no message delivered twice');
  assert.equal(new Set(drained.map((r) => r.id)).size, drained.length, 'ids are unique');

  // Every answered publish that was not acked (nor delayed) is there, in publish order, except
  // the NACKed one, which is at the front. Messages in flight at the crash are at the front too,
  // in their original order (SPEC §2), which is their place in publish order; whether they come
  // before or after the NACKed one is not pinned down here (test/broker/replay.test.ts tracks it).
  const expected: number[] = [];
  for (let i = 0; i < n + lateCount; i++) {
    if (i >= n && !order.includes(i)) {
      assert.ok(!lateAnswered.has(i), `answered publish ${payloadOf(i)} was lost`);
      continue;
    }
    if (acked.has(i) || i === DACK_LONG || i === DACK_SHORT || i === NACKED_LAST) continue;
    expected.push(i);
  }
  for (const i of acked) assert.ok(!order.includes(i), `acked ${payloadOf(i)} came back`);
  const inFlightAtCrash = [...reserved.map((r) => indexOf(r.payload)), 101].filter(
    (i) => !acked.has(i) && i !== NACKED_LAST && i !== DACK_LONG && i !== DACK_SHORT,
  );
  const nackedAt = order.indexOf(NACKED_LAST);
  assert.ok(nackedAt === 0 || nackedAt === inFlightAtCrash.length, `the NACKed message is at ${nackedAt}`);
  assert.deepEqual(
    order.filter((i) => i !== NACKED_LAST),
    expected,
  );
  assert.deepEqual(order.slice(nackedAt === 0 ? 1 : 0, inFlightAtCrash.length + (nackedAt === 0 ? 1 : 0)), inFlightAtCrash);
  for (const i of lateAnswered) assert.ok(order.includes(i), `answered late publish ${payloadOf(i)} missing`);
  assert.ok(drained.every((r) => r.dackCount === 0));

  // The short DACK comes back after its due time (not earlier, despite the restart), dackCount 1.
  await c.write(encodeCommand(['RESERVE', TOPIC, '30000']));
  const back = asReserved(await c.next(35_000));
  assert.equal(indexOf(back.payload), DACK_SHORT);
  assert.equal(back.dackCount, 1);
  assert.ok(Date.now() - shortDackSentAt >= 15_000, 'the DACK delay survived the restart');
  assert.equal(back.id, reserved[DACK_SHORT]!.id, 'ids survive restarts');
  // The long DACK is still delayed.
  assert.equal(await c.send('RESERVE', TOPIC, '300'), null);
  const after = await statsOf(c, TOPIC);
  assert.equal(after.delayed, 1);
  assert.equal(after.ready, 0);

  // Settles after the restart are durable too: ACK one, NACK the rest, SIGKILL again, check.
  assert.equal(await c.send('ACK', TOPIC, back.id), 'OK');
  const ackAfter = drained.slice(0, 10);
  const replies = await c.pipeline(ackAfter.map((r) => ['ACK', TOPIC, r.id]));
  assert.ok(replies.every((r) => r === 'OK'));
  await second.kill('SIGKILL');
  const third = await startChild(db, ['--period', '100ms']);
  children.push(third);
  const d = await RespConn.connect(third.respPort);
  t.after(() => d.close());
  const rest: number[] = [];
  for (;;) {
    const r = await d.send('RESERVE', TOPIC);
    if (r === null) break;
    rest.push(indexOf(asReserved(r).payload));
  }
  assert.deepEqual(rest, order.slice(10));
  const final = await statsOf(d, TOPIC);
  assert.equal(final.delayed, 1);
  assert.equal(final.acked, acked.size + 11);
});

test('a publish racing a DEL of its topic on another connection: memory agrees with the log after a restart', async (t) => {
  const db = tempDir('mq-restart-del-');
  t.after(() => removeDir(db));
  const first = await startChild(db);
  t.after(() => first.kill('SIGKILL'));
  const a = await RespConn.connect(first.respPort);
  const b = await RespConn.connect(first.respPort);
  const before = new Map<string, number>();
  for (let i = 0; i < 30; i++) {
    const topic = `race.${i}`;
    const [pub, del] = await Promise.all([a.send('PUBLISH', topic, 'x'), b.send('DEL', topic)]);
    assert.equal(pub, 'OK');
    assert.ok(del === 0 || del === 1);
    before.set(topic, (await statsOf(b, topic)).ready);
  }
  a.close();
  b.close();
  await first.kill('SIGKILL');
  const second = await startChild(db);
  t.after(() => second.kill('SIGKILL'));
  const c = await RespConn.connect(second.respPort);
  t.after(() => c.close());
  for (const [topic, ready] of before) {
    assert.equal((await statsOf(c, topic)).ready, ready, `topic ${topic}: ${ready} ready before the restart`);
  }
});

test('SIGTERM stops cleanly: exit code 0, "stopped" logged, and the data is there on the next start', async (t) => {
  const db = tempDir('mq-sigterm-');
  t.after(() => removeDir(db));
  const first = await startChild(db, ['--fsync', 'never']);
  t.after(() => first.kill('SIGKILL'));
  const session = h2connect(first.httpPort);
  const c = await RespConn.connect(first.respPort);
  assert.equal((await h2request(session, 'POST', '/publish/term', 'one')).status, 201);
  assert.equal(await c.send('PUBLISH', 'term', 'two'), 'OK');
  const held = asReserved(await c.send('RESERVE', 'term'));
  assert.equal(held.payload.toString(), 'one');
  const exited = first.kill('SIGTERM');
  const closed = Promise.all([c.closed, new Promise<void>((resolve) => session.once('close', () => resolve()))]);
  const { code, signal } = await exited;
  await closed;
  assert.equal(signal, null);
  assert.equal(code, 0, first.stderr());
  const messages = first.lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
  assert.ok(messages.includes('stopped'), messages.join(' | '));
  assert.equal(first.stderr(), '');

  const second = await startChild(db);
  t.after(() => second.kill('SIGKILL'));
  const d = await RespConn.connect(second.respPort);
  t.after(() => d.close());
  const got: string[] = [];
  for (;;) {
    const r = await d.send('RESERVE', 'term');
    if (r === null || isErrorReply(r)) break;
    got.push(asReserved(r).payload.toString());
  }
  // The reserved one was in flight at the stop: it is back, at the front.
  assert.deepEqual(got, ['one', 'two']);
});
