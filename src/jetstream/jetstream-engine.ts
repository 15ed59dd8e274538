/**
 * The NATS JetStream engine (issue 15, SPEC §9): the engine seam ({@link QueueEngine}) over a
 * JetStream cluster, so that miniqueue processes become stateless gateways. Several gateways may
 * serve the same topics; JetStream keeps the messages and hands each one to one pull request of
 * one gateway at a time.
 *
 * Mapping (names in subjects.ts, streams in nats-link.ts, pulls and admission in pull-requests.ts,
 * settles in settle-ops.ts, `--max-deliveries` in dead-letters.ts):
 * - topic T = subject `<stream>.<token(T)>` of one work-queue stream; a durable pull consumer
 *   per topic (ack explicit, unlimited deliveries and ack-pending) shared by every gateway;
 * - publish = a JetStream publish, answered after its PubAck (stored on a quorum of replicas);
 *   the message id is the stream sequence;
 * - ACK = +ACK, answered after the server's reply to it (double ack); the work queue drops it;
 * - NACK = -NAK: JetStream redelivers NAKed messages before undelivered ones (the front);
 * - BACK = a copy published at the end of the subject (carrying id, deliveries and dackCount in
 *   headers, see js-delivery.ts), then +ACK of the original;
 * - DACK n = the new dackCount stored in `<stream>_DACKS` (one message per stored message), then
 *   -NAK with an n-second delay: JetStream redelivers it when the delay ends, at the front. A
 *   redelivered message (JetStream's delivery count > 1) looks its dackCount up there;
 * - attempt = JetStream's delivery count (plus the deliveries of what a copy replaces) minus the
 *   deliveries no client saw: a gateway that gives back a message it pulled for nobody (a spare)
 *   records that in `<stream>_DACKS` first (delivery-record.ts), so `--max-deliveries` counts
 *   deliveries to clients across gateways;
 * - the consumer's ack wait is a lease ({@link JetStreamEngineOptions.leaseMs}, 30 s) that this
 *   gateway renews (+WPI) for every delivery it holds: a gateway that dies gets its deliveries
 *   redelivered after at most one lease. `--ack-timeout` is this gateway's own timer (one coarse
 *   ticker): it NAKs the delivery; TOUCH restarts it (and renews the lease);
 * - `--max-deliveries`: a delivery whose attempt reached N and ends without an ACK is published
 *   to `<topic>.dead` and acked; one arriving past N (its gateway died) is moved on arrival;
 * - a closing consumer NAKs what it held, in delivery order;
 * - DELETE purges the subject and its DACK counts, deletes the durable consumer, and tells the
 *   other gateways (core NATS, `_MQ.<stream>.deleted`) so their deliveries of it are refused;
 * - TOPICS / STATS / metrics come from a snapshot refreshed every second (cluster-stats.ts).
 */
import type { Logger } from 'pino';
import type { Subscription } from '@nats-io/transport-node';
import { BrokerError } from '../errors.js';
import type {
  ConsumerHandlers,
  DoneCallback,
  EngineHealth,
  PublishCallback,
  QueueEngine,
  SettleKind,
  StorageStats,
  TopicCounters,
  TopicStats,
} from '../engine/queue-engine.js';
import { assertTopicName } from '../engine/topic-name.js';
import { ClusterStats } from './cluster-stats.js';
import { DeadLetters } from './dead-letters.js';
import type { JetStreamEngineOptions, JsEngineContext, ResolvedEngineOptions } from './engine-context.js';
import { gatewayTopicStats } from './gateway-topic-stats.js';
import { JetStreamConsumer, type JsConsumerHost } from './js-consumer.js';
import { JsDelivery } from './js-delivery.js';
import { deleteConsumer, NatsLink, storageError } from './nats-link.js';
import { PullRequests } from './pull-requests.js';
import type { PulledMessage, PullerHost } from './puller-host.js';
import { SettleOps } from './settle-ops.js';
import { deletedTopicsSubject, topicSubjects } from './subjects.js';
import { TopicPuller } from './topic-puller.js';
import { TopicPresence } from './topic-presence.js';

export type { JetStreamEngineOptions } from './engine-context.js';

