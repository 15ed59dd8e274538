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
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { damagedDir, fsyncDirectory, listSegments, makeDirectory, segmentFileName } from './files.js';
import { decodeRecordInto, emptyDecodedRecord, type CorruptReason, type DecodedRecord } from './record.js';
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

export class SegmentLog {
  readonly dir: string;
  /** Segments in offset order; the last one is the active segment. */
  readonly segments: Segment[] = [];
  /** The offset the next appended record gets. */
  nextOffset = 0;
  /** Called after each roll with the new active segment (compaction looks for work then). */
  onRoll: ((segment: Segment) => void) | undefined;
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
    makeDirectory(opts.dir);
    const log = new SegmentLog(opts.dir, opts.logger);
    const bases = listSegments(opts.dir);
    const stats: ReplayStats = { segments: 0, records: 0, bytes: 0, durationMs: 0, truncatedBytes: 0 };
    let lastOffset = -1;
    const record = emptyDecodedRecord();
    for (let i = 0; i < bases.length; i++) {
      const isNewest = i === bases.length - 1;
      const segment = Segment.openExisting(opts.dir, bases[i]!, true);
      const fileSize = segment.sizeBytes;
      const scan = scanSegment(segment, fileSize, lastOffset, record, (rec) => {
        visit(rec, segment);
        stats.records++;
      });
      const position = scan.position;
      const bad = scan.bad;
      lastOffset = scan.lastOffset;
      log.segments.push(segment);
      stats.segments++;
      if (bad === undefined) {
        segment.sizeBytes = fileSize;
        stats.bytes += fileSize;
        continue;
      }
      const tail = segment.readAt(position, fileSize - position);
      if (isNewest && isTornTail(tail, 0, bad)) {
        log.#moveAside(tail, `${segmentFileName(segment.baseOffset)}.${position}.torn`);
        segment.truncateTo(position);
        stats.truncatedBytes += tail.length;
        stats.bytes += position;
        opts.logger.warn(
          { file: segment.path, position, truncatedBytes: tail.length, reason: bad },
          'truncated a torn record at the end of the log',
        );
        continue;
      }
      if (!opts.repair) {
        for (const s of log.segments) s.close();
        throw new LogCorruptError(segment.path, position, bad);
      }
      log.#repair(segment, tail, position, bad, bases.slice(i + 1));
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
    makeDirectory(dir);
    const target = freePath(dir, name);
    fs.writeFileSync(target, bytes, { flag: 'wx' });
    const fd = fs.openSync(target, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fsyncDirectory(dir);
  }

  /** `--repair`: keep everything before `position`, move the rest of the log aside. `tail` is the segment from `position` on. */
  #repair(segment: Segment, tail: Buffer, position: number, reason: string, laterBases: number[]): void {
    const damaged = damagedDir(this.dir);
    this.#moveAside(tail, `${segmentFileName(segment.baseOffset)}.${position}.damaged`);
    segment.truncateTo(position);
    makeDirectory(damaged);
    for (const base of laterBases) {
      const name = segmentFileName(base);
      fs.renameSync(path.join(this.dir, name), freePath(damaged, name));
    }
    fsyncDirectory(damaged);
    fsyncDirectory(this.dir);
    this.#logger.error(
      {
        file: segment.path,
        position,
        reason,
        movedBytes: tail.length,
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

/**
 * `dir/name`, or `dir/name.1`, `dir/name.2`, ... when taken: a later repair or torn tail can
 * produce a name already used in `<db>/damaged/`, and renaming or writing over it would delete
 * what was moved aside before.
 */
function freePath(dir: string, name: string): string {
  let target = path.join(dir, name);
  for (let n = 1; fs.existsSync(target); n++) target = path.join(dir, `${name}.${n}`);
  return target;
}

/** Bytes read per call while replaying a segment; a larger record gets a buffer of its own size. */
const REPLAY_CHUNK_BYTES = 8 * 1024 * 1024;

/**
 * Reads `segment` from the start in chunks and calls `visit` for each valid record, in order.
 * Stops at the first record that does not decode, or whose offset does not increase past
 * `lastOffset`, and returns its position and reason (bad undefined when the whole file is valid).
 * `rec` is reused for every record.
 */
export function scanSegment(
  segment: Segment,
  sizeBytes: number,
  lastOffset: number,
  rec: DecodedRecord,
  visit: (rec: DecodedRecord) => void,
): { position: number; bad: CorruptReason | 'offset-not-increasing' | undefined; lastOffset: number } {
  let fileSize = sizeBytes;
  let chunk = Buffer.allocUnsafe(Math.min(REPLAY_CHUNK_BYTES, Math.max(fileSize, 1)));
  let chunkStart = 0; // file position of chunk[0]
  let chunkEnd = 0; // bytes of chunk filled
  let position = 0; // file position of the next record
  for (;;) {
    let p = position - chunkStart;
    while (p < chunkEnd) {
      const bad = decodeRecordInto(chunk, p, chunkEnd, MAX_RECORD_BYTES, rec);
      if (bad !== undefined) {
        const wholeFileRead = chunkStart + chunkEnd >= fileSize;
        const needMore = (bad === 'truncated-header' || bad === 'truncated-body') && !wholeFileRead;
        if (needMore) break;
        return { position, bad, lastOffset };
      }
      if (rec.offset <= lastOffset || rec.offset < segment.baseOffset) {
        return { position, bad: 'offset-not-increasing', lastOffset };
      }
      lastOffset = rec.offset;
      segment.lastOffset = rec.offset;
      rec.payloadPosition += chunkStart;
      visit(rec);
      position += rec.sizeBytes;
      p += rec.sizeBytes;
    }
    if (position >= fileSize) return { position, bad: undefined, lastOffset };
    // Move the partial record to the front and read on; grow for a record larger than a chunk.
    const leftover = chunkStart + chunkEnd - position;
    let need = REPLAY_CHUNK_BYTES;
    if (leftover >= 4) {
      const recordBytes = chunk.readUInt32LE(position - chunkStart) + 4;
      if (recordBytes <= MAX_RECORD_BYTES) need = Math.max(need, recordBytes);
    }
    need = Math.min(need, fileSize - position);
    const next = need > chunk.length ? Buffer.allocUnsafe(need) : chunk;
    chunk.copy(next, 0, position - chunkStart, chunkEnd);
    chunk = next;
    chunkStart = position;
    chunkEnd = leftover;
    while (chunkEnd < need) {
      const n = fs.readSync(segment.fd, chunk, chunkEnd, need - chunkEnd, chunkStart + chunkEnd);
      if (n === 0) break;
      chunkEnd += n;
    }
    // The file turned out shorter than its size said: what we have is all there is.
    if (chunkEnd < need) fileSize = chunkStart + chunkEnd;
  }
}

/**
 * Whether a bad record at `position` of the newest segment is a torn tail rather than damage:
 * the write that was cut off is the last thing in the file, so everything after the bad record's
 * claimed end is absent or zero (a zero-filled tail after a power cut).
 */
export function isTornTail(data: Buffer, position: number, reason: string): boolean {
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
