/**
 * The engine seam (STYLE.md "The engine seam", SPEC §9): the one interface the protocol adapters
 * (HTTP/2, RESP) use to reach the queues. The embedded segment-log broker (broker/broker.ts) is
 * its implementation today; a NATS JetStream engine is the next one. Nothing here knows about
 * files, sockets or a protocol's wire format.
 *
 * Layering: `engine/` imports only `errors.ts`; `broker/` implements it; `protocols/` import it
 * and `errors.ts`, nothing else of the broker. Limits that both protocols must apply alike (the
 * DACK bound, deliveries in flight per consumer) live here, so they cannot drift apart.
 *
 * Calling conventions, for every method below:
 * - Bad input is thrown synchronously as a BrokerError (codes listed per method) and changes
 *   nothing. Outcomes that depend on storage arrive through the callback, once, never
 *   synchronously from inside the call.
 * - Deliveries are handed to {@link ConsumerHandlers.onDelivery} synchronously from inside engine
 *   calls (a request, another consumer's settle, a publish completion, a timer).
 * - Durations are milliseconds; topic names follow SPEC §2 (topic-name.ts).
 */
import { BrokerError } from '../errors.js';
import type { LoadingStatus } from './loading-status.js';

/** Largest DACK delay in seconds, inclusive (SPEC §2 `DACK n`; about 31.7 years). */
export const MAX_DACK_SECONDS = 999_999_999;

/** Largest DACK delay {@link ConsumerHandle.settle} accepts, in ms, inclusive. */
export const MAX_DACK_DELAY_MS = MAX_DACK_SECONDS * 1000;

/**
 * The DACK delay of a protocol's `DACK n` (HTTP/2 `"DACK 5"`, RESP `DACK 5` and `DACK topic id 5`),
 * in ms, checked here so that every protocol refuses a bad one with the same code and text.
 * `seconds` is the argument as the protocol parsed it: undefined when it is missing, extra, or
 * not written as a decimal whole number. Throws MQ_ERR_BAD_ARGUMENT unless it is a whole number
 * from 0 to {@link MAX_DACK_SECONDS}, inclusive.
 */
export function dackDelayMs(seconds: number | undefined): number {
  if (seconds === undefined || !Number.isInteger(seconds) || seconds < 0 || seconds > MAX_DACK_SECONDS) {
    throw new BrokerError('MQ_ERR_BAD_ARGUMENT', [`DACK needs a whole number of seconds from 0 to ${MAX_DACK_SECONDS}`]);
  }
  return seconds * 1000;
}

/**
 * Most deliveries one consumer may hold in flight at once (STYLE.md "limits on everything").
 * RESERVE past it is refused with MQ_ERR_BAD_ARGUMENT; a stream consumer holds one.
 */
export const MAX_IN_FLIGHT_PER_CONSUMER = 65_536;

/** Suffix of the dead-letter topic of a topic (SPEC §7 "Dead letters"): `jobs` → `jobs.dead`. */
export const DEAD_LETTER_SUFFIX = '.dead';

/** How a delivery is settled (SPEC §2): done, back to the front, back to the end, held for a delay. */
export type SettleKind = 'ACK' | 'NACK' | 'BACK' | 'DACK';

/** Called once a publish is durable (`id` = the new message id) or failed (`err` set, `id` -1). */
export type PublishCallback = (err: BrokerError | null, id: number) => void;

/** Called once a settle or delete is durable, or failed. */
export type DoneCallback = (err: BrokerError | null) => void;

/**
 * One delivery: one attempt to hand a message to a consumer (STYLE.md "Naming"). A read-only view
 * that the engine owns; adapters keep it while the delivery is in flight and never change it.
 */
export interface Delivery {
  /**
   * Unique per delivery in this process (never reused): a settle naming a delivery that has
   * ended (settled, expired, its consumer closed) is recognisably stale.
   */
  readonly deliveryId: number;
  /** The message's id, unique in the whole log (SPEC §2); the same on every redelivery. */
  readonly messageId: number;
  readonly topic: string;
  /** 1 on the message's first delivery in its topic, +1 per redelivery (also across restarts). */
  readonly attempt: number;
  /** How many times the message was DACKed so far (SPEC §2). */
  readonly dackCount: number;
  /**
   * The payload bytes: a Buffer the engine may share (do not change it), or a copy read back
   * from storage. Throws MQ_ERR_NOT_IN_FLIGHT when the message is gone (its topic deleted), and
   * the storage read error when it cannot be read back.
   */
  readonly payload: Buffer;
}

