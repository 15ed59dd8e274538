import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  COUNTERS_BODY_BYTES,
  COUNTERS_VERSION,
  MAX_U48,
  Placement,
  RECORD_HEADER_BYTES,
  RECORD_MAGIC,
  RecordType,
  countersPayload,
  decodeRecord,
  encodePublish,
  encodeRecord,
  recordSizeBytes,
  restorePayload,
  type DecodedRecord,
} from '../../src/log/record.js';

const MAX_RECORD_BYTES = 2 ** 31;

interface Input {
  type: RecordType;
  offset: number;
  topic: string;
  messageId: number;
  dueAtMs: number;
  dackCount: number;
  payload: Buffer | null;
}

function encode(r: Input, lead = 0): { buf: Buffer; end: number } {
  const size = recordSizeBytes(r.type, r.topic.length, r.payload === null ? 0 : r.payload.length);
  const buf = Buffer.alloc(lead + size, 0xee);
  const end = encodeRecord(buf, lead, r);
  assert.equal(end, lead + size, 'encodeRecord returns the position just after the record');
  return { buf, end };
}

function decodeOk(buf: Buffer, position: number, end: number): DecodedRecord {
  const rec = decodeRecord(buf, position, end, MAX_RECORD_BYTES);
  assert.notEqual(typeof rec, 'string', `expected a valid record, got ${String(rec)}`);
  return rec as DecodedRecord;
}

function binaryPayload(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const cases: {
  name: string;
  input: Input;
  expectMessageId: number;
  expectPayload: Buffer | null;
  /** RESTORE: the fields encoded at the start of its payload by restorePayload. */
  expectRestore?: { placement: Placement; placeOffset: number; deliveries: number };
  expectCounters?: { published: number; acked: number; deadLettered: number };
}[] = [
  {
    name: 'PUBLISH with an empty payload',
    input: { type: RecordType.PUBLISH, offset: 0, topic: 't', messageId: 0, dueAtMs: 0, dackCount: 0, payload: Buffer.alloc(0) },
    expectMessageId: 0,
    expectPayload: Buffer.alloc(0),
  },
  {
    name: 'PUBLISH with a binary payload (every byte value, CR LF, NUL)',
    input: {
      type: RecordType.PUBLISH,
      offset: 123456789,
      topic: 'orders.eu-west_1:v2',
      messageId: 0,
      dueAtMs: 0,
      dackCount: 0,
      payload: Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from('\r\n\0\xff')]),
    },
    expectMessageId: 123456789,
    expectPayload: Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from('\r\n\0\xff')]),
  },
  {
    name: 'PUBLISH with a 1 MiB payload and a 255-byte topic',
    input: {
      type: RecordType.PUBLISH,
      offset: MAX_U48,
      topic: 'a'.repeat(255),
      messageId: 0,
      dueAtMs: 0,
      dackCount: 0,
      payload: binaryPayload(1 << 20, 7),
    },
    expectMessageId: MAX_U48,
    expectPayload: binaryPayload(1 << 20, 7),
  },
  {
    name: 'ACK',
    input: { type: RecordType.ACK, offset: 10, topic: 'q', messageId: 3, dueAtMs: 0, dackCount: 0, payload: null },
    expectMessageId: 3,
    expectPayload: null,
  },
  {
    name: 'NACK',
    input: { type: RecordType.NACK, offset: 11, topic: 'q', messageId: MAX_U48 - 1, dueAtMs: 0, dackCount: 0, payload: null },
    expectMessageId: MAX_U48 - 1,
    expectPayload: null,
  },
  {
    name: 'BACK',
    input: { type: RecordType.BACK, offset: 12, topic: 'q', messageId: 0, dueAtMs: 0, dackCount: 0, payload: null },
    expectMessageId: 0,
    expectPayload: null,
  },
  {
    name: 'DACK with a due time',
    input: { type: RecordType.DACK, offset: 13, topic: 'q', messageId: 5, dueAtMs: 1_700_000_123_456, dackCount: 0, payload: null },
    expectMessageId: 5,
    expectPayload: null,
  },
  {
    name: 'DELETE_TOPIC',
    input: { type: RecordType.DELETE_TOPIC, offset: 14, topic: 'gone:topic', messageId: 0, dueAtMs: 0, dackCount: 0, payload: null },
    expectMessageId: 14,
    expectPayload: null,
  },
  {
    name: 'RESTORE ready, with payload',
    input: {
      type: RecordType.RESTORE,
      offset: 15,
      topic: 'q',
      messageId: 2,
      dueAtMs: 0,
      dackCount: 4_000_000_000,
      payload: restorePayload(Placement.FRONT, MAX_U48 - 2, 4_000_000_001, Buffer.from([0, 1, 2, 255])),
    },
    expectMessageId: 2,
    expectPayload: Buffer.from([0, 1, 2, 255]),
    expectRestore: { placement: Placement.FRONT, placeOffset: MAX_U48 - 2, deliveries: 4_000_000_001 },
  },
  {
    name: 'RESTORE delayed, empty payload',
    input: {
      type: RecordType.RESTORE,
      offset: 16,
      topic: 'q',
      messageId: 9,
      dueAtMs: 1_800_000_000_000,
      dackCount: 3,
      payload: restorePayload(Placement.DELAYED, 12, 0, Buffer.alloc(0)),
    },
    expectMessageId: 9,
    expectPayload: Buffer.alloc(0),
    expectRestore: { placement: Placement.DELAYED, placeOffset: 12, deliveries: 0 },
  },
  {
    name: 'TOPIC',
    input: { type: RecordType.TOPIC, offset: 17, topic: 'kept:topic', messageId: 0, dueAtMs: 0, dackCount: 0, payload: null },
    expectMessageId: 17,
    expectPayload: null,
  },
  {
    name: 'COUNTERS (issue 13 finding 8)',
    input: { type: RecordType.COUNTERS, offset: 18, topic: 'counted', messageId: 0, dueAtMs: 0, dackCount: 0, payload: countersPayload(MAX_U48, 7, 0) },
    expectMessageId: 18,
    expectPayload: null,
    expectCounters: { published: MAX_U48, acked: 7, deadLettered: 0 },
  },
];

