/**
 * Issue 13, fault class "HTTP/2", over a real in-process server and node:http2 clients:
 *
 * - one subscribe stream that never reads its response does not starve the other streams of its
 *   session, nor the session's publishes;
 * - a stream reset at any moment of a delivery (before the response, while the DATA frame is
 *   arriving, after it; with an ACK written in the same tick) leaves nothing in flight and no
 *   consumer behind, and loses no message;
 * - a long-lived session that had many bodies refused mid-upload (413, 400, 401) keeps working,
 *   and a refused body is not read: the answer comes at once and the stream is closed.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import type { RunningServer } from '../../../src/server/server.js';
import { h2connect, h2request, H2Subscriber, removeDir, startInProcess, tempDir, waitFor } from '../../helpers/index.js';

const KiB = 1024;

function publish(session: http2.ClientHttp2Session, topic: string, body: Buffer | string, headers: http2.OutgoingHttpHeaders = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': `/publish/${topic}`, ...headers });
    req.on('response', (h) => {
      req.resume();
      resolve(Number(h[':status']));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Starts an upload of `totalBytes` (written as fast as flow control lets it) and resolves with the
 * status of the response, the bytes the client managed to hand to its stream, and whether the
 * stream then closed (it must: a refused upload is not waited for).
 */
async function refusedUpload(
  session: http2.ClientHttp2Session,
  path: string,
  totalBytes: number,
  headers: http2.OutgoingHttpHeaders = {},
): Promise<{ status: number; written: number }> {
  const req = session.request({ ':method': 'POST', ':path': path, ...headers });
  req.on('error', () => {});
  let written = 0;
  let stop = false;
  const chunk = Buffer.alloc(16 * KiB, 0x7a);
  const pump = (): void => {
    while (!stop && written < totalBytes) {
      written += chunk.length;
      if (!req.write(chunk)) return void req.once('drain', pump);
    }
    if (!stop) req.end();
  };
  const response = new Promise<number>((resolve) => req.once('response', (h) => resolve(Number(h[':status']))));
  pump();
  const status = await response;
  stop = true;
  req.resume();
  if (!req.closed) await once(req, 'close');
  return { status, written };
}

