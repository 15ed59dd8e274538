/**
 * The on-disk record format of the segment log (SPEC §5).
 *
 * Every state change of the broker is one record. Records are appended back to back in segment
 * files; all integers are little-endian.
 *
 * ```
 * position  bytes  field
 * 0         4      bodyLength   u32, number of bytes after this field (crc .. end of record)
 * 4         4      crc          u32, CRC-32 (IEEE, as zlib and the crc-32 package; crc32.ts), unsigned, over every byte
 *                               after this field: [8, 4 + bodyLength)
 * 8         1      magic        u8, format version, always 1
 * 9         1      type         u8, RecordType below
 * 10        6      offset       u48, logical record number, strictly increasing through the log
 * 16        1      topicLength  u8, 1..255
 * 17        t      topic        topicLength bytes (ASCII, see engine/topic-name.ts)
 * 17+t      ...    type-specific part:
 *   PUBLISH (1)       payload: the rest of the record (0..maxMessageBytes bytes). The message id
 *                     is this record's own offset.
 *   ACK (2), NACK (3), BACK (4)
 *                     messageId u48
 *   DACK (5)          messageId u48, dueAtMs u48 (Unix epoch, ms); the dackCount goes up by one
 *   DELETE_TOPIC (6)  nothing
 *   RESTORE (7)       messageId u48, dackCount u32, dueAtMs u48 (DELAYED: due time; else 0),
 *                     placement u8 (Placement below), placeOffset u48, deliveries u32,
 *                     payload: the rest. Written by compaction (compactor.ts) when it copies a live
 *                     message forward: it carries the message's whole state, so every earlier
 *                     record of that id is superseded (on replay the last one wins). The encoder
 *                     takes placement..deliveries as the first bytes of its `payload`: built by
 *                     {@link restorePayload}.
 *   DELIVER (8)       messageId u48: the message was handed to a consumer (in flight). Not waited
 *                     for; replay puts messages still in flight at the log's end at the front of
 *                     their queues, in delivery order (SPEC §2 "Delivery").
 *   TOPIC (9)         nothing: the topic exists. Written by compaction before it removes the newest
 *                     record that created a topic which still exists (SPEC §2: a topic emptied by
 *                     acks still exists).
 *   COUNTERS (10)     version u8 (COUNTERS_VERSION; another value is a corrupt record), published u48,
 *                     acked u48, deadLettered u48: the topic's counters (SPEC §7 Stats) as replay of
 *                     every record before this one, in the log as it was before any compaction,
 *                     counts them. Replay sets the topic's counters to these values and goes on
 *                     counting from there. Written by compaction before it deletes segments (see
 *                     broker/counter-snapshots.ts), after every earlier record completed, so the
 *                     values are exact; the encoder takes the fields as its `payload`: built by
 *                     {@link countersPayload}. Logs written before this type existed have none.
 * ```
 *
 * Queue order on replay. A PUBLISH or BACK at offset o places its message at the back, a NACK at
 * the front. Pushing to the front or back in log order gives the same queue as sorting the ready
 * messages by rank, where a front placement at offset o has rank -(o + 1) and a back placement
 * rank o; a RESTORE of a ready message keeps the rank of the record that last placed it
 * (`placement` FRONT or BACK and `placeOffset`), so compaction changes no order. Likewise a
 * RESTORE of a message in flight keeps the offset of its DELIVER, which orders the messages in
 * flight at the end of the log.
 *
 * A zero `bodyLength`, a `bodyLength` running past the end of the file, a CRC mismatch, an
 * unknown magic or type, or an offset that does not increase is a corrupt record; recovery
 * decides what that means (segment-log.ts).
 */
import { crc32Range } from './crc32.js';

import { COUNTERS_BODY_BYTES, COUNTERS_VERSION, RESTORE_TAIL_BYTES } from './record-bodies.js';

