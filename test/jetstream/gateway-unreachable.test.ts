/**
 * A gateway (`--engine jetstream`) started while NATS is down: it says so. A warn line names the
 * NATS URLs and the connect error (at most every 5 s while it retries), `/healthz` answers 503
 * naming NATS, a PUBLISH is answered `-ERR storage failure ...: NATS JetStream unreachable
 * (<urls>): ...`, INFO says loading:0 and aof_enabled:0. Once a NATS server comes up on the URL,
 * the gateway connects and serves.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { freePort, h2connect, h2request, isErrorReply, logLines, RespConn, startChild, waitFor, type ChildServer } from '../helpers/index.js';

let gw: ChildServer | undefined;
let nats: ChildProcess | undefined;
const storeDir = mkdtempSync(path.join(os.tmpdir(), 'mq-unreachable-'));

after(async () => {
  await gw?.kill('SIGKILL');
  if (nats !== undefined && nats.exitCode === null) {
    nats.kill('SIGKILL');
    await once(nats, 'exit');
  }
  rmSync(storeDir, { recursive: true, force: true });
});

test('NATS down at start: a warn line names the URLs and the error, /healthz 503 and publishes name NATS; it connects once NATS is up', async () => {
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  gw = await startChild(null, ['--engine', 'jetstream', '--nats', url, '--nats-stream', 'UNREACH'], 15_000, { until: 'listening' });
  const server = gw;
  const warns = (): Record<string, unknown>[] => logLines(server).filter((l) => l.level === 40 && String(l.msg).includes('NATS unreachable'));
  await waitFor(() => warns().length > 0, 10_000, 20, () => `a warn line; log: ${server.lines.join('\n')}`);
  const warn = warns()[0]!;
  assert.equal(warn.servers, url);
  assert.match(String(warn.msg), new RegExp(`NATS unreachable \\(${url}\\): connection refused; retrying$`, 'i'));

  const session = h2connect(server.httpPort);
  const conn = await RespConn.connect(server.respPort);
  try {
    const health = await h2request(session, 'GET', '/healthz');
    assert.equal(health.status, 503);
    const body = JSON.parse(health.body.toString()) as { status: string; code: string; error: string };
    assert.equal(body.code, 'MQ_ERR_STORAGE');
    assert.match(body.error, new RegExp(`NATS JetStream unreachable \\(${url}\\)`));
    const published = await h2request(session, 'POST', '/publish/t', 'x');
    assert.equal(published.status, 503);
    assert.match(published.body.toString(), /NATS JetStream unreachable/);
    const refused = await conn.send('PUBLISH', 't', 'x');
    assert.ok(isErrorReply(refused), `PUBLISH answered ${String(refused)}`);
    assert.match(refused.line, new RegExp(`^ERR storage failure.*NATS JetStream unreachable \\(${url}\\)`));
    // Consuming while NATS was never reached: refused with the reason, and the gateway stays up
    // (the first consumer used to crash it: an uncaught throw from the engine's openConsumer).
    const reserved = await conn.send('RESERVE', 't', '1000');
    assert.ok(isErrorReply(reserved), `RESERVE answered ${String(reserved)}`);
    assert.match(reserved.line, new RegExp(`^ERR storage failure.*NATS JetStream unreachable \\(${url}\\)`));
    const subscriber = await RespConn.connect(server.respPort);
    try {
      const subscribed = await subscriber.send('SUBSCRIBE', 't');
      assert.ok(isErrorReply(subscribed), `SUBSCRIBE answered ${String(subscribed)}`);
      assert.match(subscribed.line, /NATS JetStream unreachable/);
    } finally {
      subscriber.close();
    }
    const stream = session.request({ ':method': 'POST', ':path': '/subscribe/t' });
    stream.end('"INIT"\n');
    let streamed = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (streamed += d));
    await waitFor(() => streamed.includes('\n') || stream.closed, 10_000, 20, () => `an HTTP/2 subscribe answer; got ${JSON.stringify(streamed)}`);
    assert.match(streamed, /NATS JetStream unreachable/);
    assert.equal(server.proc.exitCode, null, 'the gateway is still running');
    const info = String(await conn.send('INFO', 'persistence'));
    assert.match(info, /loading:0/);
    assert.match(info, /aof_enabled:0/);
    // Attempts run every 250 ms; the warning is repeated at most every 5 s.
    assert.equal(warns().length, 1, warns().map((l) => l.msg).join('\n'));

    nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], { stdio: 'ignore' });
    await waitFor(() => logLines(server, 'jetstream: connected').length > 0, 15_000, 20, () => `"jetstream: connected"; log: ${server.lines.slice(-5).join('\n')}`);
    assert.equal(await conn.send('PUBLISH', 't', 'after'), 'OK');
    assert.equal((await h2request(session, 'GET', '/healthz')).status, 200);
  } finally {
    conn.close();
    session.close();
  }
});