for (const c of cases) {
  test(`record round trip: ${c.name}`, () => {
    for (const lead of [0, 13]) {
      const { buf, end } = encode(c.input, lead);
      const rec = decodeOk(buf, lead, end);
      const payloadLength = c.input.payload === null ? 0 : c.input.payload.length;
      assert.equal(rec.type, c.input.type);
      assert.equal(rec.offset, c.input.offset);
      assert.equal(rec.topic, c.input.topic);
      assert.equal(rec.messageId, c.expectMessageId);
      assert.equal(rec.sizeBytes, recordSizeBytes(c.input.type, c.input.topic.length, payloadLength));
      assert.equal(rec.sizeBytes, end - lead);
      assert.equal(buf.readUInt32LE(lead), rec.sizeBytes - 4, 'bodyLength counts the bytes after itself');
      assert.equal(buf[lead + 8], RECORD_MAGIC);
      if (c.input.type === RecordType.DACK || c.input.type === RecordType.RESTORE) {
        assert.equal(rec.dueAtMs, c.input.dueAtMs);
      } else {
        assert.equal(rec.dueAtMs, 0);
      }
      assert.equal(rec.dackCount, c.input.type === RecordType.RESTORE ? c.input.dackCount : 0);
      const restore = c.expectRestore ?? { placement: Placement.BACK, placeOffset: 0, deliveries: 0 };
      assert.deepEqual({ placement: rec.placement, placeOffset: rec.placeOffset, deliveries: rec.deliveries }, restore);
      const counters = c.expectCounters ?? { published: 0, acked: 0, deadLettered: 0 };
      assert.deepEqual({ published: rec.published, acked: rec.acked, deadLettered: rec.deadLettered }, counters);
      if (c.expectPayload === null) {
        assert.equal(rec.payload, null);
      } else {
        // The message payload: for RESTORE, what follows the fields restorePayload put first.
        const messageLength = c.expectPayload.length;
        assert.ok(rec.payload !== null);
        assert.ok(rec.payload.equals(c.expectPayload), 'payload bytes are identical');
        assert.equal(rec.payloadLength, messageLength);
        assert.equal(rec.payloadPosition, end - messageLength);
        assert.ok(buf.subarray(rec.payloadPosition, rec.payloadPosition + messageLength).equals(c.expectPayload));
        // A view, not a copy: it shares memory with the decoded buffer.
        if (messageLength > 0) assert.equal(rec.payload.buffer, buf.buffer);
      }
    }
  });
}

