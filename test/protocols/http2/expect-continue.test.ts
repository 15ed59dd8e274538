/**
 * New-user pass (polish P5): `Expect: 100-continue` over HTTP/1.1. A publish whose
 * `content-length` is over `--max-message-bytes`, or a request without the right token, is
 * answered 413 / 401 at once, without `100 Continue`; an acceptable one still gets `100 Continue`.
 * Before, the server always sent `100 Continue` first, and curl, having started the upload the
 * server then stopped reading, sometimes reported status 100. Real in-process servers (h2c port
 * and TLS); clients node:http and curl.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureDevCert } from '../../../src/server/certs.js';
import type { RunningServer } from '../../../src/server/server.js';
import { asReserved, removeDir, RespConn, runCommand, startInProcess, tempDir } from '../../helpers/index.js';

interface ExpectResult {
  /** Whether the server sent `100 Continue` (node:http's 'continue' event). */
  continued: boolean;
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * POSTs with `Expect: 100-continue` and `content-length: body.length` (or `declaredBytes`), as curl
 * does for large bodies: the body is sent only after `100 Continue`.
 */
function postExpecting(port: number, urlPath: string, body: Buffer, opts: { declaredBytes?: number; token?: string } = {}): Promise<ExpectResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { expect: '100-continue', 'content-length': opts.declaredBytes ?? body.length };
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: urlPath, headers, agent: false });
    let continued = false;
    req.on('continue', () => {
      continued = true;
      req.end(body);
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        resolve({ continued, status: res.statusCode!, headers: res.headers, body: text });
        req.destroy();
      });
    });
    req.on('error', reject);
    // The headers now; the body waits for 100 Continue.
    req.flushHeaders();
  });
}

function codeOf(body: string): string {
  return (JSON.parse(body) as { code: string }).code;
}

describe('Expect: 100-continue on the --no-tls port (HTTP/1.1)', () => {
  let dir: string;
  let server: RunningServer;
  before(async () => {
    dir = tempDir('mq-expect-');
    server = await startInProcess(dir, ['--max-message-bytes', '1000']);
  });
  after(async () => {
    await server.close();
    removeDir(dir);
  });

  test('content-length over --max-message-bytes: 413 MQ_ERR_TOO_LARGE at once, no 100 Continue, connection closed; counted as a refusal', async () => {
    const before = server.admission.refused.http2.message_too_large;
    const res = await postExpecting(server.http.port, '/publish/expect.big', Buffer.alloc(1001));
    assert.equal(res.continued, false, 'no 100 Continue before the refusal');
    assert.equal(res.status, 413);
    assert.equal(codeOf(res.body), 'MQ_ERR_TOO_LARGE');
    assert.equal(res.headers.connection, 'close');
    assert.equal(server.admission.refused.http2.message_too_large, before + 1);
    // Any route: none takes a body over the limit.
    const topics = await postExpecting(server.http.port, '/topics', Buffer.alloc(0), { declaredBytes: 2_000_000 });
    assert.deepEqual([topics.continued, topics.status, codeOf(topics.body)], [false, 413, 'MQ_ERR_TOO_LARGE']);
  });

  test('an acceptable publish gets 100 Continue, then 201, and is stored', async () => {
    const res = await postExpecting(server.http.port, '/publish/expect.ok', Buffer.alloc(1000, 'a'));
    assert.equal(res.continued, true);
    assert.equal(res.status, 201);
    const c = await RespConn.connect(server.resp!.port);
    const reserved = asReserved(await c.send('RESERVE', 'expect.ok'));
    assert.deepEqual(reserved.payload, Buffer.alloc(1000, 'a'));
    c.close();
  });
});

describe('Expect: 100-continue with --auth-token (HTTP/1.1)', () => {
  let dir: string;
  let server: RunningServer;
  before(async () => {
    dir = tempDir('mq-expect-auth-');
    server = await startInProcess(dir, ['--auth-token', 'sesame']);
  });
  after(async () => {
    await server.close();
    removeDir(dir);
  });

  test('no or a wrong token: 401 at once without 100 Continue; the right token: 100 Continue, then 201', async () => {
    const before = server.admission.refused.http2.unauthorized;
    const missing = await postExpecting(server.http.port, '/publish/expect.auth', Buffer.from('hello'));
    assert.deepEqual([missing.continued, missing.status, codeOf(missing.body)], [false, 401, 'MQ_ERR_NOAUTH']);
    assert.equal(missing.headers['www-authenticate'], 'Bearer realm="miniqueue"');
    const wrong = await postExpecting(server.http.port, '/publish/expect.auth', Buffer.from('hello'), { token: 'nope' });
    assert.deepEqual([wrong.continued, wrong.status, codeOf(wrong.body)], [false, 401, 'MQ_ERR_UNAUTHORIZED']);
    assert.equal(server.admission.refused.http2.unauthorized, before + 2);
    const right = await postExpecting(server.http.port, '/publish/expect.auth', Buffer.from('hello'), { token: 'sesame' });
    assert.deepEqual([right.continued, right.status], [true, 201]);
    // /healthz stays open without a token, as without Expect.
    const health = await postExpecting(server.http.port, '/healthz', Buffer.alloc(0));
    assert.equal(health.continued, true);
    assert.notEqual(health.status, 401);
  });
});

describe('Expect: 100-continue over TLS, with curl --http1.1 (the reported case)', () => {
  let dir: string;
  let server: RunningServer;
  before(async () => {
    dir = tempDir('mq-expect-tls-');
    const cert = await ensureDevCert(
      { certPath: path.join(dir, 'certs', 'cert.pem'), keyPath: path.join(dir, 'certs', 'key.pem'), certExplicit: false },
      { warn: () => {} },
    );
    // Over curl's 1 MiB threshold for sending Expect, both ways.
    server = await startInProcess(path.join(dir, 'db'), ['--max-message-bytes', '3000000'], cert);
    fs.writeFileSync(path.join(dir, 'big'), Buffer.alloc(4_000_000));
    fs.writeFileSync(path.join(dir, 'fits'), Buffer.alloc(2_000_000));
  });
  after(async () => {
    await server.close();
    removeDir(dir);
  });

  /** curl -v upload of `file`: the status curl reports and whether it saw `100 Continue`. */
  async function curlUpload(file: string, topic: string): Promise<{ status: string; continued: boolean; expectSent: boolean }> {
    const url = `https://127.0.0.1:${server.http.port}/publish/${topic}`;
    const res = await runCommand('curl', ['-sk', '-v', '--http1.1', '-X', 'POST', url, '--data-binary', `@${path.join(dir, file)}`, '-o', '/dev/null', '-w', '%{http_code}']);
    assert.equal(res.code, 0, res.stderr);
    return {
      status: res.stdout.toString(),
      continued: /^< HTTP\/1\.1 100 Continue/m.test(res.stderr),
      expectSent: /^> Expect: 100-continue/im.test(res.stderr),
    };
  }

  test('a 4 MB upload over a 3 MB limit: curl gets 413 without 100 Continue; a 2 MB one gets 100 Continue and 201', async () => {
    const refused = await curlUpload('big', 'expect.tls');
    assert.ok(refused.expectSent, 'curl asked for 100-continue');
    assert.deepEqual([refused.status, refused.continued], ['413', false]);
    const fits = await curlUpload('fits', 'expect.tls');
    assert.ok(fits.expectSent, 'curl asked for 100-continue');
    assert.deepEqual([fits.status, fits.continued], ['201', true]);
  });
});
