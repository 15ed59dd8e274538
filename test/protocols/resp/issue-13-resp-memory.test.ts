/**
 * Issue 13, fault classes "Memory" and "Auth" on the RESP side, over a real in-process server and
 * raw node:net clients (and ioredis for the pipeline of AUTHs):
 *
 * - a multibulk header announcing huge lengths (the Redis CVE shape `*1000000\r\n$1000000000\r\n`)
 *   is refused on the header, before anything is buffered;
 * - many large arguments of a command that never finishes: the bytes one command may announce are
 *   bounded by `--max-command-bytes`, refused on the header that passes it;
 * - the input held across all connections is bounded by `--max-input-bytes`: the connection holding
 *   the most is cut off with a clear error, the others keep working;
 * - before AUTH a client cannot make the server buffer large arguments (Redis's unauthenticated
 *   limits: 10 arguments, 16 KiB each);
 * - a failed AUTH inside a pipeline keeps every reply in order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { RunningServer } from '../../../src/server/server.js';
import { describeReply, isErrorReply, removeDir, type Reply, RespConn, RespConnections, RespErrorReply, startInProcess, tempDir, waitFor } from '../../helpers/index.js';

const KiB = 1024;

/** The reply, which must be an error whose line starts with `prefix`, then the close. */
async function expectProtocolErrorAndClose(conn: RespConn, fragment: RegExp, what: string): Promise<void> {
  const reply = await conn.next(5000);
  assert.ok(isErrorReply(reply), `${what}: expected an error, got ${describeReply(reply)}`);
  assert.match(reply.line, /^ERR Protocol error: /, what);
  assert.match(reply.line, fragment, what);
  await conn.closed;
}

describe('issue 13: RESP memory bounds', () => {
  let dir: string;
  let server: RunningServer;
  const resp = new RespConnections(() => server.resp!.port);
  const connect = resp.connect;

  before(async () => {
    dir = tempDir('mq-i13-mem-');
    // 16 KiB messages, 100 KiB per command, 128 KiB across connections: small enough to reach fast.
    server = await startInProcess(dir, [
      '--fsync', 'never',
      '--max-message-bytes', '16KiB',
      '--max-command-bytes', '100KiB',
      '--max-input-bytes', '128KiB',
    ]);
  });

  after(async () => {
    resp.closeAll();
    await server.close();
    removeDir(dir);
  });

  test('a header announcing huge lengths is refused at once (the Redis CVE shape)', async () => {
    const a = await connect();
    await a.write('*1000000\r\n$1000000000\r\n');
    await expectProtocolErrorAndClose(a, /multibulk length 1000000 exceeds limit 1024/, '*1000000');
    const b = await connect();
    await b.write('*1024\r\n$1000000000\r\n');
    await expectProtocolErrorAndClose(b, /bulk length 1000000000 exceeds limit/, '$1000000000');
    assert.equal(server.resp!.inputBudget.totalBytes, 0);
  });

  test('many large arguments of a never-finished command: refused on the header past --max-command-bytes', async () => {
    const c = await connect();
    // PUBLISH with 1000 arguments of 16 KiB: each fits --max-message-bytes, together they would
    // be 16 MiB. Six fit in 100 KiB (96 KiB + the 7-byte name); the header of the seventh passes it.
    const arg = Buffer.alloc(16 * KiB, 0x61);
    let sent = Buffer.from('*1000\r\n$7\r\nPUBLISH\r\n');
    for (let i = 0; i < 6; i++) sent = Buffer.concat([sent, Buffer.from(`$${arg.length}\r\n`), arg, Buffer.from('\r\n')]);
    // Sent in small pieces, so the server sees the command grow chunk by chunk.
    for (let p = 0; p < sent.length; p += 7000) await c.write(sent.subarray(p, p + 7000));
    await waitFor(() => server.resp!.inputBudget.totalBytes >= 6 * 16 * KiB);
    assert.equal(c.isClosed, false, 'six arguments are within the bound');
    await c.write(`$${arg.length}\r\n`);
    await expectProtocolErrorAndClose(c, /--max-command-bytes 102400/, 'seventh argument');
    await waitFor(() => server.resp!.inputBudget.totalBytes === 0);
    assert.ok(server.admission.refused.resp.input_limit >= 1);
    // A full-size PUBLISH still works on a new connection.
    const ok = await connect();
    assert.equal(await ok.send('PUBLISH', 'mem.t', Buffer.alloc(16 * KiB, 1)), 'OK');
  });

  test('input held across connections: past --max-input-bytes the largest holder is cut off, the rest carry on', async () => {
    // Four connections each hold an unfinished command (never completed) of 20, 25, 30, 90 KiB of
    // payload. The fourth can only take the total past 128 KiB once it holds more than 53 KiB,
    // so whatever the chunking it is then the largest holder.
    const sizes = [20, 25, 30, 90];
    const holders: RespConn[] = [];
    let expected = 0;
    for (const k of sizes) {
      const c = await connect();
      holders.push(c);
      // Arguments of 15 KiB, then part of one more: k KiB of payload in all, under 100 KiB announced.
      const parts: Buffer[] = [Buffer.from('*8\r\n$7\r\nPUBLISH\r\n')];
      let held = 7;
      while (held + 15 * KiB <= k * KiB) {
        parts.push(Buffer.from(`$${15 * KiB}\r\n`), Buffer.alloc(15 * KiB, 0x62), Buffer.from('\r\n'));
        held += 15 * KiB;
      }
      const rest = k * KiB - held;
      parts.push(Buffer.from(`$${15 * KiB}\r\n`), Buffer.alloc(rest, 0x62));
      await c.write(Buffer.concat(parts));
      if (k === 90) break;
      // What a connection holds: the payloads of its complete arguments and the bytes of the partial one.
      expected += k * KiB;
      await waitFor(() => server.resp!.inputBudget.totalBytes === expected);
    }
    const fourth = holders[3]!;
    await expectProtocolErrorAndClose(fourth, /--max-input-bytes 131072/, 'largest holder');
    await waitFor(() => server.resp!.inputBudget.totalBytes === expected);
    for (const c of holders.slice(0, 3)) assert.equal(c.isClosed, false, 'smaller holders stay connected');
    // Others are served meanwhile, and a held command can still be finished.
    const other = await connect();
    assert.equal(await other.send('PING'), 'PONG');
    holders[0]!.close();
    holders[1]!.close();
    holders[2]!.close();
    await waitFor(() => server.resp!.inputBudget.totalBytes === 0);
  });
});