test('records decode back to back from one buffer, each at its own position', () => {
  const parts = cases.slice(0, 9).map((c) => encode(c.input).buf);
  const all = Buffer.concat(parts);
  let position = 0;
  let i = 0;
  while (position < all.length) {
    const rec = decodeOk(all, position, all.length);
    assert.equal(rec.type, cases[i]!.input.type);
    assert.equal(rec.offset, cases[i]!.input.offset);
    position += rec.sizeBytes;
    i++;
  }
  assert.equal(i, parts.length);
  assert.equal(position, all.length);
});

test('encodePublish writes the same bytes as encodeRecord of a PUBLISH, at any position', () => {
  for (const [offset, topic, payload] of [
    [0, 'q', Buffer.alloc(0)],
    [7, 'topic-3', binaryPayload(300, 5)],
    [MAX_U48, 'x'.repeat(255), binaryPayload(17, 9)],
  ] as const) {
    const input: Input = { type: RecordType.PUBLISH, offset, topic, messageId: 0, dueAtMs: 0, dackCount: 0, payload };
    const { buf: expected, end } = encode(input, 5);
    const buf = Buffer.alloc(expected.length, 0xee);
    assert.equal(encodePublish(buf, 5, offset, topic, payload), end);
    assert.ok(buf.equals(expected), `PUBLISH of ${payload.length} bytes to ${topic.length}-byte topic at offset ${offset}`);
  }
});

test('the CRC is stored unsigned and covers every byte after the CRC field', () => {
  // Try several payloads so at least one CRC has the high bit set (crc-32 returns signed ints).
  let sawHighBit = false;
  for (let seed = 1; seed < 40; seed++) {
    const { buf } = encode({ type: RecordType.PUBLISH, offset: seed, topic: 'crc', messageId: 0, dueAtMs: 0, dackCount: 0, payload: binaryPayload(17, seed) });
    if (buf.readUInt32LE(4) >= 0x8000_0000) sawHighBit = true;
    decodeOk(buf, 0, buf.length);
  }
  assert.ok(sawHighBit);
});

const flipCases: Input[] = [
  { type: RecordType.PUBLISH, offset: 42, topic: 'flip', messageId: 0, dueAtMs: 0, dackCount: 0, payload: Buffer.from('hello') },
  { type: RecordType.PUBLISH, offset: 1, topic: 'e', messageId: 0, dueAtMs: 0, dackCount: 0, payload: Buffer.alloc(0) },
  { type: RecordType.ACK, offset: 43, topic: 'flip', messageId: 42, dueAtMs: 0, dackCount: 0, payload: null },
  { type: RecordType.DACK, offset: 44, topic: 'flip', messageId: 42, dueAtMs: 1_700_000_000_000, dackCount: 0, payload: null },
  { type: RecordType.DELETE_TOPIC, offset: 45, topic: 'x', messageId: 0, dueAtMs: 0, dackCount: 0, payload: null },
  {
    type: RecordType.RESTORE,
    offset: 46,
    topic: 'flip',
    messageId: 42,
    dueAtMs: 5,
    dackCount: 2,
    payload: restorePayload(Placement.IN_FLIGHT, 44, 1, Buffer.from('ab')),
  },
  { type: RecordType.TOPIC, offset: 47, topic: 'flip', messageId: 0, dueAtMs: 0, dackCount: 0, payload: null },
];