/** What a consumer is told. Called synchronously from inside engine calls. */
export interface ConsumerHandlers {
  /** `delivery` is now in flight to this consumer, until it is settled or expires. */
  onDelivery(delivery: Delivery): void;
  /**
   * `--ack-timeout` took `delivery` back (SPEC §7): it went back to the front of its topic, or,
   * `deadLettered`, to `<topic>.dead` under `--max-deliveries`. A settle of it now throws
   * MQ_ERR_NOT_IN_FLIGHT. Called after the engine's state is updated.
   */
  onExpired?(delivery: Delivery, deadLettered: boolean): void;
  /**
   * The topic of `delivery` was deleted while it was in flight to this consumer: the delivery is
   * over (a settle or touch of it throws MQ_ERR_TOPIC_DELETED). Called after the engine's state
   * is updated; an engine that cannot tell may never call it.
   */
  onTopicDeleted?(delivery: Delivery): void;
}

/**
 * One attached receiver (an HTTP/2 subscribe stream, a RESP connection). It can work RESERVE
 * style (request / take / cancel, many deliveries in flight) or stream style (subscribe, then
 * request one at a time; see stream-consumer.ts).
 */
export interface ConsumerHandle {
  /** Deliveries in flight to this consumer now. */
  readonly inFlightCount: number;
  /**
   * Asks for the next message of `topic`: delivered through onDelivery at once if one is ready
   * (before this returns), otherwise as soon as one is. One request at a time: a new one
   * replaces the waiting one. Throws MQ_ERR_BAD_TOPIC, MQ_ERR_LOADING, MQ_ERR_BAD_ARGUMENT (at
   * {@link MAX_IN_FLIGHT_PER_CONSUMER}).
   */
  request(topic: string): void;
  /**
   * Takes the next ready message of `topic` without waiting: the delivery (onDelivery is not
   * called), or undefined when none is ready. Throws as {@link request}.
   */
  take(topic: string): Delivery | undefined;
  /**
   * For an engine whose {@link take} cannot see every ready message (one that must ask a remote
   * store, like the jetstream engine); absent on an engine whose take is final (the log engine,
   * where a RESERVE without a timeout calls take alone). Asks for a message of `topic` that is
   * ready now: it is delivered through onDelivery as for {@link request} (at once when the engine
   * holds one), or, once the store answered that none is ready (or could not be asked), the wait
   * ends and `onNone` is called, once, never synchronously. Replaces a waiting request;
   * {@link cancel} stops it without calling `onNone`. Throws as {@link request}.
   */
  requestIfReady?(topic: string, onNone: () => void): void;
  /** Stops waiting for the requested delivery, if any (RESERVE timeout). */
  cancel(): void;
  /** Counts this consumer as a stream subscriber of `topic` in stats. Throws MQ_ERR_BAD_TOPIC. */
  subscribe(topic: string): void;
  /**
   * Settles delivery `deliveryId` (SPEC §2): ACK removes the message for good, NACK puts it at
   * the front, BACK at the end, DACK holds it for `delayMs` (integer, 0 ..
   * {@link MAX_DACK_DELAY_MS}; ignored otherwise) and then returns it to the front with
   * dackCount + 1. Takes effect at once; `cb` runs when it is durable (MQ_ERR_STORAGE,
   * MQ_ERR_SHUTTING_DOWN otherwise; the message is then back at the front).
   * Throws MQ_ERR_NOT_IN_FLIGHT (unknown or stale delivery, or another consumer's),
   * MQ_ERR_TOPIC_DELETED, MQ_ERR_BAD_ARGUMENT (delay), MQ_ERR_LOADING, MQ_ERR_SHUTTING_DOWN.
   */
  settle(deliveryId: number, kind: SettleKind, delayMs: number, cb: DoneCallback): void;
  /**
   * Restarts the `--ack-timeout` timer of delivery `deliveryId` (SPEC §7 TOUCH).
   * Throws MQ_ERR_NOT_IN_FLIGHT, MQ_ERR_TOPIC_DELETED.
   */
  touch(deliveryId: number): void;
  /**
   * The delivery of message `messageId` in flight to this consumer, for protocols whose settles
   * name the message (RESP `ACK topic id`); with `topic`, the message must belong to it. A
   * delivery whose topic was deleted meanwhile is still found until it is settled (a settle or
   * touch of it throws MQ_ERR_TOPIC_DELETED; the settle ends it). Throws MQ_ERR_NOT_IN_FLIGHT.
   */
  deliveryOf(messageId: number, topic?: string): Delivery;
  /**
   * The consumer went away: its request is cancelled and every delivery in flight to it is
   * NACKed, keeping their order at the front (SPEC §2). Idempotent.
   */
  close(): void;
}

