/**
 * Names and directory operations of the segment log (SPEC §5).
 *
 * A segment is named by the offset of its first record, zero-padded to 20 digits so that `ls`
 * sorts segments in log order: `00000000000000000000.log`, `00000000000000104857.log`, ...
 */
import fs from 'node:fs';
import path from 'node:path';

export const SEGMENT_SUFFIX = '.log';
const NAME_PATTERN = /^(\d{20})\.log$/;

/** The file name (no directory) of the segment whose first record has `baseOffset`. */
export function segmentFileName(baseOffset: number): string {
  return String(baseOffset).padStart(20, '0') + SEGMENT_SUFFIX;
}

/** The base offset encoded in a segment file name, or undefined when `name` is not a segment. */
export function parseSegmentFileName(name: string): number | undefined {
  const match = NAME_PATTERN.exec(name);
  return match === null ? undefined : Number(match[1]);
}

/** Base offsets of the segments in `dir`, ascending. */
export function listSegments(dir: string): number[] {
  const bases: number[] = [];
  for (const name of fs.readdirSync(dir)) {
    const base = parseSegmentFileName(name);
    if (base !== undefined) bases.push(base);
  }
  return bases.sort((a, b) => a - b);
}

/**
 * Makes a directory entry change (file created, renamed or removed) durable by fsyncing the
 * directory itself. Throws the fs error (ENOENT, EIO, ...) unchanged.
 */
export function fsyncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * `mkdir -p dir`: creates `dir` and its missing parents, one `mkdir` each, fsyncing the parent of
 * each one it made (so they survive a power cut), and does nothing when `dir` is a directory
 * already. Node's own `mkdirSync(dir, { recursive: true })` is not used: when `mkdir` fails
 * with ENOENT although the parent exists (a path under /proc or /sys), Node 20 retries
 * it for ever at 100% CPU (issue 13). Throws the fs error of the first directory that cannot be
 * made (EACCES, ENOENT, ENOTDIR, EEXIST for a file in the way, EROFS, ...), whose `path` names it.
 */
export function makeDirectory(dir: string): void {
  const missing: string[] = [];
  let p = path.resolve(dir);
  for (;;) {
    try {
      fs.statSync(p);
      break; // exists; if it is not a directory, the mkdir below (or the caller's use) says so
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    missing.push(p);
    const parent = path.dirname(p);
    if (parent === p) break;
    p = parent;
  }
  const made: string[] = [];
  for (let i = missing.length - 1; i >= 0; i--) {
    try {
      fs.mkdirSync(missing[i]!);
      made.push(missing[i]!);
    } catch (err) {
      // Made meanwhile by someone else: fine, as long as it is a directory.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(missing[i]!).isDirectory()) throw err;
    }
  }
  // A new directory's entry lives in its parent, which nothing else ever fsyncs: without this a
  // power cut after the first start on a new --db could take away the whole directory with every
  // publish answered under --fsync always (found by the power-loss checker, issue 13).
  for (const d of made) fsyncDirectory(path.dirname(d));
  if (missing.length === 0 && !fs.statSync(p).isDirectory()) {
    throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${p}'`), { code: 'ENOTDIR', syscall: 'mkdir', path: p });
  }
}

/** Path of the folder damaged log parts are moved into by `--repair` (SPEC §5). */
export function damagedDir(dir: string): string {
  return path.join(dir, 'damaged');
}

/** Whether `err` says the file system has no room left (ENOSPC, or EDQUOT: a quota). */
export function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
