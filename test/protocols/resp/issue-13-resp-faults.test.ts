/**
 * Issue 13, fault class "RESP", over a real in-process server with raw node:net clients and ioredis:
 *
 * - a blocking `RESERVE` whose client half-closes, resets (RST), or reconnects (ioredis re-sends
 *   the unanswered RESERVE on its new connection): no message is lost or left in flight to a
 *   connection that is gone, and the re-sent RESERVE gets the message exactly once;
 * - framing split at every byte (and fed one byte per write), including an error that only shows
 *   on a later read: the replies are the same whatever the split;
 * - ioredis `enableAutoPipelining` with many workers sharing one connection: every reply goes to
 *   its own caller.
 * (Clients connecting during replay: test/protocols/issue-13-replay-clients.test.ts.)
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { RunningServer } from '../../../src/server/server.js';
import { asReserved, describeReply, encodeCommand, parseReply, removeDir, type Reply, RespConn, RespConnections, startInProcess, tempDir, waitFor } from '../../helpers/index.js';

describe('issue 13: RESP faults', () => {
  let dir: string;
  let server: RunningServer;
  const resp = new RespConnections(() => server.resp!.port);
  const connect = resp.connect;
  const stats = (topic: string) => server.broker.topicStats(topic);
  /**
   * Sends `PING` and a blocking `RESERVE` in one write and resolves on the `+PONG`: the server runs
   * the commands of one read in one go, so by the time the PONG is flushed (next tick) the RESERVE
   * has been executed and waits in the broker.
   */
  async function blockOn(conn: RespConn, topic: string): Promise<void> {
    await conn.write(Buffer.concat([encodeCommand(['PING']), encodeCommand(['RESERVE', topic, 5000])]));
    assert.equal(await conn.next(), 'PONG');
  }

  before(async () => {
    dir = tempDir('mq-i13-resp-');
    server = await startInProcess(dir, ['--fsync', 'never']);
  });

  after(async () => {
    resp.closeAll();
    await server.close();
    removeDir(dir);
  });

  /** Publishes `payload`, then takes it back with a fresh connection's RESERVE and ACKs it. */
  async function assertDeliveredOnceTo(fresh: RespConn, topic: string, payload: string): Promise<void> {
    const r = asReserved(await fresh.send('RESERVE', topic, 2000));
    assert.equal(r.payload.toString(), payload);
    assert.equal(await fresh.send('ACK', topic, r.id), 'OK');
    assert.deepEqual(await fresh.send('RESERVE', topic), null, 'nothing else is ready');
  }

  for (const how of ['half-close (FIN)', 'abortive close (RST)'] as const) {
    test(`blocking RESERVE, then ${how}, then a publish: the message goes to the next consumer`, async () => {
      const topic = `resp.block.${how.startsWith('half') ? 'fin' : 'rst'}`;
      const producer = await connect();
      for (let round = 0; round < 10; round++) {
        const blocked = await connect();
        await blockOn(blocked, topic);
        // Close and publish in the same tick: the publish may reach the broker before or after
        // the server has seen the close.
        if (how.startsWith('half')) blocked.socket.end();
        else blocked.socket.resetAndDestroy();
        const published = producer.send('PUBLISH', topic, `m${round}`);
        assert.equal(await published, 'OK');
        await blocked.closed;
        await waitFor(() => stats(topic)!.inFlight === 0);
        await assertDeliveredOnceTo(await connect(), topic, `m${round}`);
      }
      assert.equal(stats(topic)!.acked, 10);
    });
  }

  test('an RST at the moment a blocked RESERVE is served: the message is NACKed back, never lost', async () => {
    const topic = 'resp.block.race';
    const producer = await connect();
    for (let round = 0; round < 20; round++) {
      const blocked = await connect();
      await blockOn(blocked, topic);
      await producer.write(encodeCommand(['PUBLISH', topic, `r${round}`]));
      // Reset as soon as the first byte of the reply arrives, or right away on odd rounds.
      if (round % 2 === 1) blocked.socket.resetAndDestroy();
      else blocked.socket.once('data', () => blocked.socket.resetAndDestroy());
      assert.equal(await producer.next(), 'OK');
      await blocked.closed;
      await waitFor(() => stats(topic)!.inFlight === 0 && stats(topic)!.ready === 1);
      await assertDeliveredOnceTo(await connect(), topic, `r${round}`);
    }
  });

  test('ioredis reconnecting re-sends its blocking RESERVE: the message reaches it exactly once', async (t) => {
    const topic = 'resp.block.ioredis';
    // A proxy we can cut, between ioredis and the server.
    const upstreams = new Set<net.Socket>();
    const downstreams = new Set<net.Socket>();
    const proxy = net.createServer((down) => {
      const up = net.connect(server.resp!.port, '127.0.0.1');
      upstreams.add(up);
      downstreams.add(down);
      down.pipe(up);
      up.pipe(down);
      const drop = (): void => {
        down.destroy();
        up.destroy();
        upstreams.delete(up);
        downstreams.delete(down);
      };
      down.on('error', drop);
      up.on('error', drop);
      down.on('close', drop);
      up.on('close', drop);
    });
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    t.after(() => proxy.close());
    const port = (proxy.address() as net.AddressInfo).port;
    const redis = new Redis({ port, host: '127.0.0.1', retryStrategy: () => 20, maxRetriesPerRequest: 5 });
    redis.on('error', () => {});
    t.after(() => redis.disconnect());
    await redis.ping();
    const producer = await connect();
    for (let round = 0; round < 5; round++) {
      const [up] = [...upstreams];
      const before = up!.bytesWritten;
      const reply = redis.call('RESERVE', topic, 5000) as Promise<[string, Buffer, number] | null>;
      // Once the RESERVE has gone upstream, cut the connection (both sides): ioredis reconnects
      // and re-sends it. The publish may reach the server before or after the re-sent RESERVE;
      // either way that RESERVE must get the message, and only it.
      await waitFor(() => up!.bytesWritten > before);
      const old = [...downstreams];
      for (const s of old) s.resetAndDestroy();
      await waitFor(() => downstreams.size === 1 && !old.some((s) => downstreams.has(s)));
      assert.equal(await producer.send('PUBLISH', topic, `io${round}`), 'OK');
      const got = await reply;
      assert.ok(got !== null, `round ${round}: the re-sent RESERVE was answered with the message`);
      assert.equal(String(got[1]), `io${round}`);
      assert.equal(await redis.call('ACK', topic, got[0]), 'OK');
      await waitFor(() => stats(topic)!.inFlight === 0);
      assert.equal(stats(topic)!.ready, 0, `round ${round}: nothing left behind`);
    }
    assert.equal(stats(topic)!.acked, 5);
  });

  test('framing split at every byte gives the same replies, including an error that shows only on a later read', async () => {
    const topic = 'resp.split';
    const good = Buffer.concat([
      encodeCommand(['PUBLISH', topic, 'hello\r\nworld']),
      Buffer.from('PING\r\n'),
      encodeCommand(['ECHO', Buffer.from([0, 1, 2, 13, 10])]),
      Buffer.from('  DACK  5 \n'),
      encodeCommand(['STATS', topic]),
    ]);
    // The bulk says 3 bytes but 4 come before the CRLF: only visible once the 4th byte is read.
    const bad = Buffer.from('*2\r\n$4\r\nECHO\r\n$3\r\nabcd\r\n*1\r\n$4\r\nPING\r\n');
    const script = Buffer.concat([good, bad]);

    /** Sends `parts` one write (and one event-loop turn) apart; returns every reply until the close. */
    async function run(parts: Buffer[]): Promise<string[]> {
      const c = await connect();
      for (const p of parts) {
        // Once the error is in, the server closes: later writes may fail, which is expected.
        if (c.isClosed) break;
        try {
          await c.write(p);
        } catch {
          break;
        }
        await new Promise((r) => setImmediate(r));
      }
      await c.closed;
      const all = Buffer.concat(c.received);
      const out: string[] = [];
      let pos = 0;
      for (;;) {
        const r = parseReply(all, pos);
        if (r === undefined) break;
        out.push(describeReply(r.value as Reply));
        pos = r.end;
      }
      assert.equal(pos, all.length, 'no partial reply');
      return out;
    }

    // Reference: the whole script in one write. The PUBLISH's effect changes STATS, so drain it
    // to keep every run identical: each run sees the topic with one more message; compare shapes.
    const reference = await run([script]);
    assert.equal(reference.length, 6, reference.join(' | '));
    assert.equal(reference[0], '+OK');
    assert.equal(reference[1], '+PONG');
    assert.match(reference[3]!, /^-ERR wrong number of arguments for 'dack'/);
    assert.match(reference[5]!, /^-ERR Protocol error: missing CRLF/);
    const normalize = (replies: string[]): string[] => replies.map((r, i) => (i === 4 ? 'STATS' : r));
    const expected = normalize(reference);
    for (let i = 1; i < script.length; i++) {
      assert.deepEqual(normalize(await run([script.subarray(0, i), script.subarray(i)])), expected, `split at byte ${i}`);
    }
    const bytes: Buffer[] = [];
    for (let i = 0; i < script.length; i++) bytes.push(script.subarray(i, i + 1));
    assert.deepEqual(normalize(await run(bytes)), expected, 'one byte per write');
  });

  test('ioredis enableAutoPipelining: many workers on one connection each get their own replies', async (t) => {
    const topic = 'resp.autopipe';
    const redis = new Redis({ port: server.resp!.port, host: '127.0.0.1', enableAutoPipelining: true });
    redis.on('error', () => {});
    t.after(() => redis.disconnect());
    const workers = 40;
    const rounds = 15;
    const reservedIds = new Set<string>();
    const payloadsSeen = new Set<string>();
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        for (let n = 0; n < rounds; n++) {
          const tag = `w${w}-n${n}`;
          // Each worker's own reply comes back to it: ECHO of its own tag, PUBLISH +OK, then a
          // RESERVE of some message (any worker's) and the ACK of that id.
          const [echo, pub] = await Promise.all([redis.call('ECHO', tag), redis.call('PUBLISH', topic, tag)]);
          assert.equal(echo, tag);
          assert.equal(pub, 'OK');
          const got = (await redis.call('RESERVE', topic)) as [string, Buffer, number] | null;
          if (got === null) continue; // another worker took every ready message
          assert.ok(!reservedIds.has(String(got[0])), `id ${got[0]} reserved twice`);
          reservedIds.add(String(got[0]));
          payloadsSeen.add(String(got[1]));
          assert.equal(await redis.call('ACK', topic, got[0]), 'OK');
          assert.equal(await redis.call('ECHO', `${tag}-after`), `${tag}-after`);
        }
      }),
    );
    // Whatever was not reserved by the workers is still there, exactly once.
    for (;;) {
      const got = (await redis.call('RESERVE', topic)) as [string, Buffer, number] | null;
      if (got === null) break;
      assert.ok(!payloadsSeen.has(String(got[1])));
      payloadsSeen.add(String(got[1]));
      await redis.call('ACK', topic, got[0]);
    }
    assert.equal(payloadsSeen.size, workers * rounds);
    assert.equal(stats(topic)!.acked, workers * rounds);
  });
});
