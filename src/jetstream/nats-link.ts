/**
 * The jetstream engine's connection to the cluster: connecting (credentials from the URL or the
 * engine options), making sure the two streams exist with the settings the engine relies on,
 * and the small JetStream calls the engine makes on messages (double-acked +ACK and -NAK,
 * in-progress signals, publishing copies).
 *
 * Streams (see subjects.ts for the names):
 * - `<stream>`, subjects `<stream>.>`, work-queue retention (a message is removed once acked),
 *   file storage, `--nats-replicas` replicas. A stream of that name that is not a work queue
 *   stops the start (it is someone else's); one with fewer replicas is scaled up, one with more
 *   keeps them (a warning says so: a gateway never scales a stream down). While it has more than
 *   one replica, an ACK also removes the message through the stream's group (stream-msg-delete.ts).
 * - `<stream>_DACKS`, limits retention, one message per subject (the latest DACK count of a
 *   stored message), same replicas.
 */
import type { Logger } from 'pino';
import { connect, headers as natsHeaders, nuid, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  jetstream,
  JetStreamApiError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { BrokerError } from '../errors.js';
import { AckRequests, RETRY_FIRST_PAUSE_MS, RETRY_MAX_PAUSE_MS, TRANSIENT_RETRY_MS, type AckCallback } from './ack-requests.js';
import { explainConnectError, splitCredentials } from './connect-errors.js';
import { judgeMsgDelete, msgDeleteBody, msgDeleteSubject } from './stream-msg-delete.js';
import { dackStreamName } from './subjects.js';

export { TRANSIENT_RETRY_MS } from './ack-requests.js';

/** How to reach the cluster. */
export interface NatsLinkOptions {
  /** Server URLs (`nats://host:port`); `nats://user:password@host:port` carries credentials. */
  servers: string[];
  user?: string;
  password?: string;
  token?: string;
  stream: string;
  replicas: 1 | 3;
  /** How long one JetStream API call or acknowledged publish may take (ms). */
  requestTimeoutMs: number;
  /** Asked between attempts to set the streams up: true stops {@link NatsLink.open}. */
  aborted?: () => boolean;
  /** Told of each failed attempt to connect or to set the streams up (the engine reports it to clients). */
  attemptFailed?: (err: unknown) => void;
  logger: Logger;
}

/** Failed connection attempts are logged at most this often (ms). */
const CONNECT_WARN_EVERY_MS = 5000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Whether a JetStream error is one a cluster gets over by itself: no responders (503), "jetstream
 * is not enabled" (no meta leader, answered by a node during an election), a timeout, a
 * disconnection. A request that met one is not known to be stored, and is safe to send again
 * with the same Nats-Msg-Id.
 */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const status = (err as { status?: unknown }).status;
  if (status === 503 || status === 408) return true;
  const text = `${err.name} ${err.message} ${err.cause instanceof Error ? err.cause.message : ''}`;
  return /no responders|not enabled|timeout|timed out|leader|temporarily unavailable|disconnect|reconnect|503/i.test(text);
}

const enc = new TextEncoder();
const ACK = enc.encode('+ACK');
const NAK = enc.encode('-NAK');
const WPI = enc.encode('+WPI');

/** An error of a NATS call as the engine seam's MQ_ERR_STORAGE (503), keeping it as the cause. */
export function storageError(err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new BrokerError('MQ_ERR_STORAGE', [`NATS JetStream: ${text}`], { cause: err });
}

export class NatsLink {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly #timeoutMs: number;
  /** The double-acked +ACK and -NAK signals (ack-requests.ts). */
  readonly #acks: AckRequests;
  /** `$JS.API.STREAM.MSG.DELETE.<stream>`: an ACK's removal of its message (stream-msg-delete.ts). */
  readonly #msgDeleteSubject: string;
  /**
   * The replicas of the stream as last seen (at the start, then by each stats refresh): with more
   * than one, an ACK also removes its message through the stream's group ({@link ack}).
   */
  streamReplicas = 0;

  private constructor(nc: NatsConnection, jsm: JetStreamManager, timeoutMs: number, stream: string) {
    this.nc = nc;
    this.jsm = jsm;
    this.js = jetstream(nc, { timeout: timeoutMs });
    this.#timeoutMs = timeoutMs;
    this.#acks = new AckRequests(nc, timeoutMs);
    this.#msgDeleteSubject = msgDeleteSubject(stream);
  }

  /** +ACK and -NAK signals sent and not answered yet. */
  get acksPending(): number {
    return this.#acks.pending;
  }

  /** Resolves once every +ACK and -NAK sent was answered or failed. */
  acksIdle(): Promise<void> {
    return this.#acks.idle();
  }

