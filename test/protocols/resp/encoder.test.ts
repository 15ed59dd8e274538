/**
 * Encoder tests: exact bytes for every reply shape, and round trips. Arrays of bulks are fed
 * back through RespParser (a request is a multibulk of bulks, so the server's own parser reads
 * them); other shapes go through a small reply decoder written here the way a client reads them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EMPTY_ARRAY,
  NIL_ARRAY,
  NIL_BULK,
  NULL_RESP3,
  SplicedReply,
  splicedBulk,
  OK,
  PONG,
  encodeArray,
  encodeBulk,
  encodeError,
  encodeInteger,
  encodeValue,
  encodedLength,
  writeBulkHeader,
  writeValue,
  type RespValue,
} from '../../../src/protocols/resp/encoder.js';
import { RespParser, RespProtocolError } from '../../../src/protocols/resp/parser.js';
import { prng } from '../../helpers/index.js';

const BASE_SEED = process.env.RESP_TEST_SEED !== undefined
  ? Number(process.env.RESP_TEST_SEED)
  : Math.floor(Math.random() * 2 ** 31);


function bytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

test('constants', () => {
  assert.deepEqual(OK, bytes('+OK\r\n'));
  assert.deepEqual(PONG, bytes('+PONG\r\n'));
  assert.deepEqual(NIL_BULK, bytes('$-1\r\n'));
  assert.deepEqual(NIL_ARRAY, bytes('*-1\r\n'));
  assert.deepEqual(EMPTY_ARRAY, bytes('*0\r\n'));
  assert.deepEqual(NULL_RESP3, bytes('_\r\n'));
});

test('simple strings and errors are one line', () => {
  assert.deepEqual(encodeValue({ simple: 'OK' }), bytes('+OK\r\n'));
  assert.deepEqual(encodeValue({ simple: '' }), bytes('+\r\n'));
  assert.deepEqual(encodeValue({ simple: 'a\r\nb\nc\rd' }), bytes('+a b c d\r\n'));
  assert.equal(encodeError('ERR foo'), '-ERR foo\r\n');
  assert.equal(encodeError("ERR unknown command 'x\r\ny'"), "-ERR unknown command 'x y'\r\n");
  assert.equal(encodeError('NOPROTO sorry'), '-NOPROTO sorry\r\n');
});

test('integers', () => {
  assert.equal(encodeInteger(0), ':0\r\n');
  assert.equal(encodeInteger(1), ':1\r\n');
  assert.equal(encodeInteger(-42), ':-42\r\n');
  assert.equal(encodeInteger(Number.MAX_SAFE_INTEGER), `:${Number.MAX_SAFE_INTEGER}\r\n`);
  assert.throws(() => encodeInteger(1.5));
  assert.throws(() => encodeInteger(Number.NaN));
});

test('bulk strings', () => {
  assert.deepEqual(encodeBulk('hello'), bytes('$5\r\nhello\r\n'));
  assert.deepEqual(encodeBulk(''), bytes('$0\r\n\r\n'));
  assert.deepEqual(encodeBulk(Buffer.alloc(0)), bytes('$0\r\n\r\n'));
  assert.equal(encodeBulk(null), NIL_BULK);
  // A string is sent as UTF-8 and its length counted in bytes.
  assert.deepEqual(encodeBulk('héllo'), Buffer.concat([bytes('$6\r\n'), Buffer.from('héllo', 'utf8'), bytes('\r\n')]));
  const binary = Buffer.from([0, 13, 10, 255, 0]);
  assert.deepEqual(encodeBulk(binary), Buffer.concat([bytes('$5\r\n'), binary, bytes('\r\n')]));
  const tenBytes = Buffer.alloc(10, 0x78);
  assert.deepEqual(encodeBulk(tenBytes), bytes('$10\r\nxxxxxxxxxx\r\n'));
});

test('encodeBulk returns a copy of exactly the reply size', () => {
  const payload = Buffer.from('payload');
  const reply = encodeBulk(payload);
  assert.equal(reply.length, '$7\r\n'.length + 7 + 2);
  payload.fill(0);
  assert.deepEqual(reply, bytes('$7\r\npayload\r\n'));
  const big = Buffer.alloc(1024 * 1024, 0x61);
  assert.equal(encodeBulk(big).length, '$1048576\r\n'.length + big.length + 2);
});

test('bulk header written in place', () => {
  const target = Buffer.alloc(16);
  const end = writeBulkHeader(target, 2, 123);
  assert.equal(end, 2 + '$123\r\n'.length);
  assert.deepEqual(target.subarray(2, end), bytes('$123\r\n'));
});

test('arrays: exact bytes', () => {
  assert.deepEqual(encodeArray([]), bytes('*0\r\n'));
  assert.deepEqual(encodeArray(['a', Buffer.from('bc')]), bytes('*2\r\n$1\r\na\r\n$2\r\nbc\r\n'));
  // RESERVE's reply: [id, payload, dackCount].
  assert.deepEqual(encodeArray(['17', Buffer.from('hi'), 0]), bytes('*3\r\n$2\r\n17\r\n$2\r\nhi\r\n:0\r\n'));
  assert.deepEqual(
    encodeArray([null, -3, [], ['x', [1]], { simple: 'OK' }, { error: 'ERR no\nway' }]),
    bytes('*6\r\n$-1\r\n:-3\r\n*0\r\n*2\r\n$1\r\nx\r\n*1\r\n:1\r\n+OK\r\n-ERR no way\r\n'),
  );
  assert.deepEqual(encodeValue({ simple: 'PONG' }), PONG);
  assert.deepEqual(encodeValue(7), bytes(':7\r\n'));
  assert.deepEqual(encodeValue(null), NIL_BULK);
});

test('writeValue writes encodedLength bytes at an offset', () => {
  const values: RespValue[] = [OK.toString(), 12345, ['a', ['héllo', null]], { error: 'ERR x' }];
  const total = values.reduce<number>((sum, v) => sum + encodedLength(v), 0);
  const target = Buffer.alloc(total + 4, 0xee);
  let pos = 2;
  for (const v of values) pos = writeValue(target, pos, v);
  assert.equal(pos, 2 + total);
  assert.equal(target[0], 0xee);
  assert.equal(target[1], 0xee);
  assert.equal(target[pos], 0xee);
  assert.deepEqual(target.subarray(2, pos), Buffer.concat(values.map((v) => encodeValue(v))));
});

test('round trip: arrays of bulks parse back as the same multibulk', () => {
  for (let run = 0; run < 50; run++) {
    const seed = (BASE_SEED + run) >>> 0;
    const random = prng(seed);
    const commands: Buffer[][] = [];
    const encoded: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      const args: Buffer[] = [];
      const argCount = 1 + Math.floor(random() * 5);
      for (let j = 0; j < argCount; j++) {
        const arg = Buffer.alloc(Math.floor(random() * (random() < 0.1 ? 5000 : 30)));
        for (let k = 0; k < arg.length; k++) arg[k] = random() < 0.3 ? [13, 10, 0][k % 3]! : Math.floor(random() * 256);
        args.push(arg);
      }
      commands.push(args);
      // A string payload must encode like the Buffer of its UTF-8 bytes: use both when they agree.
      const items = args.map((a): RespValue => {
        const text = a.toString('utf8');
        return random() < 0.5 && Buffer.from(text, 'utf8').equals(a) ? text : a;
      });
      encoded.push(encodeArray(items));
    }
    const stream = Buffer.concat(encoded);
    const parser = new RespParser({ maxBulkBytes: 1024 * 1024, maxArrayLength: 1024, maxInlineBytes: 65536 });
    const got: Buffer[][] = [];
    let pos = 0;
    while (pos < stream.length) {
      const piece = 1 + Math.floor(random() * 300);
      parser.push(stream.subarray(pos, pos + piece));
      pos += piece;
      for (let r = parser.next(); r !== undefined; r = parser.next()) {
        assert.ok(!(r instanceof RespProtocolError), `seed=${seed}: ${String(r)}`);
        got.push(r.map((a) => Buffer.from(a)));
      }
    }
    assert.deepEqual(got, commands, `seed=${seed}`);
  }
});

/** Minimal RESP2 reply decoder, as a client reads replies; returns the value and the next position. */
function decode(buf: Buffer, pos: number): [RespValue, number] {
  const lf = buf.indexOf(10, pos);
  assert.equal(buf[lf - 1], 13, 'lines end in CRLF');
  const line = buf.toString('utf8', pos + 1, lf - 1);
  const after = lf + 1;
  switch (buf[pos]) {
    case 0x2b: // +
      return [{ simple: line }, after];
    case 0x2d: // -
      return [{ error: line }, after];
    case 0x3a: // :
      return [Number(line), after];
    case 0x24: { // $
      const length = Number(line);
      if (length < 0) return [null, after];
      assert.deepEqual(buf.subarray(after + length, after + length + 2), bytes('\r\n'));
      return [Buffer.from(buf.subarray(after, after + length)), after + length + 2];
    }
    case 0x2a: { // *
      const items: RespValue[] = [];
      let next = after;
      for (let i = 0; i < Number(line); i++) {
        const [item, end] = decode(buf, next);
        items.push(item);
        next = end;
      }
      return [items, next];
    }
    default:
      throw new Error(`bad reply type byte ${buf[pos]}`);
  }
}

