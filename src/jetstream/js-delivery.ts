/**
 * One delivery of the jetstream engine: a JetStream message pulled for one consumer of this
 * gateway, as the engine seam's read-only {@link Delivery}.
 *
 * What a delivery knows comes from the message JetStream hands out:
 * - its ack subject `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`
 *   (servers with a domain put two more tokens after `$JS.ACK`, and one at the end), which
 *   gives the stream sequence and how many times JetStream delivered this stored message;
 * - headers that a BACK or a dead-letter copy carries over from the message it replaces
 *   (see {@link MQ_HEADERS}); a message published by a client has none.
 *
 * `messageId` is the stream sequence of the message as first published (a BACK copy keeps it;
 * a dead-letter copy is a new message with its own), `attempt` the deliveries of the stored
 * message that a client saw plus those of the messages it replaces, `dackCount` what the
 * message's record in the DACK-count stream (delivery-record.ts) or the copy's header says.
 */
import type { Delivery } from '../engine/queue-engine.js';

/** Headers of the copies the engine publishes (BACK, dead letters); clients' messages have none. */
export const MQ_HEADERS = {
  /** The message id of the message a BACK copy replaces. */
  id: 'Mq-Id',
  /** Deliveries of the messages this copy replaces (added to JetStream's count for `attempt`). */
  attempts: 'Mq-Attempts',
  /** The dackCount carried over. */
  dackCount: 'Mq-Dack-Count',
} as const;

/** What an ack subject says about a delivery. */
export interface AckInfo {
  /** The message's sequence in the stream. */
  streamSeq: number;
  /** How many times JetStream delivered this stored message, this delivery included (1 = first). */
  deliveredCount: number;
}

/** Parses a JetStream ack subject (see the file comment); undefined when it is not one. */
export function parseAckSubject(subject: string): AckInfo | undefined {
  const t = subject.split('.');
  if (t[0] !== '$JS' || t[1] !== 'ACK') return undefined;
  // 9 tokens: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
  // 11 or 12: $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<random>]
  const base = t.length === 9 ? 4 : t.length >= 11 ? 6 : -1;
  if (base < 0) return undefined;
  const deliveredCount = Number(t[base]);
  const streamSeq = Number(t[base + 1]);
  if (!Number.isSafeInteger(deliveredCount) || deliveredCount < 1 || !Number.isSafeInteger(streamSeq) || streamSeq < 1) return undefined;
  return { streamSeq, deliveredCount };
}

/** What a delivery is made of (see {@link JsDelivery}). */
export interface JsDeliveryFields {
  deliveryId: number;
  messageId: number;
  topic: string;
  attempt: number;
  dackCount: number;
  /** JetStream's deliveries of the stored message that no client saw (see delivery-record.ts). */
  unseen: number;
  /** The message has a record in the DACK-count stream (see delivery-record.ts). */
  recordStored: boolean;
  payload: Buffer;
  streamSeq: number;
  ackSubject: string;
}

/** A delivery in flight to one consumer of this gateway. */
export class JsDelivery implements Delivery {
  readonly deliveryId: number;
  readonly messageId: number;
  readonly topic: string;
  readonly attempt: number;
  readonly dackCount: number;
  readonly payload: Buffer;
  /** The stored message's sequence (the one to ack; a BACK copy's differs from messageId). */
  readonly streamSeq: number;
  /** Where ACK, NAK and in-progress signals for it go. */
  readonly ackSubject: string;
  /** JetStream's deliveries of the stored message that no client saw (left out of `attempt`). */
  readonly unseen: number;
  /** The message has a record in the DACK-count stream: it is dropped when the message is acked. */
  readonly recordStored: boolean;
  /** Date.now() ms when `--ack-timeout` takes it back; 0 without an ack timeout. */
  deadlineMs = 0;

  /** `fields` is read, not kept (a pulled message becomes a delivery without a copy of it made first). */
  constructor(fields: Omit<JsDeliveryFields, 'deliveryId'>, deliveryId: number) {
    this.deliveryId = deliveryId;
    this.messageId = fields.messageId;
    this.topic = fields.topic;
    this.attempt = fields.attempt;
    this.dackCount = fields.dackCount;
    this.unseen = fields.unseen;
    this.recordStored = fields.recordStored;
    this.payload = fields.payload;
    this.streamSeq = fields.streamSeq;
    this.ackSubject = fields.ackSubject;
  }
}
