/**
 * The data-directory lock: one miniqueue process per `--db` (SPEC §5 "one writer"). Two servers
 * appending to the same segment files would interleave records and corrupt the log.
 *
 * The lock is a file `<db>/LOCK` holding the owner's pid, created with O_EXCL. A LOCK left by a
 * process that no longer runs (SIGKILL, power cut) is stale and is taken over with a warning.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

/** Thrown when another live process holds the lock. `code` is `MQ_ERR_DB_LOCKED`. */
export class DataDirLockedError extends Error {
  readonly code = 'MQ_ERR_DB_LOCKED';
  readonly pid: number;

  constructor(db: string, pid: number) {
    super(
      `data directory ${db} is in use by process ${pid} (--db); stop it first, or remove ` +
        `${path.join(db, 'LOCK')} if no miniqueue is running there`,
    );
    this.pid = pid;
  }
}

/** Whether a process with `pid` runs and looks like a Node.js process (guards against pid reuse). */
function isLiveNode(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('node');
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

/**
 * Takes the lock of `db` (creating the directory if missing) and returns the function that
 * releases it. Throws {@link DataDirLockedError} when a live process holds it, and fs errors.
 */
export function lockDataDir(db: string, logger: Logger): () => void {
  fs.mkdirSync(db, { recursive: true });
  const file = path.join(db, 'LOCK');
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
    }
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isLiveNode(pid)) {
      throw new DataDirLockedError(db, pid);
    }
    logger.warn({ file, ownerPid: Number.isNaN(pid) ? null : pid }, 'took over a stale lock of the data directory (its process is gone)');
    fs.rmSync(file, { force: true });
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    try {
      if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file);
    } catch {
      // already gone
    }
  };
}