/** `value` as the decoder gives it back: strings become Buffers, lines lose CR/LF. */
function normalize(value: RespValue): RespValue {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value === null || typeof value === 'number' || Buffer.isBuffer(value)) return value;
  if (Array.isArray(value)) return value.map(normalize);
  if ('simple' in value) return { simple: value.simple.replace(/[\r\n]+/g, ' ') };
  return { error: value.error.replace(/[\r\n]+/g, ' ') };
}

function randomValue(random: () => number, depth: number): RespValue {
  const r = random();
  if (r < 0.2) return Math.floor((random() - 0.5) * 2 ** 40);
  if (r < 0.3) return null;
  if (r < 0.45) return 'strïng\r\n' + String(random());
  if (r < 0.6) return Buffer.from(Array.from({ length: Math.floor(random() * 20) }, () => Math.floor(random() * 256)));
  if (r < 0.7) return { simple: random() < 0.5 ? 'OK' : 'QUEUED\r\nx' };
  if (r < 0.8) return { error: 'ERR bad\nthing' };
  if (depth > 3) return [];
  return Array.from({ length: Math.floor(random() * 5) }, () => randomValue(random, depth + 1));
}

test('round trip: any value through a reply decoder', () => {
  for (let run = 0; run < 200; run++) {
    const seed = (BASE_SEED + run) >>> 0;
    const value = randomValue(prng(seed), 0);
    const encoded = encodeValue(value);
    assert.equal(encoded.length, encodedLength(value), `seed=${seed}`);
    const [decoded, end] = decode(encoded, 0);
    assert.equal(end, encoded.length, `seed=${seed}`);
    assert.deepEqual(decoded, normalize(value), `seed=${seed}`);
  }
});

test('a spliced bulk reply writes the same bytes as encodeBulk, into a shared output buffer at any position', () => {
  for (const payload of [Buffer.alloc(0), Buffer.from('hello'), Buffer.from([0, 13, 10, 255]), Buffer.alloc(70_000, 7)]) {
    const spliced = splicedBulk(payload);
    assert.equal(spliced.length, encodeBulk(payload).length);
    assert.deepEqual(spliced.toBuffer(), encodeBulk(payload));
    const out = Buffer.alloc(spliced.length + 10, 0xee);
    assert.equal(spliced.writeTo(out, 3), 3 + spliced.length);
    assert.deepEqual(out.subarray(3, 3 + spliced.length), encodeBulk(payload));
    assert.equal(out[2], 0xee);
    assert.equal(out[3 + spliced.length], 0xee);
  }
  const reserved = new SplicedReply('*3\r\n$2\r\n42\r\n$5\r\n', Buffer.from('hello'), '\r\n:0\r\n');
  assert.deepEqual(reserved.toBuffer(), encodeArray(['42', Buffer.from('hello'), 0]));
});
