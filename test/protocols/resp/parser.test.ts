/**
 * RespParser tests. Every case is fed in one chunk, byte by byte, and at random split points
 * (STYLE.md "Tests"), and every way must give the same commands, the same error kind and reason,
 * and the same bufferedBytes at the end. Random splits come from a seeded PRNG; the seed is in
 * every failure message, and RESP_TEST_SEED=<seed> replays a run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RespParser,
  RespProtocolError,
  type RespParserOptions,
  type RespProtocolErrorKind,
} from '../../../src/protocols/resp/parser.js';
import { prng } from '../../helpers/index.js';

const BASE_SEED = process.env.RESP_TEST_SEED !== undefined
  ? Number(process.env.RESP_TEST_SEED)
  : Math.floor(Math.random() * 2 ** 31);

const SERVER_LIMITS: RespParserOptions = {
  maxBulkBytes: 1024 * 1024,
  maxArrayLength: 1024,
  maxInlineBytes: 64 * 1024,
};
const SMALL_LIMITS: RespParserOptions = { maxBulkBytes: 16, maxArrayLength: 4, maxInlineBytes: 16 };


function bytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

interface Outcome {
  commands: Buffer[][];
  errorKind: RespProtocolErrorKind | undefined;
  errorReason: string | undefined;
  bufferedBytes: number;
}

/** Feeds `chunks` in order, draining next() after each push, as a connection does. */
function run(chunks: readonly Buffer[], opts: RespParserOptions): Outcome {
  const parser = new RespParser(opts);
  const commands: Buffer[][] = [];
  for (const chunk of chunks) {
    parser.push(chunk);
    for (;;) {
      const result = parser.next();
      if (result === undefined) break;
      if (result instanceof RespProtocolError) {
        // The parser is dead from now on: the same error, whatever comes next.
        parser.push(bytes('*1\r\n$4\r\nPING\r\n'));
        assert.equal(parser.next(), result);
        assert.equal(parser.next(), result);
        return { commands, errorKind: result.kind, errorReason: result.reason, bufferedBytes: parser.bufferedBytes };
      }
      assert.ok(result.length > 0, 'a command has at least one argument');
      // Arguments are only valid until the next push(): copy them, as the contract says.
      commands.push(result.map((arg) => Buffer.from(arg)));
    }
  }
  return { commands, errorKind: undefined, errorReason: undefined, bufferedBytes: parser.bufferedBytes };
}

function byteByByte(input: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  // Small inputs get copies (no shared memory between chunks); big ones views, to stay fast.
  for (let i = 0; i < input.length; i++) {
    chunks.push(input.length <= 65536 ? Buffer.from(input.subarray(i, i + 1)) : input.subarray(i, i + 1));
  }
  return chunks;
}

/** Random split points: mostly short pieces, sometimes long ones, so both regimes occur. */
function randomSplit(input: Buffer, random: () => number): Buffer[] {
  const chunks: Buffer[] = [];
  let pos = 0;
  while (pos < input.length) {
    const r = random();
    const maxPiece = r < 0.5 ? 8 : r < 0.9 ? 256 : input.length;
    const piece = 1 + Math.floor(random() * maxPiece);
    chunks.push(input.subarray(pos, pos + piece));
    pos += piece;
  }
  return chunks;
}

interface Expected {
  commands: ReadonlyArray<ReadonlyArray<string | Buffer>>;
  errorKind?: RespProtocolErrorKind;
}

/**
 * Asserts that `input` gives `expected` fed in one chunk, byte by byte and at `randomRuns` random
 * split sets, and that all of them agree on the error reason and the bytes left buffered.
 */
function check(input: Buffer, expected: Expected, opts: RespParserOptions = SERVER_LIMITS, randomRuns = 40): void {
  const want = expected.commands.map((cmd) => cmd.map((arg) => (typeof arg === 'string' ? bytes(arg) : arg)));
  const whole = run([input], opts);
  assert.deepEqual(whole.commands, want, 'one chunk: commands');
  assert.equal(whole.errorKind, expected.errorKind, 'one chunk: error kind');
  if (whole.errorReason !== undefined) {
    // The reason goes into a `-ERR Protocol error: …` line: printable ASCII only.
    assert.match(whole.errorReason, /^[\x20-\x7e]+$/);
  }
  const compare = (outcome: Outcome, how: string): void => {
    assert.deepEqual(outcome.commands, want, `${how}: commands`);
    assert.equal(outcome.errorKind, whole.errorKind, `${how}: error kind`);
    assert.equal(outcome.errorReason, whole.errorReason, `${how}: error reason`);
    assert.equal(outcome.bufferedBytes, whole.bufferedBytes, `${how}: bufferedBytes`);
  };
  compare(run(byteByByte(input), opts), 'byte by byte');
  for (let i = 0; i < randomRuns; i++) {
    const seed = (BASE_SEED + i * 7919) >>> 0;
    compare(run(randomSplit(input, prng(seed)), opts), `random split seed=${seed}`);
  }
}

