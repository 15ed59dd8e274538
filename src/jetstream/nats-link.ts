/**
 * The jetstream engine's connection to the cluster: connecting (credentials from the URL or the
 * engine options), making sure the two streams exist with the settings the engine relies on,
 * and the small JetStream calls the engine makes on messages (double-acked +ACK and -NAK,
 * in-progress signals, publishing copies).
 *
 * Streams (see subjects.ts for the names):
 * - `<stream>`, subjects `<stream>.>`, work-queue retention (a message is removed once acked),
 *   file storage, `--nats-replicas` replicas. A stream of that name that is not a work queue
 *   stops the start (it is someone else's); one with other replicas is updated.
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
import { dackStreamName } from './subjects.js';

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
  logger: Logger;
}

/** Sends of one publish at most (see {@link NatsLink.publish}). */
const PUBLISH_ATTEMPTS = 4;

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

/** Credentials taken out of the URLs (nats.js wants them as options) and the URLs without them. */
export function splitCredentials(servers: string[]): { servers: string[]; user?: string; password?: string } {
  let user: string | undefined;
  let password: string | undefined;
  const plain = servers.map((s) => {
    const url = new URL(s);
    if (url.username !== '') user = decodeURIComponent(url.username);
    if (url.password !== '') password = decodeURIComponent(url.password);
    url.username = '';
    url.password = '';
    return `${url.protocol}//${url.host}`;
  });
  return { servers: plain, ...(user === undefined ? {} : { user }), ...(password === undefined ? {} : { password }) };
}

export class NatsLink {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly #timeoutMs: number;

  private constructor(nc: NatsConnection, jsm: JetStreamManager, timeoutMs: number) {
    this.nc = nc;
    this.jsm = jsm;
    this.js = jetstream(nc, { timeout: timeoutMs });
    this.#timeoutMs = timeoutMs;
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
    const nc = await connect({
      servers: fromUrls.servers,
      name: 'miniqueue',
      ...(user === undefined ? {} : { user }),
      ...(pass === undefined ? {} : { pass }),
      ...(opts.token === undefined ? {} : { token: opts.token }),
      waitOnFirstConnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: opts.requestTimeoutMs,
    });
    try {
      const jsm = await jetstreamManager(nc, { timeout: opts.requestTimeoutMs, checkAPI: false });
      const link = new NatsLink(nc, jsm, opts.requestTimeoutMs);
      const dacks = dackStreamName(opts.stream);
      const streams: (Partial<StreamConfig> & { name: string })[] = [
        { name: opts.stream, subjects: [`${opts.stream}.>`], retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: opts.replicas },
        { name: dacks, subjects: [`${dacks}.>`], retention: RetentionPolicy.Limits, storage: StorageType.File, num_replicas: opts.replicas, max_msgs_per_subject: 1 },
      ];
      // JetStream may not answer yet (no meta leader, a peer still joining): try again until it
      // does, or until the caller gives up (close() during the start). Only MQ_ERR_CONFIG is final.
      let lastWarnMs = 0;
      for (;;) {
        try {
          for (const cfg of streams) await link.#ensureStream(opts, cfg);
          return link;
        } catch (err) {
          if (err instanceof BrokerError || opts.aborted?.() === true) throw err;
          if (Date.now() - lastWarnMs >= 5000) {
            lastWarnMs = Date.now();
            opts.logger.warn({ err }, 'jetstream: the cluster does not answer yet; retrying');
          }
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  async #ensureStream(opts: NatsLinkOptions, cfg: Partial<StreamConfig> & { name: string }): Promise<void> {
    let existing;
    try {
      existing = await this.jsm.streams.info(cfg.name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // Several gateways may start at once: "already in use" from add means another made it.
      try {
        await this.#addStream(cfg);
        opts.logger.info({ stream: cfg.name, replicas: cfg.num_replicas }, 'jetstream: stream created');
        return;
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
    if (existing.config.num_replicas !== cfg.num_replicas) {
      await this.jsm.streams.update(cfg.name, { ...existing.config, num_replicas: cfg.num_replicas });
      opts.logger.info({ stream: cfg.name, replicas: cfg.num_replicas }, 'jetstream: stream replicas changed');
    }
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

  /** +ACK, answered by the server once the ack is processed ("double ack"). */
  async ack(ackSubject: string): Promise<void> {
    await this.nc.request(ackSubject, ACK, { timeout: this.#timeoutMs });
  }

  /** -NAK, with a redelivery delay when `delayMs` > 0; answered by the server. */
  async nak(ackSubject: string, delayMs: number): Promise<void> {
    const body = delayMs > 0 ? enc.encode(`-NAK {"delay":${delayMs * 1_000_000}}`) : NAK;
    await this.nc.request(ackSubject, body, { timeout: this.#timeoutMs });
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
   * Publishes and waits for the PubAck; resolves with the stream sequence. A publish that times
   * out or finds no responder (a stream leader being elected, a node gone) is sent again, up to
   * {@link PUBLISH_ATTEMPTS} times in all, with the same Nats-Msg-Id: JetStream stores it once.
   */
  async publish(subject: string, payload: Uint8Array, hdrs?: MsgHdrs): Promise<number> {
    const msgID = `${this.#msgIdPrefix}${++this.#msgIdSeq}`;
    const timeout = Math.max(500, Math.floor(this.#timeoutMs / 2));
    const opts = { timeout, msgID, retries: PUBLISH_ATTEMPTS };
    const ack = await this.js.publish(subject, payload, hdrs === undefined ? opts : { ...opts, headers: hdrs });
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

/** Whether a JetStream API error says the stream or consumer does not exist. */
export function isNotFound(err: unknown): boolean {
  if (!(err instanceof JetStreamApiError)) return false;
  return err.status === 404 || err.code === 10059 || err.code === 10014;
}
