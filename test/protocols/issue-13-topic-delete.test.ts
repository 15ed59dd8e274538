/**
 * Issue 13, fault class "Topic deletion while consumers wait on the topic or hold its messages",
 * over a real in-process server with raw RESP connections, ioredis and an HTTP/2 subscriber:
 *
 * - a blocking RESERVE, a SUBSCRIBE stream and an HTTP/2 subscriber waiting on a topic that is
 *   deleted keep waiting, and get the first message of the re-created topic;
 * - settling (ACK, NACK, DACK, TOUCH) a message of a deleted topic gets MQ_ERR_TOPIC_DELETED, on
 *   RESP and HTTP/2, and the consumer goes on with the new messages;
 * - with `--ack-timeout`, in-flight messages of a deleted topic whose deadline passes do nothing;
 * - nothing deleted comes back after a restart.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { BrokerError } from '../../src/errors.js';
import { asReserved, describeReply, encodeCommand, h2connect, h2request, H2Subscriber, isErrorReply, letTimePass, removeDir, RespConn, startInProcess, tempDir, waitFor } from '../helpers/index.js';

const DELETED_LINE = (topic: string): string => new BrokerError('MQ_ERR_TOPIC_DELETED', [topic]).toRespLine();

test('consumers waiting on and holding messages of a deleted topic: clear errors, and they go on with the re-created topic', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-del-');
  t.after(() => removeDir(db));
  let server = await startInProcess(db, ['--fsync', 'never', '--ack-timeout', '300ms']);
  let serverClosed = false;
  t.after(async () => {
    if (!serverClosed) await server.close();
  });
  const topic = 'del.t';
  const admin = await RespConn.connect(server.resp!.port);
  t.after(() => admin.close());
  const session = h2connect(server.http.port);
  t.after(() => session.destroy());

  // Holders: a RESERVE-mode connection with two messages, an HTTP/2 subscriber and a SUBSCRIBE
  // stream with one each, which empties the topic. Waiters: a blocking RESERVE (raw), one through
  // ioredis, and an HTTP/2 subscriber, all waiting on the now empty topic.
  assert.ok((await admin.pipeline(Array.from({ length: 4 }, (_, i) => ['PUBLISH', topic, `old${i}`]))).every((r) => r === 'OK'));
  const holder = await RespConn.connect(server.resp!.port);
  t.after(() => holder.close());
  const held = (await holder.pipeline([['RESERVE', topic], ['RESERVE', topic]])).map(asReserved);
  const h2holder = new H2Subscriber(session, topic);
  h2holder.send('INIT');
  assert.equal((await h2holder.nextDelivery()).payload.toString(), 'old2');
  const streamHolder = await RespConn.connect(server.resp!.port);
  t.after(() => streamHolder.close());
  await streamHolder.write(encodeCommand(['SUBSCRIBE', topic]));
  assert.equal(String(await streamHolder.next()), 'old3');
  await waitFor(() => server.broker.topicStats(topic)!.inFlight === 4);

  const blocked = await RespConn.connect(server.resp!.port);
  t.after(() => blocked.close());
  const blockedReply = blocked.send('RESERVE', topic, 10_000);
  const redis = new Redis({ port: server.resp!.port, host: '127.0.0.1' });
  redis.on('error', () => {});
  t.after(() => redis.disconnect());
  const ioredisReply = redis.call('RESERVE', topic, 10_000) as Promise<[string, Buffer, number] | null>;
  const h2waiter = new H2Subscriber(session, topic);
  h2waiter.send('INIT');
  await h2waiter.response;

  // Delete the topic while all of them wait or hold.
  assert.equal(await admin.send('DEL', topic), 1);
  assert.deepEqual(await admin.send('TOPICS'), []);

  // Settles of deleted messages: MQ_ERR_TOPIC_DELETED on each protocol; the connection goes on.
  const settles = await holder.pipeline([['ACK', topic, held[0]!.id], ['TOUCH', topic, held[1]!.id], ['NACK', topic, held[1]!.id], ['PING']]);
  assert.equal(describeReply(settles[0]!), `-${DELETED_LINE(topic)}`);
  assert.equal(describeReply(settles[1]!), `-${DELETED_LINE(topic)}`);
  assert.equal(describeReply(settles[2]!), `-${DELETED_LINE(topic)}`);
  assert.equal(settles[3], 'PONG');
  // A second settle of the same id: it is no longer held at all.
  const again = await holder.send('ACK', topic, held[0]!.id);
  assert.ok(isErrorReply(again) && again.line.startsWith('ERR no message'), describeReply(again));
  // The HTTP/2 holder was told at once, without sending anything; its settle gets the same error.
  const notice = await h2holder.next();
  assert.ok(notice.error !== undefined && notice.error.includes('was deleted'), JSON.stringify(notice));
  assert.equal((notice as { code?: string }).code, 'MQ_ERR_TOPIC_DELETED', JSON.stringify(notice));
  h2holder.send('ACK');
  const h2err = await h2holder.next();
  assert.ok(h2err.error !== undefined && h2err.error.includes('was deleted'), JSON.stringify(h2err));
  assert.equal((h2err as { code?: string }).code, 'MQ_ERR_TOPIC_DELETED', JSON.stringify(h2err));
  assert.equal(describeReply(await streamHolder.send('DACK', 5)), `-${DELETED_LINE(topic)}`);

  // Past the ack deadline of the deleted in-flight messages: their expiry must do nothing.
  await letTimePass(500); // time is the subject: the deleted messages' ack deadline passes
  assert.equal(server.broker.topicStats(topic), undefined, 'the deleted topic stays deleted');

  // The re-created topic: every consumer still waiting gets one new message, none an old one.
  const waiting = 5; // raw RESERVE, ioredis RESERVE, two HTTP/2 subscribers, the SUBSCRIBE stream
  assert.ok((await admin.pipeline(Array.from({ length: waiting }, (_, i) => ['PUBLISH', topic, `new${i}`]))).every((r) => r === 'OK'));
  const got = [
    asReserved(await blockedReply).payload.toString(),
    String((await ioredisReply)![1]),
    (await h2waiter.nextDelivery()).payload.toString(),
    (await h2holder.nextDelivery()).payload.toString(),
    String(await streamHolder.next()),
  ];
  assert.deepEqual(got.slice().sort(), Array.from({ length: waiting }, (_, i) => `new${i}`));
  await waitFor(() => server.broker.topicStats(topic)!.inFlight === waiting);
  assert.equal(server.broker.topicStats(topic)!.ready, 0);

  // A restart brings back the new messages (in flight at the stop) and nothing deleted.
  h2holder.close();
  h2waiter.close();
  for (const c of [admin, holder, streamHolder, blocked]) c.close();
  redis.disconnect();
  serverClosed = true;
  await server.close();
  server = await startInProcess(db, ['--fsync', 'never']);
  serverClosed = false;
  const after = await RespConn.connect(server.resp!.port);
  t.after(() => after.close());
  const back: string[] = [];
  for (;;) {
    const r = await after.send('RESERVE', topic);
    if (r === null) break;
    back.push(asReserved(r).payload.toString());
  }
  assert.deepEqual(back.sort(), Array.from({ length: waiting }, (_, i) => `new${i}`));
});

test('an HTTP/2 subscriber holding a message of a deleted topic gets the next one without sending anything (DELETE /:topic, RESP DEL)', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-del-wake-');
  t.after(() => removeDir(db));
  const server = await startInProcess(db, ['--fsync', 'never']);
  t.after(() => server.close());
  const admin = await RespConn.connect(server.resp!.port);
  t.after(() => admin.close());
  const session = h2connect(server.http.port);
  t.after(() => session.destroy());
  for (const via of ['DELETE /:topic', 'RESP DEL']) {
    const topic = via === 'RESP DEL' ? 'wake.resp' : 'wake.http';
    const sub = new H2Subscriber(session, topic);
    t.after(() => sub.close());
    sub.send('INIT');
    assert.equal(await admin.send('PUBLISH', topic, 'old'), 'OK');
    const old = await sub.nextDelivery();
    assert.equal(old.payload.toString(), 'old');
    if (via === 'RESP DEL') assert.equal(await admin.send('DEL', topic), 1);
    else assert.equal((await h2request(session, 'DELETE', `/${topic}`)).status, 200);
    // Told at once which message is gone, with the code RESP answers a settle of it with.
    const notice = await sub.next();
    assert.deepEqual(notice, { error: new BrokerError('MQ_ERR_TOPIC_DELETED', [topic]).message, code: 'MQ_ERR_TOPIC_DELETED', id: old.id }, via);
    // A settle before the next delivery is answered the same way, and changes nothing.
    sub.send('ACK');
    assert.equal((await sub.next() as { code?: string }).code, 'MQ_ERR_TOPIC_DELETED', via);
    // The re-created topic's message arrives with nothing sent since.
    assert.equal(await admin.send('PUBLISH', topic, 'new'), 'OK');
    const next = await sub.nextDelivery(5000);
    assert.equal(next.payload.toString(), 'new', via);
    // A settle now applies to it.
    sub.send('ACK');
    await waitFor(() => server.broker.topicStats(topic)?.acked === 1);
    assert.deepEqual({ ...server.broker.topicStats(topic)!, consumers: 0 }, { topic, ready: 0, inFlight: 0, delayed: 0, consumers: 0, published: 1, acked: 1 });
    assert.equal(sub.bufferedLines, 0, 'no other line');
    sub.close();
  }
});
