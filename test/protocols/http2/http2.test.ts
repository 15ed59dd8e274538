/**
 * HTTP/2 API (SPEC §3) against a real in-process server over h2c, with node:http2 as the client:
 * publish edge cases, error bodies, DELETE, and the full-duplex subscribe stream.
 */
import assert from 'node:assert/strict';
import type http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { ENGINES, EngineTargets, h2connect, h2request, H2Subscriber, letTimePass, runCurl, unlessEngine, waitFor, type EngineTarget } from '../../helpers/index.js';

const MAX_MESSAGE_BYTES = 1_048_576;

const targets = new EngineTargets();
let target: EngineTarget;
let session: http2.ClientHttp2Session;
let topicSeq = 0;

/** A topic name of its own for each test. */
function freshTopic(label: string): string {
  return `h2.${label}.${++topicSeq}`;
}

function jsonError(body: Buffer): { error: string } {
  const obj = JSON.parse(body.toString('utf8')) as { error?: unknown };
  assert.equal(typeof obj.error, 'string', `expected {"error":...}, got ${body.toString('utf8')}`);
  assert.ok((obj.error as string).length > 0);
  return obj as { error: string };
}

async function publish(topic: string, body: Buffer | string): Promise<void> {
  const res = await h2request(session, 'POST', `/publish/${topic}`, body);
  assert.equal(res.status, 201, `publish to ${topic}: ${res.status} ${res.body.toString()}`);
}

function subscribe(topic: string, s: http2.ClientHttp2Session = session): H2Subscriber {
  const sub = new H2Subscriber(s, topic);
  subscribers.push(sub);
  return sub;
}

async function topicsList(): Promise<{ topic: string; ready: number; inFlight: number; delayed: number }[]> {
  const res = await h2request(session, 'GET', '/topics');
  assert.equal(res.status, 200);
  return JSON.parse(res.body.toString('utf8')) as { topic: string; ready: number; inFlight: number; delayed: number }[];
}

const subscribers: H2Subscriber[] = [];

