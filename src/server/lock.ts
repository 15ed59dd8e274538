/**
 * The data-directory lock: one miniqueue process per `--db` (SPEC §5 "one writer"). Two servers
 * appending to the same segment files would interleave records and corrupt the log.
 *
 * Node core has no flock/fcntl lock, so the lock has two parts:
 *
 * 1. On Linux, a unix socket bound in the abstract namespace under a name made of the data
 *    directory's device and inode numbers. The kernel lets one socket at a time bind a name and
 *    frees it when its process dies, however it dies: this is the mutual exclusion, with no stale
 *    state to judge and no race between two servers starting at the same moment.
 * 2. The file `<db>/LOCK`, naming the owner: its pid, its start time (field 22 of
 *    `/proc/<pid>/stat`, clock ticks since boot) and the boot id. It names the owner in the error
 *    and guards where the socket cannot (another network namespace, a system without abstract
 *    sockets, a miniqueue older than this file). Its owner is gone when the pid does not run, the
 *    boot id differs (a reboot), or the pid now belongs to a process started at another time (pid
 *    reuse after a crash): such a LOCK is stale and is taken over with a warning (issue 13).
 *
 * Limit: servers in different pid and network namespaces (two containers sharing one volume) see
 * neither part of each other's lock as live; give a data directory to one container at a time.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { BrokerError } from '../errors.js';
import { isNoSpace, makeDirectory } from '../log/files.js';
import { ConfigError } from './config.js';

/**
 * Thrown when another live process holds the lock. Code `MQ_ERR_DB_LOCKED` (src/errors.ts); it
 * stops the start and never reaches a client.
 */
export class DataDirLockedError extends BrokerError {
  declare readonly code: 'MQ_ERR_DB_LOCKED';
  /** The owner's pid, or null when it could not be read. */
  readonly pid: number | null;

  constructor(db: string, pid: number | null) {
    super('MQ_ERR_DB_LOCKED', [db, pid === null ? 'another process' : `process ${pid}`, path.join(db, 'LOCK')]);
    this.name = 'DataDirLockedError';
    this.pid = pid;
  }
}

/** The owner a LOCK file names. start and boot are null in LOCK files of older versions. */
interface LockOwner {
  pid: number;
  /** Start time of the process, clock ticks since boot (`/proc/<pid>/stat` field 22), as text. */
  start: string | null;
  /** `/proc/sys/kernel/random/boot_id` when the LOCK was written. */
  boot: string | null;
}

/** Start time of process `pid` (`/proc/<pid>/stat` field 22, as text), or null when unknown. */
export function processStartTime(pid: number): string | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // Field 2 (the command name) is in parentheses and may hold spaces and ')': split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = fields[22 - 3];
  return start !== undefined && /^\d+$/.test(start) ? start : null;
}

/** State of process `pid` (`/proc/<pid>/stat` field 3: R, S, D, Z, ...), or null when unknown. */
function processState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch {
    return null;
  }
}

function currentBootId(): string | null {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim() || null;
  } catch {
    return null;
  }
}

/** Parses a LOCK file: first line the pid (all older versions wrote only that), then `key=value` lines. */
function parseLock(text: string): LockOwner {
  const lines = text.split('\n');
  const owner: LockOwner = { pid: Number.parseInt(lines[0] ?? '', 10), start: null, boot: null };
  for (const line of lines.slice(1)) {
    const eq = line.indexOf('=');
    const value = line.slice(eq + 1).trim();
    if (line.startsWith('start=') && /^\d+$/.test(value)) owner.start = value;
    if (line.startsWith('boot=') && value !== '') owner.boot = value;
  }
  return owner;
}

function formatLock(owner: LockOwner): string {
  return `${owner.pid}\n${owner.start === null ? '' : `start=${owner.start}\n`}${owner.boot === null ? '' : `boot=${owner.boot}\n`}`;
}

/** Whether a process with `pid` runs and looks like a Node.js process (for LOCK files without a start time). */
function isLiveNode(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('node');
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

/** Whether the process a LOCK names is gone for sure (so the LOCK is stale). */
function ownerGone(owner: LockOwner, me: LockOwner): boolean {
  const { pid } = owner;
  if (!Number.isInteger(pid) || pid <= 0) return true; // unreadable: a crash while it was written
  if (owner.boot !== null && me.boot !== null && owner.boot !== me.boot) return true; // written before a reboot
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return true;
  }
  // A zombie (killed, not reaped yet: a kill -9 then an immediate restart) holds no file or
  // socket and never runs again.
  if (processState(pid) === 'Z') return true;
  if (owner.start !== null) {
    const start = pid === process.pid ? me.start : processStartTime(pid);
    // The pid runs: the same process only if it started when the LOCK says (else: pid reuse).
    return start !== null && start !== owner.start;
  }
  // A LOCK of an older version: its pid is ours (a restart that got the same pid, e.g. pid 1 in a
  // container) or belongs to a process that is not Node.
  return pid === process.pid || !isLiveNode(pid);
}

