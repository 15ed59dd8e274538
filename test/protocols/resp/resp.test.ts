/**
 * Redis protocol (SPEC §4) against a real in-process server, spoken over raw node:net sockets:
 * handshake commands, errors, PUBLISH / TOPICS / DEL, RESERVE and settles, blocking RESERVE,
 * disconnect NACKs, protocol garbage, and SUBSCRIBE stream mode.
 */
import assert from 'node:assert/strict';
import type http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import {
  asReserved,
  describeReply,
  encodeCommand,
  ENGINES,
  EngineTargets,
  h2connect,
  h2request,
  isErrorReply,
  type EngineTarget,
  type Reply,
  RespConn,
  RespConnections,
  RespErrorReply,
  unlessEngine,
  waitFor,
} from '../../helpers/index.js';

const targets = new EngineTargets();
let target: EngineTarget;
let port: number;
let topicSeq = 0;
const resp = new RespConnections(() => port);
const connect = resp.connect;

/**
 * RESERVE timeouts of the cases: READY_MS where a message is ready (answered at once when one is),
 * NONE_MS where none may be. Both engines answer these forms alike; `RESERVE topic` without a
 * timeout has cases of its own (a README difference on jetstream).
 */
const READY_MS = '5000';
const NONE_MS = '300';

function freshTopic(label: string): string {
  return `resp.${label}.${++topicSeq}`;
}

/** Asserts an error reply whose first word is an uppercase code (and, if given, that word). */
function assertError(r: Reply, code = 'ERR'): string {
  assert.ok(isErrorReply(r), `expected an error reply, got ${describeReply(r)}`);
  const line = (r as RespErrorReply).line;
  assert.match(line, /^[A-Z]+ \S/, `error reply ${line} starts with an uppercase code word`);
  assert.equal(line.split(' ')[0], code, line);
  return line;
}

/** Polls STATS until `ok` holds (the server has processed a close, a tick...). */
async function waitStats(c: RespConn, topic: string, ok: (s: Record<string, number>) => boolean): Promise<void> {
  let s: Record<string, number> = {};
  await waitFor(
    async () => {
      const r = (await c.send('STATS', topic)) as Reply[];
      s = {};
      for (let i = 0; i < r.length; i += 2) s[String(r[i])] = typeof r[i + 1] === 'number' ? (r[i + 1] as number) : Number(String(r[i + 1]));
      return ok(s);
    },
    5000,
    10,
    () => `STATS ${topic} to match; last ${JSON.stringify(s)}`,
  );
}

