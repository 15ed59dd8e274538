/**
 * A read-only walk over the segment log of a data directory, for `miniqueue inspect` and
 * `miniqueue check` (SPEC §10). It decodes records with the server's own code (record.ts through
 * segment-log.ts's `scanSegment`) and judges damage with the server's own rule (`isTornTail`), so
 * its verdict is the one the next start would reach.
 *
 * Safe beside a running server: it never takes `<db>/LOCK`, opens segment files read-only, and
 * reads each one only up to the size it had when opened (the writer appends past it meanwhile).
 * Two things a running server does are expected, not damage: a segment that compaction deleted
 * after it was listed (reported as vanished), and a record still being written at the end of the
 * newest segment (reported as `writing`, only while the process named in LOCK runs).
 */
import fs from 'node:fs';
import path from 'node:path';
import { listSegments, segmentFileName } from '../log/files.js';
import { emptyDecodedRecord, type CorruptReason, type DecodedRecord } from '../log/record.js';
import { isTornTail, scanSegment } from '../log/segment-log.js';
import { Segment } from '../log/segment.js';

/** Why a segment's scan stopped before its end: the decoder's reason, or an offset out of order. */
export type DamageReason = CorruptReason | 'offset-not-increasing';

/**
 * How the first bad record of a segment is judged:
 * - `torn-tail`: at the end of the newest segment, nothing but zeros after it (a write cut off by
 *   a crash or power cut). The next start cuts it away, keeps it in `<db>/damaged/` and logs it.
 * - `damage`: anywhere else. The next start stops naming the file and position; `--repair` moves
 *   the damaged part aside.
 * - `writing`: a record cut short at the end of the newest segment while the server that holds
 *   the LOCK runs: most likely a write in progress, not damage.
 */
export type DamageKind = 'torn-tail' | 'damage' | 'writing';

/** The first record of a segment that did not decode. */
export interface SegmentDamage {
  /** Byte position of the bad record in its file. */
  readonly position: number;
  readonly reason: DamageReason;
  readonly kind: DamageKind;
  /** Bytes from `position` to the end of the file as scanned. */
  readonly bytesAfter: number;
}

/** What the walk found in one segment file. */
export interface SegmentReport {
  readonly baseOffset: number;
  /** Absolute path of the file. */
  readonly file: string;
  /** Size of the file when it was opened (bytes); the scan reads no further. */
  readonly sizeBytes: number;
  /** Records that decoded, in order. */
  records: number;
  /** Bytes of those records (the valid prefix of the file). */
  validBytes: number;
  /** Offsets of the first and last valid records, or -1 when none. */
  firstOffset: number;
  lastOffset: number;
  /** The first bad record, or null when every byte up to `sizeBytes` is valid records. */
  damage: SegmentDamage | null;
  /** True when the file was listed but gone before it could be opened (compaction deleted it). */
  vanished: boolean;
}

/** Progress of a walk, reported about once per `progressIntervalMs`. */
export interface ScanProgress {
  readonly segmentsDone: number;
  readonly segmentsTotal: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly records: number;
  readonly elapsedMs: number;
}

export interface ScanOptions {
  /**
   * Called for each valid record, in log order. `rec` is reused (valid only during the call);
   * its payload is `rec.payloadLength` bytes at file position `rec.payloadPosition` of `segment`'s
   * file (`rec.payload` is null). `position` is the byte position of the record in that file.
   */
  onRecord?: (rec: DecodedRecord, segment: SegmentReport, position: number) => void;
  /** Called with each segment's report once its scan is done (damaged or not). */
  onSegment?: (segment: SegmentReport) => void;
  /** Called about once per `progressIntervalMs` while the walk runs (never for a walk shorter than that). */
  onProgress?: (progress: ScanProgress) => void;
  /** Default 1000 ms. */
  progressIntervalMs?: number;
}

/** The result of {@link scanDataDir}. */
export interface ScanResult {
  /** Absolute path of the data directory. */
  readonly dir: string;
  /** Every segment listed, in log order (vanished ones included). */
  readonly segments: SegmentReport[];
  readonly records: number;
  /** Sum of the segments' sizes when opened. */
  readonly bytes: number;
  /** The first damaged segment's report, or null. */
  readonly firstDamage: SegmentReport | null;
  /** Pid in `<db>/LOCK` when that process runs (a server is using the directory), else null. */
  readonly lockOwnerPid: number | null;
  /** Files and folders in the directory that are not segments (LOCK, damaged/, ...), sorted. */
  readonly otherEntries: string[];
}

/** Thrown by {@link scanDataDir} when `dir` is missing or not a directory; the message names it. */
export class DataDirError extends Error {
  override readonly name = 'DataDirError';
}

