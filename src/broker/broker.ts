/**
 * The segment-log broker: queue semantics on top of the log (SPEC §2), and the one implementation
 * of the engine seam ({@link QueueEngine}). This file is the façade: it opens and closes the log,
 * publishes and deletes, and hands everything else to its pieces, which share one BrokerCore:
 *
 * - replay.ts: rebuilding the state from the log when it opens;
 * - topic-store.ts: the topics and their messages (the payload cache is filled in one place);
 * - dispatch.ts: deliveries out, and back to the front without a settle (disconnect, ack timeout,
 *   due DACKs);
 * - settle.ts: ACK / NACK / BACK / DACK / TOUCH;
 * - dead-letter.ts: `--max-deliveries`;
 * - stats.ts: figures for STATS, metrics and tests.
 *
 * Every state change is appended to the log, and its caller is answered only when the record is
 * written (and fdatasynced under `--fsync always`). A publish becomes visible to consumers only
 * once its record is durable, so nothing is ever delivered that a crash could take back.
 * Deliveries are logged too (DELIVER records, not waited for), so replay knows which messages
 * were in flight when the process stopped; disconnect NACKs and the tick's return of due DACKed
 * messages are logged as NACK records.
 *
 * Consumers are reached through the engine seam alone ({@link openConsumer}, then the
 * ConsumerHandle's methods, which name deliveries by deliveryId); the protocol adapters and the
 * tests use nothing else. The methods below the seam's (tick, expireAckTimeouts, inspect,
 * compactNow, segmentLiveness, writer, log) are for the server, tests and diagnostics.
 */
import { BrokerError } from '../errors.js';
import {
  MAX_DACK_DELAY_MS,
  MAX_IN_FLIGHT_PER_CONSUMER,
  type ConsumerHandlers,
  type DoneCallback,
  type EngineHealth,
  type PublishCallback,
  type QueueEngine,
  type SettleKind,
  type StorageStats,
  type TopicCounters,
  type TopicStats,
} from '../engine/queue-engine.js';
import { assertTopicName } from '../engine/topic-name.js';
import { Compactor, type CompactionStats, type CompactionRun } from '../log/compactor.js';
import { LogAppend, LogWriter } from '../log/log-writer.js';
import { SegmentLog, type ReplayStats } from '../log/segment-log.js';
import type { Segment } from '../log/segment.js';
import { StorageHealth } from '../log/storage-health.js';
import { BrokerAppend } from './broker-append.js';
import type { BrokerOptions } from './broker-options.js';
import { BrokerCore } from './broker-core.js';
import { Consumer, type ConsumerHost } from './consumer.js';
import { Dispatcher } from './dispatch.js';
import { compactionPolicy } from './evacuate.js';
import { LoadingProgress, REPLAY_SLICE_MS } from './loading-progress.js';
import type { Message } from './message.js';
import { Replay, logSizeBytes } from './replay.js';
import type { SegmentLiveness } from './segment-accounting.js';
import { Settlements } from './settle.js';
import { inspectTopic, storageStatsOf, topicCounters, topicNames, topicStats, type TopicQueues } from './stats.js';

export type { BrokerCompactionOptions, BrokerOptions } from './broker-options.js';
export { DEAD_LETTER_SUFFIX } from '../engine/queue-engine.js';
export type { DoneCallback, PublishCallback, SettleKind, TopicCounters, TopicStats } from '../engine/queue-engine.js';

export class Broker implements QueueEngine {
  readonly #opts: BrokerOptions;
  readonly #core: BrokerCore;
  readonly #dispatcher: Dispatcher;
  readonly #settlements: Settlements;
  /** What every Consumer asks (consumer.ts), by the engine seam's names. */
  readonly #consumerHost: ConsumerHost;
  #log: SegmentLog | null = null;
  #ticker: NodeJS.Timeout | undefined;
  #ackTicker: NodeJS.Timeout | undefined;
  #compactor: Compactor | null = null;
  readonly #storageHealth = new StorageHealth();
  /** Set while openSliced() replays. */
  #loadingProgress: LoadingProgress | null = null;

