/**
 * One suite, two engines (issue 15): the core cases of the HTTP/2, RESP and Node client suites
 * against a real server process started with `--engine log` and with `--engine jetstream` (a
 * three-node cluster, `--nats-replicas 3`). A case that cannot hold on one engine is skipped
 * there, and its skip names the README difference ("Differences from the log engine a client can
 * notice") that explains why. The single-engine suites (test/protocols/, test/client/) keep their
 * edge cases; these are the behaviours both engines promise.
 */
import assert from 'node:assert/strict';
import type http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { MiniqueueClient, type Message, type Subscription } from '../../../src/client/index.js';
import {
  asReserved,
  errorLine,
  h2connect,
  h2request,
  H2Subscriber,
  RespConnections,
  statsOf,
  waitFor,
  type RespConn,
} from '../../helpers/index.js';
import { startTarget, type EngineName, type EngineTarget } from './engine-target.js';

/** README differences a case may be skipped for, by engine. */
const DIFFERENCES: Record<EngineName, Record<string, string>> = {
  log: {},
  jetstream: {
    reserveNoTimeout:
      'README "Differences from the log engine": `RESERVE topic` without a timeout (or 0) answers nil unless this gateway already holds an unclaimed message of the topic',
    inFlightAfterNack:
      'README "Differences from the log engine": `inFlight` is JetStream\'s "ack pending", which also counts messages just NAKed and not yet pulled again',
  },
};

