/**
 * SPEC §7 ack timeout, TOUCH and dead letters end to end, over both protocols, against a real
 * in-process server started with `--ack-timeout 300ms --max-deliveries 3`: a hung consumer's
 * message reaches another consumer after the timeout, TOUCH keeps a slow consumer's message, the
 * third unsuccessful delivery lands in `<topic>.dead`, and /metrics counts all of it.
 */
import assert from 'node:assert/strict';
import type http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import type { RunningServer } from '../../src/server/server.js';
import { asReserved, h2connect, h2request, H2Subscriber, isErrorReply, letTimePass, removeDir, type Reply, RespConnections, startInProcess, tempDir, waitFor } from '../helpers/index.js';

const ACK_TIMEOUT_MS = 300;
let dir: string;
let server: RunningServer;
let session: http2.ClientHttp2Session;
const resp = new RespConnections(() => server.resp!.port);
const connect = resp.connect;
const subscribers: H2Subscriber[] = [];

before(async () => {
  dir = tempDir('mq-operability-');
  server = await startInProcess(dir, ['--ack-timeout', `${ACK_TIMEOUT_MS}ms`, '--max-deliveries', '3', '--fsync', 'never']);
  session = h2connect(server.http.port);
});

after(async () => {
  for (const s of subscribers) s.close();
  resp.closeAll();
  session.close();
  await server.close();
  removeDir(dir);
});

async function subscribe(topic: string): Promise<H2Subscriber> {
  const s = new H2Subscriber(session, topic);
  subscribers.push(s);
  assert.equal(await s.response, 200);
  s.send('INIT');
  return s;
}


