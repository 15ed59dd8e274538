/**
 * The ordered set of segment files in a data directory: open, replay, recover, roll (SPEC §5).
 *
 * Recovery follows Kafka's LogSegment.recover(): records are read in order until the first one
 * that does not decode. At the end of the newest segment that is a torn tail (a crash in the
 * middle of a write, or a zero-filled tail after a power cut): it is cut away, the cut bytes are
 * kept in `<db>/damaged/` and the cut is logged. Anywhere else it is damage: the start stops
 * with a {@link LogCorruptError} naming the file and position, unless `repair` is set, in which
 * case the damaged part and every later segment are moved into `<db>/damaged/`.
 * Nothing is deleted silently.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { damagedDir, fsyncDirectory, listSegments, segmentFileName } from './files.js';
import { decodeRecord, type CorruptReason, type DecodedRecord } from './record.js';
import { Segment } from './segment.js';

/** Records larger than this are taken as a damaged length field (bytes). */
const MAX_RECORD_BYTES = 2 ** 31;

/** Thrown by {@link SegmentLog.open} when a record before the tail of the log is damaged. */
export class LogCorruptError extends Error {
  readonly code = 'MQ_ERR_LOG_CORRUPT';
  readonly file: string;
  readonly position: number;
  readonly reason: CorruptReason | 'offset-not-increasing';

  constructor(file: string, position: number, reason: CorruptReason | 'offset-not-increasing') {
    super(
      `damaged record in ${file} at byte position ${position} (${reason}); ` +
        'start with --repair to move the damaged part into <db>/damaged/ and keep everything before it',
    );
    this.file = file;
    this.position = position;
    this.reason = reason;
  }
}

/**
 * Called once per valid record during replay, in log order. `segment` is the segment holding
 * the record; `rec.payloadPosition` is a byte position in that segment's file; `rec.payload` is a
 * view valid only during the call.
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

export class SegmentLog {
  readonly dir: string;
  /** Segments in offset order; the last one is the active segment. */
  readonly segments: Segment[] = [];
  /** The offset the next appended record gets. */
  nextOffset = 0;
  readonly #logger: Logger;

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
   * recovers the tail. Throws {@link LogCorruptError} for damage before the tail without
   * `repair`, and fs errors (EACCES, EIO, ...) unchanged.
   */
  static open(opts: SegmentLogOptions, visit: ReplayVisitor): { log: SegmentLog; stats: ReplayStats } {
    const started = performance.now();
    fs.mkdirSync(opts.dir, { recursive: true });
    const log = new SegmentLog(opts.dir, opts.logger);
    const bases = listSegments(opts.dir);
    const stats: ReplayStats = { segments: 0, records: 0, bytes: 0, durationMs: 0, truncatedBytes: 0 };
    let lastOffset = -1;
    for (let i = 0; i < bases.length; i++) {
      const isNewest = i === bases.length - 1;
      const segment = Segment.openExisting(opts.dir, bases[i]!, true);
      const data = segment.readAll();
      let position = 0;
      let bad: CorruptReason | 'offset-not-increasing' | undefined;
      while (position < data.length) {
        const rec = decodeRecord(data, position, data.length, MAX_RECORD_BYTES);
        if (typeof rec === 'string') {
          bad = rec;
          break;
        }
        if (rec.offset <= lastOffset || rec.offset < segment.baseOffset) {
          bad = 'offset-not-increasing';
          break;
        }
        lastOffset = rec.offset;
        segment.lastOffset = rec.offset;
        visit(rec, segment);
        stats.records++;
        position += rec.sizeBytes;
      }
      log.segments.push(segment);
      stats.segments++;
      if (bad === undefined) {
        segment.sizeBytes = data.length;
        stats.bytes += data.length;
        continue;
      }
      if (isNewest && isTornTail(data, position, bad)) {
        const cut = data.length - position;
        log.#moveAside(data.subarray(position), `${segmentFileName(segment.baseOffset)}.${position}.torn`);
        segment.truncateTo(position);
        stats.truncatedBytes += cut;
        stats.bytes += position;
        opts.logger.warn(
          { file: segment.path, position, truncatedBytes: cut, reason: bad },
          'truncated a torn record at the end of the log',
        );
        continue;
      }
      if (!opts.repair) {
        for (const s of log.segments) s.close();
        throw new LogCorruptError(segment.path, position, bad);
      }
      log.#repair(segment, data, position, bad, bases.slice(i + 1));
      stats.bytes += position;
      break;
    }
    if (log.segments.length === 0) {
      log.segments.push(Segment.create(opts.dir, 0));
      fsyncDirectory(opts.dir);
    }
    log.nextOffset = Math.max(lastOffset + 1, log.active.baseOffset);
    stats.durationMs = performance.now() - started;
    return { log, stats };
  }

  /** Moves `bytes` into `<db>/damaged/<name>` durably, so nothing is deleted silently. */
  #moveAside(bytes: Buffer, name: string): void {
    if (bytes.length === 0 || bytes.every((b) => b === 0)) return;
    const dir = damagedDir(this.dir);
    fs.mkdirSync(dir, { recursive: true });
    const target = path.join(dir, name);
    fs.writeFileSync(target, bytes);
    const fd = fs.openSync(target, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fsyncDirectory(dir);
  }

  /** `--repair`: keep everything before `position`, move the rest of the log aside. */
  #repair(segment: Segment, data: Buffer, position: number, reason: string, laterBases: number[]): void {
    const damaged = damagedDir(this.dir);
    this.#moveAside(data.subarray(position), `${segmentFileName(segment.baseOffset)}.${position}.damaged`);
    segment.truncateTo(position);
    fs.mkdirSync(damaged, { recursive: true });
    for (const base of laterBases) {
      const name = segmentFileName(base);
      fs.renameSync(path.join(this.dir, name), path.join(damaged, name));
    }
    fsyncDirectory(damaged);
    fsyncDirectory(this.dir);
    this.#logger.error(
      {
        file: segment.path,
        position,
        reason,
        movedBytes: data.length - position,
        movedSegments: laterBases.length,
        damagedDir: damaged,
      },
      'repair: moved the damaged part of the log aside',
    );
  }

  /**
   * Closes the active segment and starts a new one whose base offset is {@link nextOffset}.
   * The new file's directory entry is fsynced. Throws fs errors unchanged.
   */
  roll(): Segment {
    const segment = Segment.create(this.dir, this.nextOffset);
    fsyncDirectory(this.dir);
    this.segments.push(segment);
    return segment;
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

/**
 * Whether a bad record at `position` of the newest segment is a torn tail rather than damage:
 * the write that was cut off is the last thing in the file, so everything after the bad record's
 * claimed end is absent or zero (a zero-filled tail after a power cut).
 */
function isTornTail(data: Buffer, position: number, reason: string): boolean {
  if (reason === 'truncated-header' || reason === 'truncated-body') return true;
  let end = data.length;
  if (reason !== 'zero-length' && data.length - position >= 4) {
    end = Math.min(data.length, position + 4 + data.readUInt32LE(position));
  } else {
    end = position;
  }
  for (let p = end; p < data.length; p++) if (data[p] !== 0) return false;
  return true;
}