/**
 * Binds the abstract unix socket that is the lock on Linux. Resolves with the bound server,
 * 'busy' when another process has bound it, or null where abstract sockets are not available.
 */
function bindLockSocket(db: string, logger: Logger): Promise<net.Server | 'busy' | null> {
  if (process.platform !== 'linux') return Promise.resolve(null);
  const { dev, ino } = fs.statSync(db, { bigint: true });
  const name = `\0miniqueue-db-lock:${dev}:${ino}`;
  return new Promise((resolve) => {
    const server = net.createServer((socket) => socket.destroy());
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') return resolve('busy');
      logger.warn({ err }, 'cannot bind the lock socket of the data directory; relying on its LOCK file alone');
      resolve(null);
    });
    server.listen({ path: name }, () => {
      server.unref();
      resolve(server);
    });
  });
}

/**
 * Creates the data directory `db` (and missing parents, each fsynced into its parent) if it is
 * not there. Called before anything else is written (the development certificate), so a start
 * refused for its `--db` leaves nothing behind.
 * @throws ConfigError (`--db`) when the directory cannot be created.
 */
export function createDataDir(db: string): void {
  try {
    makeDirectory(db);
  } catch (err) {
    throw new ConfigError('--db', `cannot create the data directory --db ${JSON.stringify(db)}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Takes the lock of `db` (creating the directory if missing) and resolves with the function that
 * releases it.
 * @throws ConfigError (`--db`) when the directory cannot be created.
 * @throws DataDirLockedError when a live process holds the lock.
 * @throws fs errors of reading or writing `<db>/LOCK`.
 */
export async function lockDataDir(db: string, logger: Logger): Promise<() => void> {
  createDataDir(db);
  const file = path.join(db, 'LOCK');
  const me: LockOwner = { pid: process.pid, start: processStartTime(process.pid), boot: currentBootId() };
  const mine = formatLock(me);
  const socket = await bindLockSocket(db, logger);
  if (socket === 'busy') {
    let pid: number | null = null;
    try {
      pid = parseLock(fs.readFileSync(file, 'latin1')).pid;
    } catch {
      // LOCK not written yet (the owner is starting) or gone: name no pid.
    }
    throw new DataDirLockedError(db, Number.isInteger(pid) && pid! > 0 ? pid : null);
  }
  try {
    takeLockFile(db, file, me, mine, logger, socket !== null);
  } catch (err) {
    socket?.close();
    throw err;
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    try {
      if (fs.readFileSync(file, 'latin1') === mine) fs.rmSync(file);
    } catch {
      // already gone
    }
    socket?.close();
  };
}

/**
 * Writes `mine` over the existing `file` in place (its block is already allocated, so this needs
 * no free space, unlike a new file) and cuts it to that length. Throws the fs error.
 */
function overwriteInPlace(file: string, mine: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const bytes = Buffer.from(mine, 'latin1');
    fs.writeSync(fd, bytes, 0, bytes.length, 0);
    fs.ftruncateSync(fd, bytes.length);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A LOCK that cannot be written for want of space (a crash on a full disk, then a restart): with
 * the lock socket held, that socket alone is the lock and the start goes on, so that consumers
 * can drain the queues and `/healthz` says what is wrong; without it, the start fails naming the
 * file.
 */
function lockFileNotWritten(file: string, err: unknown, socketHeld: boolean, logger: Logger): void {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (!socketHeld || !isNoSpace(err)) {
    throw Object.assign(new Error(`cannot write the lock file ${file}: ${(err as Error).message}`, { cause: err }), { code });
  }
  logger.warn({ err, file }, 'no space to write the LOCK file of the data directory; its lock socket alone guards it');
}

function takeLockFile(db: string, file: string, me: LockOwner, mine: string, logger: Logger, socketHeld: boolean): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(file, mine, { flag: 'wx' });
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        // The create may have made an empty LOCK before the write failed: it names nobody.
        if (isNoSpace(err)) fs.rmSync(file, { force: true });
        lockFileNotWritten(file, err, socketHeld, logger);
        return;
      }
    }
    let owner: LockOwner;
    try {
      owner = parseLock(fs.readFileSync(file, 'latin1'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile: try again
      throw err;
    }
    if (!ownerGone(owner, me)) throw new DataDirLockedError(db, owner.pid);
    // Replaced by rename, so that a LOCK is there at every moment: a server starting now cannot
    // create one of its own between a remove and a create.
    const temporary = `${file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(temporary, mine);
      fs.renameSync(temporary, file);
    } catch (err) {
      fs.rmSync(temporary, { force: true });
      if (!isNoSpace(err)) throw err;
      // No room for a new file: the stale LOCK's own block takes the new owner.
      try {
        overwriteInPlace(file, mine);
      } catch (overwriteErr) {
        lockFileNotWritten(file, overwriteErr, socketHeld, logger);
      }
    }
    logger.warn(
      { file, ownerPid: Number.isInteger(owner.pid) ? owner.pid : null, ownerStart: owner.start },
      'took over a stale lock of the data directory (its process is gone)',
    );
    return;
  }
  throw new DataDirLockedError(db, null);
}
