/**
 * The state the broker's pieces share (the façade in broker.ts owns one): the message and topic
 * store and its live accounting, the log writer once replay is over, the shutdown flag and the
 * ack deadlines. Each piece (replay, dispatch, settle, dead letters) gets this object instead of
 * reaching into the façade.
 */
import type { Logger } from 'pino';
import { BrokerError } from '../errors.js';
import type { LogWriter } from '../log/log-writer.js';
import { AckDeadlines } from './ack-deadlines.js';
import { LiveAccounting } from './live-accounting.js';
import type { Message } from './message.js';
import { MessageStore } from './message-store.js';
import { TopicStore } from './topic-store.js';

export interface BrokerCoreOptions {
  logger: Logger;
  payloadCacheBytes: number;
  /** Compaction is on: keep the ACKs it may have to write again (live-accounting.ts). */
  compacting: boolean;
  /** `--ack-timeout` in ms; 0: off. */
  ackTimeoutMs: number;
}

export class BrokerCore {
  readonly logger: Logger;
  /** Every message, live or gone but still counted by the live accounting (message-store.ts). */
  readonly store: MessageStore;
  readonly topics: TopicStore;
  /** What replay still needs of each segment, for compaction (live-accounting.ts). */
  readonly live: LiveAccounting;
  readonly ackTimeoutMs: number;
  /** Deadlines of deliveries under `--ack-timeout`, checked by the ack ticker. */
  readonly ackDeadlines = new AckDeadlines<Message>();
  /** Null until replay is over (MQ_ERR_LOADING). */
  writer: LogWriter | null = null;
  closing = false;
  #nextDeliveryId = 1;

  constructor(opts: BrokerCoreOptions) {
    this.logger = opts.logger;
    this.store = new MessageStore(opts.payloadCacheBytes);
    // With compaction off, keep no record of the ACKs it might have to write again.
    this.live = new LiveAccounting(this.store, opts.compacting);
    this.topics = new TopicStore(this.store, this.live);
    this.ackTimeoutMs = opts.ackTimeoutMs;
  }

  /** The writer for records nobody waits for (DELIVER, disconnect NACKs): null while loading or closing. */
  get liveWriter(): LogWriter | null {
    return this.closing ? null : this.writer;
  }

  /** The writer for a request's record. Throws MQ_ERR_LOADING, MQ_ERR_SHUTTING_DOWN. */
  assertOpen(): LogWriter {
    if (this.writer === null) throw new BrokerError('MQ_ERR_LOADING');
    if (this.closing) throw new BrokerError('MQ_ERR_SHUTTING_DOWN');
    return this.writer;
  }

  /** Throws MQ_ERR_LOADING while the log is replayed. */
  assertLoaded(): void {
    if (this.writer === null) throw new BrokerError('MQ_ERR_LOADING');
  }

  /** A new delivery id: unique in this process, never reused. */
  nextDeliveryId(): number {
    return this.#nextDeliveryId++;
  }

  /** The error of a failed append (`err` from the writer), as a reply: MQ_ERR_STORAGE or MQ_ERR_SHUTTING_DOWN. */
  storageError(err: Error & { code?: string }): BrokerError {
    if (err.code === 'MQ_ERR_SHUTTING_DOWN') return new BrokerError('MQ_ERR_SHUTTING_DOWN', [], { cause: err });
    return new BrokerError('MQ_ERR_STORAGE', [err.code ?? err.message], { cause: err });
  }
}