for (const engine of ENGINES) {
  describe(`--engine ${engine}`, () => {
    before(async () => {
      target = await targets.start(engine, ['--period', '100ms']);
      session = h2connect(target.httpPort);
    });

    after(async () => {
      for (const s of subscribers.splice(0)) s.close();
      session.close();
      await target.close();
    });

    describe('POST /publish/:topic', () => {
      test('a binary payload with all 256 byte values is stored byte for byte', async () => {
        const topic = freshTopic('binary');
        const payload = Buffer.alloc(256);
        for (let i = 0; i < 256; i++) payload[i] = i;
        await publish(topic, payload);
        const sub = subscribe(topic);
        sub.send('INIT');
        const d = await sub.nextDelivery();
        assert.deepEqual(d.payload, payload);
        assert.equal(typeof d.id, 'number');
        assert.equal(d.line.dackCount, undefined, 'dackCount is omitted when 0');
        sub.send('ACK');
        sub.close();
        await sub.closed;
      });

      test('an empty body is a valid message and is delivered as "msg":""', async () => {
        const topic = freshTopic('empty');
        await publish(topic, Buffer.alloc(0));
        const sub = subscribe(topic);
        sub.send('INIT');
        const line = await sub.next();
        assert.equal(line.msg, '');
        sub.close();
      });

      test('a body of exactly --max-message-bytes (1 MiB) is accepted and delivered intact', unlessEngine(engine, 'maxMessageBytes'), async () => {
        const topic = freshTopic('max');
        const payload = Buffer.alloc(MAX_MESSAGE_BYTES);
        for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + (i >>> 11)) & 0xff;
        await publish(topic, payload);
        const sub = subscribe(topic);
        sub.send('INIT');
        const d = await sub.nextDelivery();
        assert.equal(d.payload.length, MAX_MESSAGE_BYTES);
        assert.ok(d.payload.equals(payload));
        sub.close();
      });

      test('1 MiB + 1 is refused with 413 and a JSON error, streamed or with content-length, and the session stays usable', async () => {
        const topic = freshTopic('toolarge');
        const big = Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x61);
        const streamed = await h2request(session, 'POST', `/publish/${topic}`, big);
        assert.equal(streamed.status, 413);
        jsonError(streamed.body);

        const declared = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
          const req = session.request({ ':method': 'POST', ':path': `/publish/${topic}`, 'content-length': String(big.length) });
          const chunks: Buffer[] = [];
          let status = 0;
          req.on('response', (h) => (status = Number(h[':status'])));
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('close', () => (status === 0 ? reject(new Error('no response')) : resolve({ status, body: Buffer.concat(chunks) })));
          req.on('error', () => {});
          req.end(big);
        });
        assert.equal(declared.status, 413);
        jsonError(declared.body);

        // Nothing was stored, and the same session still publishes.
        assert.equal((await topicsList()).find((t) => t.topic === topic), undefined);
        await publish(topic, 'after');
        await waitStats(topic, (s) => s.ready === 1);
      });

      test('bad topic names are refused with 400 and a JSON error', async () => {
        for (const bad of ['a%20b', 'x'.repeat(256), 'a%2Fb', '%zz', 'caf%C3%A9']) {
          const res = await h2request(session, 'POST', `/publish/${bad}`, 'x');
          assert.equal(res.status, 400, `topic ${bad}`);
          jsonError(res.body);
        }
        const sub = await h2request(session, 'POST', '/subscribe/a%20b', '"INIT"\n');
        assert.equal(sub.status, 400);
        jsonError(sub.body);
        // The longest valid name and every allowed character are fine.
        await publish('y'.repeat(255), 'ok');
        await publish(`AZaz09._-:${++topicSeq}`, 'ok');
      });

      test('unknown routes answer 404 with a JSON error', async () => {
        for (const [method, path] of [
          ['GET', '/nope'],
          ['POST', '/foo/bar'],
          ['PUT', '/publish/x'],
          ['GET', '/publish/x/y'],
        ] as const) {
          const res = await h2request(session, method, path, method === 'GET' ? undefined : 'x');
          assert.equal(res.status, 404, `${method} ${path}`);
          jsonError(res.body);
        }
      });

      test('DELETE /:topic answers 200 and the topic is gone from GET /topics', async () => {
        const topic = freshTopic('del');
        await publish(topic, 'one');
        await publish(topic, 'two');
        await waitStats(topic, (s) => s.ready === 2);
        const res = await h2request(session, 'DELETE', `/${topic}`);
        assert.equal(res.status, 200);
        assert.equal((await topicsList()).find((t) => t.topic === topic), undefined);
        // A new publish starts an empty topic: the deleted messages do not come back.
        await publish(topic, 'three');
        const sub = subscribe(topic);
        sub.send('INIT');
        assert.equal((await sub.nextDelivery()).payload.toString(), 'three');
        sub.close();
      });

      test('curl --http2-prior-knowledge publishes over h2c', async () => {
        const topic = freshTopic('curl');
        const out = await runCurl(['--http2-prior-knowledge', '--data-binary', 'from curl', `http://127.0.0.1:${target.httpPort}/publish/${topic}`]);
        assert.equal(out, '2 201');
        await waitStats(topic, (s) => s.ready === 1);
      });
    });

    describe('POST /subscribe/:topic', () => {
      test('INIT delivers, ACK moves on to the next message in publish order', async () => {
        const topic = freshTopic('ack');
        for (const p of ['m1', 'm2', 'm3']) await publish(topic, p);
        const sub = subscribe(topic);
        assert.equal(await sub.response, 200);
        sub.send('INIT');
        const seen: string[] = [];
        const ids = new Set<number>();
        for (let i = 0; i < 3; i++) {
          const d = await sub.nextDelivery();
          seen.push(d.payload.toString());
          ids.add(d.id);
          sub.send('ACK');
        }
        assert.deepEqual(seen, ['m1', 'm2', 'm3']);
        assert.equal(ids.size, 3);
        // All three are settled for good.
        await waitStats(topic, (s) => s.ready === 0 && s.inFlight === 0);
        sub.close();
      });

      test('NACK redelivers the same message at once', async () => {
        const topic = freshTopic('nack');
        await publish(topic, 'first');
        await publish(topic, 'second');
        const sub = subscribe(topic);
        sub.send('INIT');
        const a = await sub.nextDelivery();
        assert.equal(a.payload.toString(), 'first');
        sub.send('NACK');
        const b = await sub.nextDelivery();
        assert.equal(b.payload.toString(), 'first');
        assert.equal(b.id, a.id);
        sub.send('ACK');
        assert.equal((await sub.nextDelivery()).payload.toString(), 'second');
        sub.close();
      });

      test('BACK puts the message behind the others', async () => {
        const topic = freshTopic('back');
        for (const p of ['a', 'b', 'c']) await publish(topic, p);
        const sub = subscribe(topic);
        sub.send('INIT');
        assert.equal((await sub.nextDelivery()).payload.toString(), 'a');
        sub.send('BACK');
        const order: string[] = [];
        for (let i = 0; i < 3; i++) {
          const d = await sub.nextDelivery();
          order.push(d.payload.toString());
          sub.send('ACK');
        }
        assert.deepEqual(order, ['b', 'c', 'a']);
        sub.close();
      });

      test('DACK 1 holds the message for at least 1 s, then it returns with "dackCount":1', async () => {
        const topic = freshTopic('dack');
        await publish(topic, 'later');
        await publish(topic, 'now');
        const sub = subscribe(topic);
        sub.send('INIT');
        const first = await sub.nextDelivery();
        assert.equal(first.payload.toString(), 'later');
        const t0 = Date.now();
        sub.send('DACK 1');
        const second = await sub.nextDelivery();
        assert.equal(second.payload.toString(), 'now');
        sub.send('TOUCH'); // answered by nothing when it works: the ACK after it settles 'now'
        sub.send('ACK');
        const back = await sub.nextDelivery(5000);
        const elapsedMs = Date.now() - t0;
        assert.equal(back.payload.toString(), 'later');
        assert.equal(back.id, first.id);
        assert.equal(back.dackCount, 1);
        assert.equal(back.line.dackCount, 1);
        assert.ok(elapsedMs >= 1000, `returned after ${elapsedMs} ms, before its 1 s delay`);
        assert.ok(elapsedMs < 3000, `returned after ${elapsedMs} ms with --period 100ms`);
        // DACK 0 returns it on the next tick, with dackCount 2.
        sub.send('DACK 0');
        const again = await sub.nextDelivery(5000);
        assert.equal(again.id, first.id);
        assert.equal(again.dackCount, 2);
        sub.close();
      });

      test('bad commands get an error line and the stream stays usable with its message in flight', async () => {
        const topic = freshTopic('badcmd');
        await publish(topic, 'x1');
        await publish(topic, 'x2');
        const sub = subscribe(topic);
        sub.send('INIT');
        const d = await sub.nextDelivery();
        assert.equal(d.payload.toString(), 'x1');
        sub.send('FOO');
        assert.equal(typeof (await sub.next()).error, 'string');
        sub.sendRaw('garbage\n');
        assert.equal(typeof (await sub.next()).error, 'string');
        sub.sendRaw('{"cmd":"ACK"}\n');
        assert.equal(typeof (await sub.next()).error, 'string');
        sub.send('DACK x');
        assert.equal(typeof (await sub.next()).error, 'string');
        sub.send('INIT');
        assert.equal(typeof (await sub.next()).error, 'string', 'a second INIT is an error');
        // Still in flight: the topic shows it, and ACK settles it and delivers the next one.
        await waitStats(topic, (s) => s.inFlight === 1 && s.ready === 1);
        sub.send('ACK');
        const next = await sub.nextDelivery();
        assert.equal(next.payload.toString(), 'x2');
        sub.close();
      });

      test('a settle with nothing in flight is an error line; a later message is still delivered', async () => {
        const topic = freshTopic('nothing');
        const sub = subscribe(topic);
        sub.send('ACK');
        assert.equal(typeof (await sub.next()).error, 'string', 'ACK before INIT');
        sub.send('INIT');
        sub.send('ACK');
        assert.equal(typeof (await sub.next()).error, 'string', 'ACK while waiting on an empty topic');
        sub.send('NACK');
        assert.equal(typeof (await sub.next()).error, 'string');
        await publish(topic, 'arrives');
        assert.equal((await sub.nextDelivery()).payload.toString(), 'arrives');
        sub.send('ACK');
        sub.send('ACK');
        assert.equal(typeof (await sub.next()).error, 'string', 'second ACK with nothing in flight');
        sub.close();
      });

      test('a command split across writes is understood', async () => {
        const topic = freshTopic('split');
        for (const p of ['s1', 's2']) await publish(topic, p);
        const sub = subscribe(topic);
        sub.sendRaw('"IN');
        sub.sendRaw('IT"');
        sub.sendRaw('\n');
        assert.equal((await sub.nextDelivery()).payload.toString(), 's1');
        sub.sendRaw('"A');
        sub.sendRaw('CK"\n');
        assert.equal((await sub.nextDelivery()).payload.toString(), 's2');
        sub.close();
      });

      test('several commands per write are all understood, a settle ahead of its delivery included', unlessEngine(engine, 'settleAhead'), async () => {
        const topic = freshTopic('several');
        for (const p of ['s1', 's2', 's3']) await publish(topic, p);
        const sub = subscribe(topic);
        sub.sendRaw('"INIT"\n');
        assert.equal((await sub.nextDelivery()).payload.toString(), 's1');
        sub.sendRaw('"ACK"\n"ACK"\n');
        assert.equal((await sub.nextDelivery()).payload.toString(), 's2');
        assert.equal((await sub.nextDelivery()).payload.toString(), 's3');
        sub.close();
      });

      test('two competing consumers get distinct messages and together all of them exactly once', async () => {
        const topic = freshTopic('compete');
        const total = 40;
        for (let i = 0; i < total; i++) await publish(topic, `c${i}`);
        const s2 = h2connect(target.httpPort);
        const a = subscribe(topic);
        const b = subscribe(topic, s2);
        const got = new Map<string, string[]>([
          ['a', []],
          ['b', []],
        ]);
        let received = 0;
        let finish!: () => void;
        const done = new Promise<void>((resolve) => (finish = resolve));
        const run = async (name: string, sub: H2Subscriber): Promise<void> => {
          sub.send('INIT');
          while (received < total) {
            let d;
            try {
              d = await sub.nextDelivery();
            } catch {
              return; // closed at the end of the test while waiting
            }
            got.get(name)!.push(d.payload.toString());
            received++;
            sub.send('ACK');
            if (received === total) finish();
          }
        };
        void run('a', a);
        void run('b', b);
        await done;
        const all = [...got.get('a')!, ...got.get('b')!];
        assert.equal(all.length, total);
        assert.equal(new Set(all).size, total, 'no message went to both consumers');
        assert.deepEqual(new Set(all), new Set(Array.from({ length: total }, (_, i) => `c${i}`)));
        assert.ok(got.get('a')!.length > 0 && got.get('b')!.length > 0, 'both consumers received messages');
        // Each consumer saw its share in publish order.
        for (const list of got.values()) {
          const nums = list.map((p) => Number(p.slice(1)));
          assert.deepEqual(nums, [...nums].sort((x, y) => x - y));
        }
        await waitStats(topic, (s) => s.ready === 0 && s.inFlight === 0);
        a.close();
        b.close();
        s2.close();
      });

      test('closing a stream with a message in flight hands that message to the other consumer', async () => {
        const topic = freshTopic('handover');
        await publish(topic, 'only');
        const a = subscribe(topic);
        a.send('INIT');
        const d = await a.nextDelivery();
        assert.equal(d.payload.toString(), 'only');
        const s2 = h2connect(target.httpPort);
        const b = subscribe(topic, s2);
        b.send('INIT');
        await waitStats(topic, (s) => s.consumers === 2);
        assert.equal(b.bufferedLines, 0);
        a.close();
        await a.closed;
        const got = await b.nextDelivery();
        assert.equal(got.payload.toString(), 'only');
        assert.equal(got.id, d.id);
        b.close();
        s2.close();
      });

      test('a whole session going away NACKs its in-flight message', async () => {
        const topic = freshTopic('sessiondrop');
        await publish(topic, 'p1');
        await publish(topic, 'p2');
        const s2 = h2connect(target.httpPort);
        const a = subscribe(topic, s2);
        a.send('INIT');
        assert.equal((await a.nextDelivery()).payload.toString(), 'p1');
        s2.destroy();
        await a.closed;
        await waitStats(topic, (s) => s.consumers === 0);
        const b = subscribe(topic);
        b.send('INIT');
        assert.equal((await b.nextDelivery()).payload.toString(), 'p1');
        b.close();
      });

      test('a subscriber waiting on an empty, not yet existing topic receives a message published later', async () => {
        const topic = freshTopic('wait');
        const sub = subscribe(topic);
        sub.send('INIT');
        // A round trip on the same session: the server has read INIT before it answers this.
        assert.equal((await topicsList()).find((t) => t.topic === topic), undefined, 'a waiting consumer does not create the topic');
        assert.equal(sub.bufferedLines, 0);
        const payload = Buffer.from([0, 1, 2, 0xff, 0x0a, 0x0d]);
        await publish(topic, payload);
        const d = await sub.nextDelivery();
        assert.deepEqual(d.payload, payload);
        sub.close();
      });

      test('DELETE of the topic while a message is in flight: an error line at once, its ACK is one too, the stream goes on', async () => {
        const topic = freshTopic('delflight');
        await publish(topic, 'doomed');
        const sub = subscribe(topic);
        sub.send('INIT');
        assert.equal((await sub.nextDelivery()).payload.toString(), 'doomed');
        assert.equal((await h2request(session, 'DELETE', `/${topic}`)).status, 200);
        assert.equal(typeof (await sub.next()).error, 'string');
        sub.send('ACK');
        assert.equal(typeof (await sub.next()).error, 'string');
        await publish(topic, 'reborn');
        assert.equal((await sub.nextDelivery()).payload.toString(), 'reborn');
        sub.close();
      });

      test('a subscriber that goes away while waiting takes no message with it', async () => {
        const topic = freshTopic('waitgone');
        const sub = subscribe(topic);
        sub.send('INIT');
        assert.equal((await topicsList()).find((t) => t.topic === topic), undefined);
        sub.close();
        await sub.closed;
        await publish(topic, 'kept');
        const other = subscribe(topic);
        other.send('INIT');
        assert.equal((await other.nextDelivery()).payload.toString(), 'kept');
        other.close();
      });

      test('NACK on a subscribe stream, a second and more after the next message was pulled ahead: the NACKed message is next', async () => {
        // Time is the subject: a JetStream gateway gives a message it pulled ahead back after a
        // second unclaimed; JetStream then had it ahead of the NACKed one, and handed it on first
        // (hello1 hello2 hello3 hello2, 3 runs of 3, before the fix).
        const topic = freshTopic('nackafterspare');
        for (const p of ['m1', 'm2', 'm3']) await publish(topic, p);
        const sub = subscribe(topic);
        sub.send('INIT');
        assert.equal((await sub.nextDelivery()).payload.toString(), 'm1');
        sub.send('ACK');
        assert.equal((await sub.nextDelivery()).payload.toString(), 'm2');
        await letTimePass(1500);
        sub.send('NACK');
        assert.equal((await sub.nextDelivery()).payload.toString(), 'm2', 'the NACKed message first');
        sub.send('ACK');
        assert.equal((await sub.nextDelivery()).payload.toString(), 'm3');
        sub.send('ACK');
        sub.close();
      });

      test('a client that ends its side after settling its deliveries (nothing in flight, the topic empty): the response ends', async () => {
        // A new user's curl, its input ended after its last ACK, never exited: the stream waited
        // for the next delivery that its last settle had asked for, on an empty topic.
        const topic = freshTopic('halfclose-after');
        await publish(topic, 'only');
        const sub = subscribe(topic);
        sub.send('INIT');
        assert.equal((await sub.nextDelivery()).payload.toString(), 'only');
        sub.send('ACK');
        await waitStats(topic, (s) => s.inFlight === 0 && s.ready === 0);
        sub.stream.end();
        let timer: NodeJS.Timeout | undefined;
        const ended = await Promise.race([sub.closed.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 5000)))]);
        clearTimeout(timer);
        assert.ok(ended, 'the response did not end within 5 s of the end of the input');
      });

      test('a client that ends its side after INIT gets the pending delivery and the response ends', async () => {
        const topic = freshTopic('halfclose');
        await publish(topic, 'one-shot');
        const sub = subscribe(topic);
        sub.stream.end('"INIT"\n');
        assert.equal((await sub.nextDelivery()).payload.toString(), 'one-shot');
        await sub.closed;
        // Nothing settled it, so closing NACKed it: the next subscriber gets it at once.
        const next = subscribe(topic);
        next.send('INIT');
        assert.equal((await next.nextDelivery()).payload.toString(), 'one-shot');
        next.close();
      });
    });
  });
}

/** Waits until the topic's stats (GET /topics over HTTP/2) satisfy `ok`. */
async function waitStats(
  topic: string,
  ok: (s: { ready: number; inFlight: number; delayed: number; consumers: number }) => boolean,
): Promise<void> {
  let stats: { ready: number; inFlight: number; delayed: number; consumers: number } | undefined;
  await waitFor(
    async () => {
      stats = (await topicsList()).find((t) => t.topic === topic) as typeof stats;
      return stats !== undefined && ok(stats);
    },
    5000,
    10,
    () => `the stats of ${topic} to match; last ${JSON.stringify(stats)}`,
  );
}
