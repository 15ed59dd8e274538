/** The log writer's configuration and its counters (log-writer.ts). */
import type { Logger } from 'pino';
import type { FsyncPolicy } from './log-append.js';

export interface LogWriterOptions {
  fsync: FsyncPolicy;
  /** fdatasync period for `interval` (ms). */
  fsyncIntervalMs: number;
  /** Size at which the active segment is closed and a new one started (bytes). */
  segmentBytes: number;
  /** Largest batch written in one call (bytes); a single larger record is written alone. */
  batchMaxBytes?: number;
  /** fdatasyncs that may run at once with `always`, each on a descriptor of its own (default {@link SYNC_SLOTS}). */
  syncSlots?: number;
  logger: Logger;
}

export interface WriterStats {
  batches: number;
  records: number;
  bytes: number;
  fsyncs: number;
  failedBatches: number;
}