function multibulk(args: ReadonlyArray<string | Buffer>): Buffer {
  const parts: Buffer[] = [bytes(`*${args.length}\r\n`)];
  for (const arg of args) {
    const b = typeof arg === 'string' ? bytes(arg) : arg;
    parts.push(bytes(`$${b.length}\r\n`), b, bytes('\r\n'));
  }
  return Buffer.concat(parts);
}

test('multibulk PING', () => {
  check(bytes('*1\r\n$4\r\nPING\r\n'), { commands: [['PING']] });
});

test('multibulk with several arguments', () => {
  check(multibulk(['PUBLISH', 'orders', 'hello world']), { commands: [['PUBLISH', 'orders', 'hello world']] });
});

test('binary payload with CRLF and NUL bytes inside', () => {
  const payload = Buffer.from([0, 13, 10, 13, 10, 0, 255, 42, 36, 13, 0, 10, 1]);
  check(multibulk(['PUBLISH', 't', payload]), { commands: [['PUBLISH', 't', payload]] });
});

test('empty bulk $0', () => {
  check(bytes('*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$0\r\n\r\n'), { commands: [['PUBLISH', 't', '']] });
});

test('empty command *0 is skipped', () => {
  check(bytes('*0\r\n*0\r\n*1\r\n$4\r\nPING\r\n*0\r\n'), { commands: [['PING']] });
});

test('a negative multibulk length is a protocol error (SPEC §4)', () => {
  for (const text of ['*-1\r\n', '*-7\r\n', '*-5\r\n$4\r\nPING\r\n']) {
    check(bytes(text), { commands: [], errorKind: 'invalid-multibulk-length' });
  }
});

test('an argument of exactly maxBulkBytes (small limit)', () => {
  const arg = Buffer.alloc(SMALL_LIMITS.maxBulkBytes, 0x61);
  check(multibulk(['SET', arg]), { commands: [['SET', arg]] }, SMALL_LIMITS);
});

test('maxBulkBytes + 1 is an error (small limit)', () => {
  const arg = Buffer.alloc(SMALL_LIMITS.maxBulkBytes + 1, 0x61);
  check(multibulk(['SET', arg]), { commands: [], errorKind: 'bulk-too-large' }, SMALL_LIMITS);
});

test('an argument of exactly 1 MiB with the server limits', () => {
  const payload = Buffer.alloc(SERVER_LIMITS.maxBulkBytes);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff;
  check(multibulk(['PUBLISH', 'big', payload]), { commands: [['PUBLISH', 'big', payload]] }, SERVER_LIMITS, 5);
});

test('1 MiB + 1 is refused on its header, before the payload arrives', () => {
  const parser = new RespParser(SERVER_LIMITS);
  parser.push(bytes(`*3\r\n$7\r\nPUBLISH\r\n$3\r\nbig\r\n$${SERVER_LIMITS.maxBulkBytes + 1}\r\n`));
  const result = parser.next();
  assert.ok(result instanceof RespProtocolError);
  assert.equal(result.kind, 'bulk-too-large');
  assert.equal(result.code, 'MQ_ERR_PROTOCOL');
  assert.equal(parser.bufferedBytes, 0);
});

test('exactly maxArrayLength arguments, and one more is an error', () => {
  const args = Array.from({ length: 1024 }, (_, i) => `a${i}`);
  check(multibulk(args), { commands: [args] }, SERVER_LIMITS, 5);
  check(multibulk([...args, 'x']), { commands: [], errorKind: 'multibulk-too-long' }, SERVER_LIMITS, 5);
});