/**
 * Per-topic figures of SPEC §7 Stats: the body of `GET /topics`, RESP `STATS`, the dashboard's
 * rows and metrics' gauges. Counts of messages. The one declaration: the client package
 * (`miniqueue/client`) imports it as a type.
 */
export interface TopicStats {
  /** The topic name. */
  topic: string;
  /** Waiting to be delivered. */
  ready: number;
  /** Delivered and not yet settled. */
  inFlight: number;
  /** DACKed and waiting for their due time. */
  delayed: number;
  /** Attached subscribers (HTTP/2 streams and RESP consumers). */
  consumers: number;
  /** Published since the topic was created (survives restarts). */
  published: number;
  /** Acked since the topic was created. */
  acked: number;
}

/** Per-topic counters for metrics (SPEC §7 Metrics), since the topic was created or the process started. */
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

/** Whether the engine can serve (SPEC §8): `/healthz`, INFO `loading`. */
export interface EngineHealth {
  /** Still recovering its state (replaying the log); requests are answered MQ_ERR_LOADING. */
  loading: boolean;
  /** The storage error writes are failing with now, or null when they are made durable. */
  storageFailure: Error | null;
}

/**
 * Figures of the engine's storage for INFO and metrics; an engine without a local log reports
 * zeros where a figure has no meaning for it.
 */
export interface StorageStats {
  logBytes: number;
  logSegments: number;
  writtenBytes: number;
  writtenRecords: number;
  /** Write calls (batches of records). */
  writeBatches: number;
  failedBatches: number;
  fsyncs: number;
  compaction: {
    runs: number;
    segmentsRemoved: number;
    bytesReclaimed: number;
    messagesCopied: number;
    bytesCopied: number;
    failures: number;
  };
}

/** The queues, as the protocol adapters see them. */
export interface QueueEngine {
  /** True until the engine has recovered its state; most calls throw MQ_ERR_LOADING meanwhile. */
  readonly loading: boolean;
  /**
   * How far the recovery has come while {@link loading}, for the wait hints clients are given
   * (`Retry-After`, INFO `loading_*`; see loading-status.ts); null when not loading, before the
   * recovery has begun, or when the engine measures no progress (a remote engine that only
   * connects).
   */
  readonly loadingProgress: LoadingStatus | null;
  /**
   * False for an engine that keeps no log on this machine (a gateway over NATS JetStream): INFO
   * says `aof_enabled:0`. Absent means true.
   */
  readonly localLog?: boolean;
  /** Live messages (ready, in flight, delayed) across all topics. */
  readonly messageCount: number;
  /**
   * The largest payload {@link publish} accepts now, in bytes: `--max-message-bytes`, or less
   * (the jetstream engine lowers it to fit the NATS server's max_payload once connected). The
   * protocols refuse larger bodies with it before reading them.
   */
  readonly maxMessageBytes: number;
  /**
   * Publishes `payload` (0 .. `--max-message-bytes` bytes) to `topic`, creating the topic. The
   * engine keeps `payload`: the caller must not reuse its memory. `cb` runs once it is durable.
   * Throws MQ_ERR_BAD_TOPIC, MQ_ERR_TOO_LARGE, MQ_ERR_LOADING, MQ_ERR_SHUTTING_DOWN.
   */
  publish(topic: string, payload: Buffer, cb: PublishCallback): void;
  /** A new consumer; it receives nothing until it requests or subscribes. */
  openConsumer(handlers: ConsumerHandlers): ConsumerHandle;
  /**
   * Deletes `topic` with its ready, delayed and in-flight messages (SPEC §2). `cb` gets whether it
   * existed, once the delete is durable. Throws MQ_ERR_BAD_TOPIC, MQ_ERR_LOADING, MQ_ERR_SHUTTING_DOWN.
   */
  deleteTopic(topic: string, cb: (err: BrokerError | null, existed: boolean) => void): void;
  /** Names of the existing topics, sorted. */
  topicNames(): string[];
  /** Stats of one topic, or undefined when it does not exist. */
  topicStats(topic: string): TopicStats | undefined;
  /** Counters of one topic, or undefined when it does not exist. */
  topicCounters(topic: string): TopicCounters | undefined;
  /** Storage figures, or undefined while loading. */
  storageStats(): StorageStats | undefined;
  /** Loading, and whether storage is failing (resolves, never rejects). */
  health(): Promise<EngineHealth>;
  /** Graceful shutdown: refuse new work, finish what is pending, release the storage. */
  close(): Promise<void>;
}
