// Child processes, ports and cleanup shared by every benchmark script.
//
// Every process started through `startChild` is remembered and killed (SIGKILL) when this
// process exits for any reason, so a failing scenario never leaves a broker, redis-server or
// load tool behind. `run.mjs` additionally starts each scenario in its own process group and
// kills the whole group afterwards, as a second line of defence.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (bench/lib/../..). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const children = new Set();
const tempDirs = new Set();
let hooksInstalled = false;

function killAllSync() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function installHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      killAllSync();
      process.exit(128 + (os.constants.signals[signal] ?? 1));
    });
  }
}

/**
 * Spawns `cmd args` and tracks it for cleanup. Captures stdout and stderr (the last
 * `keepBytes` of each) unless `stdio` says otherwise.
 * @returns the ChildProcess, with `.out()` and `.err()` returning what was captured so far and
 *   `.exited` a promise of `{ code, signal }`.
 */
export function startChild(cmd, args, { env, cwd = ROOT, keepBytes = 1 << 20, stdio } = {}) {
  installHooks();
  const child = spawn(cmd, args, { cwd, env: env ?? process.env, stdio: stdio ?? ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d) => {
    out += d;
    if (out.length > keepBytes * 2) out = out.slice(-keepBytes);
  });
  child.stderr?.setEncoding('utf8').on('data', (d) => {
    err += d;
    if (err.length > keepBytes * 2) err = err.slice(-keepBytes);
  });
  child.out = () => out;
  child.err = () => err;
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
    child.on('error', (e) => {
      children.delete(child);
      err += `\nspawn error: ${e.message}`;
      resolve({ code: -1, signal: null, error: e });
    });
  });
  return child;
}

/**
 * Stops a tracked child: `signal` first, SIGKILL after `graceMs`.
 * @returns `{ code, signal, forced, sent }`; `forced` is true when SIGKILL was needed, `sent` is
 *   the signal sent (null when the child had exited already).
 */
export async function stopChild(child, { signal = 'SIGTERM', graceMs = 5000 } = {}) {
  if (child.exitCode !== null || child.signalCode !== null) return { ...(await child.exited), forced: false, sent: null };
  child.kill(signal);
  let timer;
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs);
  });
  const first = await Promise.race([child.exited, timedOut]);
  clearTimeout(timer);
  if (first !== 'timeout') return { ...first, forced: false, sent: signal };
  child.kill('SIGKILL');
  return { ...(await child.exited), forced: true, sent: signal };
}

/**
 * Runs a command to completion (tracked, so it dies with us) and returns its output.
 * Rejects when it runs longer than `timeoutMs` (after killing it); never rejects on exit status.
 */
export async function runCommand(cmd, args, { timeoutMs = 600_000, env, cwd } = {}) {
  const child = startChild(cmd, args, { env, cwd });
  let timer;
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const result = await Promise.race([child.exited, timedOut]);
  clearTimeout(timer);
  if (result === 'timeout') {
    child.kill('SIGKILL');
    await child.exited;
    throw new Error(`${cmd} did not finish within ${timeoutMs} ms; stderr: ${tail(child.err())}`);
  }
  return { ...result, stdout: child.out(), stderr: child.err() };
}

/** A fresh temporary directory, removed when this process exits (or by `removeTempDir`). */
export function makeTempDir(prefix) {
  installHooks();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Removes a directory made by `makeTempDir` now. */
export function removeTempDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/**
 * A loopback TCP port that was free a moment ago: listen on port 0, read the port, close.
 * Another process can take it before we use it, so starters retry on "address in use".
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Two distinct free ports. */
export async function freePorts(count) {
  const ports = new Set();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** Resolves once a TCP connection to 127.0.0.1:port succeeds (polling every 50 ms). */
export async function waitForPort(port, { timeoutMs = 20_000, child } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      const text = child.err() || child.out();
      // The first error line (e.g. "Error [ERR_MODULE_NOT_FOUND]: ...") says more than a stack tail.
      const first = text.split('\n').find((l) => /error/i.test(l));
      throw new Error(`process exited (code ${child.exitCode}, signal ${child.signalCode}) before port ${port} opened: ${first ? `${first.trim().slice(0, 300)} … ` : ''}${tail(text, 300)}`);
    }
    const ok = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The last `n` characters of a text, on one line, for error messages. */
export function tail(text, n = 600) {
  const t = String(text ?? '').trim();
  return (t.length > n ? `…${t.slice(-n)}` : t).replace(/\s*\n\s*/g, ' | ');
}

/** Absolute path from the repository root. */
export const fromRoot = (...parts) => path.join(ROOT, ...parts);

const CLOCK_TICKS_PER_S = 100; // USER_HZ on Linux

/**
 * CPU seconds (user + system) used so far by process `pid`, from /proc/<pid>/stat (10 ms
 * resolution); null when `pid` is undefined or the file cannot be read.
 */
export function cpuSecondsOf(pid) {
  if (pid === undefined) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S; // utime, stime (fields 14, 15)
  } catch {
    return null;
  }
}

/** Microseconds of CPU per operation between two {@link cpuSecondsOf} samples, or null. */
export function cpuUsPerOp(cpuStartS, cpuEndS, ops) {
  return cpuStartS === null || cpuEndS === null || !(ops > 0) ? null : ((cpuEndS - cpuStartS) * 1e6) / ops;
}
