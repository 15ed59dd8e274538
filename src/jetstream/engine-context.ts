/**
 * The JetStream engine's options and what its parts (pull requests, settle operations, dead
 * letters) share of it: one connection, one stream, one set of pullers, one list of calls in
 * flight that close() waits for.
 */
import type { Logger } from 'pino';
import type { NatsLink, NatsLinkOptions } from './nats-link.js';
import type { TopicPuller } from './topic-puller.js';

export interface JetStreamEngineOptions extends Omit<NatsLinkOptions, 'requestTimeoutMs' | 'logger' | 'aborted' | 'attemptFailed'> {
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

/** The options with every default filled in. */
export type ResolvedEngineOptions = Required<Omit<JetStreamEngineOptions, 'user' | 'password' | 'token'>> & JetStreamEngineOptions;

/** What the engine's parts ask of the engine. */
export interface JsEngineContext {
  readonly opts: ResolvedEngineOptions;
  readonly logger: Logger;
  /** The connection; null until open() connected (no part runs before that). */
  readonly link: NatsLink | null;
  /** Whether close() was called. */
  readonly closing: boolean;
  /** The puller of a valid topic name (made on first use). */
  puller(topic: string): TopicPuller;
  /** The puller of `topic` if this gateway has one. */
  existingPuller(topic: string): TopicPuller | undefined;
  /** Adds `p` to the calls close() waits for; returns it. */
  track<T>(p: Promise<T>): Promise<T>;
  /** A publish through this gateway reached `topic` (TOPICS lists it before the next snapshot). */
  notePublished(topic: string): void;
}
