/**
 * `miniqueue check --db DIR` (SPEC §10): verifies the CRC and framing of every record in a data
 * directory without starting the server, like redis-check-aof. Read-only and safe beside a
 * running server (log-scan.ts). The verdict is the one the next start would reach, because the
 * records are read by the server's own scanner and judged by its own torn-tail rule.
 */
import path from 'node:path';
import { describeDamage, humanBytes } from './inspect.js';
import { scanDataDir, type ScanProgress, type ScanResult, type SegmentReport } from './log-scan.js';

/** Exit codes of `miniqueue check`. 2 is the CLI's usage error (bad option, no such --db). */
export const CHECK_EXIT = {
  /** Every record decodes and its CRC matches. */
  OK: 0,
  /** A damaged record before the end of the log: the server will not start without --repair. */
  DAMAGED: 1,
  /** Only a torn record at the end of the newest segment: the next start cuts it away. */
  TORN_TAIL: 3,
  /** The directory or a segment could not be read (EACCES, EIO, ...). */
  UNREADABLE: 4,
} as const;

/** What {@link verifyDataDir} found, ready to print. */
export interface CheckResult {
  readonly scan: ScanResult;
  /** One of {@link CHECK_EXIT}. */
  readonly exitCode: number;
  /** The report for stdout: one line per segment, then a summary; ends with a newline. */
  readonly report: string;
  /** The one-line verdict on the first damage for stderr, or null when the log is intact. */
  readonly error: string | null;
}

/**
 * Reads every record of every segment in `dir` and judges the first damage.
 * @throws DataDirError for a missing `dir`; fs errors unchanged (the CLI maps them to UNREADABLE).
 */
export function verifyDataDir(dir: string, onProgress?: (p: ScanProgress) => void, progressIntervalMs?: number): CheckResult {
  const scan = scanDataDir(dir, { onProgress, progressIntervalMs });
  const lines = scan.segments.map(segmentLine);
  const damaged = scan.segments.filter((s) => s.damage !== null && s.damage.kind !== 'writing').length;
  const what = `${scan.segments.length} segment${scan.segments.length === 1 ? '' : 's'}, ${scan.records} records, ${scan.bytes} bytes (${humanBytes(scan.bytes)}) in ${scan.dir}`;
  const first = scan.firstDamage;
  if (first === null) {
    lines.push(`OK: ${what}: every record's length, CRC and offset check out`);
    return { scan, exitCode: CHECK_EXIT.OK, report: `${lines.join('\n')}\n`, error: null };
  }
  const torn = first.damage!.kind === 'torn-tail';
  lines.push(
    `${torn ? 'TORN TAIL' : 'DAMAGED'}: ${what}; ${damaged} segment${damaged === 1 ? '' : 's'} with a bad record; the first: ${path.basename(first.file)} at byte position ${first.damage!.position}`,
  );
  return { scan, exitCode: torn ? CHECK_EXIT.TORN_TAIL : CHECK_EXIT.DAMAGED, report: `${lines.join('\n')}\n`, error: describeDamage(first) };
}

function segmentLine(s: SegmentReport): string {
  const name = path.basename(s.file);
  if (s.vanished) return `${name}  deleted by compaction while the check ran (its live records were copied forward first)`;
  const base = `${name}  ${s.records} records, ${s.sizeBytes} bytes`;
  const d = s.damage;
  if (d === null) return `${base}: ok`;
  if (d.kind === 'writing') return `${base}: ok up to ${d.position}, where the running server is writing a record`;
  return `${base}: ${d.kind === 'torn-tail' ? 'torn tail' : 'DAMAGED'} at byte position ${d.position} (${d.reason}), ${d.bytesAfter} bytes from there on`;
}