/** Records counted between two looks at the clock (keeps the clock off the per-record path). */
const PROGRESS_EVERY_RECORDS = 4096;

/**
 * Walks every segment of the data directory `dir` in log order, read-only (see the file comment).
 * A damaged segment does not stop the walk: later segments are scanned too (each from its start),
 * so a report can say how much lies after the first damage.
 *
 * @throws DataDirError when `dir` does not exist or is not a directory; fs errors other than a
 *   segment vanishing (EACCES, EIO, ...) unchanged.
 */
export function scanDataDir(dir: string, opts: ScanOptions = {}): ScanResult {
  const abs = path.resolve(dir);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(abs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new DataDirError(`no data directory at ${abs} (--db)`, { cause: err });
    throw err;
  }
  if (!stat.isDirectory()) throw new DataDirError(`${abs} is not a directory (--db)`);

  const bases = listSegments(abs);
  const otherEntries = fs.readdirSync(abs).filter((name) => !bases.some((b) => segmentFileName(b) === name)).sort();
  const lockOwnerPid = liveLockOwner(abs);
  const sizes = bases.map((base) => sizeOrZero(path.join(abs, segmentFileName(base))));
  const bytesTotal = sizes.reduce((a, b) => a + b, 0);

  const intervalMs = opts.progressIntervalMs ?? 1000;
  const started = performance.now();
  let nextProgressMs = started + intervalMs;
  let bytesDone = 0;
  let records = 0;
  let bytes = 0;
  let firstDamage: SegmentReport | null = null;
  let lastOffset = -1;
  const segments: SegmentReport[] = [];
  const rec = emptyDecodedRecord();

  const progress = (segmentsDone: number, inSegmentBytes: number): void => {
    if (opts.onProgress === undefined) return;
    const now = performance.now();
    if (now < nextProgressMs) return;
    nextProgressMs = now + intervalMs;
    opts.onProgress({
      segmentsDone,
      segmentsTotal: bases.length,
      bytesDone: bytesDone + inSegmentBytes,
      bytesTotal,
      records,
      elapsedMs: now - started,
    });
  };

  for (let i = 0; i < bases.length; i++) {
    const base = bases[i]!;
    const file = path.join(abs, segmentFileName(base));
    let segment: Segment;
    try {
      segment = Segment.openExisting(abs, base, false);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      const gone: SegmentReport = { baseOffset: base, file, sizeBytes: 0, records: 0, validBytes: 0, firstOffset: -1, lastOffset: -1, damage: null, vanished: true };
      segments.push(gone);
      opts.onSegment?.(gone);
      continue;
    }
    const report: SegmentReport = {
      baseOffset: base,
      file,
      sizeBytes: segment.sizeBytes,
      records: 0,
      validBytes: 0,
      firstOffset: -1,
      lastOffset: -1,
      damage: null,
      vanished: false,
    };
    try {
      let position = 0;
      let sinceClock = 0;
      const scan = scanSegment(segment, report.sizeBytes, lastOffset, rec, (r) => {
        if (report.records++ === 0) report.firstOffset = r.offset;
        records++;
        opts.onRecord?.(r, report, position);
        position += r.sizeBytes;
        if (++sinceClock === PROGRESS_EVERY_RECORDS) {
          sinceClock = 0;
          progress(i, position);
        }
      });
      report.validBytes = scan.position;
      if (report.records > 0) report.lastOffset = lastOffset = scan.lastOffset;
      if (scan.bad !== undefined) {
        const isNewest = i === bases.length - 1;
        const tail = segment.readAt(scan.position, report.sizeBytes - scan.position);
        let kind: DamageKind = 'damage';
        if (isNewest && isTornTail(tail, 0, scan.bad)) {
          const cutShort = scan.bad === 'truncated-header' || scan.bad === 'truncated-body';
          kind = cutShort && lockOwnerPid !== null ? 'writing' : 'torn-tail';
        }
        report.damage = { position: scan.position, reason: scan.bad, kind, bytesAfter: tail.length };
        if (firstDamage === null && kind !== 'writing') firstDamage = report;
      }
    } finally {
      segment.close();
    }
    bytes += report.sizeBytes;
    bytesDone += sizes[i]!;
    segments.push(report);
    opts.onSegment?.(report);
    progress(i + 1, 0);
  }
  return { dir: abs, segments, records, bytes, firstDamage, lockOwnerPid, otherEntries };
}

function sizeOrZero(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0; // deleted by compaction since it was listed; the walk reports it as vanished
  }
}

/**
 * The pid written in `<dir>/LOCK` when a process with that pid runs, else null. Only read: the
 * server's lock (server/lock.ts) is never taken or changed here.
 */
function liveLockOwner(dir: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, 'LOCK'), 'utf8');
  } catch {
    return null;
  }
  const pid = Number.parseInt(text, 10);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}