export {
  COUNTERS_BODY_BYTES,
  COUNTERS_VERSION,
  RESTORE_TAIL_BYTES,
  countersPayload,
  fillCountersPayload,
  restorePayload,
  type CounterValues,
  type RestoreState,
} from './record-bodies.js';

/** Record types, stored in the `type` byte. */
export const RecordType = {
  PUBLISH: 1,
  ACK: 2,
  NACK: 3,
  BACK: 4,
  DACK: 5,
  DELETE_TOPIC: 6,
  RESTORE: 7,
  DELIVER: 8,
  TOPIC: 9,
  COUNTERS: 10,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];
/** The largest valid `type` byte. */
const MAX_RECORD_TYPE = RecordType.COUNTERS;

/**
 * Where a RESTORE record puts its message (the `placement` byte), named after the record that
 * placed it last: see "Queue order on replay" above.
 */
export const Placement = {
  /** Ready, ranked as if pushed to the back by the record at `placeOffset` (PUBLISH, BACK). */
  BACK: 0,
  /** Ready, ranked as if NACKed to the front by the record at `placeOffset`. */
  FRONT: 1,
  /** Held until `dueAtMs` (DACK). */
  DELAYED: 2,
  /** In flight since the DELIVER at `placeOffset`. */
  IN_FLIGHT: 3,
} as const;
export type Placement = (typeof Placement)[keyof typeof Placement];

export const RECORD_MAGIC = 1;
/** Bytes before the topic: bodyLength, crc, magic, type, offset, topicLength. */
export const RECORD_HEADER_BYTES = 17;
/** Largest u48, the limit of offsets, ids and due times. */
export const MAX_U48 = 2 ** 48 - 1;
const U48 = 6;

/** A decoded record. `payload` is a view into the buffer it was decoded from (not a copy). */
export interface DecodedRecord {
  type: RecordType;
  offset: number;
  topic: string;
  /** Message id: the record's own offset for PUBLISH, else the field. */
  messageId: number;
  /** DACK and RESTORE: Unix epoch ms; else 0. */
  dueAtMs: number;
  /** RESTORE: the stored dackCount; else 0. */
  dackCount: number;
  /** RESTORE: where the message goes; else 0. */
  placement: Placement;
  /** RESTORE: offset of the record that placed the message last (see Placement); else 0. */
  placeOffset: number;
  /** RESTORE: deliveries of the message so far; else 0. */
  deliveries: number;
  /** COUNTERS: the topic's published count; else 0. */
  published: number;
  /** COUNTERS: the topic's acked count; else 0. */
  acked: number;
  /** COUNTERS: the topic's deadLettered count; else 0. */
  deadLettered: number;
  /** PUBLISH and RESTORE from {@link decodeRecord}: view of the message payload bytes; else null. */
  payload: Buffer | null;
  /** Position of the payload's first byte in the decoded buffer (PUBLISH, RESTORE). */
  payloadPosition: number;
  /** Payload bytes (PUBLISH, RESTORE; else 0). */
  payloadLength: number;
  /** Total bytes of the record, header included. */
  sizeBytes: number;
}

/** Why a record could not be decoded. */
export type CorruptReason =
  | 'truncated-header'
  | 'zero-length'
  | 'truncated-body'
  | 'crc-mismatch'
  | 'bad-magic'
  | 'bad-type'
  | 'bad-topic'
  | 'bad-body';

function fixedPartBytes(type: RecordType): number {
  switch (type) {
    case RecordType.PUBLISH:
    case RecordType.DELETE_TOPIC:
    case RecordType.TOPIC:
    case RecordType.COUNTERS: // its fields come as the payload (countersPayload)
      return 0;
    case RecordType.ACK:
    case RecordType.NACK:
    case RecordType.BACK:
    case RecordType.DELIVER:
      return U48;
    case RecordType.DACK:
      return U48 + U48;
    case RecordType.RESTORE:
      return U48 + 4 + U48;
  }
}

