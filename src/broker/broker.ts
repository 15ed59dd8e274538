/**
 * Queue semantics on top of the segment log (SPEC §2): topics, competing consumers, one
 * delivery per message at a time, ACK / NACK / BACK / DACK, disconnects, topic deletes.
 *
 * Every state change is appended to the log, and its caller is answered only when the record is
 * written (and fdatasynced under `--fsync always`). A publish becomes visible to consumers only
 * once its record is durable, so nothing is ever delivered that a crash could take back.
 * Settles take effect in memory at once (a settled message cannot be settled twice), and if the
 * settle record cannot be written the message is put back at the front, which is where replay
 * would put it too.
 *
 * Deliveries are logged too (DELIVER records, not waited for), so replay knows which messages were
 * in flight when the process stopped and puts them at the front in delivery order (SPEC §2
 * "Delivery"); a DELIVER lost in a crash leaves the message at its last logged place. Disconnect
 * NACKs and the tick's return of due DACKed messages are logged as NACK records.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { BrokerError } from '../errors.js';
import { Compactor, type CompactionStats, type CompactionRun } from '../log/compactor.js';
import { listSegments, segmentFileName } from '../log/files.js';
import { LogAppend, LogWriter, type FsyncPolicy } from '../log/log-writer.js';
import { Placement, RESTORE_TAIL_BYTES, RecordType, restorePayload, type DecodedRecord } from '../log/record.js';
import { SegmentLog, type ReplayStats } from '../log/segment-log.js';
import type { Segment } from '../log/segment.js';
import { AckDeadlines } from './ack-deadlines.js';
import { Consumer, type DeliveryHandler } from './consumer.js';
import { compactionPolicy } from './evacuate.js';
import { LiveAccounting } from './live-accounting.js';
import { LoadingProgress, REPLAY_SLICE_MS } from './loading-progress.js';
import { Message, MessageState } from './message.js';
import { MessageStore } from './message-store.js';
import type { SegmentLiveness } from './segment-accounting.js';
import { assertTopicName } from './topic-name.js';
import { Topic } from './topic.js';

export interface BrokerOptions {
  dir: string;
  fsync: FsyncPolicy;
  fsyncIntervalMs: number;
  segmentBytes: number;
  maxMessageBytes: number;
  /** How often delayed messages are checked and returned (ms, SPEC §1 `--period`). */
  periodMs: number;
  repair: boolean;
  /**
   * Bytes of payloads kept in memory (each counted with MessageStore's per-entry overhead); past
   * it payloads are read back from the log. Default 256 MiB.
   */
  payloadCacheBytes?: number;
  /** Background compaction (SPEC §5, issue #4); on unless `enabled: false`. */
  compaction?: BrokerCompactionOptions;
  /**
   * `--ack-timeout` in ms (SPEC §7): a delivery not settled (or TOUCHed) within it goes back to
   * the front of its topic. 0 or absent: off, as in the Go original.
   */
  ackTimeoutMs?: number;
  /**
   * `--max-deliveries` (SPEC §7): a message whose Nth delivery ends without an ACK (NACK, BACK,
   * DACK, ack timeout, disconnect) moves to `<topic>.dead`. 0 or absent: unlimited.
   */
  maxDeliveries?: number;
  logger: Logger;
}

/** Knobs of background compaction; see compactor.ts for what they mean. */
export interface BrokerCompactionOptions {
  /** Default true. */
  enabled?: boolean;
  /** False: run only through {@link Broker.compactNow} (tests). Default true. */
  auto?: boolean;
  maxLiveRatio?: number;
  maxCopyBytesPerRun?: number;
  checkIntervalMs?: number;
  graceSegments?: number;
  copyMinGarbageBytes?: number;
}

/** Called when a publish is durable (`id` = the message id) or failed (`err` set). */
export type PublishCallback = (err: BrokerError | null, id: number) => void;
/** Called when a settle or delete is durable, or failed. */
export type DoneCallback = (err: BrokerError | null) => void;

/** What a PUBLISH record carries to its completion: the reply and the topic's delete count at append time. */
interface PublishContext {
  cb: PublishCallback;
  deletes: number;
}

export type SettleKind = 'ACK' | 'NACK' | 'BACK' | 'DACK';

/** Suffix of the dead-letter topic of a topic (SPEC §7 "Dead letters"). */
export const DEAD_LETTER_SUFFIX = '.dead';

/** Per-topic counters for metrics (SPEC §7 Metrics); see Topic for what each counts. */
export interface TopicCounters {
  published: number;
  acked: number;
  nacked: number;
  backed: number;
  dacked: number;
  redelivered: number;
  ackTimeouts: number;
  deadLettered: number;
}

/** Per-topic figures of SPEC §7 Stats. */
export interface TopicStats {
  topic: string;
  ready: number;
  inFlight: number;
  delayed: number;
  consumers: number;
  published: number;
  acked: number;
}

/** What a settle record carries to its completion. */
interface SettleContext {
  cb: DoneCallback;
  /** The message's handle (the record's messageId tells whether it still holds it). */
  h: number;
}

/** What a dead-letter RESTORE and the ACK that follows it carry to their completions. */
interface DeadLetterContext {
  /** Handle and id of the original message (GONE, still pinned until its ACK is durable). */
  h: number;
  id: number;
  /** The reply of the settle that caused it, if any. */
  cb: DoneCallback | null;
  /** Deletes of the dead-letter topic when the RESTORE was appended (see #onPublished). */
  deletes: number;
}

/** Records replay looks at before it sizes the message store for the whole log. */
const SIZING_SAMPLE_RECORDS = 4096;

/** Bytes in the segment files of `dir` (0 when it does not exist yet). */
function logSizeBytes(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  let total = 0;
  for (const base of listSegments(dir)) total += fs.statSync(path.join(dir, segmentFileName(base))).size;
  return total;
}

function storageError(err: Error & { code?: string }): BrokerError {
  if (err.code === 'MQ_ERR_SHUTTING_DOWN') return new BrokerError('MQ_ERR_SHUTTING_DOWN', [], { cause: err });
  return new BrokerError('MQ_ERR_STORAGE', [err.code ?? err.message], { cause: err });
}

