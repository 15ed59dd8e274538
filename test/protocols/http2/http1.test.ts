/**
 * Issue 14, item 1: HTTP/1.1 beside HTTP/2 on the same port, against real in-process servers.
 * Over TLS by ALPN (`http/1.1` or none), with `--no-tls` by the first bytes (h2c preface or a
 * request line). Clients: curl `--http1.1`, Node's global `fetch` (undici, HTTP/1.1 only),
 * node:http / node:https, raw sockets, and node:http2 on the same port for the HTTP/2 side.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import type { RunningServer } from '../../../src/server/server.js';
import { classifyFirstBytes, H2C_PREFACE } from '../../../src/protocols/http2/h2c-sniffer.js';
import { devCert, h2connect, h2request, letTimePass, removeDir, runCommand, startInProcess, tempDir, waitFor } from '../../helpers/index.js';

interface CurlResult {
  version: string;
  status: number;
  body: string;
}

/** Runs curl with `args`; resolves with the negotiated HTTP version, the status and the body. */
async function curl(args: string[]): Promise<CurlResult> {
  const marker = '\n--curl-meta--';
  const res = await runCommand('curl', ['-sS', '-w', `${marker}%{http_version} %{http_code}`, ...args]);
  const out = res.stdout.toString();
  assert.equal(res.code, 0, `curl ${args.join(' ')} failed: ${res.stderr}`);
  const at = out.lastIndexOf(marker);
  const [version, status] = out.slice(at + marker.length).split(' ');
  return { version: version!, status: Number(status), body: out.slice(0, at) };
}

/** One HTTP/1.1 request with node:http (h2c server) or node:https (TLS); resolves with status, headers, body. */
function request1(
  port: number,
  method: string,
  urlPath: string,
  opts: { tls?: boolean; headers?: Record<string, string>; body?: string; agent?: http.Agent } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; httpVersion: string }> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, method, path: urlPath, headers: opts.headers, agent: opts.agent };
    const req = opts.tls === true
      ? https.request({ ...options, rejectUnauthorized: false })
      : http.request(options);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, httpVersion: res.httpVersion }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The `code` of a JSON error body. */
function codeOf(body: string): string {
  return (JSON.parse(body) as { code: string }).code;
}

