/**
 * New-user pass (polish P1, P2): every error line of the HTTP/2 subscribe stream carries the
 * `code` the README's error table gives, with the text of src/errors.ts; a bad DACK delay gets one
 * code and text on HTTP/2, RESP SUBSCRIBE and RESP `DACK topic id seconds`. Real in-process server,
 * node:http2 and raw RESP clients.
 */
import assert from 'node:assert/strict';
import type http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { ERRORS, type ErrorCode } from '../../../src/errors.js';
import type { RunningServer } from '../../../src/server/server.js';
import { asReserved, h2connect, H2Subscriber, isErrorReply, removeDir, RespConn, startInProcess, type SubscribeLine, tempDir } from '../../helpers/index.js';

/** Whether `message` is the ERRORS entry's text of `code`, its `%s` holes filled with anything. */
function fromTable(code: ErrorCode, message: string): boolean {
  const pattern = ERRORS[code].message.split('%s').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${pattern}$`, 's').test(message);
}

/** Asserts `line` is an error line with `code` and that code's text from the table. */
function assertErrorLine(line: SubscribeLine, code: ErrorCode, sent: string): void {
  assert.equal(typeof line.error, 'string', `${sent}: an error line, got ${JSON.stringify(line)}`);
  assert.equal(line.code, code, `${sent}: ${JSON.stringify(line)}`);
  assert.ok(fromTable(code, line.error!), `${sent}: text from the ${code} entry of src/errors.ts: ${JSON.stringify(line.error)}`);
}

describe('HTTP/2 subscribe stream: error lines carry their code', () => {
  let dir: string;
  let server: RunningServer;
  let session: http2.ClientHttp2Session;
  before(async () => {
    dir = tempDir('mq-sub-codes-');
    server = await startInProcess(dir);
    session = h2connect(server.http.port);
  });
  after(async () => {
    session.close();
    await server.close();
    removeDir(dir);
  });

  test('before INIT: settles and TOUCH, bad DACK delays, unknown words, lines that are not JSON strings, bad arity', async () => {
    const sub = new H2Subscriber(session, 'codes.before');
    assert.equal(await sub.response, 200);
    const cases: [sent: string, code: ErrorCode][] = [
      ['"ACK"', 'MQ_ERR_BAD_COMMAND'],
      ['"NACK"', 'MQ_ERR_BAD_COMMAND'],
      ['"BACK"', 'MQ_ERR_BAD_COMMAND'],
      ['"DACK 1"', 'MQ_ERR_BAD_COMMAND'],
      ['"TOUCH"', 'MQ_ERR_BAD_COMMAND'],
      ['"DACK abc"', 'MQ_ERR_BAD_ARGUMENT'],
      ['"DACK -1"', 'MQ_ERR_BAD_ARGUMENT'],
      ['"DACK"', 'MQ_ERR_BAD_ARGUMENT'],
      ['"DACK 1000000000"', 'MQ_ERR_BAD_ARGUMENT'],
      ['"FOO"', 'MQ_ERR_UNKNOWN_COMMAND'],
      ['garbage', 'MQ_ERR_BAD_COMMAND'],
      ['{"cmd":"ACK"}', 'MQ_ERR_BAD_COMMAND'],
      ['42', 'MQ_ERR_BAD_COMMAND'],
      ['"ACK now"', 'MQ_ERR_WRONG_ARITY'],
      ['"INIT please"', 'MQ_ERR_WRONG_ARITY'],
    ];
    sub.sendRaw(cases.map(([sent]) => `${sent}\n`).join(''));
    for (const [sent, code] of cases) assertErrorLine(await sub.next(), code, sent);
    // The unknown word is quoted as sent, so the Node client's TOUCH echo ("mq.sync.<n>.end") still finds it.
    sub.send('mq.sync.7.end');
    const echo = await sub.next();
    assertErrorLine(echo, 'MQ_ERR_UNKNOWN_COMMAND', 'mq.sync.7.end');
    assert.ok(echo.error!.includes('mq.sync.7.end'), echo.error);
    sub.sendRaw(`"${'x'.repeat(1100)}\n`);
    assertErrorLine(await sub.next(), 'MQ_ERR_BAD_COMMAND', 'a 1100-byte line');
    sub.close();
    await sub.closed;
  });

  test('after INIT: a second INIT, a settle and TOUCH with nothing in flight; the held message stays held through every mistake', async () => {
    const pub = await RespConn.connect(server.resp!.port);
    assert.equal(await pub.send('PUBLISH', 'codes.after', 'one'), 'OK');
    const sub = new H2Subscriber(session, 'codes.after');
    sub.send('INIT');
    const first = await sub.nextDelivery();
    assert.equal(first.payload.toString(), 'one');
    for (const [sent, code] of [
      ['"INIT"', 'MQ_ERR_BAD_COMMAND'],
      ['"DACK x"', 'MQ_ERR_BAD_ARGUMENT'],
      ['"BACK 1"', 'MQ_ERR_WRONG_ARITY'],
      ['"SUBSCRIBE codes.after"', 'MQ_ERR_UNKNOWN_COMMAND'],
      ['nonsense', 'MQ_ERR_BAD_COMMAND'],
    ] as const) {
      sub.sendRaw(`${sent}\n`);
      assertErrorLine(await sub.next(), code, sent);
    }
    // Nothing was lost by the mistakes: the message is still held, so the first ACK settles it
    // (no line) and only the second finds nothing in flight.
    sub.send('ACK');
    sub.send('ACK');
    assertErrorLine(await sub.next(), 'MQ_ERR_BAD_COMMAND', '"ACK" with nothing in flight');
    sub.send('TOUCH');
    assertErrorLine(await sub.next(), 'MQ_ERR_BAD_COMMAND', '"TOUCH" with nothing in flight');
    assert.equal(sub.bufferedLines, 0);
    sub.close();
    await sub.closed;
    pub.close();
  });

  test('a bad DACK delay: one code and text on HTTP/2, RESP SUBSCRIBE and RESP DACK topic id seconds', async () => {
    const resp = await RespConn.connect(server.resp!.port);
    for (const t of ['dk.h2', 'dk.stream', 'dk.byid']) assert.equal(await resp.send('PUBLISH', t, 'x'), 'OK');
    const sub = new H2Subscriber(session, 'dk.h2');
    sub.send('INIT');
    await sub.nextDelivery();
    const texts = new Set<string>();
    for (const bad of ['abc', '-1', '1000000000', '1.5']) {
      sub.send(`DACK ${bad}`);
      const line = await sub.next();
      assertErrorLine(line, 'MQ_ERR_BAD_ARGUMENT', `"DACK ${bad}"`);
      texts.add(`${ERRORS.MQ_ERR_BAD_ARGUMENT.respPrefix} ${line.error!}`);
    }
    const reserved = asReserved(await resp.send('RESERVE', 'dk.byid'));
    for (const bad of ['abc', '-1', '1000000000', '1.5']) {
      const reply = await resp.send('DACK', 'dk.byid', reserved.id, bad);
      assert.ok(isErrorReply(reply), String(reply));
      texts.add(reply.line);
    }
    const streamed = await RespConn.connect(server.resp!.port);
    await streamed.send('SUBSCRIBE', 'dk.stream');
    for (const bad of ['abc', '-1', '1000000000', '1.5']) {
      const reply = await streamed.send('DACK', bad);
      assert.ok(isErrorReply(reply), String(reply));
      texts.add(reply.line);
    }
    assert.deepEqual([...texts], ['ERR invalid argument: DACK needs a whole number of seconds from 0 to 999999999']);
    sub.close();
    resp.close();
    streamed.close();
  });
});
