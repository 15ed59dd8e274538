/**
 * `--auth-token` (issue 6, SPEC §7) end to end against a real in-process server: HTTP/2 (the raw
 * publish/subscribe fast path and the Fastify routes, /healthz left open), RESP over a raw socket
 * (AUTH, AUTH default, HELLO ... AUTH, -NOAUTH for the rest, -WRONGPASS), ioredis and node-redis
 * with a password, the miniqueue client's `authToken`, the refusal counter in /metrics, the
 * option's parsing (MINIQUEUE_AUTH_TOKEN) and the startup warning for an open RESP listener.
 */
import assert from 'node:assert/strict';
import type http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { MiniqueueClient, MiniqueueError } from '../../src/client/index.js';
import { ConfigError, parseConfig } from '../../src/server/config.js';
import type { RunningServer } from '../../src/server/server.js';
import { describeReply, errorLine, h2connect, h2request, type H2Response, letTimePass, recordingLogger, removeDir, type Reply, RespConnections, startInProcess, tempDir } from '../helpers/index.js';

const TOKEN = 'test-token-7f3a9c';

let dir: string;
let server: RunningServer;
let session: http2.ClientHttp2Session;
const resp = new RespConnections(() => server.resp!.port);
const connect = resp.connect;

before(async () => {
  dir = tempDir('mq-auth-');
  server = await startInProcess(dir, ['--auth-token', TOKEN, '--fsync', 'never']);
  session = h2connect(server.http.port);
});

after(async () => {
  session.close();
  resp.closeAll();
  await server.close();
  removeDir(dir);
});

const bearer = (token: string): http2.OutgoingHttpHeaders => ({ authorization: `Bearer ${token}` });

function assertUnauthorized(res: H2Response, code: 'MQ_ERR_NOAUTH' | 'MQ_ERR_UNAUTHORIZED', what: string): void {
  assert.equal(res.status, 401, `${what}: status`);
  const body = JSON.parse(res.body.toString()) as { code: string; statusCode: number; error: string };
  assert.equal(body.code, code, `${what}: code`);
  assert.equal(body.statusCode, 401);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.match(String(res.headers['www-authenticate']), /^Bearer realm="miniqueue"/, `${what}: challenge`);
  if (code === 'MQ_ERR_UNAUTHORIZED') assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/);
}