describe('--no-tls: HTTP/1.1 and h2c on one port', () => {
  let dir: string;
  let server: RunningServer;
  let port: number;
  before(async () => {
    dir = tempDir('mq-http1-');
    server = await startInProcess(dir, ['--fsync', 'never']);
    port = server.http.port;
  });
  after(async () => {
    await server.close();
    removeDir(dir);
  });

  test('curl --http1.1: publish, topics, healthz, metrics, delete; h2c on the same port still works', async () => {
    const base = `http://127.0.0.1:${port}`;
    assert.deepEqual(await curl(['--http1.1', '-X', 'POST', '--data-binary', 'hello over 1.1', `${base}/publish/h1.curl`]), {
      version: '1.1',
      status: 201,
      body: '',
    });
    const long = 'y'.repeat(255);
    assert.equal((await curl(['--http1.1', '--data-binary', 'x', `${base}/publish/${long}`])).status, 201);
    const topics = await curl(['--http1.1', `${base}/topics`]);
    assert.equal(topics.version, '1.1');
    const stats = JSON.parse(topics.body) as { topic: string; ready: number }[];
    assert.equal(stats.find((s) => s.topic === 'h1.curl')?.ready, 1);
    assert.deepEqual(await curl(['--http1.1', `${base}/healthz`]), { version: '1.1', status: 200, body: '{"status":"ok"}' });
    const metrics = await curl(['--http1.1', `${base}/metrics`]);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^miniqueue_topic_published_total\{topic="h1\.curl"\} 1$/m);
    // DELETE of a 255-byte name: Fastify's default maxParamLength (100) used to answer 414.
    const deleted = await curl(['--http1.1', '-X', 'DELETE', `${base}/${long}`]);
    assert.deepEqual([deleted.status, JSON.parse(deleted.body)], [200, { topic: long, deleted: true }]);

    // The same port, HTTP/2 with prior knowledge (the raw publish path and a Fastify route).
    assert.equal((await curl(['--http2-prior-knowledge', '--data-binary', 'hello over h2c', `${base}/publish/h1.curl`])).version, '2');
    const session = h2connect(port);
    try {
      assert.equal((await h2request(session, 'POST', '/publish/h1.curl', 'node:http2')).status, 201);
      const h2topics = await h2request(session, 'GET', '/topics');
      assert.equal((JSON.parse(h2topics.body.toString()) as { topic: string; ready: number }[]).find((s) => s.topic === 'h1.curl')?.ready, 3);
    } finally {
      session.close();
    }
    const h2delete = await curl(['--http2-prior-knowledge', '-X', 'DELETE', `${base}/h1.curl`]);
    assert.deepEqual([h2delete.version, h2delete.status], ['2', 200]);
  });

  test("Node's fetch (undici, HTTP/1.1): publish bytes with and without a body, read them back over RESP", async () => {
    const base = `http://127.0.0.1:${port}`;
    const payload = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x80]);
    const res = await fetch(`${base}/publish/h1.fetch`, { method: 'POST', body: payload });
    assert.equal(res.status, 201);
    assert.equal(await res.text(), '');
    const empty = await fetch(`${base}/publish/h1.fetch`, { method: 'POST' });
    assert.equal(empty.status, 201);
    const chunked = await fetch(`${base}/publish/h1.fetch`, {
      method: 'POST',
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('chunk-'));
          controller.enqueue(new TextEncoder().encode('ed'));
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 201);
    const ready = server.broker.inspect('h1.fetch')!.ready.map((m) => m.payload);
    assert.deepEqual(ready, [payload, Buffer.alloc(0), Buffer.from('chunk-ed')]);

    const topics = (await (await fetch(`${base}/topics`)).json()) as { topic: string; ready: number }[];
    assert.equal(topics.find((s) => s.topic === 'h1.fetch')?.ready, 3);
    const bad = await fetch(`${base}/publish/no%2Fslash`, { method: 'POST', body: 'x' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, 'MQ_ERR_BAD_TOPIC');
    const tooLarge = await fetch(`${base}/publish/h1.fetch`, { method: 'POST', body: Buffer.alloc(1024 * 1024 + 1) });
    assert.equal(tooLarge.status, 413);
    assert.equal(((await tooLarge.json()) as { code: string }).code, 'MQ_ERR_TOO_LARGE');
    const deleted = await fetch(`${base}/h1.fetch`, { method: 'DELETE' });
    assert.deepEqual(await deleted.json(), { topic: 'h1.fetch', deleted: true });
  });

  test('subscribe over HTTP/1.1 answers 505 MQ_ERR_HTTP2_REQUIRED at once (without waiting for the body) and closes', async () => {
    // A streaming body that never ends, as a subscriber sends: the answer must not wait for it.
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.write('POST /subscribe/h1.sub HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n8\r\n"INIT"\r\n\r\n');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    await once(socket, 'close');
    const [head, body] = received.split('\r\n\r\n') as [string, string];
    assert.match(head, /^HTTP\/1\.1 505 HTTP Version Not Supported\r\n/);
    assert.match(head, /\r\nconnection: close/i);
    assert.equal(codeOf(body), 'MQ_ERR_HTTP2_REQUIRED');
    assert.match((JSON.parse(body) as { error: string }).error, /needs HTTP\/2/);
    assert.equal(server.broker.topicStats('h1.sub'), undefined, 'no consumer was attached');

    const viaCurl = await curl(['--http1.1', '-X', 'POST', '--data-binary', '"INIT"\n', `http://127.0.0.1:${port}/subscribe/h1.sub`]);
    assert.equal(viaCurl.status, 505);
    assert.equal(codeOf(viaCurl.body), 'MQ_ERR_HTTP2_REQUIRED');
  });

  test('the first bytes decide: a request line sent one byte at a time, and the preface classification', async () => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    const closed = once(socket, 'close');
    // Starts like the preface ("PRI"), so the sniffer has to wait past the first bytes.
    const request = Buffer.from('PRIX /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    for (const byte of request) {
      if (socket.destroyed) break;
      socket.write(Buffer.of(byte));
      await new Promise((r) => setImmediate(r));
    }
    await closed;
    // PRIX is not a method Node knows: the HTTP/1.1 parser (not HTTP/2) answered it.
    assert.match(received, /^HTTP\/1\.1 400 Bad Request\r\n/);

    // The HTTP/2 preface one byte at a time: the server answers with its SETTINGS frame only
    // once the whole preface is in.
    const h2 = net.connect(port, '127.0.0.1');
    h2.on('error', () => {});
    await once(h2, 'connect');
    const frames: Buffer[] = [];
    h2.on('data', (d: Buffer) => frames.push(d));
    for (const byte of H2C_PREFACE) {
      assert.equal(frames.length, 0, 'nothing is answered before the preface is complete');
      h2.write(Buffer.of(byte));
      await letTimePass(1); // each byte in a read of its own on the server
    }
    h2.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])); // an empty SETTINGS frame
    await waitFor(() => Buffer.concat(frames).length >= 9);
    assert.equal(Buffer.concat(frames)[3], 0x04, 'the first frame from the server is SETTINGS');
    h2.destroy();

    const get = Buffer.from('GET /healthz HTTP/1.1\r\n');
    assert.equal(classifyFirstBytes(get.subarray(0, 1)), 'http/1.1');
    assert.equal(classifyFirstBytes(Buffer.from('PRI * HTTP/2.0\r\n')), undefined);
    assert.equal(classifyFirstBytes(Buffer.from('PRI * HTTP/1.1\r\n')), 'http/1.1');
    assert.equal(classifyFirstBytes(H2C_PREFACE), 'h2c');
    assert.equal(classifyFirstBytes(Buffer.concat([H2C_PREFACE, Buffer.from([0, 0, 0, 4])])), 'h2c');
    for (let n = 0; n < H2C_PREFACE.length; n++) assert.equal(classifyFirstBytes(H2C_PREFACE.subarray(0, n)), undefined, `prefix of ${n} bytes`);
  });

  test('an idle HTTP/1.1 keep-alive connection does not hold up close()', async () => {
    const db = tempDir('mq-http1-close-');
    const other = await startInProcess(db, ['--fsync', 'never']);
    try {
      const agent = new http.Agent({ keepAlive: true });
      const res = await request1(other.http.port, 'POST', '/publish/h1.close', { body: 'x', agent });
      assert.equal(res.status, 201);
      assert.equal(res.headers.connection, 'keep-alive');
      await waitFor(() => agent.freeSockets[Object.keys(agent.freeSockets)[0] ?? '']?.length === 1);
      const started = Date.now();
      await other.close();
      assert.ok(Date.now() - started < 2000, `close() took ${Date.now() - started} ms`);
      agent.destroy();
    } finally {
      await other.close();
      removeDir(db);
    }
  });
});