/** The value of one sample line of GET /metrics (`name{labels} value`), or undefined. */
async function metric(name: string, topic: string): Promise<number | undefined> {
  const res = await h2request(session, 'GET', '/metrics');
  assert.equal(res.status, 200);
  const line = res.body
    .toString()
    .split('\n')
    .find((l) => l.startsWith(`${name}{topic="${topic}"} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('--ack-timeout', () => {
  test('HTTP/2: a hung subscriber loses its message to another after the timeout; its late ACK is refused, then delivery goes on', async () => {
    const topic = 'ack.h2';
    assert.equal((await h2request(session, 'POST', `/publish/${topic}`, 'job 1')).status, 201);
    assert.equal((await h2request(session, 'POST', `/publish/${topic}`, 'job 2')).status, 201);
    const hung = await subscribe(topic);
    const first = await hung.nextDelivery();
    assert.equal(first.payload.toString(), 'job 1');
    const started = Date.now();
    const notice = await hung.next(5000);
    const waited = Date.now() - started;
    assert.match(notice.error ?? '', new RegExp(`message ${first.id} was not settled within --ack-timeout`));
    assert.ok(waited >= ACK_TIMEOUT_MS - 50, `not before the timeout (${waited} ms)`);
    // Another consumer now gets job 1 again, counted as a redelivery.
    const other = await subscribe(topic);
    const again = await other.nextDelivery();
    assert.equal(again.id, first.id);
    assert.equal(again.payload.toString(), 'job 1');
    other.send('ACK');
    // The hung one wakes up and ACKs: refused (job 1 is not its any more), and only then is job 2 delivered to it.
    assert.equal(hung.bufferedLines, 0, 'nothing delivered to the hung stream meanwhile');
    hung.send('ACK');
    assert.match((await hung.next()).error ?? '', /no longer in flight/);
    const second = await hung.nextDelivery();
    assert.equal(second.payload.toString(), 'job 2');
    hung.send('ACK');
    await waitFor(() => server.broker.topicStats(topic)?.acked === 2);
    assert.equal(server.broker.topicStats(topic)?.ready, 0);
  });

  test('HTTP/2: "TOUCH" keeps a slow subscriber\'s message in flight past the timeout', async () => {
    const topic = 'ack.h2.touch';
    assert.equal((await h2request(session, 'POST', `/publish/${topic}`, 'slow')).status, 201);
    const slow = await subscribe(topic);
    await slow.nextDelivery();
    for (let i = 0; i < 8; i++) {
      await letTimePass(ACK_TIMEOUT_MS / 3);
      slow.send('TOUCH');
    }
    assert.equal(slow.bufferedLines, 0, 'no expiry notice, no error');
    assert.equal(server.broker.topicStats(topic)?.inFlight, 1);
    slow.send('ACK');
    await waitFor(() => server.broker.topicStats(topic)?.acked === 1);
    assert.equal(server.broker.topicCounters(topic)?.ackTimeouts, 0);
  });

  test('RESP: RESERVE without a settle times out (ACK then gets -ERR), TOUCH topic id keeps it, and SUBSCRIBE mode behaves like HTTP/2', async () => {
    const topic = 'ack.resp';
    const c = await connect();
    assert.equal(await c.send('PUBLISH', topic, 'a'), 'OK');
    assert.equal(await c.send('PUBLISH', topic, 'b'), 'OK');
    const a = asReserved(await c.send('RESERVE', topic));
    const b = asReserved(await c.send('RESERVE', topic));
    for (let i = 0; i < 6; i++) {
      await letTimePass(ACK_TIMEOUT_MS / 3);
      assert.equal(await c.send('TOUCH', topic, b.id), 'OK');
    }
    const late = await c.send('ACK', topic, a.id);
    assert.ok(isErrorReply(late) && /^ERR no message \d+ .*is in flight/.test(late.line), `late ACK refused: ${JSON.stringify(late)}`);
    assert.ok(isErrorReply(await c.send('TOUCH', topic, a.id)));
    assert.equal(await c.send('ACK', topic, b.id), 'OK');
    const other = await connect();
    const again = asReserved(await other.send('RESERVE', topic, '1000'));
    assert.equal(again.id, a.id);
    assert.equal(await other.send('ACK', topic, again.id), 'OK');
    const touchErr = await c.send('TOUCH', topic);
    assert.ok(isErrorReply(touchErr) && /wrong number of arguments/i.test(touchErr.line));

    // SUBSCRIBE mode: TOUCH keeps it; after an expiry the next settle is refused, then the next message is pushed.
    assert.equal(await c.send('PUBLISH', topic, 'c'), 'OK');
    assert.equal(await c.send('PUBLISH', topic, 'd'), 'OK');
    const sub = await connect();
    assert.equal(((await sub.send('SUBSCRIBE', topic)) as Buffer).toString(), 'c');
    await letTimePass(ACK_TIMEOUT_MS / 2);
    assert.equal(await sub.send('TOUCH'), 'OK');
    await letTimePass(ACK_TIMEOUT_MS * 2);
    const refused = await sub.send('ACK');
    assert.ok(isErrorReply(refused) && /not settled within --ack-timeout/.test(refused.line), JSON.stringify(refused));
    const next = (await sub.next()) as Reply;
    assert.equal(Buffer.isBuffer(next) ? next.toString() : next, 'c', 'c is ready again at the front and comes back');
    assert.equal(await sub.send('ACK'), 'OK');
    assert.equal(((await sub.next()) as Buffer).toString(), 'd');
    assert.equal(await sub.send('ACK'), 'OK');
  });
});

describe('--max-deliveries', () => {
  test('RESP: the third unsuccessful delivery moves the message to <topic>.dead with its counts; metrics count it', async () => {
    const topic = 'dl.resp';
    const c = await connect();
    assert.equal(await c.send('PUBLISH', topic, 'poison'), 'OK');
    const r1 = asReserved(await c.send('RESERVE', topic));
    assert.equal(await c.send('NACK', topic, r1.id), 'OK');
    const r2 = asReserved(await c.send('RESERVE', topic));
    assert.equal(await c.send('DACK', topic, r2.id, '0'), 'OK');
    const r3 = asReserved(await c.send('RESERVE', topic, '5000'));
    assert.equal(r3.dackCount, 1);
    assert.equal(await c.send('BACK', topic, r3.id), 'OK');
    assert.equal(await c.send('RESERVE', topic), null, 'gone from the topic');
    const dead = asReserved(await c.send('RESERVE', `${topic}.dead`));
    assert.equal(dead.payload.toString(), 'poison');
    assert.equal(dead.dackCount, 1, 'its dackCount came along');
    assert.notEqual(dead.id, r1.id);
    assert.equal(await c.send('ACK', `${topic}.dead`, dead.id), 'OK');
    assert.deepEqual(
      ((await c.send('TOPICS')) as Buffer[]).map(String).filter((n) => n.startsWith(topic)),
      [topic, `${topic}.dead`],
    );
    assert.equal(await metric('miniqueue_topic_dead_lettered_total', topic), 1);
    assert.equal(await metric('miniqueue_topic_nacked_total', topic), 1);
    assert.equal(await metric('miniqueue_topic_dacked_total', topic), 1);
    assert.equal(await metric('miniqueue_topic_backed_total', topic), 1);
    assert.equal(await metric('miniqueue_topic_redelivered_total', topic), 2);
    assert.equal(await metric('miniqueue_topic_published_total', `${topic}.dead`), 1);
    assert.equal(await metric('miniqueue_topic_acked_total', `${topic}.dead`), 1);
  });

  test('HTTP/2: NACKs and a hung delivery (ack timeout) add up to the limit; the message is then consumed from .dead', async () => {
    const topic = 'dl.h2';
    assert.equal((await h2request(session, 'POST', `/publish/${topic}`, 'bad')).status, 201);
    const s = await subscribe(topic);
    const d1 = await s.nextDelivery();
    s.send('NACK');
    const d2 = await s.nextDelivery();
    assert.equal(d2.id, d1.id);
    s.send('NACK');
    await s.nextDelivery();
    // Third delivery: never settled. The timeout ends it, and it is the last one allowed.
    assert.match((await s.next(5000)).error ?? '', /not settled within --ack-timeout/);
    await waitFor(() => server.broker.topicStats(`${topic}.dead`)?.ready === 1);
    assert.equal(server.broker.topicStats(topic)?.ready, 0);
    const reader = await subscribe(`${topic}.dead`);
    const dead = await reader.nextDelivery();
    assert.equal(dead.payload.toString(), 'bad');
    reader.send('ACK');
    await waitFor(() => server.broker.topicStats(`${topic}.dead`)?.acked === 1);
    assert.equal(await metric('miniqueue_topic_ack_timeouts_total', topic), 1);
    assert.equal(await metric('miniqueue_topic_dead_lettered_total', topic), 1);
  });
});
