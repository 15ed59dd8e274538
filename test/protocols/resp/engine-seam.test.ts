/**
 * The RESP adapter over the engine seam (issue 12): the listener is given a QueueEngine (here the
 * segment-log broker on a temp directory, real sockets) and takes its limits and rules from the
 * engine: the in-flight limit per consumer, topic names, and the SUBSCRIBE stream's state machine
 * (engine/stream-consumer.ts), whose refusals read the same as on the HTTP/2 stream.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Broker, type BrokerOptions } from '../../../src/broker/broker.js';
import { BrokerError } from '../../../src/errors.js';
import { Admission } from '../../../src/protocols/admission.js';
import { startRespListener } from '../../../src/protocols/resp/server.js';
import { type AfterHook, asReserved, brokerOptions, errorLine, removeDir, RespConn, silentLogger, tempDir, waitFor } from '../../helpers/index.js';

const HOUR_MS = 3_600_000;

/** A broker opened with `overrides` and a RESP listener on it (port 0), both closed after the test. */
async function respOver(t: AfterHook, overrides: Partial<BrokerOptions> = {}): Promise<{ broker: Broker; connect: () => Promise<RespConn> }> {
  const dir = tempDir('mq-resp-seam-');
  const broker = new Broker(brokerOptions(dir, overrides));
  broker.open();
  const listener = await startRespListener({
    engine: broker,
    host: '127.0.0.1',
    port: 0,
    maxMessageBytes: 1 << 20,
    logger: silentLogger,
    version: '0.0.0-test',
    admission: new Admission({ maxConnections: 100, authToken: null }),
    maxCommandBytes: 2 << 20,
    maxInputBytes: 64 << 20,
  });
  const conns: RespConn[] = [];
  // The listener first: closing its connections NACKs what they hold, through the open broker.
  t.after(async () => {
    for (const c of conns) c.close();
    await listener.close();
    await broker.close();
    removeDir(dir);
  });
  return {
    broker,
    connect: async () => {
      const c = await RespConn.connect(listener.port);
      conns.push(c);
      return c;
    },
  };
}

test('RESERVE stops at the engine\'s in-flight limit per consumer, with the engine\'s error; a settle makes room', async (t) => {
  const { connect } = await respOver(t, { maxInFlightPerConsumer: 3 });
  const c = await connect();
  for (let i = 0; i < 5; i++) assert.equal(await c.send('PUBLISH', 'lim', `m${i}`), 'OK');
  const held = [];
  for (let i = 0; i < 3; i++) held.push(asReserved(await c.send('RESERVE', 'lim')));
  const refused = errorLine(await c.send('RESERVE', 'lim'));
  assert.equal(refused, new BrokerError('MQ_ERR_BAD_ARGUMENT', ['this consumer already holds 3 messages in flight; settle some first']).toRespLine());
  assert.equal(errorLine(await c.send('RESERVE', 'lim', '1000')), refused, 'a blocking RESERVE is refused alike, at once');
  assert.equal(await c.send('ACK', 'lim', held[0]!.id), 'OK');
  assert.equal(asReserved(await c.send('RESERVE', 'lim')).payload.toString(), 'm3');
});

test('STATS refuses a bad topic name with the engine\'s error, the same line as PUBLISH and RESERVE', async (t) => {
  const { connect } = await respOver(t);
  const c = await connect();
  // Longer than the 64 characters an error quotes, with a byte that is not printable.
  const name = `bad\x01${'x'.repeat(100)}`;
  const expected = errorLine(await c.send('PUBLISH', name, 'p'));
  assert.match(expected, /^ERR invalid topic name 'bad\?x+\.\.\.'/);
  assert.equal(errorLine(await c.send('STATS', name)), expected);
  assert.equal(errorLine(await c.send('RESERVE', name)), expected);
  assert.equal(errorLine(await c.send('SUBSCRIBE', name)), expected);
  assert.equal(await c.send('PING'), 'PONG', 'a refused SUBSCRIBE leaves the connection out of stream mode');
});

test('SUBSCRIBE after an ack timeout: TOUCH and the next settle are refused with the stream error HTTP/2 sends, then delivery goes on', async (t) => {
  const { broker, connect } = await respOver(t, { ackTimeoutMs: HOUR_MS });
  const c = await connect();
  assert.equal(await c.send('PUBLISH', 'exp', 'a'), 'OK');
  assert.equal(await c.send('PUBLISH', 'exp', 'b'), 'OK');
  const sub = await connect();
  assert.equal(((await sub.send('SUBSCRIBE', 'exp')) as Buffer).toString(), 'a');
  const id = broker.inspect('exp')!.inFlight[0]!.id;
  // The ack ticker, driven by hand: the hour is up.
  assert.equal(broker.expireAckTimeouts(performance.now() + 2 * HOUR_MS), 1);
  assert.equal(errorLine(await sub.send('TOUCH')), new BrokerError('MQ_ERR_DELIVERY_EXPIRED', ['TOUCH', id]).toRespLine());
  assert.equal(errorLine(await sub.send('ACK')), new BrokerError('MQ_ERR_DELIVERY_EXPIRED', ['ACK', id]).toRespLine());
  assert.equal(((await sub.next()) as Buffer).toString(), 'a', 'after the refusal, the expired message comes again');
  assert.equal(await sub.send('ACK'), 'OK');
  assert.equal(((await sub.next()) as Buffer).toString(), 'b');
  assert.equal(await sub.send('ACK'), 'OK');
  assert.equal(errorLine(await sub.send('ACK')), 'ERR invalid command: ACK: no message is in flight on this subscription');
  assert.deepEqual(broker.topicStats('exp'), { topic: 'exp', ready: 0, inFlight: 0, delayed: 0, consumers: 1, published: 2, acked: 2 });
});

test('a connection that RESERVEd, then SUBSCRIBEd: its close returns every message to the front in delivery order', async (t) => {
  const { broker, connect } = await respOver(t);
  const c = await connect();
  for (const p of ['m1', 'm2', 'm3', 'm4']) assert.equal(await c.send('PUBLISH', 'mix', p), 'OK');
  assert.equal(asReserved(await c.send('RESERVE', 'mix')).payload.toString(), 'm1');
  assert.equal(asReserved(await c.send('RESERVE', 'mix')).payload.toString(), 'm2');
  assert.equal(((await c.send('SUBSCRIBE', 'mix')) as Buffer).toString(), 'm3');
  assert.equal(broker.topicStats('mix')!.inFlight, 3);
  assert.equal(broker.topicStats('mix')!.consumers, 1);
  c.close();
  await c.closed;
  await waitFor(() => broker.topicStats('mix')!.inFlight === 0);
  assert.equal(broker.topicStats('mix')!.consumers, 0);
  const other = await connect();
  const order: string[] = [];
  for (let i = 0; i < 4; i++) order.push(asReserved(await other.send('RESERVE', 'mix')).payload.toString());
  assert.deepEqual(order, ['m1', 'm2', 'm3', 'm4']);
});