describe('TLS: ALPN h2 or http/1.1 on one port', () => {
  let dir: string;
  let server: RunningServer;
  let port: number;
  let certPath: string;
  before(async () => {
    dir = tempDir('mq-http1-tls-');
    const pair = await devCert(dir);
    certPath = path.join(dir, 'certs', 'cert.pem');
    server = await startInProcess(path.join(dir, 'db'), ['--fsync', 'never'], pair);
    port = server.http.port;
  });
  after(async () => {
    await server.close();
    removeDir(dir);
  });

  test('curl --http1.1 -k publishes (201 over HTTP/1.1), curl --http2 -k still negotiates h2', async () => {
    const base = `https://127.0.0.1:${port}`;
    assert.deepEqual(await curl(['--http1.1', '-k', '--data-binary', 'over tls 1.1', `${base}/publish/h1.tls`]), { version: '1.1', status: 201, body: '' });
    assert.deepEqual(await curl(['--http2', '-k', '--data-binary', 'over h2', `${base}/publish/h1.tls`]), { version: '2', status: 201, body: '' });
    const topics = await curl(['--http1.1', '-k', `${base}/topics`]);
    assert.equal(topics.version, '1.1');
    assert.equal((JSON.parse(topics.body) as { topic: string; ready: number }[]).find((s) => s.topic === 'h1.tls')?.ready, 2);
    const metrics = await curl(['--http1.1', '-k', `${base}/metrics`]);
    assert.match(metrics.body, /^miniqueue_topic_published_total\{topic="h1\.tls"\} 2$/m);
    const sub = await curl(['--http1.1', '-k', '--data-binary', '"INIT"\n', `${base}/subscribe/h1.tls`]);
    assert.deepEqual([sub.version, sub.status, codeOf(sub.body)], ['1.1', 505, 'MQ_ERR_HTTP2_REQUIRED']);
  });

  test("Node's fetch over TLS, trusting the certificate (NODE_EXTRA_CA_CERTS), publishes and reads /topics", async () => {
    const script = `
      const base = process.argv[1];
      const res = await fetch(base + '/publish/h1.fetch.tls', { method: 'POST', body: 'via fetch' });
      const topics = await (await fetch(base + '/topics')).json();
      console.log(JSON.stringify({ status: res.status, ready: topics.find((t) => t.topic === 'h1.fetch.tls')?.ready }));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, `https://localhost:${port}`], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: certPath, NODE_TLS_REJECT_UNAUTHORIZED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(child, 'close')) as [number];
    assert.equal(code, 0, err);
    assert.deepEqual(JSON.parse(out), { status: 201, ready: 1 });
    assert.equal(server.broker.inspect('h1.fetch.tls')!.ready[0]!.payload.toString(), 'via fetch');
  });

  test('a TLS client without ALPN is served HTTP/1.1; one offering only h2 gets h2', async () => {
    const plain = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    plain.on('error', () => {});
    await once(plain, 'secureConnect');
    assert.equal(plain.alpnProtocol, false);
    let received = '';
    plain.on('data', (d: Buffer) => (received += d.toString('latin1')));
    plain.write('GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    await once(plain, 'close');
    assert.match(received, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\{"status":"ok"\}$/);

    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    try {
      await once(session, 'connect');
      assert.equal(session.alpnProtocol, 'h2');
      assert.equal((await h2request(session, 'GET', '/healthz')).status, 200);
    } finally {
      session.close();
    }
  });
});

describe('HTTP/1.1 and the connection rules of issue 6', () => {
  test('--max-connections: an HTTP/1.1 connection over the limit gets 503 MQ_ERR_MAX_CONNECTIONS (h2c port and TLS), counted as a refusal', async (t) => {
    const dir = tempDir('mq-http1-max-');
    const pair = await devCert(dir);
    const h2c = await startInProcess(path.join(dir, 'db1'), ['--max-connections', '1', '--fsync', 'never']);
    const secure = await startInProcess(path.join(dir, 'db2'), ['--max-connections', '1', '--fsync', 'never'], pair);
    const holders: http2.ClientHttp2Session[] = [];
    t.after(async () => {
      for (const s of holders) s.destroy();
      await Promise.all([h2c.close(), secure.close()]);
      removeDir(dir);
    });
    // Fill the one place of each server with an HTTP/2 session.
    const holder = h2connect(h2c.http.port);
    holders.push(holder);
    assert.equal((await h2request(holder, 'GET', '/healthz')).status, 200);
    const secureHolder = http2.connect(`https://127.0.0.1:${secure.http.port}`, { rejectUnauthorized: false });
    secureHolder.on('error', () => {});
    holders.push(secureHolder);
    assert.equal((await h2request(secureHolder, 'GET', '/healthz')).status, 200);

    for (const [server, useTls] of [[h2c, false], [secure, true]] as const) {
      const res = await request1(server.http.port, 'POST', '/publish/h1.refused', { tls: useTls, body: 'never' });
      assert.equal(res.status, 503, `tls=${useTls}`);
      assert.equal(res.headers.connection, 'close');
      assert.equal(codeOf(res.body), 'MQ_ERR_MAX_CONNECTIONS');
      assert.equal(server.broker.topicStats('h1.refused'), undefined);
      assert.equal(server.admission.refused.http2.max_connections, 1);
    }

    // Once the place is free, HTTP/1.1 is served.
    holder.close();
    await waitFor(() => h2c.admission.openTotal === 0);
    const ok = await request1(h2c.http.port, 'POST', '/publish/h1.refused', { body: 'now' });
    assert.equal(ok.status, 201);
  });

  test('--auth-token over HTTP/1.1: 401 without or with a wrong token, 201 with it; an idle connection without a good request is closed at the deadline', async (t) => {
    const dir = tempDir('mq-http1-auth-');
    const token = 'h1-token-5d2e';
    const server = await startInProcess(dir, ['--auth-token', token, '--fsync', 'never']);
    t.after(async () => {
      await server.close();
      removeDir(dir);
    });
    const port = server.http.port;
    const missing = await request1(port, 'POST', '/publish/h1.auth', { body: 'x' });
    assert.deepEqual([missing.status, codeOf(missing.body)], [401, 'MQ_ERR_NOAUTH']);
    assert.match(String(missing.headers['www-authenticate']), /^Bearer realm="miniqueue"/);
    const wrong = await request1(port, 'POST', '/publish/h1.auth', { body: 'x', headers: { authorization: 'Bearer nope' } });
    assert.deepEqual([wrong.status, codeOf(wrong.body)], [401, 'MQ_ERR_UNAUTHORIZED']);
    const sub = await request1(port, 'POST', '/subscribe/h1.auth', { body: '"INIT"\n' });
    assert.equal(sub.status, 401, 'the token is checked before the HTTP/2 hint');
    const good = await request1(port, 'POST', '/publish/h1.auth', { body: 'x', headers: { authorization: `Bearer ${token}` } });
    assert.equal(good.status, 201);
    assert.equal((await request1(port, 'GET', '/healthz')).status, 200, '/healthz stays open');

    server.admission.authDeadlineMs = 300;
    const refusedBefore = server.admission.refused.http2.unauthorized;
    const idle = net.connect(port, '127.0.0.1');
    idle.on('error', () => {});
    const authed = net.connect(port, '127.0.0.1');
    authed.on('error', () => {});
    t.after(() => {
      idle.destroy();
      authed.destroy();
    });
    await Promise.all([once(idle, 'connect'), once(authed, 'connect')]);
    // An HTTP/1.1 request line makes it an HTTP/1.1 connection; the request never completes.
    idle.write('GET /topics HTTP/1.1\r\nhost: x\r\n');
    let authedReply = '';
    authed.on('data', (d: Buffer) => (authedReply += d.toString('latin1')));
    authed.write(`GET /topics HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\n\r\n`);
    const started = Date.now();
    await once(idle, 'close');
    assert.ok(Date.now() - started >= 250, 'not before the deadline');
    assert.equal(server.admission.refused.http2.unauthorized, refusedBefore + 1);
    await waitFor(() => authedReply.includes('\r\n\r\n['));
    await letTimePass(400); // past the deadline again: the authorized connection must not be closed meanwhile
    assert.equal(authed.destroyed, false, 'the connection that made an authorized request is kept');
  });
});
