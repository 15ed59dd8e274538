/**
 * Findings of a new-user pass over the RESP listener (issue 13): cross protocol scripting (an
 * HTTP request sent to the RESP port), one DACK bound for both protocols, STATS refusing bad
 * topic names like every other command; and of a later pass (polish P2, P3): settles and TOUCH
 * check the topic name first, the SUBSCRIBE-mode refusal lists exactly the allowed commands.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { isErrorReply, removeDir, RespConn, startInProcess, tempDir } from '../../helpers/index.js';

async function server(t: { after: (fn: () => Promise<void> | void) => void }) {
  const db = tempDir('mq-newuser-');
  const running = await startInProcess(db);
  t.after(async () => {
    await running.close();
    removeDir(db);
  });
  return running;
}

test('an HTTP request sent to the RESP port runs none of its body lines and is closed without a reply', async (t) => {
  const running = await server(t);
  const port = running.resp!.port;
  const setup = await RespConn.connect(port);
  assert.equal(await setup.send('PUBLISH', 'xproto', 'keepme'), 'OK');
  const socket = net.connect(port, '127.0.0.1');
  const received: Buffer[] = [];
  socket.on('data', (d) => received.push(d));
  const body = 'DEL xproto\r\nPUBLISH xproto.injected pwned\r\n';
  socket.write(`POST / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  const closed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    socket.on('close', () => (clearTimeout(timer), resolve(true)));
  });
  socket.destroy();
  assert.ok(closed, 'the server closes the connection');
  assert.equal(Buffer.concat(received).length, 0, 'no reply to an HTTP request');
  assert.deepEqual(((await setup.send('TOPICS')) as Buffer[]).map(String), ['xproto']);
  assert.equal(running.admission.refused.resp.cross_protocol, 1);
  setup.close();
});

test('DACK takes 0..999999999 seconds on RESP as on HTTP/2; 1000000000 is refused naming the bound', async (t) => {
  const running = await server(t);
  const c = await RespConn.connect(running.resp!.port);
  await c.send('PUBLISH', 'dk', 'x');
  const [id] = ((await c.send('RESERVE', 'dk')) as Buffer[]).map(String) as [string];
  const refused = await c.send('DACK', 'dk', id, '1000000000');
  assert.ok(isErrorReply(refused) && /999999999/.test(refused.line), String(refused));
  assert.equal(await c.send('DACK', 'dk', id, '999999999'), 'OK');
  c.close();
});

test('STATS refuses a bad topic name as PUBLISH does; an unknown valid name gets zeros', async (t) => {
  const running = await server(t);
  const c = await RespConn.connect(running.resp!.port);
  const bad = await c.send('STATS', 'a/b');
  assert.ok(isErrorReply(bad) && bad.line.startsWith('ERR invalid topic name'), String(bad));
  const unknown = (await c.send('STATS', 'never.published')) as unknown[];
  assert.equal(String(unknown[1]), 'never.published');
  c.close();
});

test('ACK, NACK, BACK, DACK and TOUCH check the topic name first: a bad one gets MQ_ERR_BAD_TOPIC, not "not in flight"', async (t) => {
  const running = await server(t);
  const c = await RespConn.connect(running.resp!.port);
  const badTopic = "ERR invalid topic name 'bad/topic': use 1-255 bytes of A-Z a-z 0-9 . _ - :";
  for (const command of [
    ['ACK', 'bad/topic', '1'],
    ['NACK', 'bad/topic', '1'],
    ['BACK', 'bad/topic', '1'],
    ['TOUCH', 'bad/topic', '1'],
    ['DACK', 'bad/topic', '1', '5'],
    ['DACK', 'bad/topic', 'x', 'abc'],
    ['ACK', 'bad/topic', 'not-an-id'],
  ]) {
    const reply = await c.send(...command);
    assert.ok(isErrorReply(reply), `${command.join(' ')}: ${String(reply)}`);
    assert.equal(reply.line, badTopic, command.join(' '));
  }
  // With a good name the next check speaks: the id, then whether it is in flight.
  const id = await c.send('ACK', 'good', 'x');
  assert.ok(isErrorReply(id) && id.line.startsWith('ERR invalid argument: the message id'), String(id));
  const notHeld = await c.send('TOUCH', 'good', '1');
  assert.ok(isErrorReply(notHeld) && notHeld.line === 'ERR no message 1 is in flight on this consumer', String(notHeld));
  c.close();
});

test('SUBSCRIBE mode: other commands are refused naming exactly what is allowed (TOUCH too), and a settle with nothing in flight speaks of the subscription', async (t) => {
  const running = await server(t);
  const c = await RespConn.connect(running.resp!.port);
  assert.equal(await c.send('PUBLISH', 'sm', 'one'), 'OK');
  assert.equal(String(await c.send('SUBSCRIBE', 'sm')), 'one');
  const refused = await c.send('STATS', 'sm');
  assert.ok(isErrorReply(refused), String(refused));
  assert.equal(refused.line, "ERR only ACK, NACK, BACK, DACK, TOUCH, PING and QUIT are allowed while subscribed, got 'STATS'");
  assert.equal(await c.send('TOUCH'), 'OK', 'TOUCH is allowed, as the refusal says');
  assert.equal(await c.send('ACK'), 'OK');
  const nothing = await c.send('ACK');
  assert.ok(isErrorReply(nothing), String(nothing));
  assert.equal(nothing.line, 'ERR invalid command: ACK: no message is in flight on this subscription');
  c.close();
});