  /** Touches no file: {@link open} replays the log. */
  constructor(opts: BrokerOptions) {
    this.#opts = opts;
    this.#core = new BrokerCore({
      logger: opts.logger,
      payloadCacheBytes: opts.payloadCacheBytes ?? 256 * 1024 * 1024,
      compacting: opts.compaction?.enabled !== false,
      ackTimeoutMs: opts.ackTimeoutMs ?? 0,
    });
    this.#dispatcher = new Dispatcher(this.#core, opts.maxDeliveries ?? 0, opts.maxInFlightPerConsumer ?? MAX_IN_FLIGHT_PER_CONSUMER);
    this.#settlements = new Settlements(this.#core, this.#dispatcher);
    const dispatcher = this.#dispatcher;
    const settlements = this.#settlements;
    this.#consumerHost = {
      request: (consumer, topicName) => dispatcher.request(consumer, topicName),
      take: (consumer, topicName) => dispatcher.take(consumer, topicName),
      cancelRequest: (consumer) => dispatcher.cancelRequest(consumer),
      attach: (consumer, topicName) => dispatcher.attach(consumer, topicName),
      settleDelivery: (consumer, deliveryId, kind, delayMs, cb) => this.#settleDelivery(consumer, deliveryId, kind, delayMs, cb),
      touchDelivery: (consumer, deliveryId) => settlements.touch(settlements.byDeliveryId(consumer, deliveryId)),
      deliveryOf: (consumer, messageId, topicName) => settlements.byMessageId(consumer, messageId, topicName),
      closeConsumer: (consumer) => dispatcher.closeConsumer(consumer),
    };
  }

  /** True until {@link open} has replayed the log; protocols answer MQ_ERR_LOADING meanwhile. */
  get loading(): boolean {
    return this.#core.writer === null;
  }

  get writer(): LogWriter {
    if (this.#core.writer === null) throw new BrokerError('MQ_ERR_LOADING');
    return this.#core.writer;
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
    const opts = this.#opts;
    const core = this.#core;
    const replay = new Replay(core, logSizeBytes(opts.dir));
    const { log, stats } = SegmentLog.open({ dir: opts.dir, repair: opts.repair, logger: core.logger }, (rec, segment) => replay.apply(rec, segment));
    return this.#opened(replay, log, stats);
  }

  /**
   * {@link open} in slices of about `sliceMs` (SPEC §8): between slices the event loop runs, so the
   * listeners answer MQ_ERR_LOADING while {@link loading} (true until this resolves), and a
   * progress line is logged about once a second ({@link loadingProgress}). Aborting `signal` stops
   * the replay at the next slice and rejects with its reason (the broker stays unopened; close()
   * it). Rejects with LogCorruptError and fs errors as open() throws them.
   */
  async openSliced(sliceOpts: { sliceMs?: number; signal?: AbortSignal } = {}): Promise<ReplayStats> {
    const opts = this.#opts;
    const core = this.#core;
    const replay = new Replay(core, logSizeBytes(opts.dir));
    const progress = new LoadingProgress(core.logger, () => core.store.liveCount);
    this.#loadingProgress = progress;
    try {
      const { log, stats } = await SegmentLog.openSliced(
        { dir: opts.dir, repair: opts.repair, logger: core.logger },
        (rec, segment) => replay.apply(rec, segment),
        { sliceMs: sliceOpts.sliceMs ?? REPLAY_SLICE_MS, signal: sliceOpts.signal, onSlice: (p) => progress.update(p) },
      );
      return this.#opened(replay, log, stats);
    } finally {
      this.#loadingProgress = null;
    }
  }

  /** QueueEngine.loadingProgress: while {@link openSliced} replays, how far it has come (null before and after). */
  get loadingProgress(): LoadingProgress | null {
    return this.#loadingProgress;
  }

  /** The end of open(): queues put in order, the writer, the tickers and compaction started. */
  #opened(replay: Replay, log: SegmentLog, stats: ReplayStats): ReplayStats {
    const opts = this.#opts;
    const core = this.#core;
    replay.finish();
    this.#log = log;
    const writer = new LogWriter(log, { fsync: opts.fsync, fsyncIntervalMs: opts.fsyncIntervalMs, segmentBytes: opts.segmentBytes, logger: core.logger });
    core.writer = writer;
    this.#ticker = setInterval(() => this.tick(Date.now()), opts.periodMs);
    this.#ticker.unref();
    if (core.ackTimeoutMs > 0) {
      // One coarse ticker for every deadline: a tenth of the timeout, between 10 ms and 1 s.
      const everyMs = Math.min(1000, Math.max(10, Math.floor(core.ackTimeoutMs / 10)));
      this.#ackTicker = setInterval(() => this.expireAckTimeouts(performance.now()), everyMs);
      this.#ackTicker.unref();
    }
    const compaction = opts.compaction ?? {};
    if (compaction.enabled !== false) {
      this.#compactor = new Compactor({
        log,
        writer,
        segmentBytes: opts.segmentBytes,
        copyMinGarbageBytes: compaction.copyMinGarbageBytes,
        fsync: opts.fsync,
        logger: core.logger,
        maxLiveRatio: compaction.maxLiveRatio,
        maxCopyBytesPerRun: compaction.maxCopyBytesPerRun,
        checkIntervalMs: compaction.checkIntervalMs,
        graceSegments: compaction.graceSegments,
        policy: compactionPolicy({ store: core.store, live: core.live, topics: core.topics.byName, writer }),
      });
      if (compaction.auto !== false) this.#compactor.start();
    }
    core.logger.info(
      { ...stats, durationMs: Math.round(stats.durationMs), messages: core.store.liveCount, topics: core.topics.byName.size },
      'log replayed',
    );
    return stats;
  }

  /**
   * Publishes `payload` (0..maxMessageBytes bytes) to `topicName`. The broker keeps `payload`
   * (the caller must not reuse its memory). `cb` runs once the record is durable, with the new
   * message id, or with MQ_ERR_STORAGE / MQ_ERR_SHUTTING_DOWN.
   * Throws BrokerError MQ_ERR_BAD_TOPIC, MQ_ERR_TOO_LARGE, MQ_ERR_LOADING synchronously.
   */
  publish(topicName: string, payload: Buffer, cb: PublishCallback): void {
    const writer = this.#core.assertOpen();
    const topics = this.#core.topics;
    // Names in the topic table were validated when they got there: skip the pattern for them.
    if (topics.get(topicName) === undefined) assertTopicName(topicName);
    if (payload.length > this.#opts.maxMessageBytes) {
      throw new BrokerError('MQ_ERR_TOO_LARGE', [payload.length, this.#opts.maxMessageBytes]);
    }
    writer.append(BrokerAppend.publish(topicName, payload, topics.deletesOf(topicName), cb, this.#onPublished));
  }

  readonly #onPublished = (err: Error | null, rec: BrokerAppend): void => {
    const cb = rec.onPublished!;
    const core = this.#core;
    if (err !== null) return cb(core.storageError(err), -1);
    const segment = rec.segment!;
    const topic = core.topics.topic(rec.topic);
    // Live accounting follows the log: this record makes the topic exist until the delete
    // that follows it (if any) completes.
    core.live.noteTopicRecord(segment, rec.topic);
    core.live.setTopicMark(topic, segment);
    // Replay counts it, and the DELETE_TOPIC after it (if any) resets the count.
    topic.loggedPublished++;
    if (rec.deletes !== core.topics.deletesOf(rec.topic)) {
      // The topic was deleted after this record was appended: the DELETE_TOPIC record follows it
      // in the log, so replay drops the message; memory must agree (it was published, then deleted).
      cb(null, rec.offset);
      return;
    }
    topic.exists = true;
    topic.published++;
    const h = core.topics.addDurable(rec.offset, topic, segment, rec.payloadPosition, rec.payload!, rec.sizeBytes);
    topic.pushReadyBack(h);
    cb(null, rec.offset);
    this.#dispatcher.dispatch(topic);
  };

  /** The engine seam's consumer (QueueEngine.openConsumer): its methods reach the dispatcher and the settlements. */
  openConsumer(handlers: ConsumerHandlers): Consumer {
    return new Consumer(this.#consumerHost, handlers);
  }

  /** ConsumerHandle.settle: the DACK bound is checked before the lookup, the writer asked before both. */
  #settleDelivery(consumer: Consumer, deliveryId: number, kind: SettleKind, delayMs: number, cb: DoneCallback): void {
    if (kind === 'DACK' && !(Number.isInteger(delayMs) && delayMs >= 0 && delayMs <= MAX_DACK_DELAY_MS)) {
      throw new BrokerError('MQ_ERR_BAD_ARGUMENT', [`the DACK delay must be a whole number of ms from 0 to ${MAX_DACK_DELAY_MS}`]);
    }
    const writer = this.#core.assertOpen();
    const msg = this.#settlements.byDeliveryId(consumer, deliveryId);
    this.#settlements.settle(writer, consumer, msg, kind, delayMs, cb);
  }

  /**
   * Returns every delivery whose `--ack-timeout` deadline is at or before `nowMs` (monotonic ms,
   * `performance.now()`) to the front of its topic, as a NACK does (SPEC §7), or to the
   * dead-letter topic when it used up `--max-deliveries`, and tells its consumer
   * (Consumer.expired). Runs on the ack ticker; returns how many expired.
   */
  expireAckTimeouts(nowMs: number): number {
    return this.#dispatcher.expireAckTimeouts(nowMs);
  }

  /**
   * Returns delayed messages whose due time is at or before `nowMs` to the front of their
   * queues, earliest due first (SPEC §2 DACK). Runs on the `--period` ticker.
   */
  tick(nowMs: number): void {
    this.#dispatcher.returnDue(nowMs);
  }

  /**
   * Deletes a topic and all its messages (SPEC §3 `DELETE /:topic`, RESP `DEL`). `cb` gets
   * whether the topic existed, once the record is durable. Throws MQ_ERR_BAD_TOPIC.
   */
  deleteTopic(topicName: string, cb: (err: BrokerError | null, existed: boolean) => void): void {
    const core = this.#core;
    const writer = core.assertOpen();
    assertTopicName(topicName);
    const topic = core.topics.get(topicName);
    const existed = topic !== undefined && topic.exists;
    const taken: Message[] = [];
    const gone = topic !== undefined ? core.topics.clear(topic, taken) : [];
    core.topics.countDelete(topicName);
    const rec = LogAppend.forDeleteTopic(topicName, (err, done) => {
      if (err === null) {
        core.live.noteDeletedTopic(done.segment!, topicName);
        for (const h of gone) core.live.unpin(h);
        const t = core.topics.get(topicName);
        if (t !== undefined) core.live.setTopicMark(t, null);
        t?.resetLoggedCounters(); // replay counts from zero after the DELETE_TOPIC
      }
      cb(err === null ? null : core.storageError(err), existed);
    });
    writer.append(rec);
    for (const msg of taken) msg.owner?.topicDeleted(msg); // a stream subscriber goes on at once
  }

  /** Names of existing topics (published to and not deleted), sorted. */
  topicNames(): string[] {
    return topicNames(this.#core.topics);
  }

  /** Stats of one topic, or undefined if it does not exist. */
  topicStats(name: string): TopicStats | undefined {
    return topicStats(this.#core.topics, name);
  }

  /** Counters of one topic since it was created or this process started, or undefined if it does not exist. */
  topicCounters(name: string): TopicCounters | undefined {
    return topicCounters(this.#core.topics, name);
  }

  /**
   * The queues of `topicName` as they are in memory, for tests and diagnostics: ready messages
   * front to back, delayed and in-flight messages in no particular order. The messages are the
   * broker's own objects: read them, never change them. Undefined for an unknown topic.
   */
  inspect(topicName: string): TopicQueues | undefined {
    return inspectTopic(this.#core.topics, topicName);
  }

  /** QueueEngine.maxMessageBytes: `--max-message-bytes`. */
  get maxMessageBytes(): number {
    return this.#opts.maxMessageBytes;
  }

  /** Number of live messages (ready, in flight, delayed) across all topics. */
  get messageCount(): number {
    return this.#core.store.liveCount;
  }

  /** What replay still needs of `segment`, as the live accounting counts it (tests). */
  segmentLiveness(segment: Segment): Readonly<SegmentLiveness> {
    return this.#core.live.of(segment);
  }

  /** Counters of background compaction (all zero when it is off), for metrics. */
  get compactionStats(): CompactionStats {
    return this.#compactor?.stats ?? { runs: 0, segmentsRemoved: 0, bytesReclaimed: 0, messagesCopied: 0, bytesCopied: 0, failures: 0 };
  }

  /** QueueEngine.storageStats: the log's files, the writer's and compaction's counters. */
  storageStats(): StorageStats | undefined {
    const writer = this.#core.writer;
    return writer === null || this.#log === null ? undefined : storageStatsOf(this.#log, writer, this.compactionStats);
  }

  /**
   * QueueEngine.health: storage is failing while the writer answers with a storage error, until a
   * write succeeds again; while no client writes, a probe write decides, at most once a second
   * (log/storage-health.ts).
   */
  async health(): Promise<EngineHealth> {
    const writer = this.#core.writer;
    if (writer === null) return { loading: true, storageFailure: null };
    return { loading: false, storageFailure: await this.#storageHealth.check(writer) };
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
    this.#core.closing = true;
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    if (this.#ackTicker !== undefined) clearInterval(this.#ackTicker);
    if (this.#compactor !== null) await this.#compactor.stop();
    if (this.#core.writer !== null) await this.#core.writer.close();
  }
}
