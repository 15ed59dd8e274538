/**
 * The cluster's view of the topics for TOPICS, STATS, `/topics` and `/metrics`, which the engine
 * seam asks for synchronously: a snapshot refreshed every `refreshMs` (default 1 s) from the
 * stream's per-subject message counts and its durable consumers' figures.
 *
 * A topic exists while its subject holds messages or its durable consumer exists (made by the
 * first gateway that consumed from it; DELETE removes both). Per topic:
 * - stored: messages on its subject (ready + in flight + delayed, across all gateways);
 * - ackPending: delivered and not yet acked, across all gateways (in flight and DACK-delayed);
 * - waiting: pull requests waiting on its consumer (from every gateway).
 */
import type { Logger } from 'pino';
import type { ConsumerInfo, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { topicOfSubject } from './subjects.js';

export interface TopicSnapshot {
  stored: number;
  ackPending: number;
  waiting: number;
}

export interface StatsSnapshot {
  /** Date.now() ms when the refresh that made it started. */
  takenAtMs: number;
  /** Messages in the stream (every topic, dead letters included). */
  messages: number;
  /** The stream's replicas (its config); 0 until a refresh succeeded. */
  replicas: number;
  topics: Map<string, TopicSnapshot>;
}

/** How long one consumer's info may take before its last figures are used again (ms). */
const CONSUMER_INFO_TIMEOUT_MS = 500;

/** Consumer infos asked for at once. */
const CONSUMER_INFO_CONCURRENCY = 16;

export class ClusterStats {
  readonly #nc: NatsConnection;
  readonly #jsm: JetStreamManager;
  readonly #stream: string;
  readonly #logger: Logger;
  #snapshot: StatsSnapshot = { takenAtMs: 0, messages: 0, replicas: 0, topics: new Map() };
  /** The last figures of each consumer by name: used again when its info does not come in time. */
  #consumers = new Map<string, { topic: string; ackPending: number; waiting: number }>();
  #running: Promise<void> | null = null;
  #queued: Promise<void> | null = null;
  #failedLogged = false;

  constructor(nc: NatsConnection, jsm: JetStreamManager, stream: string, logger: Logger) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#stream = stream;
    this.#logger = logger;
  }

  get snapshot(): StatsSnapshot {
    return this.#snapshot;
  }

  /**
   * Takes a snapshot that starts after this call (one at a time: a call while one runs waits for
   * it and then for the next, shared by every call made meanwhile). Never rejects.
   */
  refresh(): Promise<void> {
    if (this.#queued !== null) return this.#queued;
    if (this.#running === null) {
      this.#running = this.#take().finally(() => {
        this.#running = null;
      });
      return this.#running;
    }
    this.#queued = this.#running.then(() => {
      this.#queued = null;
      return this.refresh();
    });
    return this.#queued;
  }

  /**
   * Stream info with per-subject counts, then the consumers' names (answered by the meta leader)
   * and each one's info (answered by its own leader, which may be moving: the server's consumer
   * list waits up to 4 s for such a consumer, so each is asked on its own with a short timeout).
   */
  async #take(): Promise<void> {
    const takenAtMs = Date.now();
    try {
      const info = await this.#jsm.streams.info(this.#stream, { subjects_filter: `${this.#stream}.>` });
      const topics = new Map<string, TopicSnapshot>();
      for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
        const topic = topicOfSubject(this.#stream, subject);
        if (topic !== undefined) topics.set(topic, { stored: count, ackPending: 0, waiting: 0 });
      }
      const names = await this.#consumerNames();
      const consumers = new Map<string, { topic: string; ackPending: number; waiting: number }>();
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < names.length) {
          const name = names[next++]!;
          const ci = await this.#consumerInfo(name);
          const last = this.#consumers.get(name);
          const subject = ci?.config.filter_subject;
          const topic = subject === undefined ? last?.topic : topicOfSubject(this.#stream, subject);
          if (topic === undefined) continue;
          consumers.set(name, ci === undefined ? last! : { topic, ackPending: ci.num_ack_pending, waiting: ci.num_waiting });
        }
      };
      await Promise.all(Array.from({ length: Math.min(CONSUMER_INFO_CONCURRENCY, names.length) }, worker));
      for (const c of consumers.values()) {
        const t = topics.get(c.topic) ?? { stored: 0, ackPending: 0, waiting: 0 };
        t.ackPending = c.ackPending;
        t.waiting = c.waiting;
        topics.set(c.topic, t);
      }
      this.#consumers = consumers;
      this.#snapshot = { takenAtMs, messages: info.state.messages, replicas: info.config.num_replicas, topics };
      this.#failedLogged = false;
    } catch (err) {
      if (!this.#failedLogged && !this.#nc.isClosed()) {
        this.#logger.warn({ err }, 'jetstream: could not refresh topic stats; keeping the last ones (logged once until it works again)');
      }
      this.#failedLogged = true;
    }
  }

  async #consumerNames(): Promise<string[]> {
    const names: string[] = [];
    for (;;) {
      const reply = await this.#nc.request(`$JS.API.CONSUMER.NAMES.${this.#stream}`, JSON.stringify({ offset: names.length }), { timeout: 2000 });
      const page = reply.json<{ consumers?: string[] | null; total?: number; error?: { description?: string } }>();
      if (page.error !== undefined) throw new Error(`consumer names: ${page.error.description ?? 'error'}`);
      const got = page.consumers ?? [];
      names.push(...got);
      if (got.length === 0 || names.length >= (page.total ?? 0)) return names;
    }
  }

  async #consumerInfo(name: string): Promise<ConsumerInfo | undefined> {
    try {
      const reply = await this.#nc.request(`$JS.API.CONSUMER.INFO.${this.#stream}.${name}`, '', { timeout: CONSUMER_INFO_TIMEOUT_MS });
      const ci = reply.json<ConsumerInfo & { error?: unknown }>();
      return ci.error === undefined ? ci : undefined;
    } catch {
      return undefined;
    }
  }
}