for (const input of flipCases) {
  test(`a flipped bit anywhere in a small ${input.type === RecordType.PUBLISH ? 'PUBLISH' : `type-${input.type}`} record is never decoded as valid`, () => {
    const { buf } = encode(input);
    decodeOk(buf, 0, buf.length);
    let checked = 0;
    for (let byte = 0; byte < buf.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const damaged = Buffer.from(buf);
        damaged[byte]! ^= 1 << bit;
        // Decode both in a buffer of exactly the record and with trailing room (a later record).
        for (const tail of [0, 64]) {
          const withTail = Buffer.concat([damaged, Buffer.alloc(tail, 0xab)]);
          const rec = decodeRecord(withTail, 0, withTail.length, MAX_RECORD_BYTES);
          assert.equal(typeof rec, 'string', `flip of bit ${bit} at byte ${byte} (tail ${tail}) decoded as valid`);
          checked++;
        }
      }
    }
    assert.equal(checked, buf.length * 8 * 2);
  });
}

test('a flipped bit in the CRC field or the body gives crc-mismatch', () => {
  const { buf } = encode(flipCases[0]!);
  for (let byte = 4; byte < buf.length; byte++) {
    const damaged = Buffer.from(buf);
    damaged[byte]! ^= 0x10;
    assert.equal(decodeRecord(damaged, 0, damaged.length, MAX_RECORD_BYTES), 'crc-mismatch', `byte ${byte}`);
  }
});

test('truncated input gives truncated-header or truncated-body, never a record', () => {
  const { buf } = encode(flipCases[0]!);
  for (let end = 0; end < buf.length; end++) {
    const reason = decodeRecord(buf, 0, end, MAX_RECORD_BYTES);
    assert.equal(reason, end < 4 ? 'truncated-header' : 'truncated-body', `cut at ${end}`);
    // The same with a copy that really ends there (no bytes past `end` to peek at).
    const cut = Buffer.from(buf.subarray(0, end));
    assert.equal(decodeRecord(cut, 0, cut.length, MAX_RECORD_BYTES), reason);
  }
  // Truncation relative to a non-zero position.
  const two = Buffer.concat([buf, buf]);
  assert.equal(decodeRecord(two, buf.length, two.length - 1, MAX_RECORD_BYTES), 'truncated-body');
  assert.equal(decodeRecord(two, buf.length, buf.length + 3, MAX_RECORD_BYTES), 'truncated-header');
});

test('a zero length field gives zero-length (zero-filled tail)', () => {
  assert.equal(decodeRecord(Buffer.alloc(4096), 0, 4096, MAX_RECORD_BYTES), 'zero-length');
  assert.equal(decodeRecord(Buffer.alloc(4), 0, 4, MAX_RECORD_BYTES), 'zero-length');
  const { buf } = encode(flipCases[0]!);
  const withZeros = Buffer.concat([buf, Buffer.alloc(100)]);
  assert.equal(decodeRecord(withZeros, buf.length, withZeros.length, MAX_RECORD_BYTES), 'zero-length');
});

test('a length too small for a header, or larger than maxRecordBytes, is bad-body', () => {
  const small = Buffer.alloc(64);
  small.writeUInt32LE(RECORD_HEADER_BYTES - 4, 0); // no room for even a 1-byte topic
  assert.equal(decodeRecord(small, 0, small.length, MAX_RECORD_BYTES), 'bad-body');
  const { buf } = encode(flipCases[0]!);
  assert.equal(decodeRecord(buf, 0, buf.length, buf.length - 1), 'bad-body');
  decodeOk(buf, 0, buf.length);
  assert.notEqual(typeof decodeRecord(buf, 0, buf.length, buf.length), 'string');
});

