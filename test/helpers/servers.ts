/**
 * Real miniqueue servers for tests, on ephemeral ports: in this process (startInProcess) or as a
 * child process (startChild), and the child's log lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { parseConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { silentLogger } from './loggers.js';

/** Repository root (helpers run from dist/test/helpers/, three levels below). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The server as shipped (`npm start`, the `miniqueue` bin): the bundle scripts/bundle.mjs builds from dist/src/. */
export const MAIN_JS = path.join(ROOT, 'dist', 'bundle', 'miniqueue.js');

/**
 * Starts miniqueue in this process on ephemeral ports with h2c (no TLS) unless `tls` is given.
 * `args` are extra command-line options (e.g. ['--fsync', 'never']).
 */
export async function startInProcess(
  db: string,
  args: string[] = [],
  tls: { key: Buffer; cert: Buffer } | null = null,
  logger: Logger = silentLogger,
): Promise<RunningServer> {
  const config = parseConfig(['--port', '0', '--redis-port', '0', '--host', '127.0.0.1', '--db', db, ...(tls === null ? ['--no-tls'] : []), ...args], {});
  return startServer(config, logger, tls);
}

export interface ChildServer {
  proc: ChildProcess;
  httpPort: number;
  respPort: number;
  /** Every stdout line so far (JSON log lines). */
  lines: string[];
  stderr: () => string;
  /** Sends `signal` and resolves with the exit code / signal. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `node dist/bundle/miniqueue.js` (the server as shipped) as a child process with `--port 0 --redis-port 0` and
 * resolves when both "listening" lines and "miniqueue ready" have been logged (with
 * `options.until` `'listening'`: as soon as both "listening" lines have, while the log may still be
 * replayed; `lines` goes on filling). Rejects if the process exits first (with its stderr).
 * `options.argv0` sets the process's argv[0] (what `ps` and /proc/<pid>/cmdline show first);
 * `options.env` adds variables to this process's environment for it.
 * `db` null: no `--db` (`--engine jetstream`).
 */
export function startChild(
  db: string | null,
  args: string[] = [],
  timeoutMs = 15_000,
  options: { argv0?: string; until?: 'ready' | 'listening'; env?: Record<string, string> } = {},
): Promise<ChildServer> {
  const proc = spawn(
    process.execPath,
    [MAIN_JS, '--port', '0', '--redis-port', '0', '--host', '127.0.0.1', ...(db === null ? [] : ['--db', db]), '--no-tls', '--level', 'info', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: ROOT,
      ...(options.argv0 === undefined ? {} : { argv0: options.argv0 }),
      ...(options.env === undefined ? {} : { env: { ...process.env, ...options.env } }),
    },
  );
  // Never leave a server behind when the test process ends, however it ends.
  const reap = (): void => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  process.once('exit', reap);
  proc.once('exit', () => process.off('exit', reap));
  const lines: string[] = [];
  let stderr = '';
  let buffered = '';
  let httpPort = 0;
  let respPort = 0;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`server did not start in ${timeoutMs} ms; stderr: ${stderr}; stdout: ${lines.join('\n')}`));
    }, timeoutMs);
    const onEarlyExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`server exited with code ${code} before it was ready; stderr: ${stderr}`));
    };
    proc.on('exit', onEarlyExit);
    proc.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        lines.push(line);
        let obj: { msg?: string; protocol?: string; port?: number };
        try {
          obj = JSON.parse(line) as typeof obj;
        } catch {
          continue;
        }
        if (obj.msg === 'listening' && obj.protocol === 'resp') respPort = obj.port!;
        else if (obj.msg === 'listening') httpPort = obj.port!;
        const started =
          options.until === 'listening' ? obj.msg === 'listening' && httpPort !== 0 && respPort !== 0 : obj.msg === 'miniqueue ready';
        if (started) {
          clearTimeout(timer);
          proc.off('exit', onEarlyExit);
          resolve({
            proc,
            httpPort,
            respPort,
            lines,
            stderr: () => stderr,
            kill(signal: NodeJS.Signals = 'SIGKILL') {
              if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
              return exited;
            },
          });
        }
      }
    });
  });
}

/** The JSON log lines of `server` so far, parsed (lines that are not JSON are skipped); with `msg`, only those with that message. */
export function logLines<T = Record<string, unknown>>(server: ChildServer, msg?: string): T[] {
  const out: T[] = [];
  for (const line of server.lines) {
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (msg === undefined || obj.msg === msg) out.push(obj as T);
  }
  return out;
}
