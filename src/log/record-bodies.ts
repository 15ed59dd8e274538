/**
 * The bodies of the two record types that carry state rather than a message (record.ts has the
 * whole layout): a RESTORE's placement, placeOffset and deliveries before the message payload, and
 * a COUNTERS record's versioned counters. Built here, encoded and decoded by record.ts.
 */
import type { Placement } from './record.js';

const U48 = 6;

/** Bytes of placement, placeOffset and deliveries at the start of a RESTORE record's payload area. */
export const RESTORE_TAIL_BYTES = 1 + U48 + 4;

/** The layout version of a COUNTERS record's fields (its first byte). */
export const COUNTERS_VERSION = 1;
/** Bytes of a COUNTERS record after its topic: version, published, acked, deadLettered. */
export const COUNTERS_BODY_BYTES = 1 + U48 + U48 + U48;

/** The state of a message that a RESTORE record carries (the layout above). */
export interface RestoreState {
  messageId: number;
  dackCount: number;
  /** Placement DELAYED: when the message is due (Unix epoch ms); else 0. */
  dueAtMs: number;
  placement: Placement;
  /** Offset of the record that placed the message last (see Placement). */
  placeOffset: number;
  /** Deliveries of the message so far. */
  deliveries: number;
}

/** The values a COUNTERS record carries: a topic's counters (SPEC §7 Stats), each 0..MAX_U48. */
export interface CounterValues {
  published: number;
  acked: number;
  deadLettered: number;
}

/**
 * The `payload` of a RESTORE record ({@link RecordFields}): placement, placeOffset and deliveries
 * followed by a copy of the message `payload` (a new Buffer the caller owns).
 */
export function restorePayload(placement: Placement, placeOffset: number, deliveries: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(RESTORE_TAIL_BYTES + payload.length);
  out[0] = placement;
  out.writeUIntLE(placeOffset, 1, U48);
  out.writeUInt32LE(deliveries, 1 + U48);
  payload.copy(out, RESTORE_TAIL_BYTES);
  return out;
}

/**
 * The `payload` of a COUNTERS record ({@link RecordFields}): a new Buffer the caller owns;
 * {@link fillCountersPayload} may change its values until the record is encoded.
 */
export function countersPayload(published: number, acked: number, deadLettered: number): Buffer {
  const out = Buffer.allocUnsafe(COUNTERS_BODY_BYTES);
  fillCountersPayload(out, published, acked, deadLettered);
  return out;
}

/** Writes the values of a COUNTERS record into `body`, made by {@link countersPayload}. Each value is 0..MAX_U48. */
export function fillCountersPayload(body: Buffer, published: number, acked: number, deadLettered: number): void {
  body[0] = COUNTERS_VERSION;
  body.writeUIntLE(published, 1, U48);
  body.writeUIntLE(acked, 1 + U48, U48);
  body.writeUIntLE(deadLettered, 1 + U48 + U48, U48);
}