describe('issue 13: HTTP/2 faults', () => {
  let dir: string;
  let server: RunningServer;
  let session: http2.ClientHttp2Session;

  before(async () => {
    dir = tempDir('mq-i13-h2-');
    server = await startInProcess(dir, ['--fsync', 'never', '--max-message-bytes', '64KiB']);
    session = h2connect(server.http.port);
  });

  after(async () => {
    session.destroy();
    await server.close();
    removeDir(dir);
  });

  const stats = (topic: string) => server.broker.topicStats(topic);

  test('a subscribe stream that never reads does not starve the other streams of its session or its publishes', async () => {
    const slow = 'h2.never-reads';
    const fast = 'h2.reads';
    for (let i = 0; i < 40; i++) assert.equal(await publish(session, slow, Buffer.alloc(32 * KiB, 97 + (i % 26))), 201);
    // INIT and many ACKs, and then the response is never read (no 'data' listener, stream paused).
    const silent = session.request({ ':method': 'POST', ':path': `/subscribe/${slow}` });
    silent.on('error', () => {});
    silent.pause();
    silent.write(`"INIT"\n${'"ACK"\n'.repeat(39)}`);
    await waitFor(() => (stats(slow)?.inFlight ?? 0) === 1 && (stats(slow)?.acked ?? 0) >= 1);

    // The same session: a reading subscriber on another topic gets every message, publishes are answered.
    const reader = new H2Subscriber(session, fast);
    reader.send('INIT');
    for (let i = 0; i < 30; i++) {
      assert.equal(await publish(session, fast, `m${i}`), 201, `publish ${i} on the shared session`);
      const d = await reader.nextDelivery(5000);
      assert.equal(d.payload.toString(), `m${i}`);
      reader.send('ACK');
    }
    const res = await h2request(session, 'GET', '/topics');
    assert.equal(res.status, 200);
    // The silent one holds one delivery; the rest of its topic stays ready for others.
    const s = stats(slow)!;
    assert.equal(s.inFlight, 1, JSON.stringify(s));
    assert.ok(s.ready >= 30, JSON.stringify(s));
    silent.close(http2.constants.NGHTTP2_CANCEL);
    reader.close();
    await waitFor(() => stats(slow)!.inFlight === 0 && stats(slow)!.consumers === 0 && stats(fast)!.consumers === 0);
  });

  test('a stream reset at any moment of a delivery leaves nothing in flight, no consumer behind, and loses nothing', async () => {
    const topic = 'h2.reset';
    const count = 24;
    for (let i = 0; i < count; i++) assert.equal(await publish(session, topic, Buffer.alloc(48 * KiB, i)), 201);
    let acked = 0;
    const moments = ['before-response', 'on-response', 'mid-data', 'after-data', 'ack-same-tick', 'ack-then-reset-after-flush'] as const;
    for (let round = 0; round < 3; round++) {
      for (const moment of moments) {
        const req = session.request({ ':method': 'POST', ':path': `/subscribe/${topic}` });
        req.on('error', () => {});
        const closed = once(req, 'close');
        const reset = (): void => {
          if (!req.destroyed) req.close(http2.constants.NGHTTP2_CANCEL);
        };
        req.write('"INIT"\n');
        if (moment === 'before-response') {
          reset();
        } else if (moment === 'on-response') {
          req.once('response', reset);
        } else {
          let got = 0;
          req.on('data', (chunk: Buffer) => {
            const before = got;
            got += chunk.length;
            // A delivery is 64 KiB of base64 plus the JSON around it; reset on its first bytes,
            // or once its whole line is in.
            if (moment === 'mid-data' && before === 0) reset();
            if (got >= 64 * KiB + 20 && chunk.includes(10) && before < got) {
              if (moment === 'after-data') reset();
              else if (moment === 'ack-same-tick') {
                req.write('"ACK"\n');
                reset();
              } else if (moment === 'ack-then-reset-after-flush' && before < 64 * KiB + 20) {
                req.write('"ACK"\n', () => setImmediate(reset));
              }
            }
          });
        }
        await closed;
        await waitFor(() => stats(topic)!.consumers === 0 && stats(topic)!.inFlight === 0);
        const s = stats(topic)!;
        // Nothing lost, nothing duplicated: each message is either acked or ready.
        assert.equal(s.ready + s.acked, count, `${moment}: ${JSON.stringify(s)}`);
        assert.ok(s.acked >= acked, moment);
        acked = s.acked;
      }
    }
    // Whatever is left is delivered, in order, to a new subscriber.
    const sub = new H2Subscriber(session, topic);
    sub.send('INIT');
    const left = stats(topic)!.ready;
    for (let i = 0; i < left; i++) {
      await sub.nextDelivery(5000);
      sub.send('ACK');
    }
    await waitFor(() => stats(topic)!.acked === count && stats(topic)!.inFlight === 0);
    sub.close();
  });

  test('a long-lived session with many bodies refused mid-upload (413, 400) keeps working', async () => {
    const topic = 'h2.refused';
    for (let i = 0; i < 12; i++) {
      // 413 without content-length: the body passes 64 KiB mid-upload.
      const big = await refusedUpload(session, `/publish/${topic}`, 1024 * KiB);
      assert.equal(big.status, 413, `413 #${i}`);
      assert.ok(big.written < 1024 * KiB, `413 #${i}: the upload was cut short (${big.written} bytes written)`);
      // 413 from content-length, body never read.
      const declared = await refusedUpload(session, `/publish/${topic}`, 256 * KiB, { 'content-length': 256 * KiB });
      assert.equal(declared.status, 413);
      // 400: a bad topic, with a body that is never read.
      const bad = await refusedUpload(session, '/publish/bad%20topic!', 256 * KiB);
      assert.equal(bad.status, 400, `400 #${i}`);
      assert.ok(bad.written < 256 * KiB, `400 #${i}: the upload was cut short (${bad.written} bytes written)`);
      // The session still publishes.
      assert.equal(await publish(session, topic, `ok${i}`), 201, `publish after refusals #${i}`);
    }
    assert.equal(stats(topic)!.ready, 12);
    const sub = new H2Subscriber(session, topic);
    sub.send('INIT');
    assert.equal((await sub.nextDelivery(5000)).payload.toString(), 'ok0');
    sub.close();
  });
});

describe('issue 13: HTTP/2 401 without reading the body', () => {
  const TOKEN = 'i13-h2-token';
  let dir: string;
  let server: RunningServer;

  before(async () => {
    dir = tempDir('mq-i13-h2auth-');
    server = await startInProcess(dir, ['--fsync', 'never', '--auth-token', TOKEN, '--max-message-bytes', '64KiB']);
  });

  after(async () => {
    await server.close();
    removeDir(dir);
  });

  test('an upload without the token gets 401 at once, is not read, and the session keeps working', async (t) => {
    const session = h2connect(server.http.port);
    t.after(() => session.destroy());
    for (let i = 0; i < 20; i++) {
      // 4 MiB announced and sent as fast as allowed: the 401 must not wait for it.
      const { status, written } = await refusedUpload(session, '/publish/h2.auth', 4096 * KiB, { 'content-length': 4096 * KiB });
      assert.equal(status, 401, `#${i}`);
      assert.ok(written < 4096 * KiB, `#${i}: the body was not consumed (${written} bytes handed to the stream)`);
      const wrong = await refusedUpload(session, '/subscribe/h2.auth', 512 * KiB, { authorization: 'Bearer wrong' });
      assert.equal(wrong.status, 401);
    }
    assert.equal(await publish(session, 'h2.auth', 'after', { authorization: `Bearer ${TOKEN}` }), 201);
    assert.equal(server.broker.topicStats('h2.auth')!.ready, 1);
  });
});
