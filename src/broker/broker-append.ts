/**
 * The records the broker appends, with what their completions need as typed fields, built by one
 * named constructor per use on top of LogAppend's (one per record type); their completions get
 * the record as a BrokerAppend.
 *
 * One class for all of them, rather than a subclass per record type, so that the writer's
 * per-record loops keep seeing few object shapes (this one for nearly every record; compaction's
 * and DELETE_TOPIC's are others), and a completion, a function shared by every record of its kind,
 * needs no closure per record.
 */
import type { DoneCallback, PublishCallback } from '../engine/queue-engine.js';
import { LogAppend, type AppendCallback } from '../log/log-writer.js';
import type { RecordType, RestoreState } from '../log/record.js';

/** The message a dead letter copies, and what the completions of its two records need. */
export interface DeadLetterOriginal {
  /** Handle of the original message. */
  h: number;
  /** Its id. */
  id: number;
  /** Deletes of the dead-letter topic when the RESTORE was appended. */
  deletes: number;
  /** Deletes of the original's topic when the move began. */
  sourceDeletes: number;
  /** ACK: replay counts it as acked (see BrokerAppend.countsAsAcked). */
  countsAsAcked: boolean;
  /** The settle's reply, if any. */
  reply: DoneCallback | null;
}

/** The records of a placement nobody waits for: DELIVER, or NACK (disconnect, ack timeout, tick). */
export type PlacementRecordType = typeof RecordType.DELIVER | typeof RecordType.NACK;
/** The records of a settle: ACK, NACK, BACK or DACK. */
export type SettleRecordType = typeof RecordType.ACK | typeof RecordType.NACK | typeof RecordType.BACK | typeof RecordType.DACK;

export class BrokerAppend extends LogAppend {
  /** Handle of the message the record is about (settles, placements, dead letters); -1: none. */
  h = -1;
  /** Dead letters: the id of the original message. */
  originalId = -1;
  /** PUBLISH, dead-letter RESTORE: deletes of the record's topic when it was appended. */
  deletes = 0;
  /** Dead-letter RESTORE: deletes of the original's topic when the move began. */
  sourceDeletes = 0;
  /**
   * Dead-letter ACK: no delete of the original's topic came between the move and this record, so
   * the original is still in the log's queues and replay counts this ACK as acked.
   */
  countsAsAcked = false;
  /** PUBLISH: the publisher's reply. */
  onPublished: PublishCallback | null = null;
  /** Settles and dead letters: the settle's reply, if any. */
  onDone: DoneCallback | null = null;

  /** A PUBLISH of `payload` to `topic`, answered by `reply`; `deletes`: of `topic` so far. */
  static publish(topic: string, payload: Buffer, deletes: number, reply: PublishCallback, done: AppendCallback<BrokerAppend>): BrokerAppend {
    const rec = BrokerAppend.forPublish(topic, payload, done);
    rec.deletes = deletes;
    rec.onPublished = reply;
    return rec;
  }

  /** A DELIVER, or a NACK nobody waits for (disconnect, ack timeout, tick), of message `h`. */
  static placement(type: PlacementRecordType, topic: string, messageId: number, h: number, done: AppendCallback<BrokerAppend>): BrokerAppend {
    const rec = BrokerAppend.forMessage(type, topic, messageId, 0, done);
    rec.h = h;
    return rec;
  }

  /**
   * An ACK, NACK, BACK or DACK (held until `dueAtMs`; 0 for the others) of message `h`, answered
   * by `reply`.
   */
  static settle(
    type: SettleRecordType,
    topic: string,
    messageId: number,
    dueAtMs: number,
    h: number,
    reply: DoneCallback,
    done: AppendCallback<BrokerAppend>,
  ): BrokerAppend {
    const rec = BrokerAppend.forMessage(type, topic, messageId, dueAtMs, done);
    rec.h = h;
    rec.onDone = reply;
    return rec;
  }

  /** The RESTORE of a dead letter with `state` and `payload` as a message of `deadTopic`; `original`: the message it copies. */
  static deadLetterCopy(deadTopic: string, state: RestoreState, payload: Buffer, original: DeadLetterOriginal, done: AppendCallback<BrokerAppend>): BrokerAppend {
    return BrokerAppend.#withOriginal(BrokerAppend.forRestore(deadTopic, state, payload, done), original);
  }

  /** The ACK of the `original` of a dead letter (message `original.id` of `topic`), after its copy. */
  static deadLetterAck(topic: string, original: DeadLetterOriginal, done: AppendCallback<BrokerAppend>): BrokerAppend {
    return BrokerAppend.#withOriginal(BrokerAppend.forAck(topic, original.id, done), original);
  }

  static #withOriginal(rec: BrokerAppend, original: DeadLetterOriginal): BrokerAppend {
    rec.h = original.h;
    rec.originalId = original.id;
    rec.deletes = original.deletes;
    rec.sourceDeletes = original.sourceDeletes;
    rec.countsAsAcked = original.countsAsAcked;
    rec.onDone = original.reply;
    return rec;
  }
}
