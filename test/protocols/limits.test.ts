/**
 * Limits of issue 6 (SPEC §7) against real in-process servers: `--max-connections` across both
 * listeners (RESP gets `-ERR max number of clients reached`, an HTTP/2 session a GOAWAY with
 * ENHANCE_YOUR_CALM), HTTP/2 connections counted from TCP accept (a TLS handshake that never
 * finishes holds a place, until the handshake timeout drops it), and the bound on a RESP connection's unsent output (a client that asks for
 * large messages and never reads them is disconnected, and what it held is NACKed).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Admission } from '../../src/protocols/admission.js';
import { startHttp2Listener } from '../../src/protocols/http2/server.js';
import { MAX_CONCURRENT_STREAMS } from '../../src/protocols/http2/server.js';
import { RESP_MAX_OUTPUT_BYTES } from '../../src/protocols/resp/connection.js';
import { devCert, encodeCommand, h2connect, h2request, harness, letTimePass, recordingLogger, removeDir, type Reply, RespConn, silentLogger, startInProcess, tempDir, waitFor } from '../helpers/index.js';

describe('--max-connections', () => {
  test('counts RESP connections and HTTP/2 sessions together; the one over the limit is refused clearly and counted', async (t) => {
    const dir = tempDir('mq-maxconn-');
    const server = await startInProcess(dir, ['--max-connections', '3', '--fsync', 'never']);
    const conns: RespConn[] = [];
    const sessions: http2.ClientHttp2Session[] = [];
    t.after(async () => {
      for (const c of conns) c.close();
      for (const s of sessions) s.destroy();
      await server.close();
      removeDir(dir);
    });
    const respPort = server.resp!.port;

    conns.push(await RespConn.connect(respPort), await RespConn.connect(respPort));
    assert.equal(await conns[0]!.send('PING'), 'PONG');
    assert.equal(await conns[1]!.send('PING'), 'PONG');
    const session = h2connect(server.http.port);
    sessions.push(session);
    assert.equal((await h2request(session, 'GET', '/healthz')).status, 200);
    await waitFor(() => server.admission.openTotal === 3);

    // RESP over the limit: Redis's error line, then the server closes the connection.
    const refused = net.connect(respPort, '127.0.0.1');
    refused.on('error', () => {});
    let received = '';
    refused.on('data', (d: Buffer) => (received += d.toString('latin1')));
    await once(refused, 'close');
    assert.equal(received, '-ERR max number of clients reached\r\n');

    // HTTP/2 over the limit: GOAWAY ENHANCE_YOUR_CALM with a readable reason; no request runs.
    const extra = http2.connect(`http://127.0.0.1:${server.http.port}`);
    sessions.push(extra);
    extra.on('error', () => {});
    // Not events.once: the session also emits 'error' (code 11), which would reject it.
    const goaway = new Promise<[number, number, Buffer | undefined]>((resolve) => extra.on('goaway', (code: number, last: number, data?: Buffer) => resolve([code, last, data])));
    const req = extra.request({ ':method': 'POST', ':path': '/publish/limits.refused' });
    const reqError = new Promise<Error>((resolve) => req.on('error', resolve));
    req.end('never published');
    const [code, lastStreamId, debug] = await goaway;
    assert.equal(code, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    assert.equal(lastStreamId, 0, 'no stream was accepted');
    assert.equal(debug?.toString(), 'max number of clients reached');
    assert.match((await reqError).message, /error code 11|GOAWAY/i);
    await new Promise((resolve) => (extra.closed ? resolve(undefined) : extra.on('close', resolve)));
    assert.equal(server.broker.topicStats('limits.refused'), undefined);

    assert.equal(server.admission.refused.resp.max_connections, 1);
    assert.equal(server.admission.refused.http2.max_connections, 1);
    assert.equal(server.admission.openTotal, 3, 'refused connections never counted as open');
    const metrics = await h2request(session, 'GET', '/metrics');
    assert.match(metrics.body.toString(), /^miniqueue_refusals_total\{protocol="resp",reason="max_connections"\} 1$/m);
    assert.match(metrics.body.toString(), /^miniqueue_refusals_total\{protocol="http2",reason="max_connections"\} 1$/m);
    assert.match(metrics.body.toString(), /^miniqueue_connections\{protocol="resp"\} 2$/m);

    // A closed connection frees its place, for either protocol.
    conns[0]!.close();
    await waitFor(() => server.admission.openTotal === 2);
    const next = await RespConn.connect(respPort);
    conns.push(next);
    assert.equal(await next.send('PING'), 'PONG');
    next.close();
    await waitFor(() => server.admission.openTotal === 2);
    const again = h2connect(server.http.port);
    sessions.push(again);
    assert.equal((await h2request(again, 'POST', '/publish/limits.ok', 'x')).status, 201);
  });
});

/** A raw TCP connection to `port` that never sends a byte (no TLS ClientHello): a slowloris. */
async function silentSocket(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

/** Connects a TLS HTTP/2 session (self-signed certificate accepted). */
function h2tlsConnect(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
  session.on('error', () => {});
  return session;
}

describe('--max-connections counts HTTP/2 connections from TCP accept', () => {
  test('TLS connections that never send a ClientHello hold places: the next HTTP/2 client gets GOAWAY ENHANCE_YOUR_CALM, RESP its error; once they close, clients get in', async (t) => {
    const dir = tempDir('mq-maxconn-tls-');
    const pair = await devCert(dir);
    const server = await startInProcess(path.join(dir, 'db'), ['--max-connections', '2', '--fsync', 'never'], pair);
    const raws: net.Socket[] = [];
    const sessions: http2.ClientHttp2Session[] = [];
    const conns: RespConn[] = [];
    t.after(async () => {
      for (const s of raws) s.destroy();
      for (const s of sessions) s.destroy();
      for (const c of conns) c.close();
      await server.close();
      removeDir(dir);
    });
    const port = server.http.port;

    raws.push(await silentSocket(port), await silentSocket(port));
    await waitFor(() => server.admission.open.http2 === 2);
    t.diagnostic(`2 silent TCP connections open: admission.open = ${JSON.stringify(server.admission.open)}`);

    // A real TLS client completes its handshake, then is refused with the clear GOAWAY.
    const extra = h2tlsConnect(port);
    sessions.push(extra);
    // Not events.once: the session also emits 'error' (code 11), which would reject it.
    const goaway = new Promise<[number, number, Buffer | undefined]>((resolve) => extra.on('goaway', (code: number, last: number, data?: Buffer) => resolve([code, last, data])));
    const req = extra.request({ ':method': 'POST', ':path': '/publish/limits.tls.refused' });
    const reqError = new Promise<Error>((resolve) => req.on('error', resolve));
    req.end('never published');
    const [code, lastStreamId, debug] = await goaway;
    assert.equal(code, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    assert.equal(lastStreamId, 0, 'no stream was accepted');
    assert.equal(debug?.toString(), 'max number of clients reached');
    const err = await reqError;
    assert.match(err.message, /error code 11|GOAWAY/i);
    t.diagnostic(`third HTTP/2 client: GOAWAY code ${code} (ENHANCE_YOUR_CALM), last stream ${lastStreamId}, debug "${debug?.toString()}"; request error: ${err.message}`);
    await new Promise((resolve) => (extra.closed ? resolve(undefined) : extra.on('close', resolve)));
    assert.equal(server.broker.topicStats('limits.tls.refused'), undefined);

    // The budget is shared: RESP is refused too while the silent sockets hold both places.
    const refusedResp = net.connect(server.resp!.port, '127.0.0.1');
    refusedResp.on('error', () => {});
    let received = '';
    refusedResp.on('data', (d: Buffer) => (received += d.toString('latin1')));
    await once(refusedResp, 'close');
    assert.equal(received, '-ERR max number of clients reached\r\n');

    assert.equal(server.admission.refused.http2.max_connections, 1);
    assert.equal(server.admission.refused.resp.max_connections, 1);
    assert.deepEqual(server.admission.open, { http2: 2, resp: 0 }, 'refused connections never counted as open');
    assert.equal(server.admission.accepted.http2, 2);

    // Closing the silent sockets gives their places back, exactly once each.
    for (const s of raws) s.destroy();
    await waitFor(() => server.admission.openTotal === 0);
    const client = h2tlsConnect(port);
    sessions.push(client);
    const published = await h2request(client, 'POST', '/publish/limits.tls.ok', 'x');
    assert.equal(published.status, 201);
    const resp = await RespConn.connect(server.resp!.port);
    conns.push(resp);
    assert.equal(await resp.send('PING'), 'PONG');
    assert.deepEqual(server.admission.open, { http2: 1, resp: 1 });
    t.diagnostic(`after closing the silent sockets: publish ${published.status}, RESP PING ok, admission.open = ${JSON.stringify(server.admission.open)}`);

    const metrics = (await h2request(client, 'GET', '/metrics')).body.toString();
    assert.match(metrics, /^miniqueue_connections\{protocol="http2"\} 1$/m);
    assert.match(metrics, /^miniqueue_connections\{protocol="resp"\} 1$/m);
    assert.match(metrics, /^miniqueue_connections_accepted_total\{protocol="http2"\} 3$/m);
    assert.match(metrics, /^miniqueue_refusals_total\{protocol="http2",reason="max_connections"\} 1$/m);
    assert.match(metrics, /^miniqueue_refusals_total\{protocol="resp",reason="max_connections"\} 1$/m);
    t.diagnostic(metrics.split('\n').filter((l) => /^miniqueue_(connections|refusals_total\{[^}]*max_connections)/.test(l)).join('; '));

    // Each connection is released once when it closes: nothing goes negative.
    client.close();
    resp.close();
    await waitFor(() => server.admission.openTotal === 0);
    await letTimePass(50); // a second release of a connection would come after the first: none may
    assert.deepEqual(server.admission.open, { http2: 0, resp: 0 });
  });

  test('a TLS handshake that never completes is dropped after the handshake timeout, and its place given back', async (t) => {
    const h = harness(t);
    const pair = await devCert(h.dir);
    const broker = h.open();
    const admission = new Admission({ maxConnections: 1, authToken: null });
    const handshakeTimeoutMs = 300;
    const listener = await startHttp2Listener({
      engine: broker,
      host: '127.0.0.1',
      port: 0,
      tls: pair,
      maxMessageBytes: 1 << 20,
      logger: silentLogger,
      admission,
      tlsHandshakeTimeoutMs: handshakeTimeoutMs,
    });
    t.after(() => listener.close());

    const started = Date.now();
    const raw = await silentSocket(listener.port);
    await waitFor(() => admission.open.http2 === 1);
    await once(raw, 'close');
    const elapsedMs = Date.now() - started;
    assert.ok(elapsedMs >= handshakeTimeoutMs - 50, `dropped after ${elapsedMs} ms, not before the timeout`);
    await waitFor(() => admission.open.http2 === 0);
    t.diagnostic(`silent TLS connection dropped by the server after ${elapsedMs} ms (handshake timeout ${handshakeTimeoutMs} ms)`);

    const session = h2tlsConnect(listener.port);
    t.after(() => session.destroy());
    assert.equal((await h2request(session, 'GET', '/healthz')).status, 200);
    assert.equal(admission.refused.http2.max_connections, 0);
  });

  test('h2c: a connection that has sent nothing yet holds a place too', async (t) => {
    const dir = tempDir('mq-maxconn-h2c-');
    const server = await startInProcess(dir, ['--max-connections', '1', '--fsync', 'never']);
    const raw = await silentSocket(server.http.port);
    t.after(async () => {
      raw.destroy();
      await server.close();
      removeDir(dir);
    });
    await waitFor(() => server.admission.open.http2 === 1);
    const extra = h2connect(server.http.port);
    t.after(() => extra.destroy());
    const goaway = new Promise<number>((resolve) => extra.on('goaway', (code: number) => resolve(code)));
    extra.request({ ':method': 'GET', ':path': '/healthz' }).on('error', () => {}).end();
    assert.equal(await goaway, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    assert.equal(server.admission.refused.http2.max_connections, 1);
    raw.destroy();
    await waitFor(() => server.admission.openTotal === 0);
    const again = h2connect(server.http.port);
    t.after(() => again.destroy());
    assert.equal((await h2request(again, 'GET', '/healthz')).status, 200);
  });
});

const MIB = 1024 * 1024;

/** Publishes `count` messages of `size` bytes over one pipelined RESP connection. */
async function fill(port: number, topic: string, count: number, size: number): Promise<void> {
  const c = await RespConn.connect(port);
  const payload = Buffer.alloc(size, 0x61);
  const replies = await c.pipeline(Array.from({ length: count }, () => ['PUBLISH', topic, payload]));
  assert.ok(replies.every((r) => r === 'OK'), 'every publish answered OK');
  c.close();
}

/** A raw socket that sends `data` and then never reads a byte. */
async function neverReader(port: number, data: Buffer): Promise<{ socket: net.Socket; closed: Promise<unknown> }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.pause();
  const closed = once(socket, 'close');
  socket.write(data);
  return { socket, closed };
}

describe('HTTP/2 streams per connection', () => {
  test(`at most ${MAX_CONCURRENT_STREAMS} streams are open at once on one connection; further requests wait for a free one`, async (t) => {
    const dir = tempDir('mq-streams-');
    const server = await startInProcess(dir, ['--fsync', 'never']);
    const session = h2connect(server.http.port);
    t.after(async () => {
      session.destroy();
      await server.close();
      removeDir(dir);
    });
    await once(session, 'remoteSettings');
    assert.equal(session.remoteSettings.maxConcurrentStreams, MAX_CONCURRENT_STREAMS);
    // Fill every slot with a publish whose body never ends.
    const open: http2.ClientHttp2Stream[] = [];
    for (let i = 0; i < MAX_CONCURRENT_STREAMS; i++) {
      const req = session.request({ ':method': 'POST', ':path': '/publish/streams' });
      req.on('error', () => {});
      req.write('part');
      open.push(req);
    }
    await waitFor(() => open.every((req) => !req.pending)); // every slot taken: each stream has its id
    let answered = false;
    const extra = h2request(session, 'POST', '/publish/streams', 'extra').then((res) => {
      answered = true;
      return res;
    });
    await letTimePass(300); // the request over the limit must not be answered meanwhile
    assert.equal(answered, false, 'the request over the limit waits');
    open[0]!.end();
    assert.equal((await extra).status, 201, 'and runs once a stream is free');
    for (const req of open) req.close();
  });
});

describe('RESP input flood', () => {
  test('a client that pipelines commands endlessly and never reads stalls: the server stops reading, its memory stays bounded', async (t) => {
    const dir = tempDir('mq-flood-');
    const server = await startInProcess(dir, ['--fsync', 'never']);
    const socket = net.connect(server.resp!.port, '127.0.0.1');
    socket.on('error', () => {});
    t.after(async () => {
      socket.destroy();
      await server.close();
      removeDir(dir);
    });
    await once(socket, 'connect');
    socket.pause(); // never read a reply
    // PING with a 100-byte argument: nothing is stored, so any growth would be buffering.
    const chunk = Buffer.from(encodeCommand(['PING', 'x'.repeat(100)]).toString('latin1').repeat(512), 'latin1');
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    let written = 0;
    let closed = false;
    socket.once('close', () => (closed = true));
    // Write as fast as the server takes it; stop once a write has not drained for a second.
    for (;;) {
      if (closed) break;
      written += chunk.length;
      if (socket.write(chunk)) continue;
      const drained = await Promise.race([once(socket, 'drain').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1000))]);
      if (!drained) break;
      assert.ok(written < 512 * 1024 * 1024, 'the server kept reading 512 MiB without the client reading a reply');
    }
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    t.diagnostic(`flood: wrote ${(written / 1048576).toFixed(1)} MiB before the server stopped reading (closed=${closed}); heap growth ${(heapGrowth / 1048576).toFixed(1)} MiB`);
    assert.ok(heapGrowth < 96 * 1024 * 1024, `heap grew by ${heapGrowth} bytes`);
    // The server is fine for everyone else.
    const other = await RespConn.connect(server.resp!.port);
    assert.equal(await other.send('PING'), 'PONG');
    other.close();
  });
});

