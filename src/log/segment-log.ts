/**
 * The ordered set of segment files in a data directory: open, replay, recover, roll (SPEC §5).
 *
 * Recovery follows Kafka's LogSegment.recover(): records are read in order until the first one
 * that does not decode. At the end of the newest segment that is a torn tail (a crash in the
 * middle of a write, or a zero-filled tail after a power cut): it is cut away, the cut bytes are
 * kept in `<db>/damaged/` and the cut is logged. Anywhere else it is damage: the start stops
 * with a {@link LogCorruptError} naming the file and position, unless `repair` is set (SPEC §5):
 * then repair resynchronises at the next record whose header and CRC check out (and whose offset
 * goes on increasing), moves only the bytes between into `<db>/damaged/`, keeps every intact
 * record after them (so no ACK after the damage is lost, issue 13) and logs how many bytes and
 * records were lost. Nothing is deleted silently.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { BrokerError } from '../errors.js';
import { damagedDir, fsyncDirectory, isNoSpace, listSegments, makeDirectory, segmentFileName } from './files.js';
import { RECORD_HEADER_BYTES, RECORD_MAGIC, RecordType, decodeRecordInto, emptyDecodedRecord, type CorruptReason, type DecodedRecord } from './record.js';
import { Segment } from './segment.js';
import { MAX_RECORD_BYTES, REPLAY_CHUNK_BYTES, SegmentScan } from './segment-scan.js';
import type { ReplayProgress, ReplaySlicing } from './replay-slicing.js';
import { LogCorruptError, chainedRecords, copyBytes, isTornTail, keepAside, writeAllAt } from './damage.js';

export { LogCorruptError, isTornTail } from './damage.js';
export type { ReplayProgress, ReplaySlicing } from './replay-slicing.js';

export { scanSegment } from './segment-scan.js';

/**
 * Repair, in the newest segment (no next segment bounds its offsets): a record whose offset is
 * this far past the last intact one is not taken as the next intact record. Offsets skip only
 * those of failed writes, never billions.
 */
const MAX_OFFSET_JUMP = 2 ** 32;

/**
 * Called once per valid record during replay, in log order. `segment` is the segment holding
 * the record; the payload is `rec.payloadLength` bytes at byte position `rec.payloadPosition` of that
 * segment's file (`rec.payload` is null: replay does not copy payloads). `rec` itself is reused for
 * every record, so it is valid only during the call.
 */
export type ReplayVisitor = (rec: DecodedRecord, segment: Segment) => void;

export interface SegmentLogOptions {
  dir: string;
  repair: boolean;
  logger: Logger;
}

/** Statistics of one replay, for the startup log line and benchmarks. */
export interface ReplayStats {
  segments: number;
  records: number;
  bytes: number;
  durationMs: number;
  truncatedBytes: number;
}

/** How a replay is sliced by {@link SegmentLog.openSliced}. */
/**
 * Records replayed between two looks at the clock in {@link SegmentLog.openSliced}: about a
 * millisecond of replay, so a slice overruns its `sliceMs` by about that much at most.
 */
const RECORDS_PER_REPLAY_STEP = 1024;

/** The state of a replay between two of its steps. */
interface ReplayState {
  readonly opts: SegmentLogOptions;
  readonly visit: ReplayVisitor;
  /** Base offsets of the segment files, in order. */
  readonly bases: number[];
  readonly stats: ReplayStats;
  /** Reused for every record. */
  readonly record: DecodedRecord;
  /** performance.now() when the replay began. */
  readonly started: number;
  readonly totalBytes: number;
  /** Index in `bases` of the segment being replayed. */
  index: number;
  /** The scan of that segment; null before it is opened. */
  scan: SegmentScan | null;
  /** `visit` for the records of that segment (counts them too). */
  visitRecord: ((rec: DecodedRecord) => void) | null;
  /** The scan replays the intact records a repair kept: it must reach the end of the file. */
  repaired: boolean;
  /** Size of that segment's file (bytes); a repair changes it. */
  fileSize: number;
  /** Offset of the last record replayed. */
  lastOffset: number;
}

export class SegmentLog {
  readonly dir: string;
  /** Segments in offset order; the last one is the active segment. */
  readonly segments: Segment[] = [];
  /** The offset the next appended record gets. */
  nextOffset = 0;
  /** Called after each roll with the new active segment (compaction looks for work then). */
  onRoll: ((segment: Segment) => void) | undefined;
  readonly #logger: Logger;
  /** Set while the log is being replayed (between SegmentLog.#begin and #endReplay). */
  #replay: ReplayState | null = null;

