/**
 * The single writer of the segment log: batches per event-loop turn, pipelined group commit.
 *
 * Records appended during one event-loop turn (every request read from every socket in it) are
 * encoded into one buffer and written to the page cache at the end of the turn, as Redis does in
 * `beforeSleep`. With `fsync: 'always'` one fdatasync then covers everything written so far; a
 * batch written while an fdatasync is in flight starts one of its own beside it, on another
 * descriptor of the file, up to {@link SYNC_SLOTS} at once (group-commit.ts), so a record waits
 * for at most one sync after it is written. The fdatasync runs on libuv's thread pool (or on the
 * event loop while its moving average is below {@link SYNC_ON_LOOP_MAX_MS}, off by default:
 * measured slower here).
 * A record's `done` callback runs only after its bytes are written to the file, and with
 * `always` after an fdatasync that started after that write returned (SPEC §1 `--fsync`).
 *
 * On a failed write every record of that batch gets the error; on a failed fdatasync every record
 * written since the last good one does. The file is cut back to where the failed records began,
 * and their offsets are burnt (never reused), so a half-written batch can never be replayed as
 * success. The next batch tries again: the broker recovers on its own when the disk works again.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { BrokerError } from '../errors.js';
import { GroupCommit, type SyncTicket } from './group-commit.js';
import { LogAppend, type FsyncPolicy } from './log-append.js';
import { MAX_U48, encodeRecord } from './record.js';
import type { Segment } from './segment.js';
import type { SegmentLog } from './segment-log.js';
import type { LogWriterOptions, WriterStats } from './writer-options.js';
import { FSYNC_EWMA_WEIGHT, SYNC_ON_LOOP_MAX_MS, SYNC_SLOTS, WRITE_ON_THREAD_POOL, fdatasyncNow, writeNow, type WriterFs } from './writer-io.js';

export { LogAppend, type AppendCallback, type FsyncPolicy, type MessageRecordType } from './log-append.js';
export { SYNC_ON_LOOP_MAX_MS, SYNC_SLOTS, type WriterFs } from './writer-io.js';
export type { LogWriterOptions, WriterStats } from './writer-options.js';


export class LogWriter {
  readonly #log: SegmentLog;
  readonly #opts: Required<Omit<LogWriterOptions, 'logger'>>;
  readonly #logger: Logger;
  /** Records appended and not yet written. */
  #pending: LogAppend[] = [];
  #pendingBytes = 0;
  /** A write is in flight (always, unless a test injects an asynchronous `fs.write`). */
  #writing = false;
  /** A flush is scheduled for the end of this event-loop turn. */
  #scheduled = false;
  /** Group commit (`always`): batches written and not yet durable, fdatasyncs in flight (group-commit.ts). */
  readonly #commit: GroupCommit;
  /** Bumped at every cut of the active file, so a write that was in flight across a cut is failed too. */
  #cutGeneration = 0;
  #flushing = false;
  /** Moving average of fdatasync durations (ms): decides where the next one runs. */
  #fsyncEwmaMs = 0;
  #failing = false;
  /** The error of the last failed write, fdatasync or roll; null once records are durable again (read by /healthz). */
  #failure: Error | null = null;
  /** Bytes of the records that failed last: a probe writes as many (see probe()). */
  #failedBytes = 0;
  #closed = false;
  /** Set by rollBeforeNextWrite (compaction). */
  #rollRequested = false;
  /** Segments written to since their last fdatasync (`interval`, `never`): a roll must not leave one unsynced. */
  readonly #dirty = new Set<Segment>();
  #intervalTimer: NodeJS.Timeout | undefined;
  #idleWaiters: (() => void)[] = [];
  fs: WriterFs = { write: WRITE_ON_THREAD_POOL ? fs.write : writeNow, fdatasync: fs.fdatasync };
  readonly stats: WriterStats = { batches: 0, records: 0, bytes: 0, fsyncs: 0, failedBatches: 0 };
  /** Called after each successful fdatasync with its duration (ms), for metrics. */
  onFsync: ((durationMs: number) => void) | undefined;
  readonly #flushTick = (): void => {
    this.#scheduled = false;
    this.#flush();
  };

  constructor(log: SegmentLog, opts: LogWriterOptions) {
    this.#log = log;
    this.#logger = opts.logger;
    this.#opts = {
      fsync: opts.fsync,
      fsyncIntervalMs: opts.fsyncIntervalMs,
      segmentBytes: opts.segmentBytes,
      batchMaxBytes: opts.batchMaxBytes ?? 4 * 1024 * 1024,
      syncSlots: opts.syncSlots ?? SYNC_SLOTS,
    };
    this.#commit = new GroupCommit(this.#opts.syncSlots);
    if (opts.fsync === 'always') log.active.openSyncFds(this.#commit.slots - 1);
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
   * Queues a record. Every record appended in the same event-loop turn goes into one write at the
   * end of the turn (as Redis batches in `beforeSleep`), so the requests read from every socket
   * in one turn share a write and an fdatasync. After {@link close} the callback gets an Error with
   * code `MQ_ERR_SHUTTING_DOWN`.
   */
  append(rec: LogAppend): void {
    if (this.#closed) {
      const err = new BrokerError('MQ_ERR_SHUTTING_DOWN');
      process.nextTick(rec.done, err, rec);
      return;
    }
    this.#pending.push(rec);
    this.#pendingBytes += rec.sizeBytes;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushTick);
    }
  }

  /** Whether nothing is pending, written-but-unsynced, or in flight. */
  get #idle(): boolean {
    return !this.#writing && !this.#scheduled && this.#pending.length === 0 && !this.#commit.unconfirmed && !this.#commit.syncing;
  }

  /**
   * Writes what is pending to the page cache, one batch per write, without waiting for an
   * fdatasync in flight, and starts an fdatasync for what it wrote (beside those in flight, while
   * a slot is free; else the next slot to free up takes it).
   */
  #flush(): void {
    // Completions call back into #flush; with synchronous writes they run inside this loop.
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      for (;;) {
        this.#flushLoop();
        // One fdatasync for everything written in this turn. On the loop it completes before it
        // returns, and its callbacks may have appended more (or a roll was waiting for it).
        if (!this.#commit.uncovered || this.#writing) break;
        const segment = this.#commit.oldestSegment!;
        const slot = this.#commit.freeSlot(segment.syncSlots);
        if (slot < 0) break;
        this.#startSync(segment, slot);
        if (this.#pending.length === 0) break;
      }
    } finally {
      this.#flushing = false;
    }
    if (this.#idle) this.#notifyIdle();
  }

  #flushLoop(): void {
    while (!this.#writing && this.#pending.length > 0) {
      let segment = this.#log.active;
      const first = this.#pending[0]!;
      // A barrier (LogAppend.beforeEncode) waits until every earlier record completed.
      if (first.beforeEncode !== null && this.#commit.unconfirmed) return;
      const full = segment.sizeBytes + first.sizeBytes > this.#opts.segmentBytes;
      if (segment.sizeBytes > 0 && (full || this.#rollRequested)) {
        // Records in the old segment must be durable before the roll: wait for the syncs to end
        // (#onSynced flushes again). Rolls are rare (one per --segment-bytes).
        if (this.#commit.syncing || this.#commit.unconfirmed) return;
        this.#rollRequested = false;
        try {
          const old = segment;
          segment = this.#log.roll();
          old.closeSyncFds();
          if (this.#opts.fsync === 'always') segment.openSyncFds(this.#commit.slots - 1);
        } catch (err) {
          this.#pendingBytes = 0;
          this.stats.failedBatches++;
          this.#failRecords(this.#pending.splice(0), err as Error, segment);
          continue;
        }
      }
      this.#writeBatch(segment);
    }
  }

  /** Encodes the records that fit in `segment` and in one batch (at least one) and writes them. */
  #writeBatch(segment: Segment): void {
    const room = Math.min(this.#opts.segmentBytes - segment.sizeBytes, this.#opts.batchMaxBytes);
    let count = 0;
    let total = 0;
    while (count < this.#pending.length) {
      const rec = this.#pending[count]!;
      const size = rec.sizeBytes;
      if (count > 0 && (total + size > room || rec.beforeEncode !== null)) break;
      total += size;
      count++;
    }
    const batch = count === this.#pending.length ? this.#pending : this.#pending.slice(0, count);
    this.#pending = count === this.#pending.length ? [] : this.#pending.slice(count);
    this.#pendingBytes -= total;

    const first = batch[0]!;
    if (first.beforeEncode !== null) first.beforeEncode(first);
    const buf = Buffer.allocUnsafe(total);
    const startPosition = segment.sizeBytes;
    let p = 0;
    let offset = this.#log.nextOffset;
    if (offset + batch.length > MAX_U48) throw new Error('offset space exhausted');
    for (let i = 0; i < batch.length; i++) {
      const rec = batch[i]!;
      rec.offset = offset++;
      rec.segment = segment;
      const end = encodeRecord(buf, p, rec);
      if (rec.payload !== null) rec.payloadPosition = startPosition + end - rec.payload.length;
      p = end;
    }
    // Offsets are consumed even if the write fails, so a leftover of a failed batch can never
    // look like a continuation of the log (replay requires increasing offsets).
    this.#log.nextOffset = offset;
    // The next write goes after this one even before it completes (a cut rewinds it).
    segment.sizeBytes = startPosition + total;
    this.#writing = true;
    this.#writeAll(segment, buf, 0, startPosition, batch, this.#cutGeneration);
  }

  #writeAll(segment: Segment, buf: Buffer, done: number, startPosition: number, batch: LogAppend[], generation: number): void {
    this.fs.write(segment.fd, buf, done, buf.length - done, startPosition + done, (err, written) => {
      if (err === null && generation !== this.#cutGeneration) {
        // An fdatasync failed while this write was in flight and cut the file before it.
        err = Object.assign(new Error('an earlier batch failed to sync'), { code: 'EIO' });
      }
      if (err !== null) {
        this.#writing = false;
        this.#cut(segment, Math.min(startPosition, segment.sizeBytes), err);
        this.#failRecords(batch, err, segment);
        return this.#flush();
      }
      done += written;
      if (done < buf.length) return this.#writeAll(segment, buf, done, startPosition, batch, generation);
      this.#writing = false;
      segment.lastOffset = batch[batch.length - 1]!.offset;
      this.stats.batches++;
      this.stats.bytes += buf.length;
      if (this.#opts.fsync !== 'always') {
        this.#dirty.add(segment);
        this.#complete(batch);
        this.#flush();
        return;
      }
      this.#commit.written(batch, segment, startPosition);
      this.#flush(); // a no-op inside #flush, which syncs once its loop has written everything
    });
  }

  /** Starts one fdatasync of `segment` on descriptor `slot`, covering every batch written so far. */
  #startSync(segment: Segment, slot: number): void {
    const ticket: SyncTicket = this.#commit.begin(slot);
    const syncStarted = performance.now();
    const onLoop = slot === 0 && this.fs.fdatasync === fs.fdatasync && this.#fsyncEwmaMs < SYNC_ON_LOOP_MAX_MS;
    (onLoop ? fdatasyncNow : this.fs.fdatasync)(segment.syncFd(slot), (syncErr) => {
      if (syncErr !== null) {
        // Nothing written since the last good fdatasync is known to be durable: fail it all.
        const failed = this.#commit.failed(ticket);
        if (failed.length > 0) {
          this.#cut(segment, failed[0]!.startPosition, syncErr);
          for (const b of failed) this.#failRecords(b.records, syncErr, segment);
        }
      } else {
        this.stats.fsyncs++;
        const ms = performance.now() - syncStarted;
        this.#fsyncEwmaMs += (ms - this.#fsyncEwmaMs) * FSYNC_EWMA_WEIGHT;
        this.onFsync?.(ms);
        for (const b of this.#commit.succeeded(ticket)) this.#complete(b.records);
      }
      this.#flush();
    });
  }

  /** Answers `batch` as durable per policy. */
  #complete(batch: LogAppend[]): void {
    this.stats.records += batch.length;
    this.#failure = null;
    if (this.#failing) {
      this.#failing = false;
      this.#logger.info('storage works again; writes are being made durable');
    }
    for (let i = 0; i < batch.length; i++) batch[i]!.done(null, batch[i]!);
  }

  /** Cuts `segment` back to `position` (whatever part of failed batches reached the file), so it is not replayed later. */
  #cut(segment: Segment, position: number, err: Error): void {
    this.stats.failedBatches++;
    if (!this.#failing) {
      this.#failing = true;
      this.#logger.error({ err, file: segment.path, position }, 'log write failed; answering writes with errors until it works again');
    }
    this.#cutGeneration++;
    try {
      fs.ftruncateSync(segment.fd, position);
    } catch (truncErr) {
      this.#logger.error({ err: truncErr, file: segment.path }, 'could not cut a failed batch from the log');
    }
    // No unconfirmed batch lies past `position`: a failed write is the newest, and a failed
    // fdatasync has failed them all already (GroupCommit.failed).
    segment.sizeBytes = position;
  }

  #failRecords(records: LogAppend[], err: Error, segment: Segment): void {
    this.#failure = err;
    this.#failedBytes = 0;
    for (let i = 0; i < records.length; i++) this.#failedBytes += records[i]!.sizeBytes;
    if (!this.#failing) {
      this.#failing = true;
      this.#logger.error({ err, file: segment.path }, 'log write failed; answering writes with errors until it works again');
    }
    for (let i = 0; i < records.length; i++) records[i]!.done(err, records[i]!);
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
          this.#failure = err;
          if (segment.open) this.#dirty.add(segment);
          this.#logger.error({ err, file: segment.path }, 'periodic fdatasync failed');
          return;
        }
        this.stats.fsyncs++;
        this.onFsync?.(performance.now() - started);
      });
    }
  }

  /**
   * The storage failure writes are answered with (ENOSPC, EIO, EROFS ...): the error of the last
   * failed write, fdatasync or roll, or null once records were made durable again. Read by
   * `/healthz` (issue 13).
   */
  get storageFailure(): Error | null {
    return this.#failure;
  }

  /**
   * While {@link storageFailure} is set and nothing is being written or synced: tries whether the
   * active segment takes a durable write again without changing the log: writes as many zero
   * bytes as the records that failed last (at least `minProbeBytes`) past its end, fdatasyncs them
   * and cuts them off again (a crash in between leaves a zero-filled tail, which recovery
   * truncates). On success the writer is no longer failing. Records appended meanwhile wait for
   * the probe. Calls `cb` with the probe's error, or with the current {@link storageFailure}
   * without touching the file when nothing failed or a write or sync is in flight.
   */
  probe(cb: (err: Error | null) => void, minProbeBytes = 4096): void {
    if (this.#failure === null || this.#writing || this.#flushing || this.#commit.syncing || this.#commit.unconfirmed || this.#closed) {
      process.nextTick(cb, this.#failure);
      return;
    }
    const segment = this.#log.active;
    const position = segment.sizeBytes;
    const probeBytes = Math.max(minProbeBytes, this.#failedBytes);
    this.#writing = true; // holds back #flush until the probe is done
    const finish = (err: NodeJS.ErrnoException | null): void => {
      try {
        fs.ftruncateSync(segment.fd, position);
      } catch (truncErr) {
        err ??= truncErr as NodeJS.ErrnoException;
      }
      this.#writing = false;
      if (err !== null) {
        this.#failure = err;
      } else {
        this.#failure = null;
        if (this.#failing) {
          this.#failing = false;
          this.#logger.info('storage works again; writes are being made durable');
        }
      }
      cb(err);
      this.#flush();
    };
    const zeros = Buffer.alloc(probeBytes);
    const writeFrom = (done: number): void => {
      this.fs.write(segment.fd, zeros, done, probeBytes - done, position + done, (err, written) => {
        if (err !== null) return finish(err);
        if (written === 0) return finish(Object.assign(new Error('EIO: a probe write wrote nothing'), { code: 'EIO' }));
        // A short write (the disk had room for part of it) is not success: write the rest.
        if (done + written < probeBytes) return writeFrom(done + written);
        this.fs.fdatasync(segment.fd, finish);
      });
    };
    writeFrom(0);
  }

  /** Resolves when every record appended so far has been written (or failed). */
  drain(): Promise<void> {
    if (this.#idle) return Promise.resolve();
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