test('a pipeline of many mixed commands', () => {
  const random = prng(BASE_SEED ^ 0x5eed);
  const parts: Buffer[] = [];
  const commands: Buffer[][] = [];
  for (let i = 0; i < 300; i++) {
    const r = random();
    if (r < 0.5) {
      const argCount = 1 + Math.floor(random() * 4);
      const args: Buffer[] = [];
      for (let j = 0; j < argCount; j++) {
        const arg = Buffer.alloc(Math.floor(random() * (random() < 0.1 ? 3000 : 20)));
        for (let k = 0; k < arg.length; k++) arg[k] = random() < 0.2 ? [13, 10, 0][k % 3]! : Math.floor(random() * 256);
        args.push(arg);
      }
      parts.push(multibulk(args));
      commands.push(args);
    } else if (r < 0.8) {
      const { line, args } = randomInline(random);
      parts.push(line);
      commands.push(args);
    } else if (r < 0.9) {
      parts.push(bytes('*0\r\n'));
    } else {
      parts.push(bytes(random() < 0.5 ? '\r\n' : ' \t \n'));
    }
  }
  // Keep the last command incomplete so bufferedBytes is compared on a non-trivial state.
  parts.push(bytes('*2\r\n$3\r\nfoo\r\n$5\r\nab'));
  check(Buffer.concat(parts), { commands }, SERVER_LIMITS, 20);
});

const PLAIN = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:!@#';

/** A random inline line using plain, double-quoted and single-quoted arguments. */
function randomInline(random: () => number): { line: Buffer; args: Buffer[] } {
  const pieces: string[] = [];
  const args: Buffer[] = [];
  const argCount = 1 + Math.floor(random() * 4);
  for (let i = 0; i < argCount; i++) {
    const kind = random();
    const length = Math.floor(random() * 12) + (kind < 0.5 ? 1 : 0);
    if (kind < 0.5) {
      let s = '';
      for (let j = 0; j < length; j++) s += PLAIN[Math.floor(random() * PLAIN.length)];
      pieces.push(s);
      args.push(bytes(s));
    } else if (kind < 0.8) {
      const arg = Buffer.alloc(length);
      let s = '"';
      for (let j = 0; j < length; j++) {
        const c = Math.floor(random() * 256);
        arg[j] = c;
        if (c === 0x22) s += '\\"';
        else if (c === 0x5c) s += '\\\\';
        else if (c === 10) s += '\\n';
        else if (c === 13) s += '\\r';
        else if (c === 9) s += '\\t';
        else if (c >= 0x20 && c < 0x7f && c !== 0x27) s += String.fromCharCode(c);
        else {
          const hex = c.toString(16).padStart(2, '0');
          s += `\\x${random() < 0.5 ? hex : hex.toUpperCase()}`;
        }
      }
      pieces.push(`${s}"`);
      args.push(arg);
    } else {
      let s = '';
      for (let j = 0; j < length; j++) s += random() < 0.1 ? "'" : PLAIN[Math.floor(random() * PLAIN.length)];
      pieces.push(`'${s.replace(/'/g, "\\'")}'`);
      args.push(bytes(s));
    }
  }
  const separator = random() < 0.8 ? ' ' : ' \t ';
  const end = random() < 0.7 ? '\r\n' : '\n';
  return { line: bytes(`${random() < 0.1 ? '  ' : ''}${pieces.join(separator)}${end}`), args };
}

test('inline commands', () => {
  check(bytes('PING\r\n'), { commands: [['PING']] });
  check(bytes('DACK 5\n'), { commands: [['DACK', '5']] });
  check(bytes('ACK\r\n'), { commands: [['ACK']] });
  check(bytes('set "a b" \'c d\'\r\n'), { commands: [['set', 'a b', 'c d']] });
  check(bytes('  publish\ttopic \t payload  \r\n'), { commands: [['publish', 'topic', 'payload']] });
});

test('inline escapes and quoting rules of sdssplitargs', () => {
  check(bytes('"\\x41\\n"\r\n'), { commands: [['A\n']] });
  check(bytes('echo "\\r\\t\\b\\a\\\\\\"\\z\\xZZ" \'it\\\'s\' \'a\\b\'\r\n'), {
    commands: [['echo', '\r\t\b\x07\\"zxZZ', "it's", 'a\\b']],
  });
  check(bytes('echo "" \'\' x\r\n'), { commands: [['echo', '', '', 'x']] });
  check(bytes('a"b c"d"e" f\r\n'), { commands: [] , errorKind: 'unbalanced-quotes' });
  check(bytes('a"b c" f\r\n'), { commands: [['ab c', 'f']] });
  check(bytes('"\\xff\\x00\\xC3\\xa9"\n'), { commands: [[Buffer.from([0xff, 0x00, 0xc3, 0xa9])]] });
  // UTF-8 text is not garbage.
  check(Buffer.from('publish t héllo\r\n', 'utf8'), { commands: [['publish', 't', Buffer.from('héllo', 'utf8')]] });
});

