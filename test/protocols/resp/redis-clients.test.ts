/**
 * Real Redis clients against a real in-process server (SPEC §4 "Any Redis client must be able to
 * connect"): ioredis with its ready check, node-redis, and redis-cli.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { ENGINES, EngineTargets, runCommand, waitFor, type EngineTarget } from '../../helpers/index.js';

const targets = new EngineTargets();
let target: EngineTarget;
let port: number;

/** RESERVE's timeout where a message is ready: answered at once; both engines answer this form alike (README: RESERVE without a timeout). */
const READY_MS = '5000';

const BINARY = Buffer.from([0, 1, 2, 13, 10, 0x24, 0x2a, 0x80, 0xfe, 0xff]);

for (const engine of ENGINES) {
  describe(`--engine ${engine}`, () => {
    before(async () => {
      target = await targets.start(engine);
      port = target.respPort;
    });

    after(() => target.close());

    test('ioredis: connects (ready check with INFO, CLIENT SETNAME), publishes bytes, reserves and acks', async (t) => {
      const redis = new Redis({
        port,
        host: '127.0.0.1',
        lazyConnect: false,
        enableReadyCheck: true,
        connectionName: 'mq-ioredis',
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      const errors: Error[] = [];
      redis.on('error', (err: Error) => errors.push(err));
      t.after(() => redis.disconnect());
      await new Promise<void>((resolve, reject) => {
        redis.once('ready', () => resolve());
        redis.once('end', () => reject(new Error(`ioredis never became ready: ${errors.map((e) => e.message).join('; ')}`)));
      });
      assert.equal(redis.status, 'ready');
      assert.equal(await redis.ping(), 'PONG');
      assert.equal(await redis.client('GETNAME'), 'mq-ioredis');

      const topic = 'clients.ioredis';
      assert.equal(await redis.call('PUBLISH', topic, BINARY), 'OK');
      assert.equal(await redis.call('PUBLISH', topic, 'second'), 'OK');
      const reserved = (await redis.callBuffer('RESERVE', topic, READY_MS)) as [Buffer, Buffer, number];
      assert.ok(Array.isArray(reserved) && reserved.length === 3);
      const [id, payload, dackCount] = reserved;
      assert.match(id.toString(), /^\d+$/);
      assert.deepEqual(payload, BINARY);
      assert.equal(dackCount, 0);
      assert.equal(await redis.call('ACK', topic, id.toString()), 'OK');
      await assert.rejects(redis.call('ACK', topic, id.toString()) as Promise<unknown>, /^ReplyError: ERR|ERR /);

      // A pipeline through the client library: the RESERVE sees the PUBLISH before it.
      const results = await redis
        .pipeline()
        .call('PUBLISH', topic, 'piped')
        .call('RESERVE', topic, READY_MS)
        .call('RESERVE', topic, READY_MS)
        .call('RESERVE', topic, '100')
        .exec();
      assert.ok(results !== null);
      for (const [err] of results) assert.equal(err, null);
      const second = results[1]![1] as [string, string, number];
      const piped = results[2]![1] as [string, string, number];
      assert.equal(second[1], 'second');
      assert.equal(piped[1], 'piped');
      assert.equal(results[3]![1], null, 'RESERVE with a timeout on an empty topic is nil');
      assert.equal(await redis.call('NACK', topic, second[0]), 'OK');
      assert.equal(await redis.call('BACK', topic, piped[0]), 'OK');
      const again = (await redis.call('RESERVE', topic, READY_MS)) as [string, string, number];
      assert.equal(again[1], 'second');
      assert.equal(await redis.call('DACK', topic, again[0], '0'), 'OK');
      assert.deepEqual(await redis.call('TOPICS'), [topic]);
      assert.equal(await redis.call('DEL', topic), 1);
      assert.equal(await redis.quit(), 'OK');
      assert.deepEqual(errors, []);
    });

    test('node-redis (RESP2): connects, PUBLISH / RESERVE / ACK through sendCommand', async (t) => {
      const client = createClient({ socket: { port, host: '127.0.0.1', reconnectStrategy: false }, RESP: 2 });
      const errors: Error[] = [];
      client.on('error', (err: Error) => errors.push(err));
      t.after(() => {
        if (client.isOpen) client.destroy();
      });
      await client.connect();
      assert.equal(client.isReady, true);
      assert.equal(await client.ping(), 'PONG');
      assert.match(await client.info(), /redis_version:/);

      const topic = 'clients.node-redis';
      assert.equal(await client.sendCommand(['PUBLISH', topic, 'x']), 'OK');
      assert.equal(await client.sendCommand(['PUBLISH', topic, BINARY]), 'OK');
      const r = (await client.sendCommand(['RESERVE', topic, READY_MS])) as [string, string, number];
      assert.equal(r.length, 3);
      assert.equal(r[1], 'x');
      assert.equal(r[2], 0);
      assert.equal(await client.sendCommand(['ACK', topic, r[0]]), 'OK');
      await assert.rejects(client.sendCommand(['ACK', topic, r[0]]), /ERR/);
      const r2 = (await client.sendCommand(['RESERVE', topic, READY_MS], { typeMapping: { 36: Buffer } })) as [Buffer, Buffer, number];
      assert.deepEqual(r2[1], BINARY);
      assert.equal(await client.sendCommand(['ACK', topic, r2[0]]), 'OK');
      assert.equal(await client.sendCommand(['RESERVE', topic, '50']), null);
      await client.close();
      assert.deepEqual(errors, []);
    });

    test('node-redis with default options (RESP3: HELLO 3) connects, publishes, reserves and acks', async (t) => {
      const client = createClient({ socket: { port, host: '127.0.0.1', reconnectStrategy: false } });
      const errors: unknown[] = [];
      client.on('error', (err) => errors.push(err));
      t.after(() => {
        if (client.isOpen) client.destroy();
      });
      await client.connect();
      assert.equal(await client.sendCommand(['PING']), 'PONG');
      const topic = 'clients.node-redis-resp3';
      assert.equal(await client.sendCommand(['PUBLISH', topic, 'hello']), 'OK');
      const r = (await client.sendCommand(['RESERVE', topic, READY_MS])) as [string, string, number];
      assert.deepEqual([r[1], r[2]], ['hello', 0]);
      assert.equal(await client.sendCommand(['ACK', topic, r[0]]), 'OK');
      assert.equal(await client.sendCommand(['RESERVE', topic, '30']), null, 'RESP3 null after the timeout');
      await client.close();
      assert.deepEqual(errors, []);
    });

    test('HELLO 3 answers a RESP3 map and switches nulls to _', async (t) => {
      const socket = net.connect(port, '127.0.0.1');
      t.after(() => socket.destroy());
      await once(socket, 'connect');
      let got = '';
      socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
      socket.write('*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*2\r\n$7\r\nRESERVE\r\n$14\r\nclients.empty3\r\n');
      await waitFor(() => got.endsWith('_\r\n'), 5000);
      assert.match(got, /^%7\r\n\$6\r\nserver\r\n/);
      assert.match(got, /\$5\r\nproto\r\n:3\r\n/);
      assert.ok(got.endsWith('_\r\n'), JSON.stringify(got));
    });

    test('redis-cli: PUBLISH answers OK and RESERVE prints id, payload and dackCount', async () => {
      const topic = 'clients.redis-cli';
      const pub = await runCommand('redis-cli', ['-p', String(port), 'PUBLISH', topic, 'hello world']);
      assert.equal(pub.code, 0, pub.stderr);
      assert.equal(pub.stdout.toString().trim(), 'OK');

      const res = await runCommand('redis-cli', ['-p', String(port), 'RESERVE', topic, READY_MS]);
      assert.equal(res.code, 0, res.stderr);
      const lines = res.stdout.toString().trim().split('\n');
      assert.equal(lines.length, 3, res.stdout.toString());
      assert.match(lines[0]!, /^\d+$/);
      assert.equal(lines[1], 'hello world');
      assert.equal(lines[2], '0');
      // redis-cli closed its connection with the message reserved: the next RESERVE below gets it.
      await waitFor(() => target.queue.topicStats(topic)?.consumers === 0);

      // Several commands on one connection through stdin, including the handshake commands.
      const session = await runCommand('redis-cli', ['-p', String(port)], `PING\nINFO server\nTOPICS\nRESERVE ${topic} ${READY_MS}\nDEL ${topic}\nTOPICS\n`);
      assert.equal(session.code, 0, session.stderr);
      const out = session.stdout.toString();
      assert.match(out, /^PONG\n/);
      assert.match(out, /redis_version:/);
      assert.match(out, /hello world/);

      const err = await runCommand('redis-cli', ['-p', String(port), 'NOSUCHCOMMAND']);
      assert.match(err.stdout.toString() + err.stderr, /ERR unknown command/);
    });
  });
}