  private constructor(dir: string, logger: Logger) {
    this.dir = dir;
    this.#logger = logger;
  }

  /** The segment records are appended to. */
  get active(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  /**
   * Opens (creating if missing) the log in `opts.dir`, replays every record through `visit`, and
   * recovers the tail, all at once. Throws {@link LogCorruptError} for damage before the tail
   * without `repair`, and fs errors (EACCES, EIO, ...) unchanged.
   */
  static open(opts: SegmentLogOptions, visit: ReplayVisitor): { log: SegmentLog; stats: ReplayStats } {
    const log = SegmentLog.#begin(opts, visit);
    while (!log.#replayStep(Infinity));
    return log.#endReplay();
  }

  /**
   * {@link open} in slices: replays for about `slicing.sliceMs`, then yields to the event loop
   * (setImmediate) and goes on, so that sockets are served while a long log is replayed (SPEC §8).
   * The records, their order and the recovery are exactly those of {@link open}; a torn-tail cut or
   * a repair happens inside one slice. `slicing.onSlice` gets the progress after every slice.
   * When `slicing.signal` is aborted, the replay stops at the next slice boundary, closes the
   * segment files it opened and rejects with the signal's reason; it has changed nothing on disk
   * but what recovery of the segments replayed so far did. Rejects with {@link LogCorruptError} and
   * fs errors as {@link open} throws them.
   */
  static async openSliced(
    opts: SegmentLogOptions,
    visit: ReplayVisitor,
    slicing: ReplaySlicing,
  ): Promise<{ log: SegmentLog; stats: ReplayStats }> {
    const log = SegmentLog.#begin(opts, visit);
    try {
      for (;;) {
        slicing.signal?.throwIfAborted();
        const sliceStarted = performance.now();
        let done: boolean;
        do done = log.#replayStep(RECORDS_PER_REPLAY_STEP);
        while (!done && performance.now() - sliceStarted < slicing.sliceMs);
        if (done) break;
        slicing.onSlice?.(log.#replayProgress());
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      log.close();
      throw err;
    }
    return log.#endReplay();
  }

  /** Starts a replay of the log in `opts.dir` (creating the directory if missing): see {@link open}. */
  static #begin(opts: SegmentLogOptions, visit: ReplayVisitor): SegmentLog {
    const started = performance.now();
    makeDirectory(opts.dir);
    const log = new SegmentLog(opts.dir, opts.logger);
    const bases = listSegments(opts.dir);
    let totalBytes = 0;
    for (const base of bases) totalBytes += fs.statSync(path.join(opts.dir, segmentFileName(base))).size;
    log.#replay = {
      opts,
      visit,
      bases,
      stats: { segments: 0, records: 0, bytes: 0, durationMs: 0, truncatedBytes: 0 },
      record: emptyDecodedRecord(),
      started,
      totalBytes,
      index: 0,
      scan: null,
      visitRecord: null,
      repaired: false,
      fileSize: 0,
      lastOffset: -1,
    };
    return log;
  }

  /**
   * Replays up to about `maxRecords` more records (Infinity: everything) and at most one read of
   * a segment file, or finishes a segment (its recovery included). Returns true once every
   * segment has been replayed. Throws {@link LogCorruptError} (after closing every segment) and fs errors.
   */
  #replayStep(maxRecords: number): boolean {
    const r = this.#replay!;
    const { opts, bases, stats } = r;
    if (r.index >= bases.length) return true;
    if (r.scan === null) {
      const segment = Segment.openExisting(opts.dir, bases[r.index]!, true);
      this.segments.push(segment);
      stats.segments++;
      const visit = r.visit;
      r.visitRecord = (rec: DecodedRecord): void => {
        visit(rec, segment);
        stats.records++;
      };
      r.fileSize = segment.sizeBytes;
      r.repaired = false;
      r.scan = new SegmentScan(segment, r.fileSize, r.lastOffset, r.record, r.visitRecord);
    }
    const scan = r.scan;
    if (!scan.step(maxRecords)) return false;
    const segment = this.active;
    r.lastOffset = scan.lastOffset;
    r.scan = null;
    const bad = scan.bad;
    if (bad !== undefined) {
      assert.ok(!r.repaired, 'a repaired segment replays to its end');
      const position = scan.position;
      const tail = segment.readAt(position, r.fileSize - position);
      if (r.index === bases.length - 1 && isTornTail(tail, 0, bad)) {
        try {
          keepAside(this.dir, tail, `${segmentFileName(segment.baseOffset)}.${position}.torn`);
        } catch (err) {
          // A torn record was never answered: on a full disk, cut it without a copy rather than not start.
          if (!isNoSpace(err)) throw err;
          opts.logger.error({ err, file: segment.path, position, tornBytes: tail.length }, 'no space to keep a copy of the torn tail in damaged/; cutting it without one');
        }
        segment.truncateTo(position);
        stats.truncatedBytes += tail.length;
        stats.bytes += position;
        opts.logger.warn(
          { file: segment.path, position, truncatedBytes: tail.length, reason: bad },
          'truncated a torn record at the end of the log',
        );
        r.index++;
        return r.index >= bases.length;
      }
      if (!opts.repair) {
        this.close();
        throw new LogCorruptError(segment.path, position, bad);
      }
      r.fileSize = this.#repair(segment, tail, position, bad, r.lastOffset, bases[r.index + 1]);
      // From `position` on, the rewritten file holds exactly the intact records: replay them.
      r.repaired = true;
      r.scan = new SegmentScan(segment, r.fileSize, r.lastOffset, r.record, r.visitRecord!, position);
      return false;
    }
    segment.sizeBytes = r.fileSize;
    stats.bytes += r.fileSize;
    r.index++;
    return r.index >= bases.length;
  }

  /** Where the replay is, for progress lines and estimates. */
  #replayProgress(): ReplayProgress {
    const r = this.#replay!;
    let bytes = r.stats.bytes;
    if (r.scan !== null) bytes += r.scan.position;
    return { records: r.stats.records, bytes, totalBytes: r.totalBytes, segments: r.stats.segments, elapsedMs: performance.now() - r.started };
  }