test('blank inline lines are skipped', () => {
  check(bytes('\r\n\n   \r\n\t\nPING\r\n\r\nDACK 5\n'), { commands: [['PING'], ['DACK', '5']] });
});

test('inline and multibulk mixed in one pipeline', () => {
  check(bytes('PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nACK\n*1\r\n$4\r\nQUIT\r\n'), {
    commands: [['PING'], ['ECHO', 'hi'], ['ACK'], ['QUIT']],
  });
});

test('inline line length limit: maxInlineBytes before the LF, CR included', () => {
  const a = (n: number): string => 'a'.repeat(n);
  check(bytes(`${a(15)}\r\n`), { commands: [[a(15)]] }, SMALL_LIMITS);
  check(bytes(`${a(16)}\n`), { commands: [[a(16)]] }, SMALL_LIMITS);
  check(bytes(`${a(16)}\r\n`), { commands: [], errorKind: 'inline-too-long' }, SMALL_LIMITS);
  check(bytes(`${a(17)}`), { commands: [], errorKind: 'inline-too-long' }, SMALL_LIMITS);
  check(bytes(`PING\r\n${a(40)}\r\nPING\r\n`), { commands: [['PING']], errorKind: 'inline-too-long' }, SMALL_LIMITS);
  // Still waiting, not an error, while the line is within the limit.
  check(bytes(`${a(16)}`), { commands: [] }, SMALL_LIMITS);
});

test('overlong inline line with the server limit', () => {
  check(Buffer.alloc(SERVER_LIMITS.maxInlineBytes + 1, 0x61), { commands: [], errorKind: 'inline-too-long' }, SERVER_LIMITS, 3);
});

test('unbalanced quotes in inline commands', () => {
  for (const line of ['set "a b\r\n', "set 'a\r\n", '"a"b\r\n', "'a'b\r\n", 'x "abc\\"\r\n', 'x "abc\\\r\n']) {
    check(bytes(line), { commands: [], errorKind: 'unbalanced-quotes' });
  }
});

test('malformed multibulk headers', () => {
  const cases: Array<[string, RespProtocolErrorKind]> = [
    ['*abc\r\n', 'invalid-multibulk-length'],
    ['*\r\n', 'invalid-multibulk-length'],
    ['*1\n', 'invalid-multibulk-length'],
    ['*1\rx', 'invalid-multibulk-length'],
    ['*01\r\n', 'invalid-multibulk-length'],
    ['*-0\r\n', 'invalid-multibulk-length'],
    ['*+1\r\n', 'invalid-multibulk-length'],
    ['*1234567890123456\r\n', 'invalid-multibulk-length'],
    ['*2000\r\n', 'multibulk-too-long'],
    ['*1\r\n$-5\r\n', 'invalid-bulk-length'],
    ['*1\r\n$-1\r\n', 'invalid-bulk-length'],
    ['*1\r\n$x\r\n', 'invalid-bulk-length'],
    ['*1\r\n$03\r\nabc\r\n', 'invalid-bulk-length'],
    ['*1\r\n$99999999999999999999\r\n', 'invalid-bulk-length'],
    ['*1\r\n$2000000\r\n', 'bulk-too-large'],
    ['*1\r\n:1\r\n', 'expected-bulk'],
    ['*2\r\n$4\r\nECHO\r\n+hi\r\n', 'expected-bulk'],
    ['*1\r\n\x00', 'expected-bulk'],
    ['*1\r\n$3\r\nabcX\r\n', 'missing-crlf'],
    ['*1\r\n$3\r\nabc\n\r', 'missing-crlf'],
    ['*1\r\n$3\r\nabcde', 'missing-crlf'],
  ];
  for (const [input, kind] of cases) {
    check(bytes(input), { commands: [], errorKind: kind });
  }
});

