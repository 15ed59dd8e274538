/**
 * The options of the segment-log broker (broker.ts), validated by server/config.ts.
 */
import type { Logger } from 'pino';
import type { FsyncPolicy } from '../log/log-writer.js';

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
  /** Deliveries one consumer may hold in flight; default MAX_IN_FLIGHT_PER_CONSUMER (engine/queue-engine.ts). */
  maxInFlightPerConsumer?: number;
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