describe('RESP output bound', () => {
  test('a client that RESERVEs large messages and never reads is disconnected at the bound; its messages are NACKed', async (t) => {
    const dir = tempDir('mq-outbuf-');
    const { logger, lines } = recordingLogger();
    const server = await startInProcess(dir, ['--fsync', 'never'], null, logger);
    t.after(async () => {
      await server.close();
      removeDir(dir);
    });
    const port = server.resp!.port;
    const topic = 'limits.reserve';
    const count = 48; // 48 MiB of replies asked for, over the 32 MiB bound
    await fill(port, topic, count, MIB - 64);

    const reserve = encodeCommand(['RESERVE', topic]);
    const { closed } = await neverReader(port, Buffer.concat(Array.from({ length: count }, () => reserve)));
    await closed;

    const warn = lines.find((l) => l['level'] === 40 && /not reading/.test(String(l['msg'])));
    assert.ok(warn !== undefined, 'a warning names the disconnect');
    assert.equal(warn['limitBytes'], RESP_MAX_OUTPUT_BYTES);
    assert.ok((warn['unsentBytes'] as number) <= RESP_MAX_OUTPUT_BYTES + MIB, `unsent output stayed within the bound plus one reply: ${warn['unsentBytes']}`);
    assert.ok((warn['inFlight'] as number) > 0);
    assert.equal(server.admission.refused.resp.output_limit, 1);

    await waitFor(() => server.broker.topicStats(topic)!.inFlight === 0);
    assert.equal(server.broker.topicStats(topic)!.ready, count, 'every reserved message is ready again');

    // A client that reads gets the same messages, 16 MiB pipelined at a time, without being cut off.
    const reader = await RespConn.connect(port);
    t.after(() => reader.close());
    let got = 0;
    while (got < count) {
      const batch = Math.min(16, count - got);
      const replies = await reader.pipeline(Array.from({ length: batch }, () => ['RESERVE', topic]));
      for (const r of replies) {
        assert.ok(Array.isArray(r) && Buffer.isBuffer(r[1]) && r[1].length === MIB - 64);
        assert.equal(await reader.send('ACK', topic, String((r as Reply[])[0])), 'OK');
      }
      got += batch;
    }
    assert.equal(server.admission.refused.resp.output_limit, 1, 'the reading client was not cut off');
  });

  test('a SUBSCRIBE consumer that ACKs blindly and never reads is disconnected; what it held goes back', async (t) => {
    const dir = tempDir('mq-outbuf-sub-');
    const server = await startInProcess(dir, ['--fsync', 'never']);
    t.after(async () => {
      await server.close();
      removeDir(dir);
    });
    const port = server.resp!.port;
    const topic = 'limits.subscribe';
    const count = 48;
    await fill(port, topic, count, MIB - 64);

    const commands = [encodeCommand(['SUBSCRIBE', topic]), ...Array.from({ length: count }, () => encodeCommand(['ACK']))];
    const { closed } = await neverReader(port, Buffer.concat(commands));
    await closed;
    assert.equal(server.admission.refused.resp.output_limit, 1);
    await waitFor(() => server.broker.topicStats(topic)!.inFlight === 0 && server.broker.topicStats(topic)!.consumers === 0);
    const stats = server.broker.topicStats(topic)!;
    assert.ok(stats.acked < count, 'it was stopped before it got through every message');
    assert.equal(stats.ready + stats.acked, count, 'nothing is lost: each message is acked or ready again');
  });
});