export class Broker {
  readonly #opts: BrokerOptions;
  readonly #logger: Logger;
  readonly #topics = new Map<string, Topic>();
  /** Every message, live or gone but still counted by the live accounting (message-store.ts). */
  readonly #store: MessageStore;
  #log: SegmentLog | null = null;
  #writer: LogWriter | null = null;
  #ticker: NodeJS.Timeout | undefined;
  #closing = false;
  /**
   * Deletes per topic name: a publish remembers the count when it is appended, and is not applied
   * if a delete came in between (see #onPublished).
   */
  readonly #topicDeletes = new Map<string, number>();
  /** During replay: handles of messages whose last record is a DELIVER (or a RESTORE in flight). */
  readonly #replayInFlight = new Set<number>();
  #compactor: Compactor | null = null;
  readonly #ackTimeoutMs: number;
  readonly #maxDeliveries: number;
  /** Deadlines of deliveries under `--ack-timeout`, checked by #ackTicker. */
  readonly #ackDeadlines = new AckDeadlines<Message>();
  #ackTicker: NodeJS.Timeout | undefined;
  /**
   * Until this time (Date.now() ms) no dead-lettering is tried: the last dead-letter record failed
   * (disk full, EIO), and retrying at every delivery attempt would spin on the failing disk.
   */
  #deadLetterPausedUntilMs = 0;
  /** During replay, until SIZING_SAMPLE_RECORDS were seen: the log's size and the records so far. */
  #replaySizing: { logBytes: number; records: number; recordBytes: number } | null = null;
  /** What replay still needs of each segment, for compaction (live-accounting.ts). */
  readonly #live: LiveAccounting;
  /** Set while openSliced() replays. */
  #loadingProgress: LoadingProgress | null = null;

  constructor(opts: BrokerOptions) {
    this.#opts = opts;
    this.#logger = opts.logger;
    this.#store = new MessageStore(opts.payloadCacheBytes ?? 256 * 1024 * 1024);
    // With compaction off, keep no record of the ACKs it might have to write again.
    this.#live = new LiveAccounting(this.#store, opts.compaction?.enabled !== false);
    this.#ackTimeoutMs = opts.ackTimeoutMs ?? 0;
    this.#maxDeliveries = opts.maxDeliveries ?? 0;
  }

  /** True until {@link open} has replayed the log; protocols answer MQ_ERR_LOADING meanwhile. */
  get loading(): boolean {
    return this.#writer === null;
  }