test('bad magic, bad type, zero topic length and wrong fixed part are rejected even with a valid CRC', async () => {
  const CRC32 = (await import('crc-32')).default;
  const reseal = (b: Buffer): Buffer => {
    b.writeUInt32LE(CRC32.buf(b.subarray(8)) >>> 0, 4);
    return b;
  };
  const base = encode(flipCases[2]!).buf; // ACK
  const magic = reseal(Buffer.from(base).fill(2, 8, 9));
  assert.equal(decodeRecord(magic, 0, magic.length, MAX_RECORD_BYTES), 'bad-magic');
  for (const t of [0, RecordType.COUNTERS + 1, 255]) {
    const typed = Buffer.from(base);
    typed[9] = t;
    assert.equal(decodeRecord(reseal(typed), 0, typed.length, MAX_RECORD_BYTES), 'bad-type', `type ${t}`);
  }
  const noTopic = Buffer.from(base);
  noTopic[16] = 0;
  assert.equal(decodeRecord(reseal(noTopic), 0, noTopic.length, MAX_RECORD_BYTES), 'bad-topic');
  // An ACK record claiming to be a DACK is too short for its fixed part.
  const asDack = Buffer.from(base);
  asDack[9] = RecordType.DACK;
  assert.equal(decodeRecord(reseal(asDack), 0, asDack.length, MAX_RECORD_BYTES), 'bad-body');
  // A DACK record claiming to be an ACK has bytes left over.
  const dack = encode(flipCases[3]!).buf;
  dack[9] = RecordType.ACK;
  assert.equal(decodeRecord(reseal(dack), 0, dack.length, MAX_RECORD_BYTES), 'bad-body');
});

test('a COUNTERS record of another layout version or length is bad-body, so a newer log is never misread', async () => {
  const CRC32 = (await import('crc-32')).default;
  const reseal = (b: Buffer): Buffer => {
    b.writeUInt32LE(CRC32.buf(b.subarray(8)) >>> 0, 4);
    return b;
  };
  const good = encode({ type: RecordType.COUNTERS, offset: 3, topic: 'q', messageId: 0, dueAtMs: 0, dackCount: 0, payload: countersPayload(1, 2, 3) }).buf;
  decodeOk(good, 0, good.length);
  const versioned = Buffer.from(good);
  versioned[RECORD_HEADER_BYTES + 1] = COUNTERS_VERSION + 1;
  assert.equal(decodeRecord(reseal(versioned), 0, versioned.length, MAX_RECORD_BYTES), 'bad-body');
  for (const bodyBytes of [0, COUNTERS_BODY_BYTES - 1, COUNTERS_BODY_BYTES + 1]) {
    const body = Buffer.alloc(bodyBytes);
    if (bodyBytes > 0) body[0] = COUNTERS_VERSION;
    const { buf } = encode({ type: RecordType.COUNTERS, offset: 3, topic: 'q', messageId: 0, dueAtMs: 0, dackCount: 0, payload: body });
    assert.equal(decodeRecord(buf, 0, buf.length, MAX_RECORD_BYTES), 'bad-body', `${bodyBytes} bytes of fields`);
  }
});

test('a RESTORE record too short for placement, placeOffset and deliveries, or with an unknown placement, is bad-body', async () => {
  const CRC32 = (await import('crc-32')).default;
  const reseal = (b: Buffer): Buffer => {
    b.writeUInt32LE(CRC32.buf(b.subarray(8)) >>> 0, 4);
    return b;
  };
  // Issue #4: the RESTORE layout grew these fields; a body that ends before them is damage.
  for (const bodyBytes of [0, 5, 10]) {
    const { buf } = encode({ type: RecordType.RESTORE, offset: 1, topic: 'q', messageId: 0, dueAtMs: 0, dackCount: 0, payload: Buffer.alloc(bodyBytes) });
    assert.equal(decodeRecord(reseal(buf), 0, buf.length, MAX_RECORD_BYTES), 'bad-body', `${bodyBytes} bytes after dueAtMs`);
  }
  const { buf } = encode({ type: RecordType.RESTORE, offset: 1, topic: 'q', messageId: 0, dueAtMs: 0, dackCount: 0, payload: restorePayload(Placement.IN_FLIGHT, 0, 0, Buffer.from('x')) });
  decodeOk(buf, 0, buf.length);
  buf[RECORD_HEADER_BYTES + 1 + 16] = Placement.IN_FLIGHT + 1;
  assert.equal(decodeRecord(reseal(buf), 0, buf.length, MAX_RECORD_BYTES), 'bad-body');
});
