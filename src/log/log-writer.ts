/**
 * The single writer of the segment log: one write in flight, natural batching, group commit.
 *
 * Records appended while a write (and its fdatasync) is in flight wait in `#pending` and go out
 * together in the next write, so with `fsync: 'always'` one fdatasync covers every record that
 * arrived while the previous one ran (group commit) and throughput grows with concurrency.
 * A record's `done` callback runs only after its bytes are written to the file, and with
 * `always` after they are fdatasynced (SPEC §1 `--fsync`).
 *
 * On a failed write or fdatasync (ENOSPC, EIO, EROFS) every record of the batch gets the error,
 * the file is cut back to its size before the batch, and the offsets of the batch are burnt
 * (never reused), so a half-written batch can never be replayed as success. The next batch
 * tries again: the broker recovers on its own when the disk works again.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { MAX_U48, encodeRecord, recordSizeBytes, type RecordType } from './record.js';
import type { Segment } from './segment.js';
import type { SegmentLog } from './segment-log.js';

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

export interface LogWriterOptions {
  fsync: FsyncPolicy;
  /** fdatasync period for `interval` (ms). */
  fsyncIntervalMs: number;
  /** Size at which the active segment is closed and a new one started (bytes). */
  segmentBytes: number;
  /** Largest batch written in one call (bytes); a single larger record is written alone. */
  batchMaxBytes?: number;
  logger: Logger;
}

/** Test-only seam: replaces fs.write / fs.fdatasync to inject storage failures. */
export interface WriterFs {
  write: (
    fd: number,
    buf: Buffer,
    offset: number,
    length: number,
    position: number,
    cb: (err: NodeJS.ErrnoException | null, written: number) => void,
  ) => void;
  fdatasync: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void;
}

/**
 * `fs.write` done synchronously, with the callback called before it returns. A batch goes to the
 * page cache in microseconds, far less than a round trip through libuv's thread pool, and the
 * event loop has nothing better to do meanwhile: answers go out sooner and batches stay large.
 * The fdatasync, which takes far longer, stays asynchronous (group commit continues meanwhile).
 */
function writeNow(
  fd: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
  cb: (err: NodeJS.ErrnoException | null, written: number) => void,
): void {
  let written: number;
  try {
    written = fs.writeSync(fd, buf, offset, length, position);
  } catch (err) {
    cb(err as NodeJS.ErrnoException, 0);
    return;
  }
  cb(null, written);
}

export interface WriterStats {
  batches: number;
  records: number;
  bytes: number;
  fsyncs: number;
  failedBatches: number;
}

export class LogWriter {
  readonly #log: SegmentLog;
  readonly #opts: Required<Omit<LogWriterOptions, 'logger'>>;
  readonly #logger: Logger;
  #pending: LogAppend[] = [];
  #pendingBytes = 0;
  #writing = false;
  #scheduled = false;
  #failing = false;
  #closed = false;
  /** Set by rollBeforeNextWrite (compaction). */
  #rollRequested = false;
  /** Segments written to since their last fdatasync (`interval`, `never`): a roll must not leave one unsynced. */
  readonly #dirty = new Set<Segment>();
  #intervalTimer: NodeJS.Timeout | undefined;
  #idleWaiters: (() => void)[] = [];
  fs: WriterFs = { write: writeNow, fdatasync: fs.fdatasync };
  readonly stats: WriterStats = { batches: 0, records: 0, bytes: 0, fsyncs: 0, failedBatches: 0 };
  /** Called after each successful fdatasync with its duration (ms), for metrics. */
  onFsync: ((durationMs: number) => void) | undefined;