  /** The connection is closed: the +ACK and -NAK signals still waiting fail (see ack-requests.ts). */
  closed(): void {
    this.#acks.close();
  }

  /**
   * Why `stream` cannot be used now (its info did not come within `timeoutMs`: NATS unreachable,
   * no JetStream quorum, the stream gone), or null when its info came.
   */
  async streamFailure(stream: string, timeoutMs: number): Promise<Error | null> {
    try {
      const reply = await this.nc.request(`$JS.API.STREAM.INFO.${stream}`, '', { timeout: timeoutMs });
      const info = reply.json<{ error?: { description?: string } }>();
      if (info.error !== undefined) throw new Error(info.error.description ?? 'stream info refused');
      return null;
    } catch (err) {
      return new Error(`NATS JetStream unreachable: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  /** Logs each loss of the connection (warn) and each reconnection (info), until it is closed. */
  async logStatus(logger: Logger): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect') logger.warn({ server: s.server }, 'jetstream: disconnected from NATS');
      else if (s.type === 'reconnect') logger.info({ server: s.server }, 'jetstream: reconnected to NATS');
    }
  }

  /**
   * Connects (retrying until the first connection succeeds; reconnecting for ever after) and
   * makes sure both streams exist. Rejects with a BrokerError MQ_ERR_CONFIG when the stream
   * exists with another retention, or when JetStream refuses the stream settings.
   */
  static async open(opts: NatsLinkOptions): Promise<NatsLink> {
    const fromUrls = splitCredentials(opts.servers);
    const user = opts.user ?? fromUrls.user;
    const pass = opts.password ?? fromUrls.password;
    const servers = fromUrls.servers.join(',');
    let lastWarnMs = 0;
    const failed = (err: unknown, what: string): void => {
      opts.attemptFailed?.(err);
      if (Date.now() - lastWarnMs < CONNECT_WARN_EVERY_MS) return;
      lastWarnMs = Date.now();
      const error = err instanceof Error ? err.message : String(err);
      opts.logger.warn({ servers, error }, `jetstream: ${what} (${servers}): ${error}; retrying`);
    };
    let nc: NatsConnection;
    // nats.js would retry the first connection silently (waitOnFirstConnect): each failed attempt
    // is seen here instead, logged (at most every 5 s) and told to the engine.
    for (;;) {
      try {
        nc = await connect({
          servers: fromUrls.servers,
          name: 'miniqueue',
          ...(user === undefined ? {} : { user }),
          ...(pass === undefined ? {} : { pass }),
          ...(opts.token === undefined ? {} : { token: opts.token }),
          // nats.js upgrades to TLS when a server offers it, whatever the scheme: a tls:// URL must
          // make it required, so that a server without TLS is refused rather than used in clear.
          ...(fromUrls.servers.some((u) => u.startsWith('tls://')) ? { tls: {} } : {}),
          // nats.js otherwise builds an Error (a captured stack) for every request and its
          // timeout, to show where it began: 10% of the gateway's CPU in a publish profile.
          noAsyncTraces: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          timeout: opts.requestTimeoutMs,
        });
        break;
      } catch (err) {
        if (opts.aborted?.() === true) throw err;
        const { what, error } = explainConnectError(err, fromUrls, opts);
        failed(error, what);
        await sleep(250);
      }
    }
    let link: NatsLink | undefined;
    try {
      const jsm = await jetstreamManager(nc, { timeout: opts.requestTimeoutMs, checkAPI: false });
      link = new NatsLink(nc, jsm, opts.requestTimeoutMs, opts.stream);
      const dacks = dackStreamName(opts.stream);
      const streams: (Partial<StreamConfig> & { name: string })[] = [
        { name: opts.stream, subjects: [`${opts.stream}.>`], retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: opts.replicas },
        { name: dacks, subjects: [`${dacks}.>`], retention: RetentionPolicy.Limits, storage: StorageType.File, num_replicas: opts.replicas, max_msgs_per_subject: 1 },
      ];
      // JetStream may not answer yet (no meta leader, a peer still joining): try again until it
      // does, or until the caller gives up (close() during the start). Only MQ_ERR_CONFIG is final.
      for (;;) {
        try {
          link.streamReplicas = await link.#ensureStream(opts, streams[0]!);
          await link.#ensureStream(opts, streams[1]!);
          return link;
        } catch (err) {
          if (err instanceof BrokerError || opts.aborted?.() === true) throw err;
          failed(err, 'NATS JetStream does not answer yet');
          await sleep(250);
        }
      }
    } catch (err) {
      await nc.close();
      link?.closed();
      throw err;
    }
  }

  /** Makes sure the stream `cfg` exists as the engine needs it; resolves with its replicas. */
  async #ensureStream(opts: NatsLinkOptions, cfg: Partial<StreamConfig> & { name: string }): Promise<number> {
    let existing;
    try {
      existing = await this.jsm.streams.info(cfg.name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // Several gateways may start at once: "already in use" from add means another made it.
      try {
        await this.#addStream(cfg);
        opts.logger.info({ stream: cfg.name, replicas: cfg.num_replicas }, 'jetstream: stream created');
        return cfg.num_replicas!;
      } catch (addErr) {
        existing = await this.jsm.streams.info(cfg.name).catch(() => {
          throw addErr;
        });
      }
    }
    if (existing.config.retention !== cfg.retention) {
      throw new BrokerError('MQ_ERR_CONFIG', [
        `--nats-stream: the stream ${cfg.name} exists with ${existing.config.retention} retention, not ${cfg.retention}: it is not miniqueue's; name another stream`,
      ]);
    }
    const replicas = existing.config.num_replicas;
    if (replicas < cfg.num_replicas!) {
      // Scaling up: JetStream copies the messages to the new replicas, and the topics' consumers
      // (made without a replica count of their own) follow the stream.
      await this.jsm.streams.update(cfg.name, { ...existing.config, num_replicas: cfg.num_replicas });
      opts.logger.info({ stream: cfg.name, replicas: cfg.num_replicas, was: replicas }, 'jetstream: stream replicas changed');
      return cfg.num_replicas!;
    } else if (replicas > cfg.num_replicas!) {
      // Never scaled down by a gateway: --nats-replicas defaults to 1, and one gateway started
      // without it would take the redundancy of every gateway's messages away.
      opts.logger.warn(
        { stream: cfg.name, replicas, requested: cfg.num_replicas },
        `jetstream: the stream ${cfg.name} keeps its ${replicas} replicas: --nats-replicas ${cfg.num_replicas} does not scale a stream down (pass --nats-replicas ${replicas}, or scale it down with \`nats stream edit ${cfg.name} --replicas ${cfg.num_replicas}\`)`,
      );
    }
    return replicas;
  }

  /**
   * Adds a stream, retrying for a while when the cluster cannot place its replicas yet (a peer is
   * still joining: "no suitable peers for placement").
   */
  async #addStream(cfg: Partial<StreamConfig> & { name: string }): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.jsm.streams.add(cfg);
        return;
      } catch (err) {
        if (!(err instanceof JetStreamApiError && /peers/i.test(err.message)) || attempt >= 40) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  /**
   * +ACK of stream sequence `streamSeq`, answered by the server once the ack is processed ("double
   * ack"). Sent again while nobody received it (no responders: the consumer's leader is being
   * elected), up to {@link TRANSIENT_RETRY_MS}; a timeout is not retried (the ack may have been
   * processed). While the stream has more than one replica, the message is also removed through
   * the stream's group, in parallel (stream-msg-delete.ts: nats-server 2.9 answers the +ACK before
   * the consumer's group has it, and a consumer leader killed then loses it); it succeeds once
   * both did, else fails with the first error.
   */
  ack(ackSubject: string, streamSeq: number): Promise<void> {
    return new Promise((resolve, reject) => this.ackThen(ackSubject, streamSeq, (err) => (err === null ? resolve() : reject(err))));
  }

  /** {@link ack} with a callback (no promise: the ACK of every consumed message takes this path). */
  ackThen(ackSubject: string, streamSeq: number, cb: AckCallback): void {
    if (this.streamReplicas <= 1) return this.#acks.send(ackSubject, ACK, cb);
    let left = 2;
    let first: Error | null = null;
    const both = (err: Error | null): void => {
      if (err !== null && first === null) first = err;
      if (--left === 0) cb(first);
    };
    this.#acks.send(ackSubject, ACK, both);
    this.#acks.call(this.#msgDeleteSubject, msgDeleteBody(streamSeq), judgeMsgDelete, true, both);
  }

  /** -NAK, with a redelivery delay when `delayMs` > 0; answered by the server; retried as {@link ack}. */
  nak(ackSubject: string, delayMs: number): Promise<void> {
    const body = delayMs > 0 ? enc.encode(`-NAK {"delay":${delayMs * 1_000_000}}`) : NAK;
    return this.#acks.request(ackSubject, body);
  }

  /**
   * Runs `call` (given the time it may take, ms) and runs it again, with a pause doubling from
   * 50 ms to 1 s, while it fails with an error `retry` accepts and {@link TRANSIENT_RETRY_MS} has
   * not passed; then rethrows the last error. Stops at once when the connection is closed.
   */
  async #retrying<T>(retry: (err: unknown) => boolean, call: (timeoutMs: number) => Promise<T>): Promise<T> {
    const deadlineMs = Date.now() + TRANSIENT_RETRY_MS;
    let pauseMs = RETRY_FIRST_PAUSE_MS;
    for (;;) {
      const leftMs = deadlineMs - Date.now();
      try {
        return await call(Math.max(100, Math.min(this.#timeoutMs, leftMs)));
      } catch (err) {
        if (!retry(err) || this.nc.isClosed() || Date.now() + pauseMs >= deadlineMs) throw err;
        await sleep(pauseMs);
        pauseMs = Math.min(RETRY_MAX_PAUSE_MS, pauseMs * 2);
      }
    }
  }

  /** -NAK without waiting for the answer (a consumer closing, a spare given back). */
  nakNow(ackSubject: string): void {
    this.nc.publish(ackSubject, NAK);
  }

  /** +WPI: restarts the server's ack wait of a delivery. */
  working(ackSubject: string): void {
    this.nc.publish(ackSubject, WPI);
  }

  /**
   * Publishes and waits for the PubAck; resolves with the stream sequence. A publish that meets a
   * transient error ({@link isTransient}: a timeout, no responders, "jetstream is not enabled"
   * while a meta leader is elected, a node gone) is sent again with the same Nats-Msg-Id, so
   * JetStream stores it once, with a pause doubling from 50 ms to 1 s, for up to
   * {@link TRANSIENT_RETRY_MS}; then it fails (the caller answers MQ_ERR_STORAGE).
   */
  async publish(subject: string, payload: Uint8Array, hdrs?: MsgHdrs): Promise<number> {
    const msgID = `${this.#msgIdPrefix}${++this.#msgIdSeq}`;
    const attemptMs = Math.max(500, Math.floor(this.#timeoutMs / 2));
    const ack = await this.#retrying(isTransient, (timeoutMs) => {
      const opts = { timeout: Math.min(attemptMs, timeoutMs), msgID };
      return this.js.publish(subject, payload, hdrs === undefined ? opts : { ...opts, headers: hdrs });
    });
    return ack.seq;
  }

  readonly #msgIdPrefix = `${nuid.next()}-`;
  #msgIdSeq = 0;

  /** Headers for a copy: each value an integer. */
  static headers(values: Record<string, number>): MsgHdrs {
    const h = natsHeaders();
    for (const [k, v] of Object.entries(values)) h.set(k, String(v));
    return h;
  }
}

/** Whether `err` is a NATS request that got no answer within its timeout. */
export function isTimeout(err: unknown): boolean {
  return err instanceof Error && err.name === 'TimeoutError';
}

/** Tries of a consumer delete that time out (each within the request timeout) before it fails. */
const CONSUMER_DELETE_ATTEMPTS = 3;
/** Pause between consumer info requests while a consumer has no leader yet (ms). */
const LEADER_POLL_MS = 50;

/**
 * Deletes consumer `durable` of `stream`; resolves true if it existed, false if not. A consumer
 * just made (by a waiting subscriber's puller after an earlier delete) has no leader yet, and
 * JetStream 2.9 answers no delete of it until it has one: so the delete waits until its info
 * names a leader (for at most `leaderWaitMs`), and a delete that still times out is sent again,
 * up to {@link CONSUMER_DELETE_ATTEMPTS} times. Rejects with the last error otherwise.
 */
export async function deleteConsumer(link: NatsLink, stream: string, durable: string, leaderWaitMs: number): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      const deadlineMs = Date.now() + leaderWaitMs;
      let cluster = (await link.jsm.consumers.info(stream, durable)).cluster;
      while (cluster !== undefined && !cluster.leader && Date.now() < deadlineMs) {
        await new Promise((r) => setTimeout(r, LEADER_POLL_MS));
        cluster = (await link.jsm.consumers.info(stream, durable)).cluster;
      }
      await link.jsm.consumers.delete(stream, durable);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      if (!isTimeout(err) || attempt === CONSUMER_DELETE_ATTEMPTS) throw err;
    }
  }
}

/** Whether a JetStream API error is 10014 "consumer not found" (and nothing else: not a timeout, no stream). */
export function isConsumerNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === 10014;
}

/** Whether a JetStream API error says the stream or consumer does not exist. */
export function isNotFound(err: unknown): boolean {
  if (!(err instanceof JetStreamApiError)) return false;
  return err.status === 404 || err.code === 10059 || err.code === 10014;
}
