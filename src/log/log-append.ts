/**
 * One record on its way into the log (log-writer.ts): what the appender fills, what the writer
 * fills before it answers, and the callback shape.
 */
import {
  RecordType,
  countersPayload,
  recordSizeBytes,
  restorePayload,
  type CounterValues,
  type RecordFields,
  type RestoreState,
} from './record.js';
import type { Segment } from './segment.js';

export type FsyncPolicy = 'always' | 'interval' | 'never';

/**
 * Called when a record is durable per policy (err null) or could not be written (err set), with
 * the record itself as `append`: an `A`, the class its named constructor was called on.
 */
export type AppendCallback<A extends LogAppend = LogAppend> = Completion<A>['done'];

/**
 * Written as a method so that it is bivariant in `append`: the writer holds every record as a
 * LogAppend and calls `rec.done(err, rec)`, while a subclass's completion takes the subclass (the
 * named constructors tie the two together, so that call is always right).
 */
interface Completion<A> {
  done(err: Error | null, append: A): void;
}

/** Record types whose type-specific part is a message id (DACK: and a due time). */
export type MessageRecordType =
  | typeof RecordType.ACK
  | typeof RecordType.NACK
  | typeof RecordType.BACK
  | typeof RecordType.DACK
  | typeof RecordType.DELIVER;

/**
 * The class a named constructor is called on: LogAppend, or a subclass that adds fields (with
 * their defaults, set after construction) and no constructor of its own. `A` is taken from what
 * it makes, not from the constructor's `done` (which takes any LogAppend).
 */
type AppendClass<A extends LogAppend> = new (
  type: RecordType,
  topic: string,
  messageId: number,
  dueAtMs: number,
  dackCount: number,
  payload: Buffer | null,
  done: NoInfer<AppendCallback<A>>,
) => A;

/**
 * One record waiting to be written. Made by a named constructor, one per record type
 * ({@link LogAppend.forPublish} ... {@link LogAppend.forCounters}); called on a subclass (the
 * broker's BrokerAppend, compaction's records), it makes an instance of that subclass, and `done`
 * gets it typed as such. The writer fills `offset`, `segment` and `payloadPosition` before it
 * calls `done`.
 */
export class LogAppend implements RecordFields {
  offset = -1;
  segment: Segment | null = null;
  /** Byte position of the payload in `segment`'s file (PUBLISH and RESTORE). */
  payloadPosition = -1;
  /** Bytes of the whole encoded record. */
  sizeBytes: number;
  readonly done: AppendCallback<this>;
  /**
   * When set, the record is a barrier: the writer encodes it only once every record appended
   * before it has completed (written and, with `--fsync always`, synced; or failed), first in its
   * batch, and calls this right before, when `payload`'s bytes may still be changed (its length
   * may not). The broker's COUNTERS records use it to carry values exact at their place in the log.
   */
  beforeEncode: ((rec: LogAppend) => void) | null = null;

  /**
   * The named constructors' common part (public only because they call it as `new this`): use
   * them, which say what each argument is. The fields are those of {@link RecordFields}.
   */
  constructor(
    readonly type: RecordType,
    readonly topic: string,
    readonly messageId: number,
    readonly dueAtMs: number,
    readonly dackCount: number,
    readonly payload: Buffer | null,
    done: AppendCallback<LogAppend>,
  ) {
    this.done = done;
    this.sizeBytes = recordSizeBytes(type, topic.length, payload === null ? 0 : payload.length);
  }

  /** A PUBLISH of `payload` (kept as given, not copied) to `topic`; the message id is the record's offset. */
  static forPublish<A extends LogAppend>(this: AppendClass<A>, topic: string, payload: Buffer, done: AppendCallback<A>): A {
    return new this(RecordType.PUBLISH, topic, 0, 0, 0, payload, done);
  }

  /** An ACK of message `messageId` of `topic`. */
  static forAck<A extends LogAppend>(this: AppendClass<A>, topic: string, messageId: number, done: AppendCallback<A>): A {
    return new this(RecordType.ACK, topic, messageId, 0, 0, null, done);
  }

  /** A NACK of message `messageId` of `topic` (back to the front of its queue). */
  static forNack<A extends LogAppend>(this: AppendClass<A>, topic: string, messageId: number, done: AppendCallback<A>): A {
    return new this(RecordType.NACK, topic, messageId, 0, 0, null, done);
  }

  /** A BACK of message `messageId` of `topic` (to the back of its queue). */
  static forBack<A extends LogAppend>(this: AppendClass<A>, topic: string, messageId: number, done: AppendCallback<A>): A {
    return new this(RecordType.BACK, topic, messageId, 0, 0, null, done);
  }

  /** A DACK of message `messageId` of `topic`, held until `dueAtMs` (Unix epoch ms). */
  static forDack<A extends LogAppend>(this: AppendClass<A>, topic: string, messageId: number, dueAtMs: number, done: AppendCallback<A>): A {
    return new this(RecordType.DACK, topic, messageId, dueAtMs, 0, null, done);
  }

  /** A DELETE_TOPIC of `topic`. */
  static forDeleteTopic<A extends LogAppend>(this: AppendClass<A>, topic: string, done: AppendCallback<A>): A {
    return new this(RecordType.DELETE_TOPIC, topic, 0, 0, 0, null, done);
  }

  /**
   * A RESTORE of message `state.messageId` of `topic` with its whole `state` and a copy of
   * `payload`; the record's `payload` is then the {@link restorePayload} (the message payload
   * starts RESTORE_TAIL_BYTES into it).
   */
  static forRestore<A extends LogAppend>(this: AppendClass<A>, topic: string, state: RestoreState, payload: Buffer, done: AppendCallback<A>): A {
    const body = restorePayload(state.placement, state.placeOffset, state.deliveries, payload);
    return new this(RecordType.RESTORE, topic, state.messageId, state.dueAtMs, state.dackCount, body, done);
  }

  /** A DELIVER of message `messageId` of `topic` (handed to a consumer). */
  static forDeliver<A extends LogAppend>(this: AppendClass<A>, topic: string, messageId: number, done: AppendCallback<A>): A {
    return new this(RecordType.DELIVER, topic, messageId, 0, 0, null, done);
  }

  /** A TOPIC record: `topic` exists. */
  static forTopic<A extends LogAppend>(this: AppendClass<A>, topic: string, done: AppendCallback<A>): A {
    return new this(RecordType.TOPIC, topic, 0, 0, 0, null, done);
  }

  /**
   * A COUNTERS record of `topic` with `counters`; its `payload` is the {@link countersPayload}, whose
   * values fillCountersPayload may change until it is encoded (see {@link beforeEncode}).
   */
  static forCounters<A extends LogAppend>(this: AppendClass<A>, topic: string, counters: CounterValues, done: AppendCallback<A>): A {
    const body = countersPayload(counters.published, counters.acked, counters.deadLettered);
    return new this(RecordType.COUNTERS, topic, 0, 0, 0, body, done);
  }

  /**
   * An ACK, NACK, BACK, DELIVER or DACK of message `messageId` of `topic`, for callers that pick
   * the type at run time; `dueAtMs` is the DACK's due time (Unix epoch ms) and 0 for the others.
   */
  static forMessage<A extends LogAppend>(
    this: AppendClass<A>,
    type: MessageRecordType,
    topic: string,
    messageId: number,
    dueAtMs: number,
    done: AppendCallback<A>,
  ): A {
    return new this(type, topic, messageId, dueAtMs, 0, null, done);
  }
}