test('commands before an error are still returned', () => {
  check(bytes('PING\r\n*1\r\n$4\r\nPING\r\n*abc\r\n*1\r\n$4\r\nPING\r\n'), {
    commands: [['PING'], ['PING']],
    errorKind: 'invalid-multibulk-length',
  });
});

test('binary garbage is a protocol error', () => {
  // The start of a TLS ClientHello, what a client configured for TLS sends first.
  const clientHello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
  check(clientHello, { commands: [], errorKind: 'invalid-inline-character' });
  check(bytes('PING \x00\x01\r\n'), { commands: [], errorKind: 'invalid-inline-character' });
  check(bytes('*\x00\xff\x13\r\n'), { commands: [], errorKind: 'invalid-multibulk-length' });

  for (let i = 0; i < 20; i++) {
    const seed = (BASE_SEED + i) >>> 0;
    const random = prng(seed);
    const garbage = Buffer.alloc(4096);
    for (let j = 0; j < garbage.length; j++) garbage[j] = Math.floor(random() * 256);
    const outcome = run([garbage], SERVER_LIMITS);
    assert.notEqual(outcome.errorKind, undefined, `random garbage seed=${seed}`);
    check(garbage, { commands: outcome.commands, errorKind: outcome.errorKind! }, SERVER_LIMITS, 5);
  }
});

test('bufferedBytes counts unparsed bytes and the arguments of a partial command', () => {
  const parser = new RespParser(SERVER_LIMITS);
  assert.equal(parser.bufferedBytes, 0);
  parser.push(bytes('*2\r\n$3\r\nfoo\r\n$5\r\nab'));
  assert.equal(parser.next(), undefined);
  assert.equal(parser.bufferedBytes, 3 + 2);
  parser.push(bytes('cde\r\nPI'));
  assert.deepEqual(parser.next(), [bytes('foo'), bytes('abcde')]);
  assert.equal(parser.bufferedBytes, 2);
  assert.equal(parser.next(), undefined);
  parser.push(bytes('NG\r\n'));
  assert.deepEqual(parser.next(), [bytes('PING')]);
  assert.equal(parser.next(), undefined);
  assert.equal(parser.bufferedBytes, 0);
});

test('arguments wholly inside one chunk are views, not copies', () => {
  const parser = new RespParser(SERVER_LIMITS);
  const chunk = multibulk(['PUBLISH', 't', 'payload']);
  parser.push(chunk);
  const args = parser.next();
  assert.ok(Array.isArray(args));
  for (const arg of args) assert.equal(arg.buffer, chunk.buffer);
  // The parser never writes into a chunk it was given.
  assert.deepEqual(chunk, multibulk(['PUBLISH', 't', 'payload']));
});

test('pushing several chunks before draining works', () => {
  const input = bytes('*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n');
  const random = prng(BASE_SEED);
  for (let i = 0; i < 20; i++) {
    const parser = new RespParser(SERVER_LIMITS);
    for (const chunk of randomSplit(input, random)) parser.push(chunk);
    const got: string[][] = [];
    for (let r = parser.next(); r !== undefined; r = parser.next()) {
      assert.ok(!(r instanceof RespProtocolError), `seed=${BASE_SEED}`);
      got.push(r.map((a) => a.toString()));
    }
    assert.deepEqual(got, [['ECHO', 'hello'], ['PING'], ['QUIT']], `seed=${BASE_SEED}`);
    assert.equal(parser.bufferedBytes, 0);
  }
});

test('a push between next() calls keeps chunks in order', () => {
  const parser = new RespParser(SERVER_LIMITS);
  parser.push(bytes('PING\r\n'));
  parser.push(bytes('*1\r\n$4\r\nECHO\r\n'));
  assert.deepEqual(parser.next(), [bytes('PING')]);
  // The first chunk is used up but the second is still queued: the new one goes after it.
  parser.push(bytes('QUIT\r\n'));
  assert.deepEqual(parser.next(), [bytes('ECHO')]);
  assert.deepEqual(parser.next(), [bytes('QUIT')]);
  assert.equal(parser.next(), undefined);
});

test('limits must be positive integers', () => {
  assert.throws(() => new RespParser({ ...SERVER_LIMITS, maxBulkBytes: 0 }));
  assert.throws(() => new RespParser({ ...SERVER_LIMITS, maxArrayLength: 1.5 }));
  assert.throws(() => new RespParser({ ...SERVER_LIMITS, maxInlineBytes: -1 }));
});