describe('issue 13: RESP before AUTH', () => {
  const TOKEN = 'i13-token';
  let dir: string;
  let server: RunningServer;
  const resp = new RespConnections(() => server.resp!.port);
  const connect = resp.connect;

  before(async () => {
    dir = tempDir('mq-i13-auth-');
    server = await startInProcess(dir, ['--fsync', 'never', '--auth-token', TOKEN]);
  });

  after(async () => {
    resp.closeAll();
    await server.close();
    removeDir(dir);
  });

  test('an unauthenticated client cannot make the server buffer a large argument', async () => {
    const c = await connect();
    // Announces 1 MiB (within --max-message-bytes) and sends none of it: refused on the header.
    await c.write('*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$1048576\r\n');
    await expectProtocolErrorAndClose(c, /unauthenticated bulk length/, 'large bulk before AUTH');
    const d = await connect();
    await d.write('*11\r\n');
    await expectProtocolErrorAndClose(d, /unauthenticated multibulk length/, 'many arguments before AUTH');
    assert.equal(server.resp!.inputBudget.totalBytes, 0);
  });

  test('a failed AUTH inside a pipeline keeps every reply in order; after AUTH large arguments are accepted', async () => {
    const c = await connect();
    const big = Buffer.alloc(100 * KiB, 0x63);
    const replies = await c.pipeline([
      ['PING'],
      ['AUTH', 'wrong'],
      ['PUBLISH', 'auth.pipe', 'x'],
      ['AUTH', 'default', 'wrong'],
      ['AUTH', TOKEN],
      ['PING'],
      ['PUBLISH', 'auth.pipe', big],
      ['AUTH', 'nope'],
      ['RESERVE', 'auth.pipe'],
    ]);
    const shown = replies.map(describeReply);
    assert.match(shown[0]!, /^-NOAUTH/, shown.join(' | '));
    assert.match(shown[1]!, /^-WRONGPASS/, shown.join(' | '));
    assert.match(shown[2]!, /^-NOAUTH/, shown.join(' | '));
    assert.match(shown[3]!, /^-WRONGPASS/, shown.join(' | '));
    assert.deepEqual(replies.slice(4, 7), ['OK', 'PONG', 'OK'], shown.join(' | '));
    // A wrong AUTH after a good one is refused, as Redis does, and the connection stays authenticated.
    assert.match(shown[7]!, /^-WRONGPASS/, shown.join(' | '));
    const reserved = replies[8] as Reply[];
    assert.ok(Array.isArray(reserved) && Buffer.isBuffer(reserved[1]) && reserved[1].equals(big), shown[8]);
    assert.ok(!(replies[8] instanceof RespErrorReply));
  });

  test('ioredis: a wrong password is refused with WRONGPASS; with the right one, auto-pipelined commands each get their own reply', async (t) => {
    const redis = new Redis({ port: server.resp!.port, host: '127.0.0.1', lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, password: 'wrong', retryStrategy: () => null });
    const errors: Error[] = [];
    redis.on('error', (e: Error) => errors.push(e));
    t.after(() => redis.disconnect());
    await redis.connect().catch(() => {});
    await waitFor(() => errors.some((e) => /WRONGPASS/.test(e.message)));
    const good = new Redis({ port: server.resp!.port, host: '127.0.0.1', password: TOKEN, enableAutoPipelining: true });
    t.after(() => good.disconnect());
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => good.call('ECHO', `n${i}`)));
    assert.deepEqual(results, Array.from({ length: 50 }, (_, i) => `n${i}`));
  });
});
