/**
 * Shared test helpers: temp directories, a real miniqueue child process on ephemeral ports,
 * an in-process server, and small HTTP/2 client calls.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { parseConfig } from '../src/server/config.js';
import { startServer, type RunningServer } from '../src/server/server.js';

/** Repository root (tests run from dist/test/, two levels below). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MAIN_JS = path.join(ROOT, 'dist', 'src', 'server', 'main.js');

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(prefix = 'mq-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export const silentLogger: Logger = pino({ level: 'silent' });

/** A logger that records every line it is given (objects), for asserting on log output. */
export function recordingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = {
    write(s: string): void {
      lines.push(JSON.parse(s) as Record<string, unknown>);
    },
  };
  return { logger: pino({ level: 'debug' }, stream), lines };
}

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
 * Starts `node dist/src/server/main.js` as a child process with `--port 0 --redis-port 0` and
 * resolves when both "listening" lines and "miniqueue ready" have been logged (with
 * `options.until` `'listening'`: as soon as both "listening" lines have, while the log may still be
 * replayed; `lines` goes on filling). Rejects if the process exits first (with its stderr).
 * `options.argv0` sets the process's argv[0] (what `ps` and /proc/<pid>/cmdline show first).
 */
export function startChild(
  db: string,
  args: string[] = [],
  timeoutMs = 15_000,
  options: { argv0?: string; until?: 'ready' | 'listening' } = {},
): Promise<ChildServer> {
  const proc = spawn(
    process.execPath,
    [MAIN_JS, '--port', '0', '--redis-port', '0', '--host', '127.0.0.1', '--db', db, '--no-tls', '--level', 'info', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT, ...(options.argv0 === undefined ? {} : { argv0: options.argv0 }) },
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

/** Result of one HTTP/2 request. */
export interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP/2 request on `session`; resolves with status, headers and the whole body. */
export function h2request(
  session: http2.ClientHttp2Session,
  method: string,
  urlPath: string,
  body?: Buffer | string,
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': method, ':path': urlPath });
    const chunks: Buffer[] = [];
    let status = 0;
    let headers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => {
      headers = h;
      status = Number(h[':status']);
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status, headers, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** Connects an h2c session to 127.0.0.1:`port`. */
export function h2connect(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  return session;
}

/** Waits until `predicate()` is true, polling every `intervalMs`, or rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, intervalMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** mulberry32: a small seeded PRNG (floats in [0, 1)), so a failing random case can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
