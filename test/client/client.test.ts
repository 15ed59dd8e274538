/**
 * The `miniqueue/client` API (issue #7) against a real in-process server over h2c: publish,
 * subscribe and every settle, competing subscribers, deleteTopic/topics, typed errors, clean
 * close with redelivery, one shared session, and reconnect after the session dies.
 */
import assert from 'node:assert/strict';
import type { ServerHttp2Session } from 'node:http2';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Message, MiniqueueClient, MiniqueueError, type Subscription } from '../../src/client/index.js';
import { differs, ENGINES, EngineTargets, letTimePass, waitFor, type EngineTarget } from '../helpers/index.js';

const MAX_MESSAGE_BYTES = 4096;

const targets = new EngineTargets();
let target: EngineTarget;
let url: string;
let client: MiniqueueClient;
let topicSeq = 0;
const serverSessions: ServerHttp2Session[] = [];

function freshTopic(label: string): string {
  return `client.${label}.${++topicSeq}`;
}

/** The next message of `sub`, failing the test after `timeoutMs`. */
async function nextMessage(sub: Subscription, timeoutMs = 5000): Promise<Message> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const r = await Promise.race([sub.next(), timeout]);
    assert.equal(r.done, false, 'the subscription ended');
    return r.value as Message;
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves with the MiniqueueError `p` rejects with; fails when it resolves or rejects otherwise. */
async function rejection(p: Promise<unknown>): Promise<MiniqueueError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MiniqueueError, `expected a MiniqueueError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

/** A TCP port nothing listens on (bound, read, released). */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** The stats of `topic` on the server of the running engine. */
function stats(topic: string): ReturnType<EngineTarget['queue']['topicStats']> {
  return target.queue.topicStats(topic);
}

for (const engine of ENGINES) {
  describe(`--engine ${engine}`, () => {
    before(async () => {
      target = await targets.start(engine, ['--period', '100ms', '--max-message-bytes', String(MAX_MESSAGE_BYTES)]);
      target.http.fastify.server.on('session', (s: ServerHttp2Session) => serverSessions.push(s));
      url = `http://127.0.0.1:${target.httpPort}`;
      client = new MiniqueueClient({ url, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
    });

    after(async () => {
      await client.close();
      await target.close();
    });

    describe('publish and subscribe', () => {
      test('round trip of Buffer, string, Uint8Array and empty payloads, then ack', async () => {
        const topic = freshTopic('round:trip'); // ':' is percent-encoded in the path
        const binary = Buffer.from([0x00, 0xff, 0x0a, 0x0d, 0x22, 0x5c]);
        await client.publish(topic, binary);
        await client.publish(topic, 'héllo\nworld');
        await client.publish(topic, new Uint8Array([1, 2, 3]).subarray(1));
        await client.publish(topic, '');
        const sub = client.subscribe(topic);
        const got: Buffer[] = [];
        const ids: number[] = [];
        for (let i = 0; i < 4; i++) {
          const msg = await nextMessage(sub);
          assert.ok(Buffer.isBuffer(msg.data));
          assert.equal(msg.dackCount, 0);
          assert.equal(msg.topic, topic);
          got.push(msg.data);
          ids.push(msg.id);
          await msg.ack();
          assert.equal(msg.settled, true);
        }
        assert.deepEqual(got, [binary, Buffer.from('héllo\nworld'), Buffer.from([2, 3]), Buffer.alloc(0)]);
        assert.equal(new Set(ids).size, 4);
        await sub.close();
        await waitFor(() => stats(topic)?.acked === 4 && stats(topic)?.ready === 0);
      });

      test('nack returns the message to the front, back to the end', async () => {
        const topic = freshTopic('nackback');
        for (const p of ['a', 'b', 'c']) await client.publish(topic, p);
        const sub = client.subscribe(topic);
        const a = await nextMessage(sub);
        assert.equal(a.data.toString(), 'a');
        await a.nack();
        const a2 = await nextMessage(sub);
        assert.equal(a2.data.toString(), 'a', 'NACK puts it at the front');
        assert.equal(a2.id, a.id);
        await a2.back();
        const b = await nextMessage(sub);
        assert.equal(b.data.toString(), 'b', 'BACK puts it at the end');
        await b.ack();
        const c = await nextMessage(sub);
        assert.equal(c.data.toString(), 'c');
        await c.ack();
        const a3 = await nextMessage(sub);
        assert.equal(a3.data.toString(), 'a');
        await a3.ack();
        await sub.close();
      });

      test('dack holds the message for the given seconds and counts it', async () => {
        const topic = freshTopic('dack');
        await client.publish(topic, 'retry me');
        const sub = client.subscribe(topic);
        const first = await nextMessage(sub);
        assert.equal(first.dackCount, 0);
        await first.dack(0);
        const second = await nextMessage(sub);
        assert.equal(second.id, first.id);
        assert.equal(second.dackCount, 1);
        const dackedAt = Date.now();
        await second.dack(1);
        const third = await nextMessage(sub);
        assert.ok(Date.now() - dackedAt >= 1000, `DACK 1 came back after ${Date.now() - dackedAt} ms`);
        assert.equal(third.dackCount, 2);
        await third.ack();
        await sub.close();
      });

      test('settles are refused locally when they cannot apply to the message', async () => {
        const topic = freshTopic('refused');
        await client.publish(topic, 'one');
        await client.publish(topic, 'two');
        const sub = client.subscribe(topic);
        const msg = await nextMessage(sub);
        for (const bad of [-1, 1.5, Number.NaN, 1e10]) {
          const err = await rejection(msg.dack(bad));
          assert.equal(err.code, 'MQ_ERR_BAD_ARGUMENT');
          assert.equal(err.statusCode, undefined);
        }
        assert.equal(msg.settled, false, 'a refused dack leaves the message in flight');
        await msg.ack();
        assert.equal((await rejection(msg.ack())).code, 'MQ_ERR_ALREADY_SETTLED');
        assert.equal((await rejection(msg.nack())).code, 'MQ_ERR_ALREADY_SETTLED');
        assert.equal((await rejection(msg.touch())).code, 'MQ_ERR_ALREADY_SETTLED');
        // The second ACK above was never sent, so "two" is still in flight and not acked.
        const two = await nextMessage(sub);
        assert.equal(two.data.toString(), 'two');
        await waitFor(() => stats(topic)?.inFlight === 1);
        assert.equal(stats(topic)?.acked, 1);
        await two.ack();
        await sub.close();
      });

      test('touch resolves (the server knows TOUCH), and the stream keeps working', async () => {
        const topic = freshTopic('touch');
        await client.publish(topic, 'slow job');
        await client.publish(topic, 'next job');
        const streamErrors: MiniqueueError[] = [];
        const sub = client.subscribe(topic, { onError: (e) => streamErrors.push(e) });
        const msg = await nextMessage(sub);
        await msg.touch();
        // Twice in a row, to check that each touch is matched with its own answer.
        const [t1, t2] = await Promise.allSettled([msg.touch(), msg.touch()]);
        assert.deepEqual([t1.status, t2.status], ['fulfilled', 'fulfilled']);
        assert.equal(msg.settled, false);
        await msg.ack();
        const next = await nextMessage(sub);
        assert.equal(next.data.toString(), 'next job');
        await next.ack();
        assert.deepEqual(streamErrors, [], 'the answers to touch are not reported as stream errors');
        await sub.close();
        await waitFor(() => stats(topic)?.acked === 2);
      });

      test('competing subscribers share a topic; each message is acked exactly once', async () => {
        const topic = freshTopic('competing');
        const count = 60;
        for (let i = 0; i < count; i++) await client.publish(topic, String(i));
        const subs = [client.subscribe(topic), client.subscribe(topic), client.subscribe(topic)];
        const ackedBy = new Map<number, number>();
        const perSub = [0, 0, 0];
        const workers = subs.map(async (sub, index) => {
          for await (const msg of sub) {
            const n = Number(msg.data.toString());
            assert.ok(!ackedBy.has(n), `message ${n} delivered again after its ack`);
            // Work takes a moment, so the next message goes to another, waiting subscriber.
            await letTimePass(2); // the work itself: time for the next message to go to another subscriber
            ackedBy.set(n, index);
            perSub[index]!++;
            await msg.ack();
            if (ackedBy.size === count) break;
          }
        });
        await waitFor(() => ackedBy.size === count, 10_000);
        await Promise.all(subs.map((s) => s.close()));
        await Promise.all(workers);
        assert.deepEqual([...ackedBy.keys()].sort((a, b) => a - b), Array.from({ length: count }, (_, i) => i));
        assert.ok(perSub.filter((n) => n > 0).length >= 2, `work was shared: ${perSub.join(', ')}`);
        await waitFor(() => stats(topic)?.acked === count);
      });
    });

    describe('topics and deleteTopic', () => {
      test('topics() returns the stats of GET /topics; deleteTopic() says whether the topic existed', async () => {
        const topic = freshTopic('stats');
        await client.publish(topic, 'x');
        await client.publish(topic, 'y');
        const streamErrors: MiniqueueError[] = [];
        const sub = client.subscribe(topic, { onError: (e) => streamErrors.push(e) });
        const msg = await nextMessage(sub);
        const expected = { topic, ready: 1, inFlight: 1, delayed: 0, consumers: 1, published: 2, acked: 0 };
        let listed: unknown;
        await waitFor(
          async () => {
            listed = (await client.topics()).find((s) => s.topic === topic);
            return JSON.stringify(listed) === JSON.stringify(expected);
          },
          5000,
          10,
          () => `topics() to list ${JSON.stringify(expected)}; last ${JSON.stringify(listed)}`,
        );

        assert.equal(await client.deleteTopic(topic), true);
        assert.equal(await client.deleteTopic(topic), false);
        assert.equal((await client.topics()).find((s) => s.topic === topic), undefined);
        // The server says at once that the message is gone (an error line with its id, passed to
        // onError with the server's code), so its ACK is refused here and never sent: it cannot land
        // on the next message.
        await waitFor(() => streamErrors.length === 1);
        assert.equal(streamErrors[0]!.code, 'MQ_ERR_TOPIC_DELETED');
        assert.equal(streamErrors[0]!.statusCode, undefined);
        await assert.rejects(msg.ack(), (err: MiniqueueError) => err.code === 'MQ_ERR_TOPIC_DELETED');
        // The subscriber stays attached and gets what is published next.
        await client.publish(topic, 'after delete');
        const fresh = await nextMessage(sub);
        assert.equal(fresh.data.toString(), 'after delete');
        await fresh.ack();
        await sub.close();
      });
    });

    describe('typed errors', () => {
      test('bad topic names: MQ_ERR_BAD_TOPIC with status 400 from every call', async () => {
        for (const topic of ['has space', 'a/b', 'x'.repeat(256), 'é']) {
          const err = await rejection(client.publish(topic, 'x'));
          assert.equal(err.code, 'MQ_ERR_BAD_TOPIC', topic);
          assert.equal(err.statusCode, 400);
          assert.equal(err.name, 'MiniqueueError');
        }
        assert.equal((await rejection(client.deleteTopic('has space'))).code, 'MQ_ERR_BAD_TOPIC');
        assert.equal((await rejection(client.deleteTopic(''))).code, 'MQ_ERR_BAD_TOPIC');
        const sub = client.subscribe('no good');
        const err = await rejection(sub.next());
        assert.equal(err.code, 'MQ_ERR_BAD_TOPIC');
        assert.equal(err.statusCode, 400);
        assert.equal(sub.reconnects, 0, 'a 4xx answer is final, not retried');
      });

      test('a message over --max-message-bytes: MQ_ERR_TOO_LARGE with status 413', async () => {
        const topic = freshTopic('large');
        const err = await rejection(client.publish(topic, Buffer.alloc(MAX_MESSAGE_BYTES + 1)));
        assert.equal(err.code, 'MQ_ERR_TOO_LARGE');
        assert.equal(err.statusCode, 413);
        // Far larger than a flow-control window: refused while the body is still being sent.
        const big = await rejection(client.publish(topic, Buffer.alloc(8 * 1024 * 1024)));
        assert.equal(big.code, 'MQ_ERR_TOO_LARGE');
        await client.publish(topic, Buffer.alloc(MAX_MESSAGE_BYTES));
        assert.equal(stats(topic)?.published, 1);
      });

      test('no server: MQ_ERR_CONNECTION; after close(): MQ_ERR_CLOSED; bad url: MQ_ERR_BAD_ARGUMENT', async () => {
        const port = await closedPort();
        const nobody = new MiniqueueClient({ url: `http://127.0.0.1:${port}`, reconnect: false });
        const err = await rejection(nobody.publish('t', 'x'));
        assert.equal(err.code, 'MQ_ERR_CONNECTION');
        assert.equal(err.statusCode, undefined);
        assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
        assert.equal((await rejection(nobody.subscribe('t').next())).code, 'MQ_ERR_CONNECTION');
        await nobody.close();
        assert.equal((await rejection(nobody.topics())).code, 'MQ_ERR_CLOSED');
        assert.throws(() => nobody.subscribe('t'), (e: unknown) => e instanceof MiniqueueError && e.code === 'MQ_ERR_CLOSED');
        assert.throws(() => new MiniqueueClient({ url: 'ftp://x' }), (e: unknown) => e instanceof MiniqueueError && e.code === 'MQ_ERR_BAD_ARGUMENT');
      });
    });

    describe('closing', () => {
      test('break in for await closes the stream; the in-flight message goes to another subscriber', async () => {
        const topic = freshTopic('break');
        await client.publish(topic, 'in flight at break');
        const other = client.subscribe(topic);
        let held: Message | undefined;
        const first = client.subscribe(topic);
        const otherNext = (async () => {
          // Start the other subscriber only after the first one holds the message.
          await waitFor(() => held !== undefined);
          return nextMessage(other);
        })();
        for await (const msg of first) {
          held = msg;
          break;
        }
        assert.ok(held !== undefined);
        const redelivered = await otherNext;
        assert.equal(redelivered.id, held.id);
        assert.equal(redelivered.data.toString(), 'in flight at break');
        assert.equal((await rejection(held.ack())).code, 'MQ_ERR_CLOSED');
        assert.deepEqual(await first.next(), { done: true, value: undefined });
        await redelivered.ack();
        await other.close();
        await waitFor(() => stats(topic)?.consumers === 0);
        assert.equal(stats(topic)?.acked, 1);
      });

      test('client.close() ends every subscription and NACKs what they held', async () => {
        const c = new MiniqueueClient({ url });
        const topic = freshTopic('clientclose');
        await c.publish(topic, 'held');
        const sub = c.subscribe(topic);
        const waiting = c.subscribe(freshTopic('empty'));
        const msg = await nextMessage(sub);
        const pending = waiting.next();
        await waitFor(() => stats(topic)?.inFlight === 1);
        await c.close();
        assert.deepEqual(await pending, { done: true, value: undefined });
        assert.deepEqual(await sub.next(), { done: true, value: undefined });
        assert.equal((await rejection(msg.ack())).code, 'MQ_ERR_CLOSED');
        // Returned, not left to a timeout: the next subscriber gets it at once.
        const next = client.subscribe(topic);
        const again = await nextMessage(next);
        assert.equal(again.id, msg.id);
        await again.ack();
        await next.close();
      });
    });

    describe('the HTTP/2 session', () => {
      test('one session carries every call and subscription', async () => {
        const before = serverSessions.length;
        const c = new MiniqueueClient({ url });
        const topic = freshTopic('onesession');
        await Promise.all(Array.from({ length: 20 }, (_, i) => c.publish(topic, String(i))));
        const subs = [c.subscribe(topic), c.subscribe(topic)];
        const [m1, m2] = await Promise.all(subs.map((s) => nextMessage(s)));
        await m1!.ack();
        await m2!.ack();
        await c.topics();
        await c.deleteTopic(topic);
        assert.equal(serverSessions.length - before, 1);
        await c.close();
      });

      test('when the session dies, the next call opens a new one and subscriptions reconnect', async () => {
        const topic = freshTopic('sessiondeath');
        const errors: string[] = [];
        const c = new MiniqueueClient({ url, reconnect: { initialDelayMs: 20, maxDelayMs: 100 } });
        const sessionsBefore = serverSessions.length;
        await c.publish(topic, 'first');
        await c.publish(topic, 'second');
        const sub = c.subscribe(topic, { onError: (e) => errors.push(e.code) });
        const held = await nextMessage(sub);
        assert.equal(held.data.toString(), 'first');
        assert.equal(serverSessions.length - sessionsBefore, 1);
        serverSessions.at(-1)!.destroy();

        // The message in flight at the drop comes back on the new stream; the iterator continues.
        const again = await nextMessage(sub);
        assert.equal(again.id, held.id);
        assert.equal((await rejection(held.ack())).code, 'MQ_ERR_STALE_MESSAGE');
        assert.ok(sub.reconnects >= 1);
        assert.ok(errors.includes('MQ_ERR_CONNECTION'), `drops are reported: ${errors.join(',')}`);
        await again.ack();
        const second = await nextMessage(sub);
        assert.equal(second.data.toString(), 'second');
        await second.ack();
        await c.publish(topic, 'third');
        assert.equal(serverSessions.length - sessionsBefore, 2, 'calls share the re-created session');
        await c.close();
        await waitFor(() => stats(topic)?.acked === 2);
      });

      test('reconnect: false ends the subscription with the drop error', async () => {
        const topic = freshTopic('noreconnect');
        const c = new MiniqueueClient({ url });
        await c.publish(topic, 'x');
        const sub = c.subscribe(topic, { reconnect: false });
        await nextMessage(sub);
        serverSessions.at(-1)!.destroy();
        const err = await rejection(sub.next());
        assert.equal(err.code, 'MQ_ERR_CONNECTION');
        await c.close();
      });
    });

    describe('client against a server with --ack-timeout', () => {
      test('an expired message: touch/ack reject MQ_ERR_ACK_TIMEOUT, onError gets the notice, and the iterator goes on by itself', async (t) => {
        const ackServer = await targets.start(engine, ['--ack-timeout', '300ms']);
        const c = new MiniqueueClient({ url: `http://127.0.0.1:${ackServer.httpPort}` });
        t.after(async () => {
          await c.close();
          await ackServer.close();
        });
        await c.publish('slow', 'job 1');
        await c.publish('slow', 'job 2');
        const streamErrors: MiniqueueError[] = [];
        const sub = c.subscribe('slow', { onError: (e) => streamErrors.push(e) });
        const first = await nextMessage(sub);
        assert.equal(first.data.toString(), 'job 1');
        // Touched in time: kept past the timeout.
        for (let i = 0; i < 4; i++) {
          await letTimePass(120); // time is the subject: each touch comes before the 300 ms timeout
          await first.touch();
        }
        assert.equal(first.expired, false);
        // Then the job hangs: the timeout takes it back; the user moves on without settling.
        await waitFor(() => first.expired, 3000);
        // The handler is still busy: nothing more is taken from the server meanwhile, so nothing else
        // times out unseen (the resuming settle waits for the next next()).
        await letTimePass(1000); // over three timeout periods in which nothing more may expire
        assert.equal(ackServer.queue.topicCounters('slow')?.ackTimeouts, 1, 'one expiry, not one per timeout period');
        if (!differs(engine, 'inFlightAfterNack')) assert.equal(ackServer.queue.topicStats('slow')?.inFlight, 0);
        assert.equal((await rejection(first.touch())).code, 'MQ_ERR_ACK_TIMEOUT');
        assert.equal((await rejection(first.ack())).code, 'MQ_ERR_ACK_TIMEOUT');
        const again = await nextMessage(sub);
        assert.equal(again.id, first.id, 'job 1 again: it went back to the front');
        await again.ack();
        const second = await nextMessage(sub);
        assert.equal(second.data.toString(), 'job 2');
        await second.ack();
        await waitFor(() => ackServer.queue.topicStats('slow')?.acked === 2);
        assert.deepEqual(
          streamErrors.map((e) => e.code),
          ['MQ_ERR_ACK_TIMEOUT'],
          'only the notice is reported; the refusal of the resuming NACK is not',
        );
        await sub.close();
      });
    });
  });
}
