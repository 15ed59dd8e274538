/**
 * The file-system calls of the log writer (log-writer.ts) and the seam tests use to inject
 * storage failures: write and fdatasync, done synchronously where that is faster, and where the
 * fdatasync runs (thread pool or event loop).
 */
import fs from 'node:fs';

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
export function writeNow(
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

/**
 * `fs.fdatasync` done on the event loop, with the callback called before it returns. Redis does
 * the same in `beforeSleep`: when a sync takes tens of microseconds, a round trip through libuv's
 * thread pool (two thread wake-ups and an extra loop turn) costs about as much as the sync, and
 * with the loop blocked every request that arrives meanwhile joins the next turn's batch, so
 * closed-loop clients stay in one group per sync instead of splitting into alternating groups.
 */
export function fdatasyncNow(fd: number, cb: (err: NodeJS.ErrnoException | null) => void): void {
  try {
    fs.fdatasyncSync(fd);
  } catch (err) {
    cb(err as NodeJS.ErrnoException);
    return;
  }
  cb(null);
}

/**
 * Largest moving average of fdatasync time (ms) below which the writer syncs on the event loop
 * (Redis's way); at or above it the sync runs on the thread pool and the loop keeps serving and
 * writing the next batch meanwhile. 0 (the default) keeps every sync on the thread pool: on this
 * project's 2-core machines fdatasync took 0.5-1 ms, and an A/B of RESP PUBLISH -c 12 -P 16
 * (alternating builds, 3 pairs) gave on-loop syncs a median of 0.885x the previous writer and
 * thread-pool syncs 1.016x. `MQ_SYNC_ON_LOOP_MAX_MS` overrides it for such A/B runs.
 */
export const SYNC_ON_LOOP_MAX_MS = Number(process.env.MQ_SYNC_ON_LOOP_MAX_MS ?? 0);
/**
 * Whether batches are written on libuv's thread pool (`fs.write`) instead of on the event loop
 * ({@link writeNow}). Off by default; `MQ_WRITE_ASYNC=1` turns it on for A/B runs: on a disk busy
 * with other processes' writes, a synchronous append blocked the loop for milliseconds (a
 * quarter of the CPU profile of RESP PUBLISH -P16 under load 8 was `writeBuffer`).
 */
export const WRITE_ON_THREAD_POOL = process.env.MQ_WRITE_ASYNC === '1';
/**
 * How many fdatasyncs of the active segment may run at once with `--fsync always`
 * (group-commit.ts). 1 is the writer before (a batch written during a sync waits for it to end,
 * then for a sync of its own). `MQ_SYNC_SLOTS` overrides it for A/B runs.
 */
export const SYNC_SLOTS = Math.max(1, Number(process.env.MQ_SYNC_SLOTS ?? 2) || 1);
/** Weight of the newest fdatasync in the moving average. */
export const FSYNC_EWMA_WEIGHT = 0.2;
