/**
 * A subscription of `miniqueue/client` survives its server being SIGKILLed and restarted on the
 * same --db and the same ports: the iterator just continues, the message in flight at the
 * crash is delivered again, nothing is lost, and nothing whose ACK was durable comes back.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { MiniqueueClient, MiniqueueError, type Message, type Subscription } from '../../src/client/index.js';
import { type ChildServer, removeDir, startChild, tempDir, waitFor } from '../helpers/index.js';

/** `count` distinct ports that were free a moment ago (bound on port 0 together, then released). */
async function freePorts(count: number): Promise<number[]> {
  const probes = Array.from({ length: count }, () => net.createServer());
  await Promise.all(probes.map((p) => new Promise<void>((resolve) => p.listen(0, '127.0.0.1', resolve))));
  const ports = probes.map((p) => (p.address() as net.AddressInfo).port);
  await Promise.all(probes.map((p) => new Promise<void>((resolve) => p.close(() => resolve()))));
  return ports;
}

async function next(sub: Subscription, timeoutMs = 15_000): Promise<Message> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([
      sub.next(),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no message within ${timeoutMs} ms`)), timeoutMs))),
    ]);
    assert.equal(r.done, false);
    return r.value as Message;
  } finally {
    clearTimeout(timer);
  }
}

test('server SIGKILLed and restarted mid-subscription: no message lost, the iterator continues', async (t) => {
  const dir = tempDir('mq-client-restart-');
  t.after(() => removeDir(dir));
  const [httpPort, respPort] = await freePorts(2);
  // startChild passes its own --port 0 first; the later options win (yargs, no duplicate arrays).
  const args = ['--port', String(httpPort), '--redis-port', String(respPort), '--period', '100ms'];
  let child: ChildServer = await startChild(dir, args);
  t.after(() => child.kill('SIGKILL'));
  assert.equal(child.httpPort, httpPort);

  const restart = async (): Promise<void> => {
    await child.kill('SIGKILL');
    child = await startChild(dir, args);
    assert.equal(child.httpPort, httpPort);
  };

  const client = new MiniqueueClient({ url: `http://127.0.0.1:${httpPort}`, reconnect: { initialDelayMs: 25, maxDelayMs: 250 } });
  t.after(() => client.close());
  const topic = 'restart.jobs';
  const drops: string[] = [];
  const acked = new Set<number>();
  const deliveries: number[] = [];
  for (let i = 0; i < 20; i++) await client.publish(topic, String(i));

  const sub = client.subscribe(topic, { onError: (e) => drops.push(e.code) });
  /** Takes the next message, checking it was published and not acked before. */
  const take = async (): Promise<{ msg: Message; n: number }> => {
    const msg = await next(sub);
    const n = Number(msg.data.toString());
    assert.ok(Number.isInteger(n) && n >= 0 && n < 30, `unexpected payload ${msg.data.toString()}`);
    assert.ok(!acked.has(n), `message ${n} was delivered again after its ACK`);
    deliveries.push(n);
    return { msg, n };
  };

  // 1. Crash while message 10 is in flight to us.
  for (;;) {
    const { msg, n } = await take();
    if (n < 10) {
      await msg.ack();
      acked.add(n);
      continue;
    }
    assert.equal(n, 10);
    // A streamed ACK gets no answer, and the server delivers the next message without waiting
    // for the ACK's fsync. A publish is answered once durable, and the log writer keeps append
    // order, so an answered publish proves the ACKs appended before it are durable too.
    await client.publish('restart.barrier', 'x');
    await child.kill('SIGKILL');
    await waitFor(() => !sub.connected, 5000);
    const down = await client.publish(topic, 'never').then(
      () => assert.fail('published to a dead server'),
      (e: unknown) => e,
    );
    assert.ok(down instanceof MiniqueueError);
    assert.equal(down.code, 'MQ_ERR_CONNECTION');
    assert.equal((await msg.ack().then(() => null, (e: MiniqueueError) => e))?.code, 'MQ_ERR_STALE_MESSAGE');
    child = await startChild(dir, args);
    break;
  }
  // The iterator continues: 10 again (back at the front after the restart), then the rest.
  for (;;) {
    const { msg, n } = await take();
    await msg.ack();
    acked.add(n);
    if (n === 19) break;
  }

  // 2. Crash while the subscription waits on an empty topic; publish after the restart.
  // ACK resolves once sent; wait until the server has applied it, then make it durable (above).
  await waitFor(async () => (await client.topics()).find((s) => s.topic === topic)?.acked === 20, 10_000);
  await client.publish('restart.barrier', 'x');
  const waiting = take();
  await waitFor(async () => {
    const s = (await client.topics()).find((x) => x.topic === topic);
    return s?.consumers === 1 && s.inFlight === 0 && s.ready === 0;
  }); // the subscription waits on the empty topic
  await restart();
  for (let i = 20; i < 30; i++) await client.publish(topic, String(i));
  for (let first = true; ; first = false) {
    const { msg, n } = first ? await waiting : await take();
    await msg.ack();
    acked.add(n);
    if (n === 29) break;
  }

  assert.deepEqual([...acked].sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i));
  assert.deepEqual(deliveries.filter((n) => n === 10).length, 2, 'the message in flight at the crash came again');
  assert.equal(deliveries.length, 31);
  assert.ok(sub.reconnects >= 2, `reconnects: ${sub.reconnects}`);
  assert.ok(drops.includes('MQ_ERR_CONNECTION'), `drops: ${drops.join(',')}`);
  await sub.close();
  const stats = (await client.topics()).find((s) => s.topic === topic);
  assert.equal(stats?.ready, 0);
  assert.equal(stats?.inFlight, 0);
});
