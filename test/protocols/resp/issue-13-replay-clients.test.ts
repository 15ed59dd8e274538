/**
 * Issue 13, fault class "RESP: client libraries connecting during replay". A child server is
 * started on a data directory with a long log; ioredis and node-redis connect as soon as the RESP
 * listener is logged, while the log is still being replayed, and must end up working: ioredis
 * through its ready check (INFO `loading:`), node-redis by retrying commands answered `-LOADING`
 * (as an application would). No message may be lost or reordered by the early connections.
 *
 * Whether the clients really meet a loading server depends on replay answering while it runs
 * (another helper's work, issue 13 finding 3); with a replay that blocks the event loop the
 * connections simply wait in the listen backlog. The test passes either way and says which one
 * it saw in a diagnostic.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { MAIN_JS, removeDir, RespConn, ROOT, startInProcess, tempDir, waitFor } from '../../helpers/index.js';

const COUNT = 60_000;

test('ioredis and node-redis connecting during replay end up working, nothing lost or reordered', { timeout: 90_000 }, async (t) => {
  const db = tempDir('mq-i13-replay-');
  t.after(() => removeDir(db));
  {
    const server = await startInProcess(db, ['--fsync', 'never']);
    const c = await RespConn.connect(server.resp!.port);
    for (let i = 0; i < COUNT; i += 5000) {
      const replies = await c.pipeline(Array.from({ length: 5000 }, (_, k) => ['PUBLISH', 'replay.t', `m${i + k}`]));
      assert.ok(replies.every((r) => r === 'OK'));
    }
    c.close();
    await server.close();
  }
  const proc = spawn(process.execPath, [MAIN_JS, '--port', '0', '--redis-port', '0', '--host', '127.0.0.1', '--db', db, '--no-tls', '--level', 'info'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => proc.kill('SIGKILL'));
  let ready = false;
  let loadingSeen = 0;
  const respPort = await new Promise<number>((resolve, reject) => {
    let buffered = '';
    proc.once('exit', (code) => reject(new Error(`server exited ${code}`)));
    proc.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = JSON.parse(buffered.slice(0, nl)) as { msg?: string; protocol?: string; port?: number };
        buffered = buffered.slice(nl + 1);
        if (line.msg === 'listening' && line.protocol === 'resp') resolve(line.port!);
        if (line.msg === 'miniqueue ready') ready = true;
      }
    });
  });
  const connectedBeforeReady = !ready;
  const redis = new Redis({ port: respPort, host: '127.0.0.1' });
  const ioErrors: Error[] = [];
  redis.on('error', (e: Error) => ioErrors.push(e));
  t.after(() => redis.disconnect());
  const nodeRedis = createClient({ socket: { port: respPort, host: '127.0.0.1', reconnectStrategy: 50 }, RESP: 2 });
  nodeRedis.on('error', () => {});
  t.after(() => nodeRedis.destroy());
  /** Runs a node-redis command, retrying while the server answers -LOADING. */
  async function withRetry<T>(run: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await run();
      } catch (err) {
        if (!/^LOADING/.test((err as Error).message)) throw err;
        loadingSeen++;
        await waitFor(() => ready, 60_000, 20, () => '"miniqueue ready"'); // logged once -LOADING has ended
      }
    }
  }
  await Promise.all([nodeRedis.connect(), redis.ping()]);
  const first = (await redis.call('RESERVE', 'replay.t')) as [string, Buffer, number];
  assert.equal(String(first[1]), 'm0', 'ioredis: the first message comes first');
  const second = (await withRetry(() => nodeRedis.sendCommand(['RESERVE', 'replay.t']))) as unknown as [string, string, number];
  assert.equal(String(second[1]), 'm1', 'node-redis: the second message comes next');
  assert.equal(await withRetry(() => nodeRedis.sendCommand(['PUBLISH', 'replay.t', 'late'])), 'OK');
  assert.equal(await redis.call('ACK', 'replay.t', first[0]), 'OK');
  assert.deepEqual(ioErrors.filter((e) => !/LOADING/.test(e.message)), []);
  t.diagnostic(
    `clients connected ${connectedBeforeReady ? 'before' : 'after'} "miniqueue ready"; node-redis retried ${loadingSeen} -LOADING answers` +
      (loadingSeen === 0 ? ' (none: replay did not answer while it ran, or ended first)' : ''),
  );
});