/** Registers the suite for `engine` in the calling test file. */
export function engineSuite(engine: EngineName): void {
  let target: EngineTarget;
  let session: http2.ClientHttp2Session;
  let client: MiniqueueClient;
  let topicSeq = 0;
  const subscribers: H2Subscriber[] = [];
  const resp = new RespConnections(() => target.server.respPort);
  const connect = resp.connect;
  /** The test options of a case that does not hold on this engine: skipped, naming the README difference. */
  const unless = (difference: string): { skip?: string } => {
    const why = DIFFERENCES[engine][difference];
    return why === undefined ? {} : { skip: why };
  };
  const freshTopic = (label: string): string => `${engine}.${label}.${++topicSeq}`;
  const subscribe = (topic: string): H2Subscriber => {
    const sub = new H2Subscriber(session, topic);
    subscribers.push(sub);
    return sub;
  };
  const h2publish = async (topic: string, body: string | Buffer): Promise<void> => {
    const res = await h2request(session, 'POST', `/publish/${topic}`, body);
    assert.equal(res.status, 201, `publish to ${topic}: ${res.status} ${res.body.toString()}`);
  };
  const topicsList = async (): Promise<{ topic: string; ready: number; inFlight: number; acked: number }[]> => {
    const res = await h2request(session, 'GET', '/topics');
    assert.equal(res.status, 200);
    return JSON.parse(res.body.toString('utf8')) as { topic: string; ready: number; inFlight: number; acked: number }[];
  };
  /** RESERVE with a timeout: the form both engines answer alike (see reserveNoTimeout). */
  const reserve = async (c: RespConn, topic: string, timeoutMs = 5000): Promise<ReturnType<typeof asReserved>> =>
    asReserved(await c.send('RESERVE', topic, String(timeoutMs)));

  before(async () => {
    target = await startTarget(engine, ['--period', '100ms']);
    session = h2connect(target.server.httpPort);
    client = new MiniqueueClient({ url: `http://127.0.0.1:${target.server.httpPort}`, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
  });

  after(async () => {
    for (const s of subscribers) s.close();
    resp.closeAll();
    session?.close();
    await client?.close();
    const stopped = await target?.stop();
    assert.equal(stopped?.code, 0, 'SIGTERM stops the server with exit 0');
  });

  describe(`HTTP/2 (--engine ${engine})`, () => {
    test('publish answers 201; a binary payload comes back byte for byte; DELETE answers 200 and /topics forgets it', async () => {
      const topic = freshTopic('h2.bin');
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await h2publish(topic, all);
      const sub = subscribe(topic);
      assert.equal(await sub.response, 200);
      sub.send('INIT');
      const d = await sub.nextDelivery();
      assert.deepEqual(d.payload, all);
      sub.send('ACK');
      sub.close();
      assert.ok((await topicsList()).some((t) => t.topic === topic));
      assert.equal((await h2request(session, 'DELETE', `/${topic}`)).status, 200);
      assert.ok(!(await topicsList()).some((t) => t.topic === topic));
    });

    test('subscribe: INIT delivers, ACK moves on in publish order; the acks are counted', async () => {
      const topic = freshTopic('h2.ack');
      for (const p of ['m1', 'm2', 'm3']) await h2publish(topic, p);
      const sub = subscribe(topic);
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
      sub.close();
      await waitFor(async () => (await topicsList()).find((t) => t.topic === topic)?.acked === 3);
    });

    test('subscribe: NACK redelivers the same message at once, BACK puts it behind the others', async () => {
      const topic = freshTopic('h2.nackback');
      for (const p of ['a', 'b', 'c']) await h2publish(topic, p);
      const sub = subscribe(topic);
      sub.send('INIT');
      const a = await sub.nextDelivery();
      assert.equal(a.payload.toString(), 'a');
      sub.send('NACK');
      const again = await sub.nextDelivery();
      assert.equal(again.payload.toString(), 'a');
      assert.equal(again.id, a.id);
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

    test('subscribe: DACK 1 holds the message at least 1 s and returns it with dackCount 1; TOUCH keeps the stream working', async () => {
      const topic = freshTopic('h2.dack');
      await h2publish(topic, 'later');
      await h2publish(topic, 'now');
      const sub = subscribe(topic);
      sub.send('INIT');
      const first = await sub.nextDelivery();
      assert.equal(first.payload.toString(), 'later');
      const t0 = Date.now();
      sub.send('DACK 1');
      const second = await sub.nextDelivery();
      assert.equal(second.payload.toString(), 'now');
      sub.send('TOUCH');
      sub.send('ACK');
      const back = await sub.nextDelivery(8000);
      const elapsedMs = Date.now() - t0;
      assert.equal(back.payload.toString(), 'later');
      assert.equal(back.id, first.id);
      assert.equal(back.dackCount, 1);
      assert.ok(elapsedMs >= 1000, `returned after ${elapsedMs} ms, before its 1 s delay`);
      sub.send('ACK');
      sub.close();
    });

    test('closing a stream with a message in flight hands that message to another subscriber', async () => {
      const topic = freshTopic('h2.close');
      await h2publish(topic, 'held');
      const first = subscribe(topic);
      first.send('INIT');
      const d = await first.nextDelivery();
      first.close();
      await first.closed;
      const second = subscribe(topic);
      second.send('INIT');
      const again = await second.nextDelivery();
      assert.equal(again.id, d.id);
      assert.equal(again.payload.toString(), 'held');
      second.send('ACK');
      second.close();
    });
  });

  describe(`RESP (--engine ${engine})`, () => {
    test('PUBLISH answers +OK; TOPICS lists the topic; DEL answers :1 then :0', async () => {
      const c = await connect();
      const topic = freshTopic('resp.pub');
      assert.equal(await c.send('PUBLISH', topic, 'x'), 'OK');
      const topics = (await c.send('TOPICS')) as Buffer[];
      assert.ok(topics.map(String).includes(topic), `TOPICS: ${topics.map(String).join(' ')}`);
      assert.equal(await c.send('DEL', topic), 1);
      assert.equal(await c.send('DEL', topic), 0);
      assert.ok(!((await c.send('TOPICS')) as Buffer[]).map(String).includes(topic));
    });

    test('RESERVE answers [id, payload, dackCount]; ACK settles once; STATS counts it', async () => {
      const c = await connect();
      const topic = freshTopic('resp.reserve');
      const payload = Buffer.from('bin\r\n\x00\xff', 'latin1');
      assert.equal(await c.send('PUBLISH', topic, payload), 'OK');
      const r = await reserve(c, topic);
      assert.deepEqual(r.payload, payload);
      assert.equal(r.dackCount, 0);
      assert.equal(await c.send('RESERVE', topic, '300'), null, 'the only message is in flight');
      assert.equal(await c.send('ACK', topic, r.id), 'OK');
      errorLine(await c.send('ACK', topic, r.id));
      await waitFor(async () => {
        const s = await statsOf(c, topic);
        return s.acked === 1 && s.published === 1 && s.ready === 0 && s.inFlight === 0;
      });
    });

    test('RESERVE without a timeout returns a ready message', unless('reserveNoTimeout'), async () => {
      const c = await connect();
      const topic = freshTopic('resp.notimeout');
      assert.equal(await c.send('PUBLISH', topic, 'ready'), 'OK');
      const r = asReserved(await c.send('RESERVE', topic));
      assert.equal(r.payload.toString(), 'ready');
      assert.equal(await c.send('ACK', topic, r.id), 'OK');
    });

    test('NACK puts the message back at the front, BACK at the end', async () => {
      const c = await connect();
      const topic = freshTopic('resp.nackback');
      for (const p of ['a', 'b', 'c']) assert.equal(await c.send('PUBLISH', topic, p), 'OK');
      const a = await reserve(c, topic);
      assert.equal(a.payload.toString(), 'a');
      assert.equal(await c.send('NACK', topic, a.id), 'OK');
      const again = await reserve(c, topic);
      assert.equal(again.id, a.id);
      assert.equal(await c.send('BACK', topic, a.id), 'OK');
      const order: string[] = [];
      for (let i = 0; i < 3; i++) {
        const m = await reserve(c, topic);
        order.push(m.payload.toString());
        assert.equal(await c.send('ACK', topic, m.id), 'OK');
      }
      assert.deepEqual(order, ['b', 'c', 'a']);
    });

    test('after a NACK the message counts as ready in STATS, not in flight', unless('inFlightAfterNack'), async () => {
      const c = await connect();
      const topic = freshTopic('resp.nackstats');
      assert.equal(await c.send('PUBLISH', topic, 'n'), 'OK');
      const m = await reserve(c, topic);
      assert.equal(await c.send('NACK', topic, m.id), 'OK');
      const s = await statsOf(c, topic);
      assert.equal(s.ready, 1);
      assert.equal(s.inFlight, 0);
    });

    test('DACK holds the message for its delay and returns it with dackCount 1; STATS counts it delayed', async () => {
      const c = await connect();
      const topic = freshTopic('resp.dack');
      assert.equal(await c.send('PUBLISH', topic, 'delayed'), 'OK');
      const m = await reserve(c, topic);
      const t0 = Date.now();
      assert.equal(await c.send('DACK', topic, m.id, '1'), 'OK');
      errorLine(await c.send('ACK', topic, m.id));
      assert.equal((await statsOf(c, topic)).delayed, 1);
      const back = await reserve(c, topic, 8000);
      const elapsedMs = Date.now() - t0;
      assert.equal(back.id, m.id);
      assert.equal(back.dackCount, 1);
      assert.ok(elapsedMs >= 1000, `back after ${elapsedMs} ms`);
      assert.equal(await c.send('ACK', topic, back.id), 'OK');
    });

    test('closing a connection returns its reserved messages; another connection gets them', async () => {
      const c = await connect();
      const topic = freshTopic('resp.close');
      assert.equal(await c.send('PUBLISH', topic, 'r1'), 'OK');
      const m = await reserve(c, topic);
      c.close();
      await c.closed;
      const other = await connect();
      const again = await reserve(other, topic);
      assert.equal(again.id, m.id);
      assert.equal(await other.send('ACK', topic, again.id), 'OK');
    });

    test('SUBSCRIBE: payloads arrive as bulk strings; ACK is +OK then the next; NACK redelivers; a later publish is pushed', async () => {
      const c = await connect();
      const p = await connect();
      const topic = freshTopic('resp.sub');
      for (const m of ['one', 'two']) assert.equal(await p.send('PUBLISH', topic, m), 'OK');
      assert.deepEqual(await c.send('SUBSCRIBE', topic), Buffer.from('one'));
      assert.equal(await c.send('NACK'), 'OK');
      assert.deepEqual(await c.next(), Buffer.from('one'));
      assert.equal(await c.send('ACK'), 'OK');
      assert.deepEqual(await c.next(), Buffer.from('two'));
      assert.equal(await c.send('ACK'), 'OK');
      assert.equal(await p.send('PUBLISH', topic, 'three'), 'OK');
      assert.deepEqual(await c.next(), Buffer.from('three'));
      assert.equal(await c.send('ACK'), 'OK');
    });
  });

  describe(`Node client (--engine ${engine})`, () => {
    const nextMessage = async (sub: Subscription, timeoutMs = 8000): Promise<Message> => {
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
    };

    test('publish, subscribe, nack, back, dack, touch, ack; topics() and deleteTopic()', async () => {
      const topic = freshTopic('client.all');
      const binary = Buffer.from([0x00, 0xff, 0x0a, 0x0d]);
      await client.publish(topic, binary);
      await client.publish(topic, 'b');
      const sub = client.subscribe(topic);
      const a = await nextMessage(sub);
      assert.deepEqual(a.data, binary);
      await a.nack();
      const a2 = await nextMessage(sub);
      assert.equal(a2.id, a.id, 'NACK puts it at the front');
      await a2.back();
      const b = await nextMessage(sub);
      assert.equal(b.data.toString(), 'b', 'BACK puts it at the end');
      await b.touch();
      await b.ack();
      const a3 = await nextMessage(sub);
      assert.equal(a3.id, a.id);
      await a3.dack(0);
      const a4 = await nextMessage(sub);
      assert.equal(a4.dackCount, 1);
      await a4.ack();
      await sub.close();
      const stats = (await client.topics()).find((t) => t.topic === topic);
      assert.ok(stats !== undefined, 'topics() lists the topic');
      assert.equal(await client.deleteTopic(topic), true);
      assert.equal(await client.deleteTopic(topic), false);
    });

    test('competing subscribers share a topic; each message is delivered and acked once', async () => {
      const topic = freshTopic('client.compete');
      const N = 20;
      for (let i = 0; i < N; i++) await client.publish(topic, `m${i}`);
      const got: string[] = [];
      const consume = async (sub: Subscription): Promise<void> => {
        while (got.length < N) {
          let msg: Message;
          try {
            msg = await nextMessage(sub, 3000);
          } catch {
            continue;
          }
          got.push(msg.data.toString());
          await msg.ack();
        }
      };
      const subs = [client.subscribe(topic), client.subscribe(topic)];
      await Promise.all(subs.map(consume));
      await Promise.all(subs.map((s) => s.close()));
      assert.deepEqual([...got].sort(), Array.from({ length: N }, (_, i) => `m${i}`).sort());
    });
  });
}