  /** Ends the replay: makes the first segment of an empty log and sets {@link nextOffset}. */
  #endReplay(): { log: SegmentLog; stats: ReplayStats } {
    const r = this.#replay!;
    this.#replay = null;
    if (this.segments.length === 0) {
      this.segments.push(Segment.create(this.dir, 0));
      fsyncDirectory(this.dir);
    }
    this.nextOffset = Math.max(r.lastOffset + 1, this.active.baseOffset);
    r.stats.durationMs = performance.now() - r.started;
    return { log: this, stats: r.stats };
  }



  /**
   * `--repair` of one segment whose record at `position` is damaged (`tail` is the file from
   * `position` on; `lastOffset` the offset of the last intact record before it; offsets in this
   * segment are below `nextBase`, the next segment's base offset, when there is one).
   *
   * Walks the tail: an intact record (it decodes, its CRC checks out, its offset goes on
   * increasing) is kept; from a damaged one, the next intact record is searched for, first where
   * the damaged record's own length field points (damage inside a record's body, e.g. a flipped
   * bit in a payload, leaves it right: exactly one record is lost), else byte by byte. Each
   * damaged range is kept in `<db>/damaged/<segment>.<position>.damaged`; then the segment is
   * written anew (the bytes before `position`, then the intact records) into a temporary file,
   * fsynced and renamed over the old one, so a crash leaves either file whole. Returns the new size.
   */
  #repair(segment: Segment, tail: Buffer, position: number, reason: string, lastOffset: number, nextBase: number | undefined): number {
    const name = segmentFileName(segment.baseOffset);
    const rec = emptyDecodedRecord();
    const intactAt = (p: number, after: number): boolean =>
      decodeRecordInto(tail, p, tail.length, MAX_RECORD_BYTES, rec) === undefined &&
      rec.offset > after &&
      rec.offset >= segment.baseOffset &&
      (nextBase === undefined || rec.offset < nextBase);
    const kept: Buffer[] = [];
    const ranges: { start: number; end: number; records: number; exact: boolean }[] = [];
    let last = lastOffset;
    let p = 0;
    while (p < tail.length) {
      if (intactAt(p, last)) {
        kept.push(tail.subarray(p, p + rec.sizeBytes));
        last = rec.offset;
        p += rec.sizeBytes;
        continue;
      }
      let next = -1;
      if (p + 4 <= tail.length) {
        const hinted = p + 4 + tail.readUInt32LE(p);
        if (hinted === tail.length || (hinted > p + RECORD_HEADER_BYTES && hinted < tail.length && intactAt(hinted, last))) next = hinted;
      }
      const exact = next >= 0;
      if (!exact) {
        next = tail.length;
        for (let q = p + 1; q + RECORD_HEADER_BYTES < tail.length; q++) {
          // Cheap checks first, so that a CRC is computed only where a header could start (random
          // bytes pass them about once in 10^11 positions).
          if (tail[q + 8] !== RECORD_MAGIC || tail[q + 16] === 0) continue;
          const type = tail[q + 9]!;
          if (type < RecordType.PUBLISH || type > RecordType.TOPIC) continue;
          const size = tail.readUInt32LE(q) + 4;
          if (size <= RECORD_HEADER_BYTES || q + size > tail.length) continue;
          const offset = tail.readUIntLE(q + 10, 6);
          if (offset <= last || offset >= (nextBase ?? last + MAX_OFFSET_JUMP)) continue;
          if (intactAt(q, last)) {
            next = q;
            break;
          }
        }
      }
      // How many records the range held: one when the length field led to the next record; else
      // the offsets missing between the intact records around it (an upper bound: offsets of
      // failed writes are never used), or failing that, the records its length fields chain through.
      let records = 1;
      if (!exact) {
        const nextOffset = next < tail.length ? rec.offset : nextBase;
        records = nextOffset !== undefined ? Math.max(1, nextOffset - last - 1) : chainedRecords(tail, p, next);
      }
      ranges.push({ start: p, end: next, records, exact });
      p = next;
    }

    for (const r of ranges) keepAside(this.dir, tail.subarray(r.start, r.end), `${name}.${position + r.start}.damaged`);
    const temporary = path.join(this.dir, `${name}.repairing`);
    const fd = fs.openSync(temporary, 'w', 0o644);
    try {
      copyBytes(segment.fd, fd, position);
      let at = position;
      for (const b of kept) {
        writeAllAt(fd, b, at);
        at += b.length;
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temporary, segment.path);
    fsyncDirectory(this.dir);
    segment.reopen();

    const lostBytes = ranges.reduce((sum, r) => sum + r.end - r.start, 0);
    const lostRecords = ranges.reduce((sum, r) => sum + r.records, 0);
    const exact = ranges.every((r) => r.exact);
    this.#logger.error(
      {
        file: segment.path,
        position,
        reason,
        lostBytes,
        lostRecords,
        lostRecordsExact: exact,
        damaged: ranges.map((r) => ({ position: position + r.start, bytes: r.end - r.start, records: r.records })),
        keptRecords: kept.length,
        damagedDir: damagedDir(this.dir),
      },
      `repair: set aside ${lostBytes} damaged bytes of ${name} (${exact ? '' : 'at most '}${lostRecords} record${lostRecords === 1 ? '' : 's'} lost) ` +
        `and kept the ${kept.length} intact records after them`,
    );
    return segment.sizeBytes;
  }

  /**
   * Closes the active segment and starts a new one whose base offset is {@link nextOffset}.
   * The closing segment is fdatasynced first and the new file's directory entry is fsynced.
   * Throws fs errors unchanged.
   */
  roll(): Segment {
    // With --fsync interval or never the closing segment may hold unsynced records. A power cut
    // could then keep the new segment but tear the old one's tail, and a torn record anywhere but
    // in the newest segment is damage: the log would not open without --repair (found by the
    // power-loss checker, issue #13). With `always` the file is clean and this costs little.
    fs.fdatasyncSync(this.active.fd);
    const segment = Segment.create(this.dir, this.nextOffset);
    try {
      fsyncDirectory(this.dir);
    } catch (err) {
      // Undo the create (the file is new and empty), so the next roll can create it again
      // instead of failing with EEXIST for ever after the disk works again.
      segment.close();
      try {
        fs.unlinkSync(segment.path);
      } catch (unlinkErr) {
        this.#logger.error({ err: unlinkErr, file: segment.path }, 'could not remove a segment whose roll failed');
      }
      throw err;
    }
    this.segments.push(segment);
    this.onRoll?.(segment);
    return segment;
  }

  /**
   * Takes `segment`, whose file compaction has unlinked, out of the log: closes it and removes it
   * from {@link segments}. Never the active segment (asserted).
   */
  detach(segment: Segment): void {
    assert.ok(segment !== this.active, 'the active segment is never removed');
    const i = this.segments.indexOf(segment);
    if (i >= 0) this.segments.splice(i, 1);
    segment.close();
  }

  /** Total bytes in all segments. */
  get sizeBytes(): number {
    let total = 0;
    for (const s of this.segments) total += s.sizeBytes;
    return total;
  }

  /** Closes every segment file. */
  close(): void {
    for (const s of this.segments) s.close();
  }
}

