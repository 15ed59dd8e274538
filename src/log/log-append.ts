/**
 * One record on its way into the log (log-writer.ts): what the appender fills, what the writer
 * fills before it answers, and the callback shape.
 */
import { recordSizeBytes, type RecordType } from './record.js';
import type { Segment } from './segment.js';

export type FsyncPolicy = 'always' | 'interval' | 'never';

/** Called when a record is durable per policy (err null) or could not be written (err set). */
export type AppendCallback = (err: Error | null, append: LogAppend) => void;

/**
 * One record waiting to be written. The broker fills the first fields; the writer fills
 * `offset`, `segment` and `payloadPosition` before calling `done`.
 */
export class LogAppend {
  offset = -1;
  segment: Segment | null = null;
  /** Byte position of the payload in `segment`'s file (PUBLISH and RESTORE). */
  payloadPosition = -1;
  sizeBytes: number;
  /** Free slot for the appender (e.g. the reply callback), so `done` can be a shared function. */
  ctx: unknown = undefined;
  /**
   * When set, the record is a barrier: the writer encodes it only once every record appended
   * before it has completed (written and, with `--fsync always`, synced; or failed), first in its
   * batch, and calls this right before, when `payload`'s bytes may still be changed (its length
   * may not). The broker's COUNTERS records use it to carry values exact at their place in the log.
   */
  beforeEncode: ((rec: LogAppend) => void) | null = null;

  constructor(
    readonly type: RecordType,
    readonly topic: string,
    readonly messageId: number,
    readonly dueAtMs: number,
    readonly dackCount: number,
    readonly payload: Buffer | null,
    readonly done: AppendCallback,
  ) {
    this.sizeBytes = recordSizeBytes(type, topic.length, payload === null ? 0 : payload.length);
  }
}