  get writer(): LogWriter {
    if (this.#writer === null) throw new BrokerError('MQ_ERR_LOADING');
    return this.#writer;
  }

  get log(): SegmentLog {
    if (this.#log === null) throw new BrokerError('MQ_ERR_LOADING');
    return this.#log;
  }

  /**
   * Opens the log in `opts.dir`, replays it into the indexes and starts the `--period` ticker.
   * Throws LogCorruptError (damage before the tail without --repair) and fs errors.
   */
  open(): ReplayStats {
    this.#replaySizing = { logBytes: logSizeBytes(this.#opts.dir), records: 0, recordBytes: 0 };
    const { log, stats } = SegmentLog.open(
      { dir: this.#opts.dir, repair: this.#opts.repair, logger: this.#logger },
      (rec, segment) => this.#replay(rec, segment),
    );
    return this.#opened(log, stats);
  }

  /**
   * {@link open} in slices of about `sliceMs` (SPEC §8): between slices the event loop runs, so the
   * listeners answer MQ_ERR_LOADING while {@link loading} (true until this resolves), and a
   * progress line is logged about once a second ({@link loadingProgress}). Aborting `signal` stops
   * the replay at the next slice and rejects with its reason (the broker stays unopened; close()
   * it). Rejects with LogCorruptError and fs errors as open() throws them.
   */
  async openSliced(opts: { sliceMs?: number; signal?: AbortSignal } = {}): Promise<ReplayStats> {
    this.#replaySizing = { logBytes: logSizeBytes(this.#opts.dir), records: 0, recordBytes: 0 };
    const progress = new LoadingProgress(this.#logger, () => this.#store.liveCount);
    this.#loadingProgress = progress;
    try {
      const { log, stats } = await SegmentLog.openSliced(
        { dir: this.#opts.dir, repair: this.#opts.repair, logger: this.#logger },
        (rec, segment) => this.#replay(rec, segment),
        { sliceMs: opts.sliceMs ?? REPLAY_SLICE_MS, signal: opts.signal, onSlice: (p) => progress.update(p) },
      );
      return this.#opened(log, stats);
    } finally {
      this.#loadingProgress = null;
    }
  }

  /** While {@link openSliced} replays: how far it has come (null before and after). */
  get loadingProgress(): LoadingProgress | null {
    return this.#loadingProgress;
  }

  /** The end of open(): queues put in order, the writer, the tickers and compaction started. */
  #opened(log: SegmentLog, stats: ReplayStats): ReplayStats {
    this.#replaySizing = null;
    this.#store.endReserve();
    // Ready messages placed by RESTORE records join their queues by rank (record.ts).
    for (const topic of this.#topics.values()) {
      if (topic.restoredReady !== null) mergeRestoredReady(topic, this.#store);
    }
    // Messages in flight when the log ends go to the front, in their original delivery order
    // (the offsets of their DELIVER records; a RESTORE keeps that offset).
    const store = this.#store;
    const inFlight = [...this.#replayInFlight].sort((a, b) => store.placeOffsets[a]! - store.placeOffsets[b]!);
    this.#replayInFlight.clear();
    for (let i = inFlight.length - 1; i >= 0; i--) {
      const h = inFlight[i]!;
      if (store.states[h] !== MessageState.IN_FLIGHT) continue;
      const topic = store.topicOf(h);
      topic.inFlight.delete(h);
      topic.pushReadyFront(h);
    }
    for (const topic of this.#topics.values()) {
      if (topic.ready.slotCount > topic.readyCount) topic.ready.compact();
    }
    this.#log = log;
    this.#writer = new LogWriter(log, {
      fsync: this.#opts.fsync,
      fsyncIntervalMs: this.#opts.fsyncIntervalMs,
      segmentBytes: this.#opts.segmentBytes,
      logger: this.#logger,
    });
    this.#ticker = setInterval(() => this.tick(Date.now()), this.#opts.periodMs);
    this.#ticker.unref();
    if (this.#ackTimeoutMs > 0) {
      // One coarse ticker for every deadline: a tenth of the timeout, between 10 ms and 1 s.
      const everyMs = Math.min(1000, Math.max(10, Math.floor(this.#ackTimeoutMs / 10)));
      this.#ackTicker = setInterval(() => this.expireAckTimeouts(performance.now()), everyMs);
      this.#ackTicker.unref();
    }
    const compaction = this.#opts.compaction ?? {};
    if (compaction.enabled !== false) {
      const writer = this.#writer;
      this.#compactor = new Compactor({
        log,
        writer,
        segmentBytes: this.#opts.segmentBytes,
        copyMinGarbageBytes: compaction.copyMinGarbageBytes,
        fsync: this.#opts.fsync,
        logger: this.#logger,
        maxLiveRatio: compaction.maxLiveRatio,
        maxCopyBytesPerRun: compaction.maxCopyBytesPerRun,
        checkIntervalMs: compaction.checkIntervalMs,
        graceSegments: compaction.graceSegments,
        policy: compactionPolicy({ store: this.#store, live: this.#live, topics: this.#topics, writer }),
      });
      if (compaction.auto !== false) this.#compactor.start();
    }
    this.#logger.info(
      { ...stats, durationMs: Math.round(stats.durationMs), messages: this.#store.liveCount, topics: this.#topics.size },
      'log replayed',
    );
    return stats;
  }

  #topic(name: string): Topic {
    let topic = this.#topics.get(name);
    if (topic === undefined) {
      topic = new Topic(name, this.#store);
      this.#topics.set(name, topic);
    }
    return topic;
  }

  #replay(rec: DecodedRecord, segment: Segment): void {
    const sizing = this.#replaySizing;
    if (sizing !== null) {
      sizing.records++;
      sizing.recordBytes += rec.sizeBytes;
      if (sizing.records === SIZING_SAMPLE_RECORDS) {
        // Enough to guess how many records the whole log holds: make room for them at once.
        this.#store.reserve(Math.ceil((sizing.logBytes / sizing.recordBytes) * sizing.records));
        this.#replaySizing = null;
      }
    }
    switch (rec.type) {
      case RecordType.PUBLISH: {
        const topic = this.#topic(rec.topic);
        topic.exists = true;
        topic.published++;
        this.#live.noteCreatedTopic(segment, rec.topic);
        this.#live.setTopicMark(topic, segment);
        const h = this.#store.add(rec.messageId, topic, rec.payloadPosition, rec.payloadLength);
        this.#live.pinOrigin(h, segment, rec.sizeBytes);
        topic.pushReadyBack(h);
        return;
      }
      case RecordType.RESTORE:
        this.#replayRestore(rec, segment);
        return;
      case RecordType.TOPIC: {
        const topic = this.#topic(rec.topic);
        topic.exists = true;
        this.#live.noteCreatedTopic(segment, rec.topic);
        this.#live.setTopicMark(topic, segment);
        return;
      }
      case RecordType.DELETE_TOPIC: {
        this.#live.noteDeletedTopic(segment, rec.topic);
        const topic = this.#topics.get(rec.topic);
        if (topic !== undefined) {
          for (const h of this.#clearTopic(topic)) this.#live.unpin(h);
          this.#live.setTopicMark(topic, null);
        }
        return;
      }
      default:
        break;
    }
    const store = this.#store;
    const h = store.handleOf(rec.messageId);
    if (h < 0) return; // settled before, or topic deleted
    const topic = store.topicOf(h);
    if (topic.name !== rec.topic) return;
    this.#unlinkReplayed(h, topic);
    switch (rec.type) {
      case RecordType.DELIVER:
        store.states[h] = MessageState.IN_FLIGHT;
        store.deliveries[h]!++;
        store.placements[h] = Placement.IN_FLIGHT;
        store.placeOffsets[h] = rec.offset;
        topic.inFlight.add(h);
        this.#replayInFlight.add(h);
        this.#live.noteRef(h, segment);
        return;
      case RecordType.ACK:
        topic.acked++;
        this.#forget(h, topic);
        this.#live.noteAcked(h, segment);
        return;
      case RecordType.NACK:
        store.placements[h] = Placement.FRONT;
        store.placeOffsets[h] = rec.offset;
        topic.pushReadyFront(h);
        this.#live.noteRef(h, segment);
        return;
      case RecordType.BACK:
        store.placements[h] = Placement.BACK;
        store.placeOffsets[h] = rec.offset;
        topic.pushReadyBack(h);
        this.#live.noteRef(h, segment);
        return;
      case RecordType.DACK:
        store.dackCounts[h]!++;
        store.dueAts[h] = rec.dueAtMs;
        store.states[h] = MessageState.DELAYED;
        store.placements[h] = Placement.DELAYED;
        store.placeOffsets[h] = rec.offset;
        topic.delayed.add(h);
        this.#live.noteRef(h, segment);
        return;
      default:
        return;
    }
  }

  /** Takes replayed message `h` out of whichever queue or set holds it. */
  #unlinkReplayed(h: number, topic: Topic): void {
    const state = this.#store.states[h];
    if (state === MessageState.READY) {
      // One placed by a RESTORE (slot -1) is not in the ring; it is skipped at the merge instead.
      topic.unlinkReady(h);
    } else if (state === MessageState.DELAYED) topic.delayed.delete(h);
    else if (state === MessageState.IN_FLIGHT) {
      topic.inFlight.delete(h);
      this.#replayInFlight.delete(h);
    }
  }

  /**
   * A RESTORE carries the whole state of a message (record.ts); it replaces an older copy of the
   * same id, which a crash between writing the RESTORE and deleting the old segment leaves.
   */
  #replayRestore(rec: DecodedRecord, segment: Segment): void {
    const topic = this.#topic(rec.topic);
    if (rec.messageId === rec.offset) {
      // A dead letter (#deadLetter): a new message, whose original's ACK follows.
      topic.published++;
      const source = this.#topics.get(rec.topic.slice(0, -DEAD_LETTER_SUFFIX.length));
      if (source !== undefined && source.exists) source.deadLettered++;
    }
    topic.exists = true;
    this.#live.noteCreatedTopic(segment, rec.topic);
    this.#live.setTopicMark(topic, segment);
    const store = this.#store;
    const old = store.handleOf(rec.messageId);
    if (old >= 0) {
      const oldTopic = store.topicOf(old);
      this.#unlinkReplayed(old, oldTopic);
      this.#forget(old, oldTopic);
    }
    const h = store.add(rec.messageId, topic, rec.payloadPosition, rec.payloadLength);
    if (old >= 0) this.#live.supersede(old, h, segment);
    this.#live.pinOrigin(h, segment, rec.sizeBytes);
    store.dackCounts[h] = rec.dackCount;
    store.deliveries[h] = rec.deliveries;
    if (rec.messageId === rec.offset) store.carried.set(h, rec.deliveries);
    store.placements[h] = rec.placement;
    store.placeOffsets[h] = rec.placeOffset;
    switch (rec.placement) {
      case Placement.DELAYED:
        store.states[h] = MessageState.DELAYED;
        store.dueAts[h] = rec.dueAtMs;
        topic.delayed.add(h);
        return;
      case Placement.IN_FLIGHT:
        store.states[h] = MessageState.IN_FLIGHT;
        topic.inFlight.add(h);
        this.#replayInFlight.add(h);
        return;
      default:
        // Ready at its rank, which need not be the back: merged into the queue when replay ends.
        store.states[h] = MessageState.READY;
        store.slots[h] = -1;
        topic.readyCount++;
        (topic.restoredReady ??= []).push(h);
        return;
    }
  }

  /** Drops message `h` from every index (acked, deleted). The caller has unlinked it from queues. */
  #forget(h: number, topic: Topic): void {
    const view = this.#store.views.get(h);
    if (view !== undefined && view.owner !== null) {
      (view.owner as Consumer).inFlight.delete(view.id);
      topic.inFlight.delete(h);
    }
    this.#endDelivery(h);
    this.#store.forget(h);
  }

  /** The delivery of `h` (if any) is over: its view loses its owner and ack deadline. */
  #endDelivery(h: number): void {
    const view = this.#store.views.get(h);
    if (view === undefined) return;
    view.owner = null;
    view.ackToken = 0;
    this.#store.views.delete(h);
  }

  /**
   * Empties a topic (delete): ready, delayed and in-flight messages are gone. Returns their
   * handles, for the live accounting once the delete is durable (they stay allocated until then).
   */
  #clearTopic(topic: Topic): number[] {
    const store = this.#store;
    const gone: number[] = [];
    topic.ready.forEach((h) => gone.push(h));
    if (topic.restoredReady !== null) {
      for (const h of topic.restoredReady) if (isRestoredReady(store, h, topic)) gone.push(h);
      topic.restoredReady = null;
    }
    for (const h of gone) this.#forget(h, topic);
    topic.ready.clear();
    topic.readyCount = 0;
    for (const h of topic.delayed) {
      this.#forget(h, topic);
      gone.push(h);
    }
    topic.delayed.clear();
    for (const h of topic.inFlight) {
      // Its view stays in its consumer's table, GONE, so a later settle answers MQ_ERR_TOPIC_DELETED.
      this.#replayInFlight.delete(h);
      store.views.delete(h);
      store.forget(h);
      gone.push(h);
    }
    topic.inFlight.clear();
    topic.exists = false;
    topic.resetCounters();
    return gone;
  }

  #assertOpen(): LogWriter {
    if (this.#writer === null) throw new BrokerError('MQ_ERR_LOADING');
    if (this.#closing) throw new BrokerError('MQ_ERR_SHUTTING_DOWN');
    return this.#writer;
  }

  /**
   * Publishes `payload` (0..maxMessageBytes bytes) to `topicName`. The broker keeps `payload`
   * (the caller must not reuse its memory). `cb` runs once the record is durable, with the new
   * message id, or with MQ_ERR_STORAGE / MQ_ERR_SHUTTING_DOWN.
   * Throws BrokerError MQ_ERR_BAD_TOPIC, MQ_ERR_TOO_LARGE, MQ_ERR_LOADING synchronously.
   */
  publish(topicName: string, payload: Buffer, cb: PublishCallback): void {
    const writer = this.#assertOpen();
    // Names in the topic table were validated when they got there: skip the pattern for them.
    if (!this.#topics.has(topicName)) assertTopicName(topicName);
    if (payload.length > this.#opts.maxMessageBytes) {
      throw new BrokerError('MQ_ERR_TOO_LARGE', [payload.length, this.#opts.maxMessageBytes]);
    }
    const rec = new LogAppend(RecordType.PUBLISH, topicName, 0, 0, 0, payload, this.#onPublished);
    rec.ctx = { cb, deletes: this.#deletesOf(topicName) } satisfies PublishContext;
    writer.append(rec);
  }

  /** How many times `topicName` was deleted so far in this process. */
  #deletesOf(topicName: string): number {
    return this.#topicDeletes.get(topicName) ?? 0;
  }

  readonly #onPublished = (err: Error | null, rec: LogAppend): void => {
    const { cb, deletes } = rec.ctx as PublishContext;
    if (err !== null) return cb(storageError(err), -1);
    const segment = rec.segment!;
    const topic = this.#topic(rec.topic);
    // Live accounting follows the log: this record makes the topic exist until the delete
    // that follows it (if any) completes.
    this.#live.noteCreatedTopic(segment, rec.topic);
    this.#live.setTopicMark(topic, segment);
    if (deletes !== this.#deletesOf(rec.topic)) {
      // The topic was deleted after this record was appended: the DELETE_TOPIC record follows it
      // in the log, so replay drops the message; memory must agree (it was published, then deleted).
      cb(null, rec.offset);
      return;
    }
    topic.exists = true;
    topic.published++;
    const payload = rec.payload!;
    const store = this.#store;
    const h = store.add(rec.offset, topic, rec.payloadPosition, payload.length);
    store.cachePayload(h, payload);
    this.#live.pinOrigin(h, segment, rec.sizeBytes);
    topic.pushReadyBack(h);
    cb(null, rec.offset);
    this.#dispatch(topic);
  };

  /**
   * The payload bytes of `msg`: the cached Buffer (do not change it), or a copy read back from its
   * segment. Throws MQ_ERR_NOT_IN_FLIGHT when the message is gone, and the fs error of the read.
   */
  payloadOf(msg: Message): Buffer {
    if (!this.#store.isCurrent(msg.handle, msg.id)) throw new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [msg.id]);
    return this.#store.payloadOf(msg.handle);
  }

  /** Creates a consumer whose deliveries go to `onDelivery`. */
  createConsumer(onDelivery: DeliveryHandler): Consumer {
    return new Consumer(onDelivery);
  }

  /**
   * Marks `consumer` as a stream subscriber of `topicName` (counted in stats). Throws
   * MQ_ERR_BAD_TOPIC.
   */
  attach(consumer: Consumer, topicName: string): void {
    assertTopicName(topicName);
    const topic = this.#topic(topicName);
    if (consumer.subscribedTo !== null) consumer.subscribedTo.consumers--;
    consumer.subscribedTo = topic;
    topic.consumers++;
  }

  /**
   * Asks for the next message of `topicName` for `consumer`: delivered through its
   * `onDelivery` at once if one is ready (before this returns), otherwise as soon as one is.
   * A consumer waits on one topic at a time; a new request replaces the old one.
   * Throws MQ_ERR_BAD_TOPIC, MQ_ERR_LOADING.
   */
  request(consumer: Consumer, topicName: string): void {
    if (this.#writer === null) throw new BrokerError('MQ_ERR_LOADING');
    assertTopicName(topicName);
    this.cancelRequest(consumer);
    const topic = this.#topic(topicName);
    const h = this.#popReady(topic);
    if (h >= 0) {
      this.#deliver(h, topic, consumer);
      return;
    }
    consumer.waitingOn = topic;
    topic.waiters.push(consumer);
  }

  /**
   * Takes the next ready message of `topicName` for `consumer` without waiting: returns it
   * (now in flight to `consumer`, `onDelivery` is not called) or undefined when none is ready.
   */
  take(consumer: Consumer, topicName: string): Message | undefined {
    if (this.#writer === null) throw new BrokerError('MQ_ERR_LOADING');
    assertTopicName(topicName);
    const topic = this.#topics.get(topicName);
    if (topic === undefined) return undefined;
    const h = this.#popReady(topic);
    if (h < 0) return undefined;
    return this.#markInFlight(h, topic, consumer);
  }

  /** Stops `consumer` waiting for a delivery (RESERVE timeout). */
  cancelRequest(consumer: Consumer): void {
    if (consumer.waitingOn !== null) {
      consumer.waitingOn.removeWaiter(consumer);
      consumer.waitingOn = null;
    }
  }

  /**
   * The next ready message of `topic` to deliver. One already delivered `--max-deliveries` times
   * (in flight at a restart, or its dead-lettering failed) is dead-lettered instead.
   */
  #popReady(topic: Topic): number {
    for (;;) {
      const h = topic.popReady();
      if (h < 0 || !this.#exhausted(h, topic) || this.#writer === null || this.#closing) return h;
      if (!this.#deadLetter(this.#writer, h, topic, null)) return h;
    }
  }

  /** Message `h` is now in flight to `consumer`; returns its delivery's view. */
  #markInFlight(h: number, topic: Topic, consumer: Consumer): Message {
    const store = this.#store;
    store.states[h] = MessageState.IN_FLIGHT;
    const msg = new Message(store, h);
    msg.owner = consumer;
    store.views.set(h, msg);
    const carried = store.carried.size === 0 ? 0 : (store.carried.get(h) ?? 0);
    if (++store.deliveries[h]! > carried + 1) topic.redelivered++;
    consumer.inFlight.set(msg.id, msg);
    topic.inFlight.add(h);
    if (this.#ackTimeoutMs > 0) this.#ackDeadlines.track(msg, performance.now() + this.#ackTimeoutMs);
    // Not waited for: if it is lost in a crash the message is simply ready at its old place.
    if (!this.#closing && this.#writer !== null) this.#appendPlacement(this.#writer, RecordType.DELIVER, h, Placement.IN_FLIGHT);
    return msg;
  }

  /**
   * Appends a DELIVER, or a NACK nobody waits for (disconnect, tick), and notes where it puts
   * message `h` in the log (its placement) for compaction.
   */
  #appendPlacement(writer: LogWriter, type: RecordType, h: number, placement: Placement): void {
    const store = this.#store;
    store.placements[h] = placement;
    store.placeOffsets[h] = writer.nextAppendOffset;
    const rec = new LogAppend(type, store.topicOf(h).name, store.ids[h]!, 0, 0, null, this.#onPlaced);
    rec.ctx = h;
    writer.append(rec);
  }

  #deliver(h: number, topic: Topic, consumer: Consumer): void {
    consumer.onDelivery(this.#markInFlight(h, topic, consumer));
  }

  /** Hands ready messages to waiting consumers, first come first served. */
  #dispatch(topic: Topic): void {
    while (topic.waiters.length > 0 && topic.readyCount > 0) {
      const h = this.#popReady(topic);
      if (h < 0) break;
      const consumer = topic.waiters.shift()!;
      consumer.waitingOn = null;
      this.#deliver(h, topic, consumer);
    }
  }

  /**
   * Settles message `id` in flight to `consumer` (SPEC §2): ACK removes it for good, NACK puts
   * it at the front, BACK at the back, DACK holds it for `delaySeconds` (integer >= 0) and then
   * returns it to the front with dackCount + 1. `cb` runs when the record is durable.
   * When `topicName` is given the message must belong to it (RESP `ACK topic id`).
   * Throws MQ_ERR_NOT_IN_FLIGHT (unknown id, or not this consumer's), MQ_ERR_TOPIC_DELETED.
   */
  settle(
    consumer: Consumer,
    id: number,
    kind: SettleKind,
    delaySeconds: number,
    cb: DoneCallback,
    topicName?: string,
  ): void {
    const writer = this.#assertOpen();
    const msg = consumer.inFlight.get(id);
    if (msg === undefined || (topicName !== undefined && msg.topic !== topicName)) {
      throw new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [topicName === undefined ? id : `${id} of topic '${topicName}'`]);
    }
    consumer.inFlight.delete(id);
    if (msg.state === MessageState.GONE) throw new BrokerError('MQ_ERR_TOPIC_DELETED', [msg.topic]);
    const store = this.#store;
    const h = msg.handle;
    const topic = store.topicOf(h);
    topic.inFlight.delete(h);
    this.#endDelivery(h);
    if (kind === 'NACK') topic.nacked++;
    else if (kind === 'BACK') topic.backed++;
    else if (kind === 'DACK') topic.dacked++;
    if (kind !== 'ACK' && this.#exhausted(h, topic) && this.#deadLetter(writer, h, topic, cb)) return;
    let type: RecordType;
    let dueAtMs = 0;
    switch (kind) {
      case 'ACK':
        type = RecordType.ACK;
        topic.acked++;
        this.#forget(h, topic);
        break;
      case 'NACK':
        type = RecordType.NACK;
        topic.pushReadyFront(h);
        break;
      case 'BACK':
        type = RecordType.BACK;
        topic.pushReadyBack(h);
        break;
      case 'DACK':
        type = RecordType.DACK;
        dueAtMs = Date.now() + delaySeconds * 1000;
        store.dackCounts[h]!++;
        store.dueAts[h] = dueAtMs;
        store.states[h] = MessageState.DELAYED;
        topic.delayed.add(h);
        break;
    }
    if (type !== RecordType.ACK) {
      store.placements[h] = type === RecordType.NACK ? Placement.FRONT : type === RecordType.BACK ? Placement.BACK : Placement.DELAYED;
      store.placeOffsets[h] = writer.nextAppendOffset;
    }
    const rec = new LogAppend(type, msg.topic, msg.id, dueAtMs, 0, null, this.#onSettled);
    rec.ctx = { cb, h } satisfies SettleContext;
    writer.append(rec);
    if (kind !== 'ACK' && kind !== 'DACK') this.#dispatch(topic);
  }

  readonly #onSettled = (err: Error | null, rec: LogAppend): void => {
    const { cb, h } = rec.ctx as SettleContext;
    const store = this.#store;
    // The handle is still this message's unless it was freed (durably gone) meanwhile.
    if (store.isCurrent(h, rec.messageId)) {
      if (err === null) {
        if (rec.type === RecordType.ACK) this.#live.noteAcked(h, rec.segment!);
        else this.#live.noteRef(h, rec.segment!);
      } else if (rec.type === RecordType.ACK && store.states[h] === MessageState.GONE) {
        // The ack is not durable: after a restart the message would be back, so put it back now.
        const topic = this.#reinstate(h);
        if (topic !== undefined) topic.acked--;
      }
    }
    cb(err === null ? null : storageError(err));
  };

  /**
   * Puts `msg`, taken away in memory by an ACK or a dead-lettering whose record then failed, back
   * at the front of its topic, where replay would find it (the live accounting never let it go:
   * it follows durable records only). Returns its topic, or undefined when the topic has been
   * deleted meanwhile.
   */
  #reinstate(h: number): Topic | undefined {
    const store = this.#store;
    const topic = store.topicOf(h);
    if (!topic.exists || store.handleOf(store.ids[h]!) >= 0) return undefined;
    store.reinstate(h);
    topic.pushReadyFront(h);
    this.#dispatch(topic);
    return topic;
  }

  /** Whether message `h`, whose delivery just ended without an ACK, has used up `--max-deliveries`. */
  #exhausted(h: number, topic: Topic): boolean {
    return (
      this.#maxDeliveries > 0 &&
      this.#store.deliveries[h]! >= this.#maxDeliveries &&
      !topic.name.endsWith(DEAD_LETTER_SUFFIX) &&
      (this.#deadLetterPausedUntilMs === 0 || Date.now() >= this.#deadLetterPausedUntilMs)
    );
  }

  /**
   * Moves `msg` (taken out of every queue by the caller, or just popped from the ready queue) to
   * `<topic>.dead` with its dackCount and deliveries (SPEC §7 "Dead letters"). Returns false, and
   * changes nothing, when that is impossible: the payload cannot be read back, or the topic name
   * is too long for the suffix. `cb` (a settle's reply) runs once the move is durable.
   *
   * Two records: a RESTORE in the dead-letter topic, a new message whose id is the record's own
   * offset (so the id is new and unique, and replay tells it from compaction's RESTOREs), placed
   * at the back; then, only once that is durable, an ACK of the original. A crash in between
   * leaves both, a duplicate (at-least-once), never neither. The new message is visible once its
   * record is durable, as a publish is. If the RESTORE fails the original goes back to the front.
   */
  #deadLetter(writer: LogWriter, h: number, topic: Topic, cb: DoneCallback | null): boolean {
    const store = this.#store;
    const msgId = store.ids[h]!;
    const deadName = topic.name + DEAD_LETTER_SUFFIX;
    if (deadName.length > 255) {
      if (!topic.deadLetterNameWarned) {
        topic.deadLetterNameWarned = true;
        this.#logger.warn({ topic: topic.name, id: msgId }, 'topic name too long for a dead-letter topic: its messages are never dead-lettered (logged once)');
      }
      return false;
    }
    let payload: Buffer;
    try {
      payload = store.payloadOf(h);
    } catch (err) {
      this.#logger.error({ err, topic: topic.name, id: msgId }, 'could not read a payload back to dead-letter it: message kept');
      return false;
    }
    this.#forget(h, topic);
    topic.deadLettered++;
    const id = writer.nextAppendOffset;
    const deliveries = store.deliveries[h]!;
    const dackCount = store.dackCounts[h]!;
    const body = restorePayload(Placement.BACK, id, deliveries, payload);
    const rec = new LogAppend(RecordType.RESTORE, deadName, id, 0, dackCount, body, this.#onDeadLetterWritten);
    rec.ctx = { h, id: msgId, cb, deletes: this.#deletesOf(deadName) } satisfies DeadLetterContext;
    writer.append(rec);
    this.#logger.warn(
      { topic: topic.name, id: msgId, deliveries, dackCount, deadLetterTopic: deadName, deadLetterId: id },
      'message moved to its dead-letter topic after --max-deliveries deliveries',
    );
    return true;
  }

  readonly #onDeadLetterWritten = (err: Error | null, rec: LogAppend): void => {
    const ctx = rec.ctx as DeadLetterContext;
    const { h, id, cb, deletes } = ctx;
    const store = this.#store;
    // The original stays allocated (GONE, pinned) until its ACK is durable.
    const current = store.isCurrent(h, id);
    if (err !== null) {
      // Delivered normally for a second, rather than moved again at once onto the failing disk.
      this.#deadLetterPausedUntilMs = Date.now() + 1000;
      const topic = current ? this.#reinstate(h) : undefined;
      if (topic !== undefined) topic.deadLettered--;
      cb?.(storageError(err));
      return;
    }
    const segment = rec.segment!;
    this.#live.noteCreatedTopic(segment, rec.topic);
    const deadTopic = this.#topic(rec.topic);
    if (deletes === this.#deletesOf(rec.topic)) {
      const payload = rec.payload!.subarray(RESTORE_TAIL_BYTES);
      const copy = store.add(rec.offset, deadTopic, rec.payloadPosition + RESTORE_TAIL_BYTES, payload.length);
      store.cachePayload(copy, payload);
      this.#live.pinOrigin(copy, segment, rec.sizeBytes);
      this.#live.setTopicMark(deadTopic, segment);
      store.dackCounts[copy] = rec.dackCount;
      // The deliveries field ends the RESTORE tail (record.ts).
      const deliveries = rec.payload!.readUInt32LE(RESTORE_TAIL_BYTES - 4);
      store.deliveries[copy] = deliveries;
      store.carried.set(copy, deliveries);
      deadTopic.exists = true;
      deadTopic.published++;
      deadTopic.pushReadyBack(copy);
    }
    // else: the dead-letter topic was deleted after the append; its DELETE_TOPIC follows in the log.
    const writer = this.#writer!;
    const topicName = current ? store.topicOf(h).name : rec.topic.slice(0, -DEAD_LETTER_SUFFIX.length);
    const ack = new LogAppend(RecordType.ACK, topicName, id, 0, 0, null, this.#onDeadLetterAcked);
    ack.ctx = ctx;
    writer.append(ack);
    this.#dispatch(deadTopic);
  };

  readonly #onDeadLetterAcked = (err: Error | null, rec: LogAppend): void => {
    const { h, id, cb } = rec.ctx as DeadLetterContext;
    // On failure the original stays in the log next to its copy: a duplicate after a restart, and
    // its segment is kept until then. The move itself is durable, so the settle succeeded.
    if (err === null) {
      // Left its topic through an ACK record, as replay will count it.
      const topic = this.#topics.get(rec.topic);
      if (topic !== undefined && topic.exists) topic.acked++;
      if (this.#store.isCurrent(h, id)) this.#live.noteAcked(h, rec.segment!);
    }
    cb?.(null);
  };

  /**
   * Restarts the `--ack-timeout` timer of message `id`, in flight to `consumer` (RESP `TOUCH
   * topic id`, the HTTP/2 stream's `"TOUCH"`; beanstalkd touch). Nothing is logged: after a
   * restart the message is ready again anyway. A no-op check when the timeout is off.
   * Throws MQ_ERR_NOT_IN_FLIGHT (unknown id, not this consumer's, expired), MQ_ERR_TOPIC_DELETED.
   */
  touch(consumer: Consumer, id: number, topicName?: string): void {
    const msg = consumer.inFlight.get(id);
    if (msg === undefined || (topicName !== undefined && msg.topic !== topicName)) {
      throw new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [topicName === undefined ? id : `${id} of topic '${topicName}'`]);
    }
    if (msg.state === MessageState.GONE) throw new BrokerError('MQ_ERR_TOPIC_DELETED', [msg.topic]);
    if (this.#ackTimeoutMs > 0) this.#ackDeadlines.track(msg, performance.now() + this.#ackTimeoutMs);
  }

  /**
   * Returns every delivery whose `--ack-timeout` deadline is at or before `nowMs` (monotonic ms,
   * `performance.now()`) to the front of its topic, as a NACK does (SPEC §7), or to the
   * dead-letter topic when it used up `--max-deliveries`, and tells its consumer
   * (Consumer.onExpired). Runs on the ack ticker; returns how many expired.
   */
  expireAckTimeouts(nowMs: number): number {
    const expired = this.#ackDeadlines.expire(nowMs);
    if (expired.length === 0) return 0;
    const writer = this.#closing ? null : this.#writer;
    const owners: (Consumer | null)[] = [];
    const touched = new Set<Topic>();
    // Back to front, so that messages of one topic keep their delivery order at the front.
    for (let i = expired.length - 1; i >= 0; i--) {
      const msg = expired[i]!;
      const h = msg.handle;
      const topic = this.#store.topicOf(h);
      const consumer = msg.owner as Consumer | null;
      owners[i] = consumer;
      consumer?.inFlight.delete(msg.id);
      topic.inFlight.delete(h);
      this.#endDelivery(h);
      topic.ackTimeouts++;
      touched.add(topic);
      if (writer !== null && this.#exhausted(h, topic) && this.#deadLetter(writer, h, topic, null)) continue;
      topic.pushReadyFront(h);
      if (writer !== null) this.#appendPlacement(writer, RecordType.NACK, h, Placement.FRONT);
    }
    this.#logger.info(
      { count: expired.length, topics: [...touched].map((t) => t.name), ackTimeoutMs: this.#ackTimeoutMs },
      'deliveries not settled within --ack-timeout returned to their queues',
    );
    for (let i = 0; i < expired.length; i++) owners[i]?.onExpired?.(expired[i]!);
    for (const topic of touched) this.#dispatch(topic);
    return expired.length;
  }

  /**
   * The consumer went away (stream closed, connection dropped): stop its wait and NACK every
   * message in flight to it, keeping their order at the front (SPEC §2).
   */
  closeConsumer(consumer: Consumer): void {
    if (consumer.closed) return;
    consumer.closed = true;
    this.cancelRequest(consumer);
    if (consumer.subscribedTo !== null) {
      consumer.subscribedTo.consumers--;
      consumer.subscribedTo = null;
    }
    const msgs = [...consumer.inFlight.values()];
    consumer.inFlight.clear();
    const touched = new Set<Topic>();
    const writer = this.#closing ? null : this.#writer;
    for (let i = msgs.length - 1; i >= 0; i--) {
      const msg = msgs[i]!;
      if (msg.state !== MessageState.IN_FLIGHT) continue;
      const h = msg.handle;
      const topic = this.#store.topicOf(h);
      topic.inFlight.delete(h);
      this.#endDelivery(h);
      touched.add(topic);
      if (writer !== null && this.#exhausted(h, topic) && this.#deadLetter(writer, h, topic, null)) continue;
      topic.pushReadyFront(h);
      // Logged like any NACK, in the same order, so replay puts them where they are now: in
      // front of messages NACKed while they were in flight (SPEC §5: every state change).
      if (writer !== null) this.#appendPlacement(writer, RecordType.NACK, h, Placement.FRONT);
    }
    for (const topic of touched) this.#dispatch(topic);
  }

  /**
   * Deletes a topic and all its messages (SPEC §3 `DELETE /:topic`, RESP `DEL`). `cb` gets
   * whether the topic existed, once the record is durable. Throws MQ_ERR_BAD_TOPIC.
   */
  deleteTopic(topicName: string, cb: (err: BrokerError | null, existed: boolean) => void): void {
    const writer = this.#assertOpen();
    assertTopicName(topicName);
    const topic = this.#topics.get(topicName);
    const existed = topic !== undefined && topic.exists;
    const gone = topic !== undefined ? this.#clearTopic(topic) : [];
    this.#topicDeletes.set(topicName, this.#deletesOf(topicName) + 1);
    const rec = new LogAppend(RecordType.DELETE_TOPIC, topicName, 0, 0, 0, null, (err, done) => {
      if (err === null) {
        this.#live.noteDeletedTopic(done.segment!, topicName);
        for (const h of gone) this.#live.unpin(h);
        const t = this.#topics.get(topicName);
        if (t !== undefined) this.#live.setTopicMark(t, null);
      }
      cb(err === null ? null : storageError(err), existed);
    });
    writer.append(rec);
  }

  /** Names of existing topics (published to and not deleted), sorted. */
  topicNames(): string[] {
    const names: string[] = [];
    for (const t of this.#topics.values()) if (t.exists) names.push(t.name);
    return names.sort();
  }

  /** Stats of one topic, or undefined if it does not exist. */
  topicStats(name: string): TopicStats | undefined {
    const t = this.#topics.get(name);
    if (t === undefined || !t.exists) return undefined;
    return {
      topic: t.name,
      ready: t.readyCount,
      inFlight: t.inFlight.size,
      delayed: t.delayed.size,
      consumers: t.consumers,
      published: t.published,
      acked: t.acked,
    };
  }

  /** Counters of one topic since it was created or this process started, or undefined if it does not exist. */
  topicCounters(name: string): TopicCounters | undefined {
    const t = this.#topics.get(name);
    if (t === undefined || !t.exists) return undefined;
    return {
      published: t.published,
      acked: t.acked,
      nacked: t.nacked,
      backed: t.backed,
      dacked: t.dacked,
      redelivered: t.redelivered,
      ackTimeouts: t.ackTimeouts,
      deadLettered: t.deadLettered,
    };
  }

  /**
   * The queues of `topicName` as they are in memory, for tests and diagnostics: ready messages
   * front to back, delayed and in-flight messages in no particular order. The messages are the
   * broker's own objects: read them, never change them. Undefined for an unknown topic.
   */
  inspect(topicName: string): { ready: Message[]; delayed: Message[]; inFlight: Message[] } | undefined {
    const t = this.#topics.get(topicName);
    if (t === undefined) return undefined;
    const store = this.#store;
    const ready: Message[] = [];
    t.ready.forEach((h) => ready.push(store.view(h)));
    if (t.restoredReady !== null) for (const h of t.restoredReady) if (isRestoredReady(store, h, t)) ready.push(store.view(h));
    const view = (h: number): Message => store.view(h);
    return { ready, delayed: [...t.delayed].map(view), inFlight: [...t.inFlight].map(view) };
  }

  /** Number of live messages (ready, in flight, delayed) across all topics. */
  get messageCount(): number {
    return this.#store.liveCount;
  }

  /**
   * Returns delayed messages whose due time is at or before `nowMs` to the front of their
   * queues, earliest due first (SPEC §2 DACK). Runs on the `--period` ticker.
   */
  tick(nowMs: number): void {
    const writer = this.#closing ? null : this.#writer;
    const store = this.#store;
    for (const topic of this.#topics.values()) {
      if (topic.delayed.size === 0) continue;
      let due: number[] | undefined;
      for (const h of topic.delayed) {
        if (store.dueAts[h]! <= nowMs) (due ??= []).push(h);
      }
      if (due === undefined) continue;
      due.sort((a, b) => store.dueAts[b]! - store.dueAts[a]! || store.ids[b]! - store.ids[a]!);
      for (const h of due) {
        topic.delayed.delete(h);
        topic.pushReadyFront(h);
        // Logged as a NACK (to the front, dackCount kept) so that replay keeps the message here,
        // behind anything NACKed later, instead of holding it until the first tick after a restart.
        if (writer !== null) this.#appendPlacement(writer, RecordType.NACK, h, Placement.FRONT);
      }
      this.#dispatch(topic);
    }
  }

  /**
   * Completion of DELIVER records and of the NACK records of disconnects and ticks: nobody waits
   * for them. The writer logs a failed write; memory is right already, and replay then keeps the
   * last logged placement.
   */
  readonly #onPlaced = (err: Error | null, rec: LogAppend): void => {
    const h = rec.ctx as number;
    if (err === null && this.#store.isCurrent(h, rec.messageId)) this.#live.noteRef(h, rec.segment!);
  };

  /** What replay still needs of `segment`, as the live accounting counts it (tests). */
  segmentLiveness(segment: Segment): Readonly<SegmentLiveness> {
    return this.#live.of(segment);
  }

  /** Counters of background compaction (all zero when it is off), for metrics. */
  get compactionStats(): CompactionStats {
    return this.#compactor?.stats ?? { runs: 0, segmentsRemoved: 0, bytesReclaimed: 0, messagesCopied: 0, bytesCopied: 0, failures: 0 };
  }

  /**
   * Runs one compaction pass now, or after the one in progress (tests, benchmarks). Resolves with
   * what it did (null when there was nothing to do, or compaction is off).
   */
  compactNow(): Promise<CompactionRun | null> {
    if (this.#compactor === null) return Promise.resolve(null);
    return this.#compactor.run();
  }

  /**
   * Graceful shutdown: refuse new writes, let a compaction pass finish, wait for pending records,
   * fsync and close the log.
   */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    if (this.#ackTicker !== undefined) clearInterval(this.#ackTicker);
    if (this.#compactor !== null) await this.#compactor.stop();
    if (this.#writer !== null) await this.#writer.close();
  }
}

/** Rank of ready message `h` in its queue (record.ts "Queue order on replay"). */
function readyRank(store: MessageStore, h: number): number {
  return store.placements[h] === Placement.FRONT ? -1 - store.placeOffsets[h]! : store.placeOffsets[h]!;
}

/**
 * Whether handle `h` of a topic's restoredReady list still holds a ready message of `topic` placed
 * by a RESTORE and not queued since (the handle may have been freed and reused).
 */
function isRestoredReady(store: MessageStore, h: number, topic: Topic): boolean {
  return store.ids[h] !== -1 && store.states[h] === MessageState.READY && store.slots[h] === -1 && store.topics[h] === topic.number;
}

/**
 * End of replay: merges the ready messages placed by RESTORE records into the topic's queue.
 * The queue is already in rank order (pushes to the front and back in log order), so sorting the
 * two runs together is a merge.
 */
function mergeRestoredReady(topic: Topic, store: MessageStore): void {
  const all: number[] = [];
  topic.ready.forEach((h) => all.push(h));
  for (const h of topic.restoredReady!) {
    if (!isRestoredReady(store, h, topic)) continue;
    store.slots[h] = -2; // taken: a reused handle may be listed twice
    all.push(h);
  }
  topic.restoredReady = null;
  all.sort((a, b) => readyRank(store, a) - readyRank(store, b));
  topic.ready.clear();
  for (const h of all) topic.ready.pushBack(h);
  topic.readyCount = all.length;
}
