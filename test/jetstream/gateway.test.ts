/**
 * `miniqueue --engine jetstream` as a process (issue 15): a gateway on a real three-node cluster
 * answers redis-cli and HTTP/2 with the same commands and routes as the log engine (started
 * without --db), and stops on SIGTERM with exit 0. Option mistakes exit 2 with one line naming the option.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { h2connect, h2request, MAIN_JS, startChild, type ChildServer } from '../helpers/index.js';
import { startCluster, type NatsCluster } from './cluster.js';

const run = promisify(execFile);
let cluster: NatsCluster;
let gw: ChildServer;

async function redis(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-p', String(port), ...args]);
  return stdout.trim();
}

before(async () => {
  cluster = await startCluster(3);
  gw = await startChild(null, ['--engine', 'jetstream', '--nats', cluster.urls, '--nats-stream', 'GW', '--nats-replicas', '3'], 30_000);
});

after(async () => {
  await gw?.kill('SIGKILL');
  await cluster?.stop();
});

test('redis-cli: PUBLISH, TOPICS, RESERVE with a timeout, ACK, DEL', async () => {
  assert.equal(await redis(gw.respPort, 'PUBLISH', 'jobs.a:b', 'hello'), 'OK');
  assert.equal(await redis(gw.respPort, 'TOPICS'), 'jobs.a:b');
  const reserved = (await run('sh', ['-c', `printf 'RESERVE jobs.a:b 3000\\r\\nACK jobs.a:b 1\\r\\nRESERVE jobs.a:b 300\\r\\n' | redis-cli -p ${gw.respPort}`])).stdout.split('\n');
  assert.deepEqual(reserved.slice(0, 4), ['1', 'hello', '0', 'OK']);
  assert.equal(await redis(gw.respPort, 'PUBLISH', 'gone', 'x'), 'OK');
  assert.equal(await redis(gw.respPort, 'DEL', 'gone'), '1');
  assert.equal(await redis(gw.respPort, 'DEL', 'gone'), '0');
});

test('HTTP/2: publish 201, subscribe stream delivers and ACKs, /topics, /healthz 200', async () => {
  const session = h2connect(gw.httpPort);
  try {
    assert.equal((await h2request(session, 'POST', '/publish/h2.topic', 'via-h2')).status, 201);
    const stream = session.request({ ':method': 'POST', ':path': '/subscribe/h2.topic' });
    stream.write('"INIT"\n');
    const line = await new Promise<string>((resolve) => {
      let buf = '';
      stream.on('data', (c: Buffer) => {
        buf += c.toString();
        if (buf.includes('\n')) resolve(buf.slice(0, buf.indexOf('\n')));
      });
    });
    const delivery = JSON.parse(line) as { msg: string };
    assert.equal(Buffer.from(delivery.msg, 'base64').toString(), 'via-h2');
    stream.write('"ACK"\n');
    stream.close();
    const health = await h2request(session, 'GET', '/healthz');
    assert.equal(health.status, 200);
    const topics = JSON.parse((await h2request(session, 'GET', '/topics')).body.toString()) as { topic: string }[];
    assert.ok(topics.some((t) => t.topic === 'h2.topic'));
  } finally {
    session.close();
  }
});

test('a body over the lowered limit (max_payload - 512) is refused 413 naming that limit, whatever its size and protocol', async () => {
  // A new user saw 1048064 for 1,048,065 bytes but 1048576 (--max-message-bytes) for 2,000,000.
  const limit = 1024 ** 2 - 512;
  const session = h2connect(gw.httpPort);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-gw-big-'));
  try {
    for (const size of [limit + 1, 2_000_000]) {
      const h2 = await h2request(session, 'POST', '/publish/big', Buffer.alloc(size, 1));
      assert.equal(h2.status, 413, `HTTP/2, ${size} bytes`);
      assert.match(h2.body.toString(), new RegExp(`exceeds --max-message-bytes ${limit}\\b`), `HTTP/2, ${size} bytes`);
      const file = path.join(dir, `${size}.bin`);
      fs.writeFileSync(file, Buffer.alloc(size, 1));
      // curl sends `Expect: 100-continue` with the 2 MB body: refused before it is read.
      const { stdout } = await run('curl', ['-s', '--http1.1', '-w', '\n%{http_code}', '--data-binary', `@${file}`, `http://127.0.0.1:${gw.httpPort}/publish/big`]);
      const [body, status] = stdout.split('\n');
      assert.equal(status, '413', `HTTP/1.1, ${size} bytes: ${stdout}`);
      assert.match(body!, new RegExp(`exceeds --max-message-bytes ${limit}\\b`), `HTTP/1.1, ${size} bytes`);
    }
    assert.equal((await h2request(session, 'POST', '/publish/big', Buffer.alloc(limit, 1))).status, 201, 'exactly the limit');
  } finally {
    session.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM stops the gateway with exit 0', async () => {
  const { code } = await gw.kill('SIGTERM');
  assert.equal(code, 0);
  assert.ok(gw.lines.some((l) => l.includes('"msg":"stopped"')));
});

test('option mistakes exit 2 with one line naming the option', () => {
  const cases: [string[], RegExp][] = [
    [['--engine', 'jetstream', '--db', './x'], /--db is not used with --engine jetstream/],
    [['--nats', 'nats://127.0.0.1:4222'], /--nats is used only with --engine jetstream/],
    [['--engine', 'jetstream', '--nats-replicas', '2'], /--nats-replicas/],
    [['--engine', 'jetstream', '--nats-lease', '500ms'], /--nats-lease.*under 1s/],
    [['--nats-lease', '5s'], /--nats-lease is used only with --engine jetstream/],
    [['--engine', 'jetstream', '--nats', 'http://x:1'], /--nats: "http:\/\/x:1" is not a NATS URL/],
    [['--engine', 'jetstream', '--nats', 'nats://u:secret@h:1,bad'], /--nats: "bad" is not a NATS URL/],
    [['--engine', 'jetstream', '--nats', 'bogus'], /invalid value for --nats: "bogus" is not a NATS URL/],
    [['--engine', 'jetstream', '--nats', 'nats://u:secret@h:99999'], /--nats: "\*\*\*@h:99999" is not a NATS URL/],
    [['--engine', 'jetstream', '--nats-stream', 'a.b'], /--nats-stream/],
    [['--engine', 'redis'], /--engine.*log, jetstream/],
  ];
  for (const [args, pattern] of cases) {
    const r = spawnSync(process.execPath, [MAIN_JS, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /secret/, 'a password in a URL is never printed');
  }
});