/** How long health() waits for the cluster to answer (ms). */
const HEALTH_TIMEOUT_MS = 2000;

/** Bytes a copy's headers may add to a message; a payload must leave them room under max_payload. */
const HEADER_ROOM_BYTES = 512;

export class JetStreamEngine implements QueueEngine, JsConsumerHost, PullerHost {
  readonly #opts: ResolvedEngineOptions;
  readonly #logger: Logger;
  #link: NatsLink | null = null;
  /** Why the start has not connected yet (the last failed attempt), null before one failed. */
  #unreachable: Error | null = null;
  #stats: ClusterStats | null = null;
  #maxMessageBytes: number;
  #closing: Promise<void> | null = null;
  readonly #pullers = new Map<string, TopicPuller>();
  readonly #consumers = new Set<JetStreamConsumer>();
  #deliverySeq = 0;
  #deletedSub: Subscription | null = null;
  #ticker: NodeJS.Timeout | undefined;
  #lastRenewMs = 0;
  /** Calls to NATS not answered yet (close waits for them). */
  readonly #pending = new Set<Promise<unknown>>();
  readonly #presence = new TopicPresence();
  readonly #deadLetters: DeadLetters;
  readonly #settleOps: SettleOps;
  readonly #pullRequests: PullRequests;

  /** Touches nothing: {@link open} connects. */
  constructor(opts: JetStreamEngineOptions) {
    this.#opts = {
      leaseMs: 30_000,
      pullExpiresMs: 5000,
      statsRefreshMs: 1000,
      requestTimeoutMs: 5000,
      ...opts,
    };
    this.#logger = opts.logger;
    this.#maxMessageBytes = opts.maxMessageBytes;
    const ctx = this.#context();
    this.#deadLetters = new DeadLetters(ctx);
    this.#settleOps = new SettleOps(ctx, this.#deadLetters);
    this.#pullRequests = new PullRequests(ctx, this.#deadLetters);
  }

  /** What the engine's parts see of it (live views of its fields). */
  #context(): JsEngineContext {
    const engine = this; // the context's getters read this engine's private fields
    return {
      opts: this.#opts,
      logger: this.#logger,
      get link() {
        return engine.#link;
      },
      get closing() {
        return engine.#closing !== null;
      },
      puller: (topic) => this.puller(topic),
      existingPuller: (topic) => this.#pullers.get(topic),
      track: (p) => this.#track(p),
      notePublished: (topic) => this.#presence.notePublished(topic),
    };
  }

  /**
   * Connects to the cluster, makes sure the streams exist, subscribes to pull replies and to
   * deleted-topic notices, and starts the ticker and the stats refresh. Retries the first
   * connection until it succeeds (or {@link close}); rejects with MQ_ERR_CONFIG (stream settings).
   */
  async open(): Promise<void> {
    const o = this.#opts;
    const link = await NatsLink.open({ ...o, requestTimeoutMs: o.requestTimeoutMs, logger: this.#logger, aborted: () => this.#closing !== null, attemptFailed: (err) => this.#connectFailed(err) });
    if (this.#closing !== null) {
      await link.nc.close();
      link.closed();
      throw new BrokerError('MQ_ERR_SHUTTING_DOWN');
    }
    const maxPayload = link.nc.info?.max_payload ?? Infinity;
    if (this.#maxMessageBytes + HEADER_ROOM_BYTES > maxPayload) {
      // Warn only when more was asked than NATS takes at all (the default loses just the header room).
      const level = this.#maxMessageBytes > maxPayload ? 'warn' : 'info';
      this.#maxMessageBytes = Math.max(0, maxPayload - HEADER_ROOM_BYTES);
      this.#logger[level]({ maxPayload, maxMessageBytes: this.#maxMessageBytes }, 'jetstream: --max-message-bytes lowered to fit the NATS server max_payload');
    }
    this.#link = link;
    this.#unreachable = null;
    this.#stats = new ClusterStats(link.nc, link.jsm, o.stream, this.#logger);
    this.#pullRequests.listen();
    this.#deletedSub = link.nc.subscribe(deletedTopicsSubject(o.stream), {
      callback: (_err, msg) => this.#topicDeleted(msg.string()),
    });
    void link.logStatus(this.#logger);
    await this.#stats.refresh();
    const tickMs = o.ackTimeoutMs > 0 ? Math.min(1000, Math.max(10, Math.floor(o.ackTimeoutMs / 10))) : 250;
    this.#ticker = setInterval(() => this.#tick(Date.now()), tickMs);
    this.#ticker.unref();
    let lastRefreshMs = Date.now();
    const refresher = setInterval(() => {
      if (Date.now() - lastRefreshMs < o.statsRefreshMs) return;
      lastRefreshMs = Date.now();
      void this.refreshStats();
    }, Math.min(o.statsRefreshMs, 1000));
    refresher.unref();
    this.#refresher = refresher;
    this.#logger.info({ stream: o.stream, replicas: o.replicas, servers: link.nc.getServer() }, 'jetstream: connected');
  }

  #refresher: NodeJS.Timeout | undefined;

  /** A start's attempt to reach the cluster failed: from now on clients are told NATS is unreachable. */
  #connectFailed(err: unknown): void {
    const servers = this.#opts.servers.map((s) => {
      try {
        const url = new URL(s);
        return `${url.protocol}//${url.host}`; // no credentials
      } catch {
        return s;
      }
    });
    const text = err instanceof Error ? err.message : String(err);
    this.#unreachable = new Error(`NATS JetStream unreachable (${servers.join(',')}): ${text}`, { cause: err });
  }

  /**
   * True while the start connects, until its first attempt fails: from then on the engine is not
   * loading but failing (MQ_ERR_STORAGE naming NATS, `/healthz` 503) until it connects.
   */
  get loading(): boolean {
    return this.#link === null && this.#unreachable === null;
  }

  /** Connecting measures no progress: clients are told to retry after 1 s. */
  get loadingProgress(): null {
    return null;
  }

  /** The messages are in the cluster: INFO `aof_enabled:0`. */
  readonly localLog = false;

  /** Messages in the stream, all topics (from the stats snapshot). */
  get messageCount(): number {
    return this.#stats?.snapshot.messages ?? 0;
  }

  /** The largest publish accepted (bytes): `--max-message-bytes`, or less to fit max_payload. */
  get maxMessageBytes(): number {
    return this.#maxMessageBytes;
  }

  assertServing(): void {
    if (this.#closing !== null) throw new BrokerError('MQ_ERR_SHUTTING_DOWN');
    if (this.#link === null) {
      if (this.#unreachable !== null) throw new BrokerError('MQ_ERR_STORAGE', [this.#unreachable.message], { cause: this.#unreachable });
      throw new BrokerError('MQ_ERR_LOADING');
    }
  }

  publish(topic: string, payload: Buffer, cb: PublishCallback): void {
    assertTopicName(topic);
    this.assertServing();
    if (payload.length > this.#maxMessageBytes) throw new BrokerError('MQ_ERR_TOO_LARGE', [payload.length, this.#maxMessageBytes]);
    const puller = this.puller(topic);
    this.#track(this.#link!.publish(puller.names.subject, payload)).then(
      (seq) => {
        puller.counters.published++;
        this.#presence.notePublished(topic);
        cb(null, seq);
      },
      (err: unknown) => cb(storageError(err), -1),
    );
  }

  openConsumer(handlers: ConsumerHandlers): JetStreamConsumer {
    // Never throws (the seam's contract): while the cluster is unreachable the consumer's own
    // requests, takes and settles are refused with the reason (a throw here crashed the gateway).
    const consumer = new JetStreamConsumer(this, handlers);
    this.#consumers.add(consumer);
    return consumer;
  }

  deleteTopic(topic: string, cb: (err: BrokerError | null, existed: boolean) => void): void {
    assertTopicName(topic);
    this.assertServing();
    const link = this.#link!;
    const names = topicSubjects(this.#opts.stream, topic);
    const knew = this.#exists(topic);
    const run = async (): Promise<boolean> => {
      const purged = await link.jsm.streams.purge(this.#opts.stream, { filter: names.subject });
      await deleteConsumer(link, this.#opts.stream, names.durable, this.#opts.requestTimeoutMs);
      await link.jsm.streams.purge(`${this.#opts.stream}_DACKS`, { filter: `${names.dackPrefix}.>` });
      this.#topicDeleted(topic);
      link.nc.publish(deletedTopicsSubject(this.#opts.stream), topic);
      // Not whether the consumer existed: a subscriber waiting on a deleted topic makes its
      // consumer again, and the topic does not exist for that (as on the log engine).
      return knew || purged.purged > 0;
    };
    this.#track(run()).then(
      (existed) => cb(null, existed),
      (err: unknown) => cb(storageError(err), false),
    );
  }

  topicNames(): string[] {
    return this.#presence.names(this.#stats?.snapshot.topics.keys() ?? []);
  }

  topicStats(topic: string): TopicStats | undefined {
    if (!this.#exists(topic)) return undefined;
    return gatewayTopicStats(topic, this.#stats?.snapshot.topics.get(topic), this.#pullers.get(topic), Date.now());
  }

  topicCounters(topic: string): TopicCounters | undefined {
    if (!this.#exists(topic)) return undefined;
    const puller = this.#pullers.get(topic);
    return puller === undefined ? { published: 0, acked: 0, nacked: 0, backed: 0, dacked: 0, redelivered: 0, ackTimeouts: 0, deadLettered: 0 } : { ...puller.counters };
  }

  /** No local log: zeros. */
  storageStats(): StorageStats | undefined {
    const compaction = { runs: 0, segmentsRemoved: 0, bytesReclaimed: 0, messagesCopied: 0, bytesCopied: 0, failures: 0 };
    return { logBytes: 0, logSegments: 0, writtenBytes: 0, writtenRecords: 0, writeBatches: 0, failedBatches: 0, fsyncs: 0, compaction };
  }

  /** `storageFailure` is set while the stream's info cannot be had from the cluster (NATS unreachable, no JetStream quorum). */
  async health(): Promise<EngineHealth> {
    const link = this.#link;
    if (link === null) return this.#unreachable === null ? { loading: true, storageFailure: null } : { loading: false, storageFailure: this.#unreachable };
    return { loading: false, storageFailure: await link.streamFailure(this.#opts.stream, HEALTH_TIMEOUT_MS) };
  }

  /** Waits for the stats snapshot to be refreshed (tests; the ticker refreshes it every second). */
  async refreshStats(): Promise<void> {
    if (this.#stats === null) return;
    await this.#stats.refresh();
    const snapshot = this.#stats.snapshot;
    this.#presence.snapshotTaken(snapshot.takenAtMs);
    // A stream scaled by hand (R1 to R3) is seen here: its ACKs start removing their messages.
    if (snapshot.replicas > 0 && this.#link !== null) this.#link.streamReplicas = snapshot.replicas;
  }

  /** Graceful stop: refuse new work, NAK what consumers hold, wait for answers pending, drain. */
  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#closing = (async () => {
      clearInterval(this.#ticker);
      clearInterval(this.#refresher);
      for (const consumer of [...this.#consumers]) consumer.close();
      for (const puller of this.#pullers.values()) puller.expireSpares(0, true);
      const link = this.#link;
      // The ACKs and NAKs sent are not among the calls tracked (ack-requests.ts): waited for too.
      while (this.#pending.size > 0 || (link?.acksPending ?? 0) > 0) {
        if (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
        else await link!.acksIdle();
      }
      this.#pullRequests.clear();
      if (link !== null) {
        // drain() flushes and waits for the server; with the cluster unreachable it would wait
        // for ever: after a request timeout the connection is closed instead.
        const closed = link.nc.closed();
        const drained = link.nc.drain().catch(() => undefined);
        const timer = setTimeout(() => void link.nc.close(), this.#opts.requestTimeoutMs);
        await Promise.race([drained, closed]);
        clearTimeout(timer);
        await link.nc.close();
        link.closed();
      }
    })();
    return this.#closing;
  }

  // ---- JsConsumerHost / PullerHost ----

  puller(topic: string): TopicPuller {
    let puller = this.#pullers.get(topic);
    if (puller === undefined) {
      puller = new TopicPuller(topicSubjects(this.#opts.stream, topic), this);
      this.#pullers.set(topic, puller);
    }
    return puller;
  }

  newDelivery(message: PulledMessage): JsDelivery {
    const d = new JsDelivery(message, ++this.#deliverySeq);
    if (this.#opts.ackTimeoutMs > 0) d.deadlineMs = Date.now() + this.#opts.ackTimeoutMs;
    return d;
  }

  settle(_consumer: JetStreamConsumer, d: JsDelivery, kind: SettleKind, delayMs: number, cb: DoneCallback): void {
    this.#settleOps.settle(d, kind, delayMs, cb);
  }

  touch(d: JsDelivery): void {
    if (this.#opts.ackTimeoutMs > 0) d.deadlineMs = Date.now() + this.#opts.ackTimeoutMs;
    this.#link!.working(d.ackSubject);
  }

  released(consumer: JetStreamConsumer, held: JsDelivery[]): void {
    this.#consumers.delete(consumer);
    // In delivery order: the topic's spares (pulled after them) are handed on after them.
    for (const d of held) this.#settleOps.returnToFront(d);
  }

  startPull(puller: TopicPuller, batch: number, noWait: boolean): number {
    return this.#pullRequests.start(puller, batch, noWait);
  }

  get lastDeliveryId(): number {
    return this.#deliverySeq;
  }

  renewLease(message: PulledMessage): void {
    this.#link?.working(message.ackSubject);
  }

  giveBack(message: PulledMessage): void {
    if (this.#closing !== null) this.#link?.nakNow(message.ackSubject);
    else this.#track(this.#settleOps.giveBackUnseen(this.puller(message.topic), message)).catch(() => undefined);
  }

  #tick(nowMs: number): void {
    const o = this.#opts;
    const renew = nowMs - this.#lastRenewMs >= o.leaseMs / 3;
    if (renew) this.#lastRenewMs = nowMs;
    /** Per topic, the oldest delivery still in flight here after this tick (spares wait for it). */
    const oldestInFlight = new Map<string, number>();
    for (const consumer of this.#consumers) {
      for (const d of consumer.inFlight.values()) {
        if (!(d.deadlineMs > 0 && nowMs >= d.deadlineMs)) {
          const oldest = oldestInFlight.get(d.topic);
          if (oldest === undefined || d.deliveryId < oldest) oldestInFlight.set(d.topic, d.deliveryId);
        }
        if (d.deadlineMs > 0 && nowMs >= d.deadlineMs) {
          consumer.inFlight.delete(d.deliveryId);
          const deadLettered = this.#deadLetters.exhausted(d);
          this.puller(d.topic).counters.ackTimeouts++;
          this.#settleOps.returnToFront(d);
          consumer.handlers.onExpired?.(d, deadLettered);
        } else if (renew) {
          this.#link?.working(d.ackSubject);
        }
      }
    }
    for (const puller of this.#pullers.values()) {
      // A snapshot taken since the spares came counts more pulls waiting than this gateway has out: a consumer elsewhere waits, so spares go back even behind an older delivery here (README).
      const snap = this.#stats?.snapshot;
      const elsewhere = snap !== undefined && snap.takenAtMs > puller.oldestSpareArrivedMs && (snap.topics.get(puller.topic)?.waiting ?? 0) > puller.pulls;
      puller.expireSpares(nowMs, false, elsewhere ? Infinity : oldestInFlight.get(puller.topic), renew);
      puller.expireAwaited(nowMs);
    }
  }

  /** `topic` was deleted (here or by another gateway): its deliveries here are refused from now on. */
  #topicDeleted(topic: string): void {
    this.#presence.noteDeleted(topic);
    this.#pullers.get(topic)?.deleted();
    for (const consumer of this.#consumers) {
      for (const d of consumer.inFlight.values()) {
        if (d.topic !== topic) continue;
        consumer.inFlight.delete(d.deliveryId);
        consumer.gone.set(d.deliveryId, d);
        consumer.handlers.onTopicDeleted?.(d);
      }
    }
  }

  #exists(topic: string): boolean {
    return this.topicNames().includes(topic);
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#pending.add(p);
    const done = (): void => {
      this.#pending.delete(p);
    };
    p.then(done, done);
    return p;
  }

}
