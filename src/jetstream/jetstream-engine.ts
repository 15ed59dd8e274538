/**
 * The NATS JetStream engine (issue 15, SPEC §9): the engine seam ({@link QueueEngine}) over a
 * JetStream cluster, so that miniqueue processes become stateless gateways. Several gateways may
 * serve the same topics; JetStream keeps the messages and hands each one to one pull request of
 * one gateway at a time.
 *
 * Mapping (names in subjects.ts, streams in nats-link.ts):
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
 * - attempt = JetStream's delivery count (plus the deliveries of what a copy replaces);
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
import type { Msg, Subscription } from '@nats-io/transport-node';
import { AckPolicy } from '@nats-io/jetstream';
import { BrokerError } from '../errors.js';
import {
  DEAD_LETTER_SUFFIX,
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
import { ClusterStats } from './cluster-stats.js';
import { JetStreamConsumer, type JsConsumerHost } from './js-consumer.js';
import { JsDelivery, MQ_HEADERS, parseAckSubject } from './js-delivery.js';
import { isNotFound, NatsLink, storageError, type NatsLinkOptions } from './nats-link.js';
import { deletedTopicsSubject, topicOfSubject, topicSubjects } from './subjects.js';
import { TopicPuller, type PulledMessage, type PullerHost } from './topic-puller.js';

export interface JetStreamEngineOptions extends Omit<NatsLinkOptions, 'requestTimeoutMs' | 'logger' | 'aborted'> {
  logger: Logger;
  /** `--max-message-bytes`; lowered to what the server's max_payload allows (logged). */
  maxMessageBytes: number;
  /** `--ack-timeout` in ms; 0: off. */
  ackTimeoutMs: number;
  /** `--max-deliveries`; 0: unlimited. */
  maxDeliveries: number;
  /** The durable consumers' ack wait, renewed while a gateway holds a delivery (ms). Default 30 000. */
  leaseMs?: number;
  /** How long one pull request waits at the server (ms). Default 5000. */
  pullExpiresMs?: number;
  /** How often the topic stats snapshot is refreshed (ms). Default 1000. */
  statsRefreshMs?: number;
  /** JetStream API calls, acknowledged publishes and acks time out after this (ms). Default 5000. */
  requestTimeoutMs?: number;
}

/** How long health() waits for the cluster to answer (ms). */
const HEALTH_TIMEOUT_MS = 2000;

/** Bytes a copy's headers may add to a message; a payload must leave them room under max_payload. */
const HEADER_ROOM_BYTES = 512;