for (const engine of ENGINES) {
  describe(`--engine ${engine}`, () => {
    before(async () => {
      target = await targets.start(engine, ['--period', '100ms']);
      port = target.respPort;
    });

    after(async () => {
      resp.closeAll();
      await target.close();
    });

    describe('handshake commands', () => {
      test('PING, ECHO, SELECT, INFO, CLIENT, HELLO, COMMAND answer like Redis', async () => {
        const c = await connect();
        assert.equal(await c.send('PING'), 'PONG');
        assert.equal(await c.send('ping'), 'PONG', 'command names are case-insensitive');
        assert.deepEqual(await c.send('PING', 'hi'), Buffer.from('hi'));
        assert.deepEqual(await c.send('ECHO', Buffer.from([0, 13, 10, 255])), Buffer.from([0, 13, 10, 255]));
        assert.equal(await c.send('SELECT', '0'), 'OK');
        assertError(await c.send('SELECT', '1'));

        const info = await c.send('INFO');
        assert.ok(Buffer.isBuffer(info));
        const text = info.toString();
        assert.match(text, /^redis_version:\d+\.\d+\.\d+\r?$/m);
        assert.match(text, /^loading:0\r?$/m);
        assert.ok(Buffer.isBuffer(await c.send('INFO', 'server')));

        assert.equal(await c.send('CLIENT', 'GETNAME'), null);
        assert.equal(await c.send('CLIENT', 'SETNAME', 'tester'), 'OK');
        assert.deepEqual(await c.send('CLIENT', 'GETNAME'), Buffer.from('tester'));
        assert.equal(await c.send('CLIENT', 'SETINFO', 'LIB-NAME', 'raw-net'), 'OK');
        assert.equal(await c.send('CLIENT', 'SETINFO', 'LIB-VER', '1.0'), 'OK');
        assert.equal(typeof (await c.send('client', 'id')), 'number');

        for (const hello of [['HELLO'], ['HELLO', '2'], ['HELLO', '2', 'SETNAME', 'viahello']]) {
          const r = await c.send(...hello);
          assert.ok(Array.isArray(r), `${hello.join(' ')} answers a RESP2 array, got ${describeReply(r)}`);
          assert.equal(r.length % 2, 0);
          const map = new Map<string, Reply>();
          for (let i = 0; i < r.length; i += 2) map.set(String(r[i]), r[i + 1]!);
          assert.equal(map.get('proto'), 2);
          assert.ok(map.has('server') && map.has('version'));
        }
        assert.deepEqual(await c.send('CLIENT', 'GETNAME'), Buffer.from('viahello'));
        assertError(await c.send('HELLO', '4'), 'NOPROTO');
        assertError(await c.send('HELLO', 'x'), 'NOPROTO');

        assert.ok(Array.isArray(await c.send('COMMAND', 'DOCS')));
        assert.ok(Array.isArray(await c.send('COMMAND')));
        assert.equal(typeof (await c.send('COMMAND', 'COUNT')), 'number');
        assert.equal(await c.send('PING'), 'PONG', 'still connected after the handshake');

        const quit = c.next();
        await c.write(encodeCommand(['QUIT']));
        assert.equal(await quit, 'OK');
        await c.closed;
      });

      test('QUIT answers +OK, closes the connection and ignores what follows', async () => {
        const c = await connect();
        const topic = freshTopic('quit');
        await c.write(Buffer.concat([encodeCommand(['QUIT']), encodeCommand(['PUBLISH', topic, 'after-quit'])]));
        assert.equal(await c.next(), 'OK');
        await c.closed;
        assert.equal(c.bufferedReplies, 0);
        const d = await connect();
        assert.equal(await d.send('RESERVE', topic, NONE_MS), null);
      });

      test('unknown commands get -ERR unknown command and the connection stays open', async () => {
        const c = await connect();
        const line = assertError(await c.send('FLUSHALL', 'now'));
        assert.match(line, /^ERR unknown command 'FLUSHALL'/);
        assertError(await c.send('NOSUCH'));
        assertError(await c.send(Buffer.from([0xff, 0xfe])));
        await c.write('BOGUS inline command\r\n');
        assert.match(assertError(await c.next()), /^ERR unknown command 'BOGUS'/);
        assert.equal(await c.send('PING'), 'PONG');
        assert.equal(c.isClosed, false);
      });
    });

    describe('PUBLISH, TOPICS, DEL', () => {
      test('PUBLISH answers +OK; TOPICS lists the topic; DEL and PURGE answer :1 then :0', async () => {
        const c = await connect();
        const a = freshTopic('del');
        const b = freshTopic('purge');
        assert.equal(await c.send('PUBLISH', a, 'x'), 'OK');
        assert.equal(await c.send('publish', b, Buffer.alloc(0)), 'OK');
        let topics = (await c.send('TOPICS')) as Buffer[];
        assert.ok(Array.isArray(topics));
        const names = topics.map((t) => t.toString());
        assert.ok(names.includes(a) && names.includes(b), names.join(','));

        assert.equal(await c.send('DEL', a), 1);
        assert.equal(await c.send('DEL', a), 0);
        assert.equal(await c.send('PURGE', b), 1);
        assert.equal(await c.send('PURGE', b), 0);
        assert.equal(await c.send('DEL', freshTopic('never')), 0);
        topics = (await c.send('TOPICS')) as Buffer[];
        assert.ok(!topics.map(String).includes(a) && !topics.map(String).includes(b));
        assert.equal(await c.send('RESERVE', a, NONE_MS), null, 'a deleted topic has no messages');
      });

      test('pipelined PUBLISH then RESERVE / DEL / TOPICS see the publish (commands run in order)', async () => {
        const c = await connect();
        const topic = freshTopic('inorder');
        const replies = await c.pipeline([
          ['PUBLISH', topic, 'x'],
          ['RESERVE', topic, READY_MS],
          ['PUBLISH', topic, 'z'],
          ['DEL', topic],
          ['TOPICS'],
          ['RESERVE', topic, NONE_MS],
        ]);
        assert.equal(replies[0], 'OK');
        assert.equal(asReserved(replies[1]!).payload.toString(), 'x');
        assert.equal(replies[3], 1);
        // Before the RESERVE: on jetstream a RESERVE that waits makes the topic's consumer again,
        // and a topic only waited on is listed, empty (README "Differences from the log engine").
        assert.ok(!(replies[4] as Buffer[]).map(String).includes(topic));
        assert.equal(replies[5], null, 'nothing survives the DEL');
        await waitStats(c, topic, (s) => s.ready === 0 && s.inFlight === 0);
      });

      test('a pipelined STATS counts the PUBLISH and RESERVE before it', unlessEngine(engine, 'statsSnapshot'), async () => {
        const c = await connect();
        const topic = freshTopic('statsorder');
        const replies = await c.pipeline([
          ['PUBLISH', topic, 'x'],
          ['RESERVE', topic],
          ['PUBLISH', topic, 'y'],
          ['STATS', topic],
        ]);
        assert.equal(asReserved(replies[1]!).payload.toString(), 'x');
        const stats = replies[3] as Reply[];
        const field = (name: string): Reply | undefined => stats[stats.findIndex((v) => String(v) === name) + 1];
        assert.deepEqual([field('ready'), field('inFlight')], [1, 1], 'x is in flight, y is ready');
      });

      test('bad topics and wrong arity are -ERR replies that keep the connection open', async () => {
        const c = await connect();
        assertError(await c.send('PUBLISH', 'has space', 'x'));
        assertError(await c.send('PUBLISH', 'x'.repeat(256), 'x'));
        assertError(await c.send('PUBLISH', '', 'x'));
        assertError(await c.send('PUBLISH', 'only-topic'));
        assertError(await c.send('RESERVE'));
        assertError(await c.send('RESERVE', 'bad topic'));
        assertError(await c.send('RESERVE', freshTopic('t'), '-1'));
        assertError(await c.send('RESERVE', freshTopic('t'), 'soon'));
        assertError(await c.send('ACK', freshTopic('t')));
        assertError(await c.send('ACK', freshTopic('t'), 'abc'));
        assertError(await c.send('DACK', freshTopic('t'), '1'));
        assertError(await c.send('DEL'));
        assert.equal(await c.send('PUBLISH', 'y'.repeat(255), 'x'), 'OK');
        assert.equal(await c.send('PING'), 'PONG');
      });

      test('a 1 MiB payload over RESP is accepted and RESERVEd back intact', unlessEngine(engine, 'maxMessageBytes'), async () => {
        const c = await connect();
        const topic = freshTopic('big');
        const payload = Buffer.alloc(1_048_576);
        for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
        assert.equal(await c.send('PUBLISH', topic, payload), 'OK');
        const r = asReserved(await c.send('RESERVE', topic, READY_MS));
        assert.ok(r.payload.equals(payload));
        assert.equal(await c.send('ACK', topic, r.id), 'OK');
      });

      test('messages cross protocols: published over HTTP/2, RESERVEd over RESP, and back', async (t) => {
        const session: http2.ClientHttp2Session = h2connect(target.httpPort);
        t.after(() => session.close());
        const c = await connect();
        const topic = freshTopic('cross');
        const res = await h2request(session, 'POST', `/publish/${topic}`, Buffer.from([1, 2, 3]));
        assert.equal(res.status, 201);
        assert.equal(await c.send('PUBLISH', topic, 'from-resp'), 'OK');
        const first = asReserved(await c.send('RESERVE', topic, READY_MS));
        assert.deepEqual(first.payload, Buffer.from([1, 2, 3]));
        const second = asReserved(await c.send('RESERVE', topic, READY_MS));
        assert.equal(second.payload.toString(), 'from-resp');
        await waitFor(async () => {
          const topics = JSON.parse((await h2request(session, 'GET', '/topics')).body.toString()) as { topic: string; inFlight: number }[];
          return topics.find((s) => s.topic === topic)?.inFlight === 2;
        });
      });
    });

    describe('RESERVE and settles', () => {
      test('RESERVE answers [id, payload, dackCount]; ACK settles once; unknown ids are -ERR', async () => {
        const c = await connect();
        const topic = freshTopic('reserve');
        const payload = Buffer.from('bin\r\n\x00\xff', 'latin1');
        assert.equal(await c.send('PUBLISH', topic, payload), 'OK');
        const raw = await c.send('RESERVE', topic, READY_MS);
        const r = asReserved(raw);
        assert.match(r.id, /^\d+$/);
        assert.deepEqual(r.payload, payload);
        assert.equal(r.dackCount, 0);
        assert.equal(await c.send('RESERVE', topic, NONE_MS), null, 'the only message is in flight');

        assertError(await c.send('ACK', topic, '999999999'));
        assertError(await c.send('ACK', freshTopic('other'), r.id), 'ERR');
        const other = await connect();
        assertError(await other.send('ACK', topic, r.id), 'ERR');

        assert.equal(await c.send('ACK', topic, r.id), 'OK');
        assertError(await c.send('ACK', topic, r.id));
        assertError(await c.send('NACK', topic, r.id));
        assert.equal(await c.send('RESERVE', topic, NONE_MS), null);
        await waitStats(c, topic, (s) => s.acked === 1 && s.ready === 0 && s.inFlight === 0);
      });

      test('NACK puts the message back at the front, BACK at the end', async () => {
        const c = await connect();
        const topic = freshTopic('nackback');
        for (const p of ['a', 'b', 'c']) assert.equal(await c.send('PUBLISH', topic, p), 'OK');
        const a = asReserved(await c.send('RESERVE', topic, READY_MS));
        assert.equal(a.payload.toString(), 'a');
        assert.equal(await c.send('NACK', topic, a.id), 'OK');
        const again = asReserved(await c.send('RESERVE', topic, READY_MS));
        assert.equal(again.id, a.id);
        assert.equal(again.payload.toString(), 'a');
        assert.equal(await c.send('BACK', topic, a.id), 'OK');
        const order: string[] = [];
        for (let i = 0; i < 3; i++) {
          const m = asReserved(await c.send('RESERVE', topic, READY_MS));
          order.push(m.payload.toString());
          assert.equal(await c.send('ACK', topic, m.id), 'OK');
        }
        assert.deepEqual(order, ['b', 'c', 'a']);
        assert.equal(await c.send('RESERVE', topic, NONE_MS), null);
      });

      test('DACK holds the message for its delay and returns it with dackCount 1', async () => {
        const c = await connect();
        const topic = freshTopic('dack');
        assert.equal(await c.send('PUBLISH', topic, 'delayed'), 'OK');
        const m = asReserved(await c.send('RESERVE', topic, READY_MS));
        const t0 = Date.now();
        assert.equal(await c.send('DACK', topic, m.id, '1'), 'OK');
        assertError(await c.send('ACK', topic, m.id), 'ERR');
        assert.equal(await c.send('RESERVE', topic, NONE_MS), null, 'not back before its delay');
        await waitStats(c, topic, (s) => s.delayed === 1);
        const back = asReserved(await c.send('RESERVE', topic, '5000'));
        const elapsedMs = Date.now() - t0;
        assert.equal(back.id, m.id);
        assert.equal(back.payload.toString(), 'delayed');
        assert.equal(back.dackCount, 1);
        assert.ok(elapsedMs >= 1000 && elapsedMs < 3000, `back after ${elapsedMs} ms`);
        assert.equal(await c.send('DACK', topic, back.id, '0'), 'OK');
        const twice = asReserved(await c.send('RESERVE', topic, '5000'));
        assert.equal(twice.dackCount, 2);
        assert.equal(await c.send('ACK', topic, twice.id), 'OK');
      });

      test('RESERVE on an empty or unknown topic is nil at once (*-1)', async () => {
        const c = await connect();
        const topic = freshTopic('empty');
        const before = c.receivedBytes;
        assert.equal(await c.send('RESERVE', topic), null);
        assert.equal(await c.send('RESERVE', topic, '0'), null);
        assert.equal(Buffer.concat(c.received).subarray(before).toString(), '*-1\r\n*-1\r\n');
      });

      test('RESERVE without a timeout returns a ready message', async () => {
        const c = await connect();
        const topic = freshTopic('notimeout');
        assert.equal(await c.send('PUBLISH', topic, 'ready'), 'OK');
        const r = asReserved(await c.send('RESERVE', topic));
        assert.equal(r.payload.toString(), 'ready');
        assert.equal(await c.send('ACK', topic, r.id), 'OK');
      });

      test('after a NACK the message counts as ready in STATS, not in flight', unlessEngine(engine, 'inFlightAfterNack'), async () => {
        const c = await connect();
        const topic = freshTopic('nackstats');
        assert.equal(await c.send('PUBLISH', topic, 'n'), 'OK');
        const m = asReserved(await c.send('RESERVE', topic, READY_MS));
        assert.equal(await c.send('NACK', topic, m.id), 'OK');
        await waitStats(c, topic, (s) => s.ready === 1 && s.inFlight === 0);
      });

      test('RESERVE topic 200 on an empty topic is nil after about 200 ms and holds later commands back', async () => {
        const c = await connect();
        const topic = freshTopic('timeout');
        const t0 = Date.now();
        const replies = c.pipeline([
          ['RESERVE', topic, '200'],
          ['PING'],
        ]);
        const [nil, pong] = await replies;
        const elapsedMs = Date.now() - t0;
        assert.equal(nil, null);
        assert.equal(pong, 'PONG');
        assert.ok(elapsedMs >= 190 && elapsedMs < 2000, `nil after ${elapsedMs} ms`);
      });

      test('a blocked RESERVE receives a message published meanwhile on another connection', async () => {
        const c = await connect();
        const p = await connect();
        const topic = freshTopic('blocked');
        const t0 = Date.now();
        const reply = c.send('RESERVE', topic, '5000');
        // A round trip through the server on the same connection cannot be used (it would be held
        // back), so order by another connection's round trip instead.
        assert.equal(await p.send('PING'), 'PONG');
        assert.equal(c.bufferedReplies, 0);
        assert.equal(await p.send('PUBLISH', topic, 'meanwhile'), 'OK');
        const r = asReserved(await reply);
        assert.equal(r.payload.toString(), 'meanwhile');
        assert.ok(Date.now() - t0 < 4000);
        assert.equal(await c.send('ACK', topic, r.id), 'OK');
      });

      test('a connection that closes while its RESERVE or SUBSCRIBE waits takes no message with it', async () => {
        const topic = freshTopic('waitclose');
        const a = await connect();
        const b = await connect();
        const p = await connect();
        void a.send('RESERVE', topic, '5000').catch(() => {});
        void b.send('SUBSCRIBE', topic).catch(() => {});
        assert.equal(await p.send('PING'), 'PONG');
        a.close();
        b.close();
        await Promise.all([a.closed, b.closed]);
        await waitStats(p, topic, (s) => s.consumers === 0);
        assert.equal(await p.send('PUBLISH', topic, 'kept'), 'OK');
        const r = asReserved(await p.send('RESERVE', topic, '1000'));
        assert.equal(r.payload.toString(), 'kept');
      });

      test('one connection can hold 1000 reserved messages at once', async () => {
        const c = await connect();
        const topic = freshTopic('thousand');
        const n = 1000;
        const pubs = await c.pipeline(Array.from({ length: n }, (_, i) => ['PUBLISH', topic, `m${i}`]));
        assert.ok(pubs.every((r) => r === 'OK'));
        const reserved = (await c.pipeline(Array.from({ length: n }, () => ['RESERVE', topic, READY_MS]))).map(asReserved);
        assert.deepEqual(
          reserved.map((r) => r.payload.toString()),
          Array.from({ length: n }, (_, i) => `m${i}`),
        );
        assert.equal(new Set(reserved.map((r) => r.id)).size, n);
        assert.equal(await c.send('RESERVE', topic, NONE_MS), null);
        await waitStats(c, topic, (s) => s.inFlight === n && s.ready === 0);
        const acks = await c.pipeline(reserved.map((r) => ['ACK', topic, r.id]));
        assert.ok(acks.every((r) => r === 'OK'), acks.filter((r) => r !== 'OK').map(describeReply).join(' '));
        await waitStats(c, topic, (s) => s.inFlight === 0 && s.acked === n);
      });

      test('closing a connection NACKs its reserved messages; another connection gets them in order', async () => {
        const c = await connect();
        const d = await connect();
        const topic = freshTopic('dropnack');
        for (let i = 1; i <= 5; i++) assert.equal(await c.send('PUBLISH', topic, `p${i}`), 'OK');
        const held = [];
        for (let i = 0; i < 3; i++) held.push(asReserved(await c.send('RESERVE', topic, READY_MS)));
        assert.deepEqual(held.map((r) => r.payload.toString()), ['p1', 'p2', 'p3']);
        // An acked one stays acked.
        assert.equal(await c.send('ACK', topic, held[1]!.id), 'OK');
        c.close();
        await c.closed;
        await waitStats(d, topic, (s) => s.consumers === 0);
        const order: string[] = [];
        for (let i = 0; i < 4; i++) order.push(asReserved(await d.send('RESERVE', topic, READY_MS)).payload.toString());
        assert.deepEqual(order, ['p1', 'p3', 'p4', 'p5']);
        assert.equal(await d.send('RESERVE', topic, NONE_MS), null);
      });

      test('DEL of a topic with reserved messages: a later settle is -ERR, not a crash', async () => {
        const c = await connect();
        const topic = freshTopic('delinflight');
        assert.equal(await c.send('PUBLISH', topic, 'x'), 'OK');
        const m = asReserved(await c.send('RESERVE', topic, READY_MS));
        assert.equal(await c.send('DEL', topic), 1);
        assertError(await c.send('ACK', topic, m.id));
        assert.equal(await c.send('PING'), 'PONG');
        assert.equal(await c.send('RESERVE', topic, NONE_MS), null);
      });
    });

    describe('protocol errors', () => {
      const garbage: [string, Buffer][] = [
        ['*abc', Buffer.from('*abc\r\n')],
        ['$-5 bulk length', Buffer.from('*1\r\n$-5\r\n')],
        ['bulk length not a number', Buffer.from('*2\r\n$4\r\nPING\r\n$x\r\n')],
        ['missing $', Buffer.from('*2\r\n$4\r\nPING\r\n:12\r\n')],
        ['absurd array length', Buffer.from('*99999999\r\n')],
        ['bulk length over 1 MiB', Buffer.from('*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$1048577\r\n')],
        ['bulk without its CRLF', Buffer.from('*1\r\n$4\r\nPINGxx\r\n')],
        ['binary noise', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x9a, 0x00, 0x0a])],
        ['unbalanced quotes', Buffer.from('PUBLISH t "oops\r\n')],
      ];
      for (const [name, bytes] of garbage) {
        test(`${name}: one -ERR Protocol error, then the connection is closed; others carry on`, async () => {
          const c = await connect();
          const topic = freshTopic('garbage');
          // A good command before the garbage is answered; one after it is never run.
          await c.write(Buffer.concat([encodeCommand(['PING']), bytes, encodeCommand(['PUBLISH', topic, 'never'])]));
          assert.equal(await c.next(), 'PONG');
          const line = assertError(await c.next());
          assert.match(line, /^ERR Protocol error/);
          await c.closed;
          assert.equal(c.bufferedReplies, 0, 'exactly one error reply');
          const d = await connect();
          assert.equal(await d.send('PING'), 'PONG');
          assert.equal(await d.send('RESERVE', topic, NONE_MS), null, 'the command after the garbage did not run');
        });
      }

      test('random binary noise never crashes the server', async () => {
        let seed = 12345;
        const rand = (): number => {
          seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
          return seed >>> 16;
        };
        for (let round = 0; round < 20; round++) {
          const c = await connect();
          const noise = Buffer.alloc(64 + (rand() % 512));
          for (let i = 0; i < noise.length; i++) noise[i] = rand() & 0xff;
          noise[0] = 0x01; // never a valid start of a command
          await c.write(noise);
          const r = await c.next();
          assert.match(assertError(r), /^ERR Protocol error/);
          await c.closed;
        }
        const d = await connect();
        assert.equal(await d.send('PING'), 'PONG');
      });
    });

    describe('SUBSCRIBE stream mode', () => {
      test('payloads arrive as bulk strings; ACK is +OK then the next payload', async () => {
        const c = await connect();
        const p = await connect();
        const topic = freshTopic('sub');
        const bin = Buffer.from([0, 1, 13, 10, 255]);
        for (const m of [Buffer.from('one'), bin, Buffer.from('three')]) assert.equal(await p.send('PUBLISH', topic, m), 'OK');
        assert.deepEqual(await c.send('SUBSCRIBE', topic), Buffer.from('one'));
        assert.equal(await c.send('ACK'), 'OK');
        assert.deepEqual(await c.next(), bin);
        await c.write('ACK\r\n'); // inline form, as the original's consumers send it
        assert.equal(await c.next(), 'OK');
        assert.deepEqual(await c.next(), Buffer.from('three'));
        assert.equal(await c.send('ack'), 'OK');
        // Waiting on the empty topic: a later publish is pushed.
        assert.equal(c.bufferedReplies, 0);
        assert.equal(await p.send('PUBLISH', topic, 'four'), 'OK');
        assert.deepEqual(await c.next(), Buffer.from('four'));
        await waitStats(p, topic, (s) => s.consumers === 1 && s.inFlight === 1);
      });

      test('NACK redelivers the same payload; commands other than settles are refused while subscribed', async () => {
        const c = await connect();
        const p = await connect();
        const topic = freshTopic('subnack');
        assert.equal(await p.send('PUBLISH', topic, 'n1'), 'OK');
        assert.equal(await p.send('PUBLISH', topic, 'n2'), 'OK');
        assert.deepEqual(await c.send('SUBSCRIBE', topic), Buffer.from('n1'));
        assertError(await c.send('PUBLISH', topic, 'x'));
        assert.equal(await c.send('PING'), 'PONG');
        assertError(await c.send('DACK', 'soon'));
        assert.equal(await c.send('NACK'), 'OK');
        assert.deepEqual(await c.next(), Buffer.from('n1'));
        assert.equal(await c.send('BACK'), 'OK');
        assert.deepEqual(await c.next(), Buffer.from('n2'));
        assert.equal(await c.send('ACK'), 'OK');
        assert.deepEqual(await c.next(), Buffer.from('n1'));
      });

      test('inline DACK 1 is +OK; the message returns after its delay, and its dackCount shows via RESERVE', async () => {
        const c = await connect();
        const p = await connect();
        const topic = freshTopic('subdack');
        assert.equal(await p.send('PUBLISH', topic, 'd1'), 'OK');
        assert.deepEqual(await c.send('SUBSCRIBE', topic), Buffer.from('d1'));
        let t0 = Date.now();
        await c.write('DACK 1\r\n');
        assert.equal(await c.next(), 'OK');
        await waitStats(p, topic, (s) => s.delayed === 1);
        // Redelivered to the same subscriber once due.
        assert.deepEqual(await c.next(5000), Buffer.from('d1'));
        let elapsedMs = Date.now() - t0;
        assert.ok(elapsedMs >= 1000 && elapsedMs < 3000, `back after ${elapsedMs} ms`);

        // DACK again, then drop the subscriber: the delayed message keeps its delay and its count.
        t0 = Date.now();
        assert.equal(await c.send('DACK', '1'), 'OK');
        c.close();
        await c.closed;
        const r = asReserved(await p.send('RESERVE', topic, '5000'));
        elapsedMs = Date.now() - t0;
        assert.equal(r.payload.toString(), 'd1');
        assert.equal(r.dackCount, 2);
        assert.ok(elapsedMs >= 1000, `back after ${elapsedMs} ms`);
      });

      test('closing a subscribed connection NACKs its in-flight message to the next consumer', async () => {
        const a = await connect();
        const b = await connect();
        const topic = freshTopic('subdrop');
        assert.equal(await b.send('PUBLISH', topic, 'only'), 'OK');
        assert.deepEqual(await a.send('SUBSCRIBE', topic), Buffer.from('only'));
        const waiting = b.next(5000);
        await b.write(encodeCommand(['SUBSCRIBE', topic]));
        await waitStats(await connect(), topic, (s) => s.consumers === 2);
        a.close();
        assert.deepEqual(await waiting, Buffer.from('only'));
      });
    });
  });
}
