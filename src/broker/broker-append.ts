/**
 * The records the broker appends, with what their completions need as typed fields (instead of
 * LogAppend's untyped `ctx`), built by one named constructor per use.
 *
 * One class for all of them, rather than a subclass per record type, so that the writer's
 * per-record loops keep seeing one object shape (two with compaction's plain LogAppends), and a
 * completion, a function shared by every record of its kind, needs no closure per record.
 */
import type { DoneCallback, PublishCallback } from '../engine/queue-engine.js';
import { LogAppend, type AppendCallback } from '../log/log-writer.js';
import { RecordType } from '../log/record.js';

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

  /** A PUBLISH of `payload` to `topic`. */
  static publish(topic: string, payload: Buffer, deletes: number, reply: PublishCallback, done: AppendCallback): BrokerAppend {
    const rec = new BrokerAppend(RecordType.PUBLISH, topic, 0, 0, 0, payload, done);
    rec.deletes = deletes;
    rec.onPublished = reply;
    return rec;
  }

  /** A DELIVER, or a NACK nobody waits for (disconnect, ack timeout, tick), of message `h`. */
  static placement(type: RecordType, topic: string, messageId: number, h: number, done: AppendCallback): BrokerAppend {
    const rec = new BrokerAppend(type, topic, messageId, 0, 0, null, done);
    rec.h = h;
    return rec;
  }

  /** An ACK, NACK, BACK or DACK (held until `dueAtMs`) of message `h`, answered by `reply`. */
  static settle(type: RecordType, topic: string, messageId: number, dueAtMs: number, h: number, reply: DoneCallback, done: AppendCallback): BrokerAppend {
    const rec = new BrokerAppend(type, topic, messageId, dueAtMs, 0, null, done);
    rec.h = h;
    rec.onDone = reply;
    return rec;
  }

  /**
   * The RESTORE of a dead letter (`body` from restorePayload) as message `id` of `deadTopic`, or
   * with `type` ACK and no body, the ACK of the original (`originalId`, handle `h`) that follows it.
   */
  static deadLetter(
    type: RecordType,
    topic: string,
    id: number,
    dackCount: number,
    body: Buffer | null,
    original: { h: number; id: number; deletes: number; sourceDeletes: number; countsAsAcked: boolean; reply: DoneCallback | null },
    done: AppendCallback,
  ): BrokerAppend {
    const rec = new BrokerAppend(type, topic, id, 0, dackCount, body, done);
    rec.h = original.h;
    rec.originalId = original.id;
    rec.deletes = original.deletes;
    rec.sourceDeletes = original.sourceDeletes;
    rec.countsAsAcked = original.countsAsAcked;
    rec.onDone = original.reply;
    return rec;
  }
}