/**
 * Total encoded size in bytes of a record.
 * @param topicLength topic length in bytes (1..255)
 * @param payloadLength payload bytes (PUBLISH; RESTORE: the length of its {@link restorePayload};
 *   COUNTERS: COUNTERS_BODY_BYTES; pass 0 otherwise)
 */
export function recordSizeBytes(type: RecordType, topicLength: number, payloadLength: number): number {
  return RECORD_HEADER_BYTES + topicLength + fixedPartBytes(type) + payloadLength;
}

/**
 * The fields {@link encodeRecord} writes. A LogAppend (log-append.ts) is one, so the writer passes
 * its records as they are, with nothing allocated per record.
 */
export interface RecordFields {
  readonly type: RecordType;
  /** The record's own offset (u48). */
  readonly offset: number;
  /** 1..255 ASCII characters (validated by the broker); written as latin1. */
  readonly topic: string;
  /** ACK, NACK, BACK, DACK, DELIVER, RESTORE: the message the record is about; else not written. */
  readonly messageId: number;
  /** DACK, RESTORE: Unix epoch ms; else not written. */
  readonly dueAtMs: number;
  /** RESTORE: the message's DACK count; else not written. */
  readonly dackCount: number;
  /**
   * PUBLISH: the message payload. RESTORE: the {@link restorePayload} (its fields, then the
   * message payload). COUNTERS: the {@link countersPayload}. Else null (or empty).
   */
  readonly payload: Buffer | null;
}

/**
 * Encodes the record `rec` into `buf` at `position` and returns the position just after it.
 * `buf` must have room for {@link recordSizeBytes}.
 */
export function encodeRecord(buf: Buffer, position: number, rec: RecordFields): number {
  const type = rec.type;
  const payload = rec.payload;
  let p = encodeHead(buf, position, type, rec.offset, rec.topic, payload === null ? 0 : payload.length);
  switch (type) {
    case RecordType.ACK:
    case RecordType.NACK:
    case RecordType.BACK:
    case RecordType.DELIVER:
      buf.writeUIntLE(rec.messageId, p, U48);
      p += U48;
      break;
    case RecordType.DACK:
      buf.writeUIntLE(rec.messageId, p, U48);
      buf.writeUIntLE(rec.dueAtMs, p + U48, U48);
      p += U48 + U48;
      break;
    case RecordType.RESTORE:
      buf.writeUIntLE(rec.messageId, p, U48);
      buf.writeUInt32LE(rec.dackCount, p + U48);
      buf.writeUIntLE(rec.dueAtMs, p + U48 + 4, U48);
      p += U48 + 4 + U48;
      break;
    default:
      break;
  }
  return encodeTail(buf, position, p, payload);
}

/**
 * Encodes a PUBLISH record of `payload` to `topic` at `offset` into `buf` at `position` and
 * returns the position just after it (the same bytes as {@link encodeRecord}; for tools and tests
 * that write logs directly). `buf` must have room for {@link recordSizeBytes}.
 */
export function encodePublish(buf: Buffer, position: number, offset: number, topic: string, payload: Buffer): number {
  const p = encodeHead(buf, position, RecordType.PUBLISH, offset, topic, payload.length);
  return encodeTail(buf, position, p, payload);
}

/** Writes bodyLength, magic, type, offset and topic; returns the position of the type-specific part. */
function encodeHead(buf: Buffer, position: number, type: RecordType, offset: number, topic: string, payloadLength: number): number {
  const topicLength = topic.length;
  buf.writeUInt32LE(recordSizeBytes(type, topicLength, payloadLength) - 4, position);
  buf[position + 8] = RECORD_MAGIC;
  buf[position + 9] = type;
  buf.writeUIntLE(offset, position + 10, U48);
  buf[position + 16] = topicLength;
  buf.write(topic, position + RECORD_HEADER_BYTES, topicLength, 'latin1');
  return position + RECORD_HEADER_BYTES + topicLength;
}