export class JetStreamEngine implements QueueEngine, JsConsumerHost, PullerHost {
  readonly #opts: Required<Omit<JetStreamEngineOptions, 'user' | 'password' | 'token'>> & JetStreamEngineOptions;
  readonly #logger: Logger;
  #link: NatsLink | null = null;
  #stats: ClusterStats | null = null;
  #maxMessageBytes: number;
  #closing: Promise<void> | null = null;
  readonly #pullers = new Map<string, TopicPuller>();
  readonly #consumers = new Set<JetStreamConsumer>();
  /** Pull requests out: id → its puller and the timer that gives up on it. */
  readonly #pulls = new Map<number, { puller: TopicPuller; watchdog: NodeJS.Timeout }>();
  #pullSeq = 0;
  #deliverySeq = 0;
  #inbox = '';
  #inboxSub: Subscription | null = null;
  #deletedSub: Subscription | null = null;
  #ticker: NodeJS.Timeout | undefined;
  #lastRenewMs = 0;
  /** Calls to NATS not answered yet (close waits for them). */
  readonly #pending = new Set<Promise<unknown>>();
  /** Topics published or deleted through this gateway since the snapshot being taken started. */
  readonly #publishedSince = new Map<string, number>();
  readonly #deletedSince = new Map<string, number>();

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
  }

  /**
   * Connects to the cluster, makes sure the streams exist, subscribes to pull replies and to
   * deleted-topic notices, and starts the ticker and the stats refresh. Retries the first
   * connection until it succeeds (or {@link close}); rejects with MQ_ERR_CONFIG (stream settings).
   */
  async open(): Promise<void> {
    const o = this.#opts;
    const link = await NatsLink.open({ ...o, requestTimeoutMs: o.requestTimeoutMs, logger: this.#logger, aborted: () => this.#closing !== null });
    if (this.#closing !== null) {
      await link.nc.close();
      throw new BrokerError('MQ_ERR_SHUTTING_DOWN');
    }
    const maxPayload = link.nc.info?.max_payload ?? Infinity;
    if (this.#maxMessageBytes + HEADER_ROOM_BYTES > maxPayload) {
      this.#maxMessageBytes = Math.max(0, maxPayload - HEADER_ROOM_BYTES);
      this.#logger.warn({ maxPayload, maxMessageBytes: this.#maxMessageBytes }, 'jetstream: --max-message-bytes lowered to fit the NATS server max_payload');
    }
    this.#link = link;
    this.#stats = new ClusterStats(link.nc, link.jsm, o.stream, this.#logger);
    this.#inbox = `_INBOX_MQ.${link.nc.info?.client_id ?? 0}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    this.#inboxSub = link.nc.subscribe(`${this.#inbox}.*`, { callback: (_err, msg) => this.#onPullReply(msg) });
    this.#deletedSub = link.nc.subscribe(deletedTopicsSubject(o.stream), {
      callback: (_err, msg) => this.#topicDeleted(msg.string()),
    });
    void this.#watchStatus(link);
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

  get loading(): boolean {
    return this.#link === null;
  }

  /** Connecting measures no progress: clients are told to retry after 1 s. */
  get loadingProgress(): null {
    return null;
  }

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
    if (this.#link === null) throw new BrokerError('MQ_ERR_LOADING');
  }

  publish(topic: string, payload: Buffer, cb: PublishCallback): void {
    assertTopicName(topic);
    this.assertServing();
    if (payload.length > this.#maxMessageBytes) throw new BrokerError('MQ_ERR_TOO_LARGE', [payload.length, this.#maxMessageBytes]);
    const puller = this.puller(topic);
    this.#track(this.#link!.publish(puller.names.subject, payload)).then(
      (seq) => {
        puller.counters.published++;
        this.#publishedSince.set(topic, Date.now());
        cb(null, seq);
      },
      (err: unknown) => cb(storageError(err), -1),
    );
  }

  openConsumer(handlers: ConsumerHandlers): JetStreamConsumer {
    this.assertServing();
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
      let consumerExisted = true;
      try {
        await link.jsm.consumers.delete(this.#opts.stream, names.durable);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        consumerExisted = false;
      }
      await link.jsm.streams.purge(`${this.#opts.stream}_DACKS`, { filter: `${names.dackPrefix}.>` });
      this.#topicDeleted(topic);
      link.nc.publish(deletedTopicsSubject(this.#opts.stream), topic);
      return knew || purged.purged > 0 || consumerExisted;
    };
    this.#track(run()).then(
      (existed) => cb(null, existed),
      (err: unknown) => cb(storageError(err), false),
    );
  }

  topicNames(): string[] {
    const names = new Set<string>();
    for (const topic of this.#stats?.snapshot.topics.keys() ?? []) names.add(topic);
    for (const topic of this.#publishedSince.keys()) names.add(topic);
    for (const topic of this.#deletedSince.keys()) if (!this.#publishedSince.has(topic) || this.#publishedSince.get(topic)! < this.#deletedSince.get(topic)!) names.delete(topic);
    return [...names].sort();
  }

  topicStats(topic: string): TopicStats | undefined {
    if (!this.#exists(topic)) return undefined;
    const snap = this.#stats?.snapshot.topics.get(topic);
    const puller = this.#pullers.get(topic);
    const delayed = puller?.delayedCount(Date.now()) ?? 0;
    const stored = snap?.stored ?? 0;
    const ackPending = snap?.ackPending ?? 0;
    return {
      topic,
      ready: Math.max(0, stored - ackPending),
      inFlight: Math.max(0, ackPending - delayed),
      delayed,
      consumers: puller?.subscribers ?? 0,
      published: puller?.counters.published ?? 0,
      acked: puller?.counters.acked ?? 0,
    };
  }

  topicCounters(topic: string): TopicCounters | undefined {
    if (!this.#exists(topic)) return undefined;
    const puller = this.#pullers.get(topic);
    return puller === undefined ? { published: 0, acked: 0, nacked: 0, backed: 0, dacked: 0, redelivered: 0, ackTimeouts: 0, deadLettered: 0 } : { ...puller.counters };
  }

  /** No local log: zeros (undefined while connecting). */
  storageStats(): StorageStats | undefined {
    if (this.#link === null) return undefined;
    const compaction = { runs: 0, segmentsRemoved: 0, bytesReclaimed: 0, messagesCopied: 0, bytesCopied: 0, failures: 0 };
    return { logBytes: 0, logSegments: 0, writtenBytes: 0, writtenRecords: 0, writeBatches: 0, failedBatches: 0, fsyncs: 0, compaction };
  }

  /** `storageFailure` is set while the stream's info cannot be had from the cluster (NATS unreachable, no JetStream quorum). */
  async health(): Promise<EngineHealth> {
    const link = this.#link;
    if (link === null) return { loading: true, storageFailure: null };
    try {
      const reply = await link.nc.request(`$JS.API.STREAM.INFO.${this.#opts.stream}`, '', { timeout: HEALTH_TIMEOUT_MS });
      const info = reply.json<{ error?: { description?: string } }>();
      if (info.error !== undefined) throw new Error(info.error.description ?? 'stream info refused');
      return { loading: false, storageFailure: null };
    } catch (err) {
      return { loading: false, storageFailure: new Error(`NATS JetStream unreachable: ${err instanceof Error ? err.message : String(err)}`, { cause: err }) };
    }
  }

  /** Waits for the stats snapshot to be refreshed (tests; the ticker refreshes it every second). */
  async refreshStats(): Promise<void> {
    if (this.#stats === null) return;
    await this.#stats.refresh();
    const takenAtMs = this.#stats.snapshot.takenAtMs;
    for (const [topic, at] of this.#publishedSince) if (at < takenAtMs) this.#publishedSince.delete(topic);
    for (const [topic, at] of this.#deletedSince) if (at < takenAtMs) this.#deletedSince.delete(topic);
  }

  /** Graceful stop: refuse new work, NAK what consumers hold, wait for answers pending, drain. */
  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#closing = (async () => {
      clearInterval(this.#ticker);
      clearInterval(this.#refresher);
      for (const consumer of [...this.#consumers]) consumer.close();
      for (const puller of this.#pullers.values()) puller.expireSpares(0, true);
      while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
      for (const { watchdog } of this.#pulls.values()) clearTimeout(watchdog);
      this.#pulls.clear();
      const link = this.#link;
      if (link !== null) {
        // drain() flushes and waits for the server; with the cluster unreachable it would wait
        // for ever: after a request timeout the connection is closed instead.
        const closed = link.nc.closed();
        const drained = link.nc.drain().catch(() => undefined);
        const timer = setTimeout(() => void link.nc.close(), this.#opts.requestTimeoutMs);
        await Promise.race([drained, closed]);
        clearTimeout(timer);
        await link.nc.close();
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
    const d = new JsDelivery({ ...message, deliveryId: ++this.#deliverySeq });
    if (this.#opts.ackTimeoutMs > 0) d.deadlineMs = Date.now() + this.#opts.ackTimeoutMs;
    return d;
  }

  settle(_consumer: JetStreamConsumer, d: JsDelivery, kind: SettleKind, delayMs: number, cb: DoneCallback): void {
    const puller = this.puller(d.topic);
    if (kind === 'ACK') puller.counters.acked++;
    else if (kind === 'NACK') puller.counters.nacked++;
    else if (kind === 'BACK') puller.counters.backed++;
    else puller.counters.dacked++;
    let op: Promise<void>;
    if (kind !== 'ACK' && this.#exhausted(d)) op = this.#deadLetter(d);
    else if (kind === 'ACK') op = this.#ack(d);
    else if (kind === 'NACK') op = this.#returnToJetStream(puller, d.ackSubject);
    else if (kind === 'BACK') op = this.#back(d);
    else op = this.#dack(puller, d, delayMs);
    this.#track(op).then(
      () => cb(null),
      (err: unknown) => cb(storageError(err)),
    );
  }

  touch(d: JsDelivery): void {
    if (this.#opts.ackTimeoutMs > 0) d.deadlineMs = Date.now() + this.#opts.ackTimeoutMs;
    this.#link!.working(d.ackSubject);
  }

  released(consumer: JetStreamConsumer, held: JsDelivery[]): void {
    this.#consumers.delete(consumer);
    for (const d of held) this.#returnToFront(d);
  }

  startPull(puller: TopicPuller): void {
    const id = ++this.#pullSeq;
    const expiresMs = this.#opts.pullExpiresMs;
    const watchdog = setTimeout(() => this.#pullEnded(id, 0), expiresMs + this.#opts.requestTimeoutMs);
    watchdog.unref();
    this.#pulls.set(id, { puller, watchdog });
    puller.pullIds.add(id);
    const send = (): void => {
      if (!this.#pulls.has(id) || this.#closing !== null) return;
      const body = `{"batch":1,"expires":${expiresMs * 1_000_000}}`;
      this.#link!.nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${this.#opts.stream}.${puller.names.durable}`, body, { reply: `${this.#inbox}.${id}` });
    };
    if (puller.consumerReady) send();
    else this.#ensureConsumer(puller).then(send, (err: unknown) => {
      this.#logger.warn({ err, topic: puller.topic }, 'jetstream: could not create the topic consumer; retrying');
      this.#pullEnded(id, 250);
    });
  }

  giveBack(message: PulledMessage): void {
    if (this.#closing !== null) this.#link?.nakNow(message.ackSubject);
    else this.#track(this.#returnToJetStream(this.puller(message.topic), message.ackSubject)).catch(() => undefined);
  }

  /**
   * NAKs a message (back to the front) and holds its topic's next pulls until JetStream answered:
   * acks and pulls are handled apart in the server, so a pull sent at once could be served first.
   */
  async #returnToJetStream(puller: TopicPuller, ackSubject: string): Promise<void> {
    puller.holdPulls();
    try {
      await this.#link!.nak(ackSubject, 0);
    } finally {
      puller.releasePulls();
    }
  }

  // ---- internals ----

  #ensuring = new Map<TopicPuller, Promise<void>>();

  #ensureConsumer(puller: TopicPuller): Promise<void> {
    let p = this.#ensuring.get(puller);
    if (p === undefined) {
      p = this.#link!.jsm.consumers
        .add(this.#opts.stream, {
          durable_name: puller.names.durable,
          description: `miniqueue topic ${puller.topic}`,
          filter_subject: puller.names.subject,
          ack_policy: AckPolicy.Explicit,
          ack_wait: this.#opts.leaseMs * 1_000_000,
          max_deliver: -1,
          max_ack_pending: -1,
          max_waiting: 4096,
        })
        // Gateways starting on the same topic at once race to create it; the loser's error is
        // no error if the consumer is there now.
        .catch((err: unknown) =>
          this.#link!.jsm.consumers.info(this.#opts.stream, puller.names.durable).catch(() => {
            throw err;
          }),
        )
        .then(() => {
          puller.consumerReady = true;
        })
        .finally(() => this.#ensuring.delete(puller));
      this.#ensuring.set(puller, p);
    }
    return p;
  }

  /**
   * Ends pull `id` (after `delayMs`, to back off when the cluster refused it); `withMessage`: it
   * brought a message, which is being admitted.
   */
  #pullEnded(id: number, delayMs: number, withMessage = false): void {
    const pull = this.#pulls.get(id);
    if (pull === undefined) return;
    this.#pulls.delete(id);
    pull.puller.pullIds.delete(id);
    clearTimeout(pull.watchdog);
    if (delayMs <= 0 || this.#closing !== null) {
      if (this.#closing === null) pull.puller.pullEnded(withMessage);
      return;
    }
    setTimeout(() => {
      if (this.#closing === null) pull.puller.pullEnded(withMessage);
    }, delayMs).unref();
  }

  /**
   * A reply to a pull request: a status on the request's own inbox subject, or a message, which
   * arrives under its stored subject. JetStream serves a consumer's waiting pull requests oldest
   * first and every pull of a gateway expires after the same time, so a message ends the oldest
   * pull of its topic still out; a rare mismatch is put right by the watchdogs.
   */
  #onPullReply(msg: Msg): void {
    const ackInfo = msg.reply === undefined ? undefined : parseAckSubject(msg.reply);
    if (ackInfo !== undefined) {
      const topic = topicOfSubject(this.#opts.stream, msg.subject);
      const puller = topic === undefined ? undefined : this.#pullers.get(topic);
      if (puller === undefined || this.#closing !== null) {
        this.#link?.nakNow(msg.reply!);
        return;
      }
      const oldest = puller.pullIds.values().next();
      if (!oldest.done) this.#pullEnded(oldest.value, 0, true);
      else puller.arrivedUnasked();
      this.#admit(puller, msg, ackInfo);
      return;
    }
    const id = Number(msg.subject.slice(this.#inbox.length + 1));
    const pull = this.#pulls.get(id);
    if (pull === undefined) return;
    const code = msg.headers?.code ?? 0;
    if (code === 100) return; // idle heartbeat
    if (code === 404 || code === 408) return this.#pullEnded(id, 0);
    if (code === 409 && /deleted/i.test(msg.headers?.description ?? '')) pull.puller.consumerReady = false;
    if (code === 503) pull.puller.consumerReady = false; // no responders: the consumer is gone, or JetStream is
    this.#pullEnded(id, code === 409 ? 100 : 500);
  }

  /** A message pulled for `puller`: dead-lettered if past --max-deliveries, else to a consumer. */
  #admit(puller: TopicPuller, msg: Msg, ack: { streamSeq: number; deliveredCount: number }): void {
    const h = msg.headers;
    const header = (name: string): number => {
      const v = h?.get(name);
      const n = v === undefined || v === '' ? 0 : Number(v);
      return Number.isSafeInteger(n) && n >= 0 ? n : 0;
    };
    const fields: PulledMessage = {
      messageId: header(MQ_HEADERS.id) || ack.streamSeq,
      topic: puller.topic,
      attempt: header(MQ_HEADERS.attempts) + ack.deliveredCount,
      dackCount: header(MQ_HEADERS.dackCount),
      dackCountStored: false,
      payload: Buffer.from(msg.data),
      streamSeq: ack.streamSeq,
      ackSubject: msg.reply!,
    };
    if (fields.attempt > 1) puller.counters.redelivered++;
    const o = this.#opts;
    if (o.maxDeliveries > 0 && fields.attempt > o.maxDeliveries && this.#deadLetterable(puller.topic)) {
      puller.dropped();
      this.#track(this.#deadLetter(fields)).catch((err: unknown) => this.#logger.error({ err, topic: puller.topic }, 'jetstream: dead-lettering failed; the message stays'));
      return;
    }
    if (ack.deliveredCount === 1) {
      puller.received(fields, Date.now());
      return;
    }
    // Redelivered: a DACK may have stored a newer dackCount.
    this.#track(this.#link!.jsm.streams.getMessage(`${o.stream}_DACKS`, { last_by_subj: `${puller.names.dackPrefix}.${ack.streamSeq}` }))
      .then(
        (stored) => {
          const n = stored === null ? NaN : Number(stored.string());
          if (Number.isSafeInteger(n) && n > 0) Object.assign(fields, { dackCount: n, dackCountStored: true });
        },
        (err: unknown) => {
          if (!isNotFound(err)) this.#logger.warn({ err, topic: puller.topic }, 'jetstream: could not read a dackCount back; using the header');
        },
      )
      .finally(() => {
        if (this.#closing === null) {
          puller.received(fields, Date.now());
          return;
        }
        puller.dropped();
        this.#link?.nakNow(fields.ackSubject);
      });
  }

  async #ack(d: JsDelivery): Promise<void> {
    await this.#link!.ack(d.ackSubject);
    if (d.dackCountStored) this.#dropDackCount(d);
  }

  async #back(d: JsDelivery): Promise<void> {
    const link = this.#link!;
    const names = topicSubjects(this.#opts.stream, d.topic);
    const hdrs = NatsLink.headers({ [MQ_HEADERS.id]: d.messageId, [MQ_HEADERS.attempts]: d.attempt, [MQ_HEADERS.dackCount]: d.dackCount });
    try {
      await link.publish(names.subject, d.payload, hdrs);
    } catch (err) {
      link.nakNow(d.ackSubject);
      throw err;
    }
    await link.ack(d.ackSubject);
    if (d.dackCountStored) this.#dropDackCount(d);
  }

  async #dack(puller: TopicPuller, d: JsDelivery, delayMs: number): Promise<void> {
    const link = this.#link!;
    try {
      await link.publish(`${puller.names.dackPrefix}.${d.streamSeq}`, new TextEncoder().encode(String(d.dackCount + 1)));
    } catch (err) {
      link.nakNow(d.ackSubject);
      throw err;
    }
    const now = Date.now();
    puller.addDack(now + delayMs, now);
    await link.nak(d.ackSubject, delayMs);
  }

  #dropDackCount(d: JsDelivery): void {
    const names = topicSubjects(this.#opts.stream, d.topic);
    this.#track(this.#link!.jsm.streams.purge(`${this.#opts.stream}_DACKS`, { filter: `${names.dackPrefix}.${d.streamSeq}` })).catch(() => undefined);
  }

  #deadLetterable(topic: string): boolean {
    return !topic.endsWith(DEAD_LETTER_SUFFIX) && topic.length + DEAD_LETTER_SUFFIX.length <= 255;
  }

  #exhausted(d: { attempt: number; topic: string }): boolean {
    return this.#opts.maxDeliveries > 0 && d.attempt >= this.#opts.maxDeliveries && this.#deadLetterable(d.topic);
  }

  /** Publishes a copy to `<topic>.dead` (new id, deliveries and dackCount kept), then acks the original. */
  async #deadLetter(m: PulledMessage): Promise<void> {
    const link = this.#link!;
    const dead = this.puller(m.topic + DEAD_LETTER_SUFFIX);
    const hdrs = NatsLink.headers({ [MQ_HEADERS.attempts]: m.attempt, [MQ_HEADERS.dackCount]: m.dackCount });
    try {
      await link.publish(dead.names.subject, m.payload, hdrs);
    } catch (err) {
      link.nakNow(m.ackSubject);
      throw err;
    }
    await link.ack(m.ackSubject);
    this.puller(m.topic).counters.deadLettered++;
    dead.counters.published++;
    this.#publishedSince.set(dead.topic, Date.now());
    this.#logger.warn({ topic: m.topic, id: m.messageId, deliveries: m.attempt, dackCount: m.dackCount, deadLetterTopic: dead.topic }, 'message moved to its dead-letter topic after --max-deliveries deliveries');
  }

  /** A delivery that ends without a settle (consumer closed, ack timeout): NAK, or dead letter. */
  #returnToFront(d: JsDelivery): void {
    if (this.#exhausted(d)) this.#track(this.#deadLetter(d)).catch((err: unknown) => this.#logger.error({ err, topic: d.topic }, 'jetstream: dead-lettering failed'));
    else if (this.#closing !== null) this.#link?.nakNow(d.ackSubject);
    else this.#track(this.#returnToJetStream(this.puller(d.topic), d.ackSubject)).catch((err: unknown) => this.#logger.warn({ err, topic: d.topic }, 'jetstream: a NAK was not answered; the lease returns the message'));
  }

  #tick(nowMs: number): void {
    const o = this.#opts;
    const renew = nowMs - this.#lastRenewMs >= o.leaseMs / 3;
    if (renew) this.#lastRenewMs = nowMs;
    for (const consumer of this.#consumers) {
      for (const d of consumer.inFlight.values()) {
        if (d.deadlineMs > 0 && nowMs >= d.deadlineMs) {
          consumer.inFlight.delete(d.deliveryId);
          const deadLettered = this.#exhausted(d);
          this.puller(d.topic).counters.ackTimeouts++;
          this.#returnToFront(d);
          consumer.handlers.onExpired?.(d, deadLettered);
        } else if (renew) {
          this.#link?.working(d.ackSubject);
        }
      }
    }
    for (const puller of this.#pullers.values()) puller.expireSpares(nowMs);
  }

  /** `topic` was deleted (here or by another gateway): its deliveries here are refused from now on. */
  #topicDeleted(topic: string): void {
    this.#deletedSince.set(topic, Date.now());
    this.#publishedSince.delete(topic);
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

  async #watchStatus(link: NatsLink): Promise<void> {
    for await (const s of link.nc.status()) {
      if (s.type === 'disconnect') this.#logger.warn({ server: s.server }, 'jetstream: disconnected from NATS');
      else if (s.type === 'reconnect') this.#logger.info({ server: s.server }, 'jetstream: reconnected to NATS');
    }
  }
}
