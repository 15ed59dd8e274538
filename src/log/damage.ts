/**
 * Helpers of recovery and repair (segment-log.ts): telling a torn tail from damage, counting
 * the intact records chained after a position, and moving bytes between files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BrokerError } from '../errors.js';
import { damagedDir, fsyncDirectory, makeDirectory } from './files.js';
import { RECORD_HEADER_BYTES, type CorruptReason } from './record.js';
import { REPLAY_CHUNK_BYTES } from './segment-scan.js';

/**
 * Thrown by SegmentLog.open (segment-log.ts) when a record before the tail of the log is damaged. Code
 * `MQ_ERR_LOG_CORRUPT` (src/errors.ts); it stops the start and never reaches a client.
 */
export class LogCorruptError extends BrokerError {
  declare readonly code: 'MQ_ERR_LOG_CORRUPT';
  readonly file: string;
  readonly position: number;
  readonly reason: CorruptReason | 'offset-not-increasing';

  constructor(file: string, position: number, reason: CorruptReason | 'offset-not-increasing') {
    super('MQ_ERR_LOG_CORRUPT', [file, position, reason]);
    this.name = 'LogCorruptError';
    this.file = file;
    this.position = position;
    this.reason = reason;
  }
}

/**
 * `dir/name`, or `dir/name.1`, `dir/name.2`, ... when taken: a later repair or torn tail can
 * produce a name already used in `<db>/damaged/`, and renaming or writing over it would delete
 * what was moved aside before.
 */
export function freePath(dir: string, name: string): string {
  let target = path.join(dir, name);
  for (let n = 1; fs.existsSync(target); n++) target = path.join(dir, `${name}.${n}`);
  return target;
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

/** Records whose length fields chain from `start` through `buf` before `end` (at least 1): a guess at what a damaged range held. */
export function chainedRecords(buf: Buffer, start: number, end: number): number {
  let count = 0;
  let p = start;
  while (p + 4 <= end) {
    const size = buf.readUInt32LE(p) + 4;
    if (size <= RECORD_HEADER_BYTES || p + size > end) break;
    count++;
    p += size;
  }
  return Math.max(1, count + (p < end ? 1 : 0));
}

/** Copies the first `lengthBytes` bytes of file `from` to the same positions of file `to`. */
export function copyBytes(from: number, to: number, lengthBytes: number): void {
  const chunk = Buffer.allocUnsafe(Math.min(REPLAY_CHUNK_BYTES, Math.max(lengthBytes, 1)));
  for (let at = 0; at < lengthBytes; ) {
    const n = fs.readSync(from, chunk, 0, Math.min(chunk.length, lengthBytes - at), at);
    if (n === 0) throw new Error(`short read at position ${at} while copying a segment`);
    writeAllAt(to, chunk.subarray(0, n), at);
    at += n;
  }
}

export function writeAllAt(fd: number, buf: Buffer, position: number): void {
  for (let done = 0; done < buf.length; ) done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
}

/**
 * Keeps `bytes` (a torn tail, damaged bytes) in the file `name` of `<dir>/damaged/` (a free
 * variant of the name if it is taken), fsynced with its directory entry. Zero bytes only (a
 * zero-filled tail) are not kept. Throws the fs error; a file it could not finish is removed.
 */
export function keepAside(dir: string, bytes: Buffer, name: string): void {
  if (bytes.length === 0 || bytes.every((b) => b === 0)) return;
  const aside = damagedDir(dir);
  makeDirectory(aside);
  const target = freePath(aside, name);
  try {
    fs.writeFileSync(target, bytes, { flag: 'wx' });
    const fd = fs.openSync(target, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    fs.rmSync(target, { force: true });
    throw err;
  }
  fsyncDirectory(aside);
}