/** Copies `payload` to `p`, writes the CRC of the record that starts at `position`; returns its end. */
function encodeTail(buf: Buffer, position: number, p: number, payload: Buffer | null): number {
  if (payload !== null && payload.length > 0) {
    payload.copy(buf, p);
    p += payload.length;
  }
  buf.writeUInt32LE(crc32Range(buf, position + 8, p), position + 4);
  return p;
}

/** A reusable, empty {@link DecodedRecord} for {@link decodeRecordInto}. */
export function emptyDecodedRecord(): DecodedRecord {
  return {
    type: RecordType.PUBLISH,
    offset: 0,
    topic: '',
    messageId: 0,
    dueAtMs: 0,
    dackCount: 0,
    placement: Placement.BACK,
    placeOffset: 0,
    deliveries: 0,
    published: 0,
    acked: 0,
    deadLettered: 0,
    payload: null,
    payloadPosition: 0,
    payloadLength: 0,
    sizeBytes: 0,
  };
}

/**
 * Decodes the record starting at `position` in `buf`, reading no byte at or past `end`.
 * Returns the record (its payload a view into `buf`) or the reason it is corrupt.
 * @param maxRecordBytes records claiming to be larger than this are corrupt (guards a damaged
 *   length field from being taken as a huge record)
 */
export function decodeRecord(
  buf: Buffer,
  position: number,
  end: number,
  maxRecordBytes: number,
): DecodedRecord | CorruptReason {
  const out = emptyDecodedRecord();
  const bad = decodeRecordInto(buf, position, end, maxRecordBytes, out);
  if (bad !== undefined) return bad;
  if (out.type === RecordType.PUBLISH || out.type === RecordType.RESTORE) {
    out.payload = buf.subarray(out.payloadPosition, out.payloadPosition + out.payloadLength);
  }
  return out;
}

/**
 * Topic strings met lately, so that replay does not allocate one string per record: a
 * direct-mapped table indexed by the name's length and its first and last two bytes (names of one
 * log differ mostly at the end: `orders.eu`, `orders.us`, `topic-3`), each entry checked byte by
 * byte. A miss decodes the name and takes the entry over.
 */
const TOPIC_CACHE_SLOTS = 1024;
const topicCache: (string | undefined)[] = new Array<string | undefined>(TOPIC_CACHE_SLOTS).fill(undefined);