/** The value of one sample line of the /metrics text (undefined when absent). */
async function metricValue(sample: string): Promise<number | undefined> {
  const text = await server.metrics.render();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

describe('HTTP/2 with --auth-token', () => {
  test('publish (fast path): missing token 401 NOAUTH, wrong token 401 UNAUTHORIZED, right token 201', async () => {
    assertUnauthorized(await h2request(session, 'POST', '/publish/auth.h2', 'x', {}), 'MQ_ERR_NOAUTH', 'no header');
    assertUnauthorized(await h2request(session, 'POST', '/publish/auth.h2', 'x', { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` }), 'MQ_ERR_NOAUTH', 'basic scheme');
    assertUnauthorized(await h2request(session, 'POST', '/publish/auth.h2', 'x', bearer('wrong')), 'MQ_ERR_UNAUTHORIZED', 'wrong token');
    assertUnauthorized(await h2request(session, 'POST', '/publish/auth.h2', 'x', bearer(`${TOKEN}x`)), 'MQ_ERR_UNAUTHORIZED', 'longer token');
    assertUnauthorized(await h2request(session, 'POST', '/publish/auth.h2', 'x', bearer(TOKEN.slice(0, -1))), 'MQ_ERR_UNAUTHORIZED', 'prefix of the token');
    assert.equal(server.broker.topicStats('auth.h2'), undefined, 'nothing was published by refused requests');

    assert.equal((await h2request(session, 'POST', '/publish/auth.h2', 'hello', bearer(TOKEN))).status, 201);
    assert.equal((await h2request(session, 'POST', '/publish/auth.h2', 'again', { authorization: `bearer   ${TOKEN}` })).status, 201, 'the scheme is case-insensitive');
    assert.equal(server.broker.topicStats('auth.h2')!.ready, 2);
  });

  test('subscribe (fast path) is refused before any delivery without the token', async () => {
    assertUnauthorized(await h2request(session, 'POST', '/subscribe/auth.h2', '"INIT"\n', {}), 'MQ_ERR_NOAUTH', 'subscribe without a token');
    assertUnauthorized(await h2request(session, 'POST', '/subscribe/auth.h2', '"INIT"\n', bearer('nope')), 'MQ_ERR_UNAUTHORIZED', 'subscribe with a wrong token');
    assert.equal(server.broker.topicStats('auth.h2')!.inFlight, 0);
  });

  test('Fastify routes (GET /topics, GET /metrics, DELETE, unknown routes) need the token; GET /healthz does not', async () => {
    assertUnauthorized(await h2request(session, 'GET', '/topics'), 'MQ_ERR_NOAUTH', 'GET /topics');
    assertUnauthorized(await h2request(session, 'GET', '/topics', undefined, bearer('wrong')), 'MQ_ERR_UNAUTHORIZED', 'GET /topics wrong');
    assertUnauthorized(await h2request(session, 'GET', '/metrics'), 'MQ_ERR_NOAUTH', 'GET /metrics');
    assertUnauthorized(await h2request(session, 'DELETE', '/auth.h2'), 'MQ_ERR_NOAUTH', 'DELETE');
    assertUnauthorized(await h2request(session, 'GET', '/no/such/route'), 'MQ_ERR_NOAUTH', 'an unknown route says 401, not 404');
    assert.ok(server.broker.topicStats('auth.h2') !== undefined, 'the refused DELETE deleted nothing');

    const topics = await h2request(session, 'GET', '/topics', undefined, bearer(TOKEN));
    assert.equal(topics.status, 200);
    assert.ok((JSON.parse(topics.body.toString()) as { topic: string }[]).some((t) => t.topic === 'auth.h2'));
    const metrics = await h2request(session, 'GET', '/metrics', undefined, bearer(TOKEN));
    assert.equal(metrics.status, 200);
    assert.match(metrics.body.toString(), /^miniqueue_topic_ready_messages\{topic="auth\.h2"\} \d+$/m);

    const health = await h2request(session, 'GET', '/healthz');
    assert.equal(health.status, 200, '/healthz stays open for load balancers');
    assert.equal((await h2request(session, 'GET', '/healthz?probe=1')).status, 200);
  });

  test('the miniqueue client sends authToken; without it the server answers MQ_ERR_NOAUTH', async (t) => {
    const url = `http://127.0.0.1:${server.http.port}`;
    const good = new MiniqueueClient({ url, authToken: TOKEN, reconnect: false });
    const none = new MiniqueueClient({ url, reconnect: false });
    const wrong = new MiniqueueClient({ url, authToken: 'not-it', reconnect: false });
    t.after(() => Promise.all([good.close(), none.close(), wrong.close()]));

    await good.publish('auth.client', 'from the client');
    assert.ok((await good.topics()).some((s) => s.topic === 'auth.client'));
    const sub = good.subscribe('auth.client');
    const first = await sub[Symbol.asyncIterator]().next();
    assert.equal(first.done, false);
    assert.equal(first.value!.data.toString(), 'from the client');
    await first.value!.ack();
    await sub.close();

    await assert.rejects(none.publish('auth.client', 'x'), (err: unknown) => err instanceof MiniqueueError && err.code === 'MQ_ERR_NOAUTH' && err.statusCode === 401);
    await assert.rejects(wrong.topics(), (err: unknown) => err instanceof MiniqueueError && err.code === 'MQ_ERR_UNAUTHORIZED');
    const refused = wrong.subscribe('auth.client');
    await assert.rejects(refused[Symbol.asyncIterator]().next(), (err: unknown) => err instanceof MiniqueueError && err.code === 'MQ_ERR_UNAUTHORIZED');
  });
});

describe('RESP with --auth-token', () => {
  test('every command but AUTH, HELLO and QUIT is -NOAUTH until AUTH; a wrong token is -WRONGPASS', async () => {
    const c = await connect();
    for (const cmd of [['PING'], ['PUBLISH', 'auth.resp', 'x'], ['RESERVE', 'auth.resp'], ['TOPICS'], ['STATS', 'auth.resp'], ['SUBSCRIBE', 'auth.resp'], ['DEL', 'auth.resp'], ['CLIENT', 'SETNAME', 'x'], ['NOSUCHCOMMAND']]) {
      assert.equal(errorLine(await c.send(...cmd)), 'NOAUTH Authentication required.', cmd.join(' '));
    }
    assert.equal(errorLine(await c.send('AUTH', 'wrong')), 'WRONGPASS invalid username-password pair or user is disabled.');
    assert.equal(errorLine(await c.send('AUTH', 'someone', TOKEN)), 'WRONGPASS invalid username-password pair or user is disabled.', 'only the default user exists');
    assert.match(errorLine(await c.send('AUTH')), /^ERR wrong number of arguments/);
    assert.equal(errorLine(await c.send('PING')), 'NOAUTH Authentication required.', 'still not authenticated');
    assert.equal(await c.send('AUTH', TOKEN), 'OK');
    assert.equal(await c.send('PING'), 'PONG');
    assert.equal(await c.send('PUBLISH', 'auth.resp', 'payload'), 'OK');
    const reserved = (await c.send('RESERVE', 'auth.resp')) as Reply[];
    assert.equal(String(reserved[1]), 'payload');
    assert.equal(await c.send('ACK', 'auth.resp', String(reserved[0])), 'OK');
    assert.equal(errorLine(await c.send('AUTH', 'wrong')), 'WRONGPASS invalid username-password pair or user is disabled.');
    assert.equal(await c.send('PING'), 'PONG', 'a failed AUTH later does not log an authenticated connection out (Redis)');
  });

  test('AUTH default <token> and HELLO 2 AUTH default <token> authenticate; HELLO without AUTH is -NOAUTH', async () => {
    const a = await connect();
    assert.equal(await a.send('AUTH', 'default', TOKEN), 'OK');
    assert.equal(await a.send('PING'), 'PONG');

    const h = await connect();
    assert.equal(errorLine(await h.send('HELLO', '2')), 'NOAUTH Authentication required.');
    assert.equal(errorLine(await h.send('HELLO', '2', 'AUTH', 'default', 'wrong')), 'WRONGPASS invalid username-password pair or user is disabled.');
    assert.match(errorLine(await h.send('HELLO', '2', 'AUTH', 'default')), /^ERR Syntax error/);
    assert.match(errorLine(await h.send('HELLO', '4', 'AUTH', 'default', TOKEN)), /^NOPROTO/);
    assert.equal(errorLine(await h.send('PING')), 'NOAUTH Authentication required.');
    const hello = (await h.send('HELLO', '2', 'AUTH', 'default', TOKEN, 'SETNAME', 'auth-hello')) as Reply[];
    assert.ok(Array.isArray(hello), describeReply(hello));
    assert.equal(String(hello[0]), 'server');
    assert.deepEqual(await h.send('CLIENT', 'GETNAME'), Buffer.from('auth-hello'));
    assert.equal(await h.send('PING'), 'PONG');
    assert.ok(Array.isArray(await h.send('HELLO', '2')), 'HELLO without AUTH works once authenticated');
  });

  test('QUIT works before AUTH', async () => {
    const c = await connect();
    assert.equal(await c.send('QUIT'), 'OK');
    await c.closed;
  });

  test('ioredis with the password option connects (AUTH, ready check) and works; a wrong or missing password fails', async (t) => {
    const port = server.resp!.port;
    const redis = new Redis({ port, host: '127.0.0.1', password: TOKEN, maxRetriesPerRequest: 0, retryStrategy: () => null });
    t.after(() => redis.disconnect());
    await new Promise<void>((resolve, reject) => {
      redis.once('ready', () => resolve());
      redis.once('error', reject);
    });
    assert.equal(await redis.call('PUBLISH', 'auth.ioredis', 'via ioredis'), 'OK');
    const [id, payload] = (await redis.call('RESERVE', 'auth.ioredis', '1000')) as [string, string, number];
    assert.equal(payload, 'via ioredis');
    assert.equal(await redis.call('ACK', 'auth.ioredis', id), 'OK');

    const withUser = new Redis({ port, host: '127.0.0.1', username: 'default', password: TOKEN, maxRetriesPerRequest: 0, retryStrategy: () => null });
    t.after(() => withUser.disconnect());
    assert.equal(await withUser.ping(), 'PONG');

    const wrong = new Redis({ port, host: '127.0.0.1', password: 'wrong', maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
    t.after(() => wrong.disconnect());
    const wrongErrors: Error[] = [];
    wrong.on('error', (err: Error) => wrongErrors.push(err));
    await assert.rejects(wrong.connect().then(() => wrong.ping()));
    assert.ok(wrongErrors.some((err) => /^WRONGPASS/.test(err.message)), wrongErrors.map((e) => e.message).join('; '));

    const none = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false });
    t.after(() => none.disconnect());
    none.on('error', () => {});
    await assert.rejects(none.call('PUBLISH', 'auth.ioredis', 'x') as Promise<unknown>, /NOAUTH/);
  });

  test('node-redis with a password (HELLO 3 AUTH default <token>) connects and works', async (t) => {
    const client = createClient({ socket: { host: '127.0.0.1', port: server.resp!.port, reconnectStrategy: false }, password: TOKEN });
    client.on('error', () => {});
    await client.connect();
    t.after(() => client.destroy());
    assert.equal(await client.sendCommand(['PUBLISH', 'auth.noderedis', 'via node-redis']), 'OK');
    const reserved = (await client.sendCommand(['RESERVE', 'auth.noderedis', '1000'])) as string[];
    assert.equal(String(reserved[1]), 'via node-redis');
    assert.equal(await client.sendCommand(['ACK', 'auth.noderedis', String(reserved[0])]), 'OK');

    const wrong = createClient({ socket: { host: '127.0.0.1', port: server.resp!.port, reconnectStrategy: false }, password: 'wrong' });
    wrong.on('error', () => {});
    await assert.rejects(wrong.connect(), /WRONGPASS/);
    t.after(() => {
      if (wrong.isOpen) wrong.destroy();
    });
  });

  test('refused tokens are counted in miniqueue_refusals_total{reason="unauthorized"} for both protocols', async () => {
    const before = {
      resp: (await metricValue('miniqueue_refusals_total{protocol="resp",reason="unauthorized"}')) ?? 0,
      http2: (await metricValue('miniqueue_refusals_total{protocol="http2",reason="unauthorized"}')) ?? 0,
    };
    const c = await connect();
    errorLine(await c.send('PING'));
    errorLine(await c.send('AUTH', 'wrong'));
    await h2request(session, 'GET', '/topics');
    assert.equal(await metricValue('miniqueue_refusals_total{protocol="resp",reason="unauthorized"}'), before.resp + 2);
    assert.equal(await metricValue('miniqueue_refusals_total{protocol="http2",reason="unauthorized"}'), before.http2 + 1);
  });
});

describe('auth deadline: idle unauthenticated connections cannot hold --max-connections slots', () => {
  test('RESP without AUTH in time gets -NOAUTH and is closed; an authenticated one stays', async (t) => {
    server.admission.authDeadlineMs = 300;
    t.after(() => (server.admission.authDeadlineMs = 10_000));
    const idle = await connect();
    const authed = await connect();
    assert.equal(await authed.send('AUTH', TOKEN), 'OK');
    const started = Date.now();
    const reply = await idle.next(5000);
    assert.match(errorLine(reply), /^NOAUTH Authentication required within 0\.3 s of connecting/);
    await idle.closed;
    assert.ok(Date.now() - started >= 250, 'not before the deadline');
    await letTimePass(400); // past the deadline again: the authenticated connection must not be closed meanwhile
    assert.equal(await authed.send('PING'), 'PONG', 'the authenticated connection is kept');
  });

  test('an HTTP/2 session without a request with the right token in time gets GOAWAY and is closed; one that made one stays', async (t) => {
    server.admission.authDeadlineMs = 300;
    t.after(() => (server.admission.authDeadlineMs = 10_000));
    const idle = h2connect(server.http.port);
    const wrong = h2connect(server.http.port);
    const good = h2connect(server.http.port);
    t.after(() => {
      for (const s of [idle, wrong, good]) s.destroy();
    });
    const goaway = (s: http2.ClientHttp2Session): Promise<string> =>
      new Promise((resolve) => s.on('goaway', (_code: number, _last: number, data?: Buffer) => resolve(data?.toString() ?? '')));
    const idleGoaway = goaway(idle);
    const wrongGoaway = goaway(wrong);
    const wrongRes = await new Promise<number>((resolve) => {
      const req = wrong.request({ ':method': 'GET', ':path': '/topics', ...bearer('nope') });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', () => resolve(0));
      req.end();
    });
    assert.equal(wrongRes, 401);
    const goodRes = await new Promise<number>((resolve) => {
      const req = good.request({ ':method': 'GET', ':path': '/topics', ...bearer(TOKEN) });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.resume();
      req.end();
    });
    assert.equal(goodRes, 200);
    assert.equal(await idleGoaway, 'no request with the right bearer token in time');
    assert.equal(await wrongGoaway, 'no request with the right bearer token in time');
    await letTimePass(300); // one more deadline's length: the authorized session must not be closed meanwhile
    assert.equal(good.closed || good.destroyed, false, 'the authorized session is kept');
  });
});

describe('--auth-token option', () => {
  test('MINIQUEUE_AUTH_TOKEN sets it; the command line wins; off by default', () => {
    assert.equal(parseConfig([], {}).authToken, null);
    assert.equal(parseConfig([], { MINIQUEUE_AUTH_TOKEN: 'from-env' }).authToken, 'from-env');
    assert.equal(parseConfig(['--auth-token', 'from-cli'], { MINIQUEUE_AUTH_TOKEN: 'from-env' }).authToken, 'from-cli');
    assert.equal(parseConfig(['--auth-token=a=b+c/d'], {}).authToken, 'a=b+c/d');
    assert.equal(parseConfig([], { MINIQUEUE_AUTH_TOKEN: '' }).authToken, null, 'an empty variable counts as unset');
  });

  test('a token with spaces or control characters is refused without printing it', () => {
    for (const [args, env] of [
      [['--auth-token', 'has space-secret'], {}],
      [[], { MINIQUEUE_AUTH_TOKEN: 'tab\tsecret' }],
      [['--auth-token', `${'x'.repeat(5000)}`], {}],
    ] as [string[], NodeJS.ProcessEnv][]) {
      assert.throws(
        () => parseConfig(args, env),
        (err: unknown) => err instanceof ConfigError && err.option === '--auth-token' && !err.message.includes('secret') && !err.message.includes('xxxx'),
      );
    }
    assert.throws(() => parseConfig(['--no-auth-token'], {}), (err: unknown) => err instanceof ConfigError && err.option === '--auth-token');
    assert.throws(() => parseConfig(['--requirepass', 'x'], {}), (err: unknown) => err instanceof ConfigError && /--auth-token/.test(err.message));
  });

  test('a RESP listener on a non-loopback address without a token logs a warning; with a token, or on loopback, it does not', async (t) => {
    const cases: { args: string[]; warns: boolean }[] = [
      { args: ['--redis-host', '0.0.0.0'], warns: true },
      { args: ['--redis-host', '0.0.0.0', '--auth-token', TOKEN], warns: false },
      { args: [], warns: false },
    ];
    for (const { args, warns } of cases) {
      const d = tempDir('mq-auth-warn-');
      t.after(() => removeDir(d));
      const { logger, lines } = recordingLogger();
      const s = await startInProcess(d, args, null, logger);
      await s.close();
      const warning = lines.find((l) => l['level'] === 40 && l['protocol'] === 'resp' && /auth-token/.test(String(l['msg'])));
      assert.equal(warning !== undefined, warns, `${args.join(' ') || '(defaults)'}: ${JSON.stringify(lines.filter((l) => l['level'] === 40))}`);
    }
  });
});
