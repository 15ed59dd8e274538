/**
 * Issue 13, finding 2: HTTP/2 subscribe output has a bound. A subscriber that sends "INIT" and
 * "ACK" lines but never reads its response made the server deliver (and ack) every message of
 * the topic into the stream's write buffer. Now the stream stops delivering while its output is
 * not drained, so the server holds one delivery for it and every other message stays ready for
 * other consumers. Runs a real server in a child process with real node:http2 and RESP clients.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type http2 from 'node:http2';
import { test } from 'node:test';
import { type ChildServer, h2connect, h2request, MiniRespClient, removeDir, startChild, tempDir, waitFor } from '../../helpers/index.js';

const MIB = 1024 * 1024;

interface Stats {
  topic: string;
  ready: number;
  inFlight: number;
  acked: number;
}

async function topicStats(session: http2.ClientHttp2Session, topic: string): Promise<Stats> {
  const res = await h2request(session, 'GET', '/topics');
  assert.equal(res.status, 200);
  const stats = (JSON.parse(res.body.toString()) as Stats[]).find((s) => s.topic === topic);
  assert.ok(stats !== undefined, `topic ${topic} is listed`);
  return stats;
}

/** Polls /topics until `predicate` holds (the server's state is only visible through it). */
async function statsWhen(session: http2.ClientHttp2Session, topic: string, predicate: (s: Stats) => boolean, timeoutMs = 10_000): Promise<Stats> {
  let stats: Stats | undefined;
  await waitFor(
    async () => predicate((stats = await topicStats(session, topic))),
    timeoutMs,
    20,
    () => `the stats of ${topic} to match; last ${JSON.stringify(stats)}`,
  );
  return stats!;
}

function rssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function publishMany(server: ChildServer, topic: string, count: number, payloadBytes: number): Promise<void> {
  const client = new MiniRespClient(server.respPort);
  await client.ready;
  const replies = await Promise.all(
    Array.from({ length: count }, (_, i) => client.send('PUBLISH', topic, Buffer.alloc(payloadBytes, 97 + (i % 26)))),
  );
  client.close();
  assert.ok(replies.every((r) => r === 'OK'), 'every publish is answered +OK');
}

/** Opens a subscribe stream and sends `commands` in one write; the response is never read. */
function silentSubscriber(session: http2.ClientHttp2Session, topic: string, commands: string): http2.ClientHttp2Stream {
  const req = session.request({ ':method': 'POST', ':path': `/subscribe/${topic}` });
  req.on('error', () => {});
  req.write(commands);
  return req;
}

test('issue 13 finding 2: a subscriber that sends ACKs but never reads holds one delivery; the rest stay ready for others', { timeout: 120_000 }, async (t) => {
  const db = tempDir('mq-i13-bp-');
  t.after(() => removeDir(db));
  const server = await startChild(db, ['--fsync', 'never', '--max-message-bytes', '2MiB']);
  t.after(() => server.kill('SIGKILL'));
  const topic = 'bp.silent';
  const count = 40;
  await publishMany(server, topic, count, MIB);
  const rssBefore = rssMiB(server.proc.pid!);

  const silentSession = h2connect(server.httpPort);
  t.after(() => silentSession.destroy());
  const silent = silentSubscriber(silentSession, topic, `"INIT"\n${'"ACK"\n'.repeat(count - 1)}`);

  // The commands arrive in one DATA frame and are run together; once INIT has been served, the
  // server has done all it will do with them.
  const admin = h2connect(server.httpPort);
  t.after(() => admin.destroy());
  const held = await statsWhen(admin, topic, (s) => s.inFlight + s.acked > 0);
  const rssAfter = rssMiB(server.proc.pid!);
  t.diagnostic(`after the silent subscriber's ${count - 1} ACKs: ${JSON.stringify(held)}; server RSS ${rssBefore.toFixed(0)} -> ${rssAfter.toFixed(0)} MiB`);
  assert.ok(held.inFlight + held.acked <= 2, `the silent subscriber got at most 2 deliveries, got ${held.inFlight + held.acked}`);
  assert.ok(held.ready >= count - 2, `the other messages stay ready (${held.ready})`);

  // Another consumer gets every other message.
  const other = new MiniRespClient(server.respPort);
  await other.ready;
  t.after(() => other.close());
  let taken = 0;
  for (;;) {
    const r = await other.send('RESERVE', topic);
    if (!Array.isArray(r)) break;
    assert.equal((r[1] as Buffer).length, MIB);
    assert.equal(await other.send('ACK', topic, (r[0] as Buffer).toString()), 'OK');
    taken++;
  }
  assert.equal(taken, count - held.inFlight - held.acked, 'another consumer receives every message the silent one does not hold');

  // The silent subscriber goes away: what it held goes back and is delivered to the other consumer.
  silent.close();
  await statsWhen(admin, topic, (s) => s.inFlight === 0);
  for (;;) {
    const r = await other.send('RESERVE', topic, '1000');
    if (!Array.isArray(r)) break;
    assert.equal(await other.send('ACK', topic, (r[0] as Buffer).toString()), 'OK');
    taken++;
  }
  const end = await topicStats(admin, topic);
  assert.deepEqual({ ready: end.ready, inFlight: end.inFlight }, { ready: 0, inFlight: 0 });
  assert.equal(end.acked, count, 'every message was acked exactly once');
});

test('issue 13 finding 2: a subscriber that starts reading late gets every delivery in order; its queued ACKs then run', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-bp2-');
  t.after(() => removeDir(db));
  const server = await startChild(db, ['--fsync', 'never', '--max-message-bytes', '2MiB']);
  t.after(() => server.kill('SIGKILL'));
  const topic = 'bp.late';
  await publishMany(server, topic, 3, MIB);

  const session = h2connect(server.httpPort);
  t.after(() => session.destroy());
  const req = silentSubscriber(session, topic, '"INIT"\n"ACK"\n"ACK"\n');
  const admin = h2connect(server.httpPort);
  t.after(() => admin.destroy());
  const before = await statsWhen(admin, topic, (s) => s.inFlight > 0);
  assert.equal(before.acked, 0, 'nothing is acked while the first delivery is unread');

  // Now read: the first delivery flows, 'drain' fires, the queued ACKs run one by one.
  const ids: number[] = [];
  let text = '';
  req.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    req.on('data', (chunk: string) => {
      text += chunk;
      let nl: number;
      while ((nl = text.indexOf('\n')) >= 0) {
        const line = JSON.parse(text.slice(0, nl)) as { msg?: string; id?: number; error?: string };
        text = text.slice(nl + 1);
        if (line.error !== undefined) return reject(new Error(line.error));
        assert.equal(Buffer.from(line.msg!, 'base64').length, MIB);
        ids.push(line.id!);
        if (ids.length === 3) resolve();
      }
    });
  });
  assert.deepEqual([...ids].sort((a, b) => a - b), ids, 'deliveries in publish order');
  const after = await statsWhen(admin, topic, (s) => s.acked === 2);
  assert.deepEqual({ ready: after.ready, inFlight: after.inFlight }, { ready: 0, inFlight: 1 });
  req.close();
});