function decodeTopic(buf: Buffer, start: number, end: number): string {
  const length = end - start;
  const slot = (Math.imul(length ^ (buf[start]! << 8) ^ (buf[end - 1]! << 16) ^ (buf[end - 2]! << 24), 0x9e3779b1) >>> 22) & (TOPIC_CACHE_SLOTS - 1);
  const cached = topicCache[slot];
  if (cached !== undefined && cached.length === length) {
    let same = true;
    for (let i = length - 1; i >= 0; i--) {
      if (cached.charCodeAt(i) !== buf[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return cached;
  }
  const topic = buf.toString('latin1', start, end);
  topicCache[slot] = topic;
  return topic;
}

/**
 * Unsigned 48- and 32-bit little-endian integers at `position`, read from their bytes (the caller
 * checked the bounds): `buf.readUIntLE` / `readUInt32LE` validate their arguments through node's
 * error helpers on every call, ~5% of a replay profile, which reads up to four per record.
 */
function readU48(buf: Buffer, position: number): number {
  return readU32(buf, position) + (buf[position + 4]! | (buf[position + 5]! << 8)) * 2 ** 32;
}

function readU32(buf: Buffer, position: number): number {
  return (buf[position]! | (buf[position + 1]! << 8) | (buf[position + 2]! << 16)) + buf[position + 3]! * 0x1000000;
}

/**
 * The allocation-free form of {@link decodeRecord} used by replay: fills `out` (with `payload`
 * left null; the payload is `payloadLength` bytes at `payloadPosition`) and returns undefined, or
 * returns the reason the record is corrupt (then `out` is unspecified).
 */
export function decodeRecordInto(
  buf: Buffer,
  position: number,
  end: number,
  maxRecordBytes: number,
  out: DecodedRecord,
): CorruptReason | undefined {
  if (end - position < 4) return 'truncated-header';
  const bodyLength = readU32(buf, position);
  if (bodyLength === 0) return 'zero-length';
  const size = bodyLength + 4;
  if (size < RECORD_HEADER_BYTES + 1) return 'bad-body';
  if (size > maxRecordBytes) return 'bad-body';
  if (position + size > end) return 'truncated-body';
  const storedCrc = readU32(buf, position + 4);
  const crc = crc32Range(buf, position + 8, position + size);
  if (crc !== storedCrc) return 'crc-mismatch';
  if (buf[position + 8] !== RECORD_MAGIC) return 'bad-magic';
  const type = buf[position + 9] as RecordType;
  if (type < RecordType.PUBLISH || type > MAX_RECORD_TYPE) return 'bad-type';
  const offset = readU48(buf, position + 10);
  const topicLength = buf[position + 16]!;
  if (topicLength === 0) return 'bad-topic';
  const fixed = fixedPartBytes(type);
  const topicStart = position + RECORD_HEADER_BYTES;
  let p = topicStart + topicLength;
  if (p + fixed > position + size) return 'bad-body';
  const hasPayload = type === RecordType.PUBLISH || type === RecordType.RESTORE;
  const restBytes = type === RecordType.COUNTERS ? COUNTERS_BODY_BYTES : 0;
  if (!hasPayload && p + fixed + restBytes !== position + size) return 'bad-body';
  out.placement = Placement.BACK;
  out.placeOffset = 0;
  out.deliveries = 0;
  out.published = 0;
  out.acked = 0;
  out.deadLettered = 0;
  if (type === RecordType.COUNTERS) {
    // A newer layout is not guessed at: an older server stops at it as at any unknown record.
    if (buf[p] !== COUNTERS_VERSION) return 'bad-body';
    out.published = readU48(buf, p + 1);
    out.acked = readU48(buf, p + 1 + U48);
    out.deadLettered = readU48(buf, p + 1 + U48 + U48);
  }
  if (type === RecordType.RESTORE) {
    const tail = p + fixed;
    if (tail + RESTORE_TAIL_BYTES > position + size) return 'bad-body';
    const placement = buf[tail]!;
    if (placement > Placement.IN_FLIGHT) return 'bad-body';
    out.placement = placement as Placement;
    out.placeOffset = readU48(buf, tail + 1);
    out.deliveries = readU32(buf, tail + 1 + U48);
  }
  out.type = type;
  out.offset = offset;
  out.topic = decodeTopic(buf, topicStart, p);
  out.messageId = offset;
  out.dueAtMs = 0;
  out.dackCount = 0;
  switch (type) {
    case RecordType.ACK:
    case RecordType.NACK:
    case RecordType.BACK:
    case RecordType.DELIVER:
      out.messageId = readU48(buf, p);
      break;
    case RecordType.DACK:
      out.messageId = readU48(buf, p);
      out.dueAtMs = readU48(buf, p + U48);
      break;
    case RecordType.RESTORE:
      out.messageId = readU48(buf, p);
      out.dackCount = readU32(buf, p + U48);
      out.dueAtMs = readU48(buf, p + U48 + 4);
      break;
    default:
      break;
  }
  p += fixed;
  if (type === RecordType.RESTORE) p += RESTORE_TAIL_BYTES;
  out.payload = null;
  out.payloadPosition = p;
  out.payloadLength = hasPayload ? position + size - p : 0;
  out.sizeBytes = size;
  return undefined;
}
