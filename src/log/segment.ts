/**
 * One segment file of the log: a file of records back to back, named by its base offset.
 *
 * Positions are byte positions in this file; offsets are logical record numbers (never mixed).
 * Writes go through the single {@link LogWriter} only; reads (payloads of messages that are not
 * kept in memory) use positional `readSync`, which is safe beside an in-flight positional write
 * because they never touch the same bytes.
 *
 * A segment knows bytes and offsets only. Which of its records replay still needs (what decides
 * whether compaction may delete it) is the broker's knowledge, kept in
 * broker/segment-accounting.ts and asked for through compactor.ts's CompactionPolicy.
 */
import fs from 'node:fs';
import path from 'node:path';
import { segmentFileName } from './files.js';

export class Segment {
  /** Offset of the first record this segment holds (or will hold). */
  readonly baseOffset: number;
  readonly path: string;
  /** Open file descriptor, read and write (or read only, see openExisting). Changed only by {@link reopen}. */
  #fd: number;
  readonly #writable: boolean;
  /** Bytes of complete, written records; the next write goes at this position. */
  sizeBytes: number;
  /** Offset of the last record in this segment, or baseOffset - 1 when empty. */
  lastOffset: number;
  /** False once the file is closed: after shutdown, or once compaction has deleted it; reads then fail. */
  open = true;
  /** More descriptors of this file (read only), for fdatasyncs beside one on {@link fd}: see {@link openSyncFds}. */
  #syncFds: number[] = [];

  private constructor(baseOffset: number, filePath: string, fd: number, sizeBytes: number, writable: boolean) {
    this.baseOffset = baseOffset;
    this.path = filePath;
    this.#fd = fd;
    this.#writable = writable;
    this.sizeBytes = sizeBytes;
    this.lastOffset = baseOffset - 1;
  }

  /**
   * Creates a new empty segment file in `dir` (fails with EEXIST if it is there already).
   * The caller makes the directory entry durable (fsyncDirectory).
   */
  static create(dir: string, baseOffset: number): Segment {
    const filePath = path.join(dir, segmentFileName(baseOffset));
    const fd = fs.openSync(filePath, 'wx+', 0o644);
    return new Segment(baseOffset, filePath, fd, 0, true);
  }

  /** Opens an existing segment file; `sizeBytes` starts at the file's size until recovery says otherwise. */
  static openExisting(dir: string, baseOffset: number, writable: boolean): Segment {
    const filePath = path.join(dir, segmentFileName(baseOffset));
    const fd = fs.openSync(filePath, writable ? 'r+' : 'r');
    const { size } = fs.fstatSync(fd);
    return new Segment(baseOffset, filePath, fd, size, writable);
  }

  get fd(): number {
    return this.#fd;
  }

  /**
   * Opens {@link path} again, after `--repair` renamed a rewritten file over it, and closes the
   * old descriptor; {@link sizeBytes} becomes the new file's size. Throws the fs error.
   */
  reopen(): void {
    this.closeSyncFds();
    const fd = fs.openSync(this.path, this.#writable ? 'r+' : 'r');
    fs.closeSync(this.#fd);
    this.#fd = fd;
    this.sizeBytes = fs.fstatSync(fd).size;
  }

  /**
   * Reads `lengthBytes` bytes at `position` into a new Buffer (a copy the caller owns).
   * Throws the fs error when the read fails, or an Error when the file is shorter than expected.
   */
  readAt(position: number, lengthBytes: number): Buffer {
    const out = Buffer.allocUnsafe(lengthBytes);
    let done = 0;
    while (done < lengthBytes) {
      const n = fs.readSync(this.fd, out, done, lengthBytes - done, position + done);
      if (n === 0) throw new Error(`short read in ${this.path} at position ${position + done}`);
      done += n;
    }
    return out;
  }

  /** Reads the whole file as written so far (replay). */
  readAll(): Buffer {
    const { size } = fs.fstatSync(this.fd);
    return size === 0 ? Buffer.alloc(0) : this.readAt(0, size);
  }

  /** Cuts the file to `sizeBytes` and fsyncs it. Throws the fs error. */
  truncateTo(sizeBytes: number): void {
    fs.ftruncateSync(this.fd, sizeBytes);
    fs.fsyncSync(this.fd);
    this.sizeBytes = sizeBytes;
  }

  /**
   * Opens up to `count` more descriptors of this file (read only) so that several fdatasyncs can
   * run at once, one per descriptor (log-writer.ts, group-commit.ts). Each open file description
   * is told of a writeback error at its own next fsync (Linux's errseq, since 4.13), so a sync on
   * any of them that returns 0 shows that every write made before it started reached the disk.
   * That holds only for errors after the open: call it before writing what they will cover.
   * Returns how many extra descriptors are open; an open that fails (EMFILE) leaves fewer.
   */
  openSyncFds(count: number): number {
    while (this.#syncFds.length < count) {
      try {
        this.#syncFds.push(fs.openSync(this.path, 'r'));
      } catch {
        break;
      }
    }
    return this.#syncFds.length;
  }

  /** How many fdatasyncs can run at once on this file: {@link fd} and those {@link openSyncFds} opened. */
  get syncSlots(): number {
    return 1 + this.#syncFds.length;
  }

  /** The descriptor of fdatasync slot `slot` (below {@link syncSlots}): 0 is {@link fd}, 1 and up the ones {@link openSyncFds} opened. */
  syncFd(slot: number): number {
    return slot === 0 ? this.#fd : this.#syncFds[slot - 1]!;
  }

  /** Closes the descriptors {@link openSyncFds} opened (errors ignored: they were only read or synced). */
  closeSyncFds(): void {
    for (const fd of this.#syncFds.splice(0)) {
      try {
        fs.closeSync(fd);
      } catch {
        // nothing was written through it
      }
    }
  }

  /** Closes the file descriptors; later calls do nothing. Throws the fs error of the close. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.closeSyncFds();
    fs.closeSync(this.fd);
  }
}
