/**
 * Issue 12, the engine seam, HTTP half: what the HTTP adapter now takes from src/engine/ and
 * shows a client. A refused topic name gets the very error RESP gives (one builder,
 * engine/topic-name.ts); the subscribe stream's refusals come from the engine's StreamConsumer
 * and carry their code like every other error line. Real in-process server, h2c and HTTP/1.1.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { h2connect, h2request, H2Subscriber, isErrorReply, removeDir, RespConn, startInProcess, tempDir } from '../../helpers/index.js';

test('issue 12: a bad topic name gets the same error body over HTTP/2 publish and subscribe, HTTP/1.1 and RESP', async (t) => {
  const dir = tempDir('mq-h2-seam-');
  const server = await startInProcess(dir);
  const session = h2connect(server.http.port);
  const resp = await RespConn.connect(server.resp!.port);
  t.after(async () => {
    resp.close();
    session.close();
    await server.close();
    removeDir(dir);
  });
  // Longer than the 64 characters an error shows, with a space, a slash, control characters.
  const names = ['a b', 'a/b', `${'x'.repeat(70)} tail`, 'tab\there', 'ctl\x01\x7f', 'q?'];
  for (const name of names) {
    const reply = await resp.send('PUBLISH', name, 'x');
    assert.ok(isErrorReply(reply), `RESP PUBLISH ${JSON.stringify(name)}`);
    assert.ok(reply.line.startsWith('ERR '), reply.line);
    const expected = { error: reply.line.slice('ERR '.length), code: 'MQ_ERR_BAD_TOPIC', statusCode: 400 };
    const encoded = encodeURIComponent(name);
    const published = await h2request(session, 'POST', `/publish/${encoded}`, 'x');
    assert.equal(published.status, 400);
    assert.deepEqual(JSON.parse(published.body.toString()), expected, `HTTP/2 publish ${JSON.stringify(name)}`);
    const subscribed = await h2request(session, 'POST', `/subscribe/${encoded}`, '"INIT"\n');
    assert.equal(subscribed.status, 400);
    assert.deepEqual(JSON.parse(subscribed.body.toString()), expected, `HTTP/2 subscribe ${JSON.stringify(name)}`);
    const http1 = await fetch(`http://127.0.0.1:${server.http.port}/publish/${encoded}`, { method: 'POST', body: 'x' });
    assert.equal(http1.status, 400);
    assert.deepEqual(await http1.json(), expected, `HTTP/1.1 publish ${JSON.stringify(name)}`);
  }
  assert.deepEqual(server.broker.topicNames(), [], 'nothing was published');
});

test('issue 12: the subscribe stream refusals (nothing in flight, TOUCH with nothing held) carry their code', async (t) => {
  const dir = tempDir('mq-h2-seam-');
  const server = await startInProcess(dir);
  const session = h2connect(server.http.port);
  const sub = new H2Subscriber(session, 'seam.refusals');
  t.after(async () => {
    sub.close();
    session.close();
    await server.close();
    removeDir(dir);
  });
  sub.send('INIT');
  sub.send('ACK');
  assert.equal((await sub.next()).code, 'MQ_ERR_BAD_COMMAND', 'ACK while waiting on an empty topic');
  sub.send('TOUCH');
  assert.equal((await sub.next()).code, 'MQ_ERR_BAD_COMMAND', 'TOUCH with nothing held');
  assert.equal((await h2request(session, 'POST', '/publish/seam.refusals', 'late')).status, 201);
  assert.equal((await sub.nextDelivery()).payload.toString(), 'late', 'the refusals did not stop the stream');
});