  constructor(log: SegmentLog, opts: LogWriterOptions) {
    this.#log = log;
    this.#logger = opts.logger;
    this.#opts = {
      fsync: opts.fsync,
      fsyncIntervalMs: opts.fsyncIntervalMs,
      segmentBytes: opts.segmentBytes,
      batchMaxBytes: opts.batchMaxBytes ?? 4 * 1024 * 1024,
    };
    if (opts.fsync === 'interval') {
      this.#intervalTimer = setInterval(() => this.#intervalSync(), opts.fsyncIntervalMs);
      this.#intervalTimer.unref();
    }
  }

  /** Records waiting for the next write. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /** Bytes waiting for the next write. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  // --- compaction hook (issue #4) ---
  /**
   * The offset the next appended record will get if it is written: offsets go out in append
   * order, one per record, and a failed batch uses its offsets up too (only a failed roll fails
   * records without giving them offsets). The broker remembers it as the place of a
   * NACK/BACK/DELIVER, which compaction may copy into a RESTORE before that record is written.
   */
  get nextAppendOffset(): number {
    return this.#log.nextOffset + this.#pending.length;
  }

  /**
   * The next write starts a new segment (unless the active one is empty). Compaction writes the
   * records it copies forward between two such rolls, so they fill segments of their own instead
   * of sharing one with short-lived records (which would soon make it copy them again).
   */
  rollBeforeNextWrite(): void {
    this.#rollRequested = true;
  }
  // --- end of compaction hook ---

  /**
   * Queues a record. Every record appended in the same tick goes into one write. After
   * {@link close} the callback gets an Error with code `MQ_ERR_SHUTTING_DOWN`.
   */
  append(rec: LogAppend): void {
    if (this.#closed) {
      const err = Object.assign(new Error('log writer is closed'), { code: 'MQ_ERR_SHUTTING_DOWN' });
      process.nextTick(rec.done, err, rec);
      return;
    }
    this.#pending.push(rec);
    this.#pendingBytes += rec.sizeBytes;
    if (!this.#writing && !this.#scheduled) {
      this.#scheduled = true;
      process.nextTick(() => this.#flush());
    }
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#writing || this.#pending.length === 0) {
      if (!this.#writing) this.#notifyIdle();
      return;
    }
    let segment = this.#log.active;
    const full = segment.sizeBytes + this.#pending[0]!.sizeBytes > this.#opts.segmentBytes;
    if (segment.sizeBytes > 0 && (full || this.#rollRequested)) {
      this.#rollRequested = false;
      try {
        segment = this.#log.roll();
      } catch (err) {
        this.#pendingBytes = 0;
        this.#failBatch(this.#pending.splice(0), err as Error, segment, segment.sizeBytes);
        return;
      }
    }
    // Take records while they fit in this segment and in one batch (at least one record).
    const room = Math.min(this.#opts.segmentBytes - segment.sizeBytes, this.#opts.batchMaxBytes);
    let count = 0;
    let total = 0;
    while (count < this.#pending.length) {
      const size = this.#pending[count]!.sizeBytes;
      if (count > 0 && total + size > room) break;
      total += size;
      count++;
    }
    const batch = count === this.#pending.length ? this.#pending : this.#pending.slice(0, count);
    this.#pending = count === this.#pending.length ? [] : this.#pending.slice(count);
    this.#pendingBytes -= total;

    const buf = Buffer.allocUnsafe(total);
    const startPosition = segment.sizeBytes;
    let p = 0;
    let offset = this.#log.nextOffset;
    if (offset + batch.length > MAX_U48) throw new Error('offset space exhausted');
    for (let i = 0; i < batch.length; i++) {
      const rec = batch[i]!;
      rec.offset = offset++;
      rec.segment = segment;
      const end = encodeRecord(buf, p, rec.type, rec.offset, rec.topic, rec.messageId, rec.dueAtMs, rec.dackCount, rec.payload);
      if (rec.payload !== null) rec.payloadPosition = startPosition + end - rec.payload.length;
      p = end;
    }
    // Offsets are consumed even if the write fails, so a leftover of a failed batch can never
    // look like a continuation of the log (replay requires increasing offsets).
    this.#log.nextOffset = offset;
    this.#writing = true;
    this.#writeAll(segment, buf, 0, startPosition, batch);
  }

  #writeAll(segment: Segment, buf: Buffer, done: number, startPosition: number, batch: LogAppend[]): void {
    this.fs.write(segment.fd, buf, done, buf.length - done, startPosition + done, (err, written) => {
      if (err !== null) return this.#failBatch(batch, err, segment, startPosition);
      done += written;
      if (done < buf.length) return this.#writeAll(segment, buf, done, startPosition, batch);
      segment.sizeBytes = startPosition + buf.length;
      segment.lastOffset = batch[batch.length - 1]!.offset;
      if (this.#opts.fsync !== 'always') {
        this.#dirty.add(segment);
        return this.#complete(batch, buf.length);
      }
      const syncStarted = performance.now();
      this.fs.fdatasync(segment.fd, (syncErr) => {
        if (syncErr !== null) return this.#failBatch(batch, syncErr, segment, startPosition);
        this.stats.fsyncs++;
        this.onFsync?.(performance.now() - syncStarted);
        this.#complete(batch, buf.length);
      });
    });
  }

  #complete(batch: LogAppend[], bytes: number): void {
    this.stats.batches++;
    this.stats.records += batch.length;
    this.stats.bytes += bytes;
    if (this.#failing) {
      this.#failing = false;
      this.#logger.info('storage works again; writes are being made durable');
    }
    this.#writing = false;
    for (let i = 0; i < batch.length; i++) batch[i]!.done(null, batch[i]!);
    this.#next();
  }

  #failBatch(batch: LogAppend[], err: Error, segment: Segment, startPosition: number): void {
    this.stats.failedBatches++;
    if (!this.#failing) {
      this.#failing = true;
      this.#logger.error({ err, file: segment.path, position: startPosition }, 'log write failed; answering writes with errors until it works again');
    }
    // Cut away whatever part of the batch reached the file, so it is not replayed later.
    try {
      fs.ftruncateSync(segment.fd, startPosition);
      segment.sizeBytes = startPosition;
    } catch (truncErr) {
      this.#logger.error({ err: truncErr, file: segment.path }, 'could not cut a failed batch from the log');
    }
    this.#writing = false;
    for (let i = 0; i < batch.length; i++) batch[i]!.done(err, batch[i]!);
    this.#next();
  }

  #next(): void {
    if (this.#pending.length > 0) {
      this.#flush();
    } else {
      this.#notifyIdle();
    }
  }

  #notifyIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  #intervalSync(): void {
    for (const segment of this.#dirty) {
      this.#dirty.delete(segment);
      if (!segment.open) continue;
      const started = performance.now();
      this.fs.fdatasync(segment.fd, (err) => {
        if (err !== null) {
          if (segment.open) this.#dirty.add(segment);
          this.#logger.error({ err, file: segment.path }, 'periodic fdatasync failed');
          return;
        }
        this.stats.fsyncs++;
        this.onFsync?.(performance.now() - started);
      });
    }
  }

  /** Resolves when every record appended so far has been written (or failed). */
  drain(): Promise<void> {
    if (!this.#writing && this.#pending.length === 0 && !this.#scheduled) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Stops accepting records, waits for pending ones, fsyncs the active segment and every segment
   * written since its last fdatasync, and closes the log. Used by graceful shutdown (SPEC §1).
   */
  async close(): Promise<void> {
    await this.drain();
    this.#closed = true;
    if (this.#intervalTimer !== undefined) clearInterval(this.#intervalTimer);
    this.#dirty.add(this.#log.active);
    for (const segment of this.#dirty) {
      if (!segment.open) continue;
      try {
        fs.fdatasyncSync(segment.fd);
      } catch (err) {
        this.#logger.error({ err, file: segment.path }, 'final fdatasync failed');
      }
    }
    this.#dirty.clear();
    this.#log.close();
  }
}
