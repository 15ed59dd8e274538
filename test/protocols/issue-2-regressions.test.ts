/**
 * Regressions found by trying issue #2's build as a new user would (each named after what broke).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RunningServer } from '../../src/server/server.js';
import { asReserved, encodeCommand, h2connect, isErrorReply, removeDir, RespConn, startInProcess, tempDir } from '../helpers/index.js';

let server: RunningServer;
let dir: string;
let httpPort: number;
let respPort: number;

before(async () => {
  dir = tempDir();
  server = await startInProcess(dir);
  httpPort = server.http.port;
  respPort = server.resp!.port;
});

after(async () => {
  await server.close();
  removeDir(dir);
});

test('issue 2: an HTTP/2 body shorter than its content-length is never published', async () => {
  const session = h2connect(httpPort);
  const outcome = await new Promise<string>((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': '/publish/cut', 'content-length': '100' });
    req.on('response', (h) => resolve(`status ${String(h[':status'])}`));
    req.on('data', () => {});
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    // 50 bytes, then END_STREAM: an upload cut short.
    req.end(Buffer.alloc(50, 0x61));
  });
  session.destroy();
  assert.notEqual(outcome, 'status 201');
  assert.equal(server.broker.topicStats('cut'), undefined, 'nothing was published');
});

test('issue 2: SUBSCRIBE mode answers PING and refuses an early ACK while it waits on an empty topic', async (t) => {
  const c = await RespConn.connect(respPort);
  t.after(() => c.close());
  await c.write(encodeCommand(['SUBSCRIBE', 'sub.empty']));
  assert.equal(await c.send('PING'), 'PONG');
  assert.ok(isErrorReply(await c.send('ACK')), 'ACK with nothing in flight is an error at once');
  const p = await RespConn.connect(respPort);
  t.after(() => p.close());
  assert.equal(await p.send('PUBLISH', 'sub.empty', 'hello'), 'OK');
  assert.deepEqual(await c.next(), Buffer.from('hello'));
  assert.equal(await c.send('ACK'), 'OK');
  assert.equal(server.broker.topicStats('sub.empty')!.acked, 1);
  assert.equal(server.broker.topicStats('sub.empty')!.ready, 0, 'the early ACK did not settle a message');
  await c.write(encodeCommand(['QUIT']));
  assert.equal(await c.next(), 'OK');
  await c.closed;
});

test('issue 2: a protocol error with more bytes still arriving closes the connection and NACKs its reservations', async (t) => {
  const p = await RespConn.connect(respPort);
  t.after(() => p.close());
  assert.equal(await p.send('PUBLISH', 'garbage.nack', 'kept'), 'OK');
  const c = await RespConn.connect(respPort);
  t.after(() => c.close());
  asReserved(await c.send('RESERVE', 'garbage.nack'));
  assert.equal(server.broker.topicStats('garbage.nack')!.inFlight, 1);
  // A bulk length over the limit, then the bytes keep coming.
  await c.write('*3\r\n$7\r\nPUBLISH\r\n$1\r\nx\r\n$2000000\r\n');
  const reply = await c.next();
  assert.ok(isErrorReply(reply) && /Protocol error/.test(reply.line), String(reply));
  void c.write(Buffer.alloc(256 * 1024, 0x61)).catch(() => {});
  await c.closed;
  const again = asReserved(await p.send('RESERVE', 'garbage.nack', 2000));
  assert.deepEqual(again.payload, Buffer.from('kept'));
});
