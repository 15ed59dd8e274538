/**
 * The server as shipped (dist/bundle/miniqueue.js) started under strace (power-loss checker,
 * issue #13), and the content of a directory tree read back as the checker's initial snapshot.
 */
import fs from 'node:fs';
import path from 'node:path';
import { MAIN_JS, ROOT } from '../../helpers/index.js';
import { readTrace, spawnTraced, type Syscall } from './strace.js';

/** What the traced server's log said compaction did. */
export interface CompactionSeen {
  runs: number;
  messagesCopied: number;
  segmentsRemoved: number;
}

export interface TracedServer {
  respPort: number;
  /** Pid of the traced node process. */
  pid: number;
  /** Every stdout line so far. */
  lines: string[];
  compaction: CompactionSeen;
  /** SIGKILLs the server (the power cut), waits for strace to finish, and returns the parsed trace. */
  killAndTrace(): Promise<{ calls: Syscall[]; traceBytes: number }>;
}

/**
 * Starts `node dist/bundle/miniqueue.js --db <db> <args>` under strace (output to `traceFile`,
 * removed once parsed) and resolves once it logged `miniqueue ready`.
 */
export async function startTracedServer(
  db: string,
  args: string[],
  traceFile: string,
  stringLimitBytes: number,
  straceBin = '/usr/bin/strace',
): Promise<TracedServer> {
  const child = spawnTraced(
    straceBin,
    traceFile,
    stringLimitBytes,
    process.execPath,
    [MAIN_JS, '--db', db, '--no-tls', '--port', '0', '--redis-port', '0', '--host', '127.0.0.1', '--level', 'info', ...args],
    ROOT,
  );
  const reap = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', reap);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const compaction: CompactionSeen = { runs: 0, messagesCopied: 0, segmentsRemoved: 0 };
  const lines: string[] = [];
  const { respPort, pid } = await new Promise<{ respPort: number; pid: number }>((resolve, reject) => {
    let buffered = '';
    let port = 0;
    const timer = setTimeout(() => reject(new Error(`traced server did not start; stderr: ${stderr}`)), 30_000);
    child.once('exit', () => {
      clearTimeout(timer);
      reject(new Error(`traced server exited early (is strace allowed to trace here?); stderr: ${stderr}`));
    });
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        lines.push(line);
        let obj: { msg?: string; protocol?: string; port?: number; pid?: number; messagesCopied?: number; segmentsRemoved?: number };
        try {
          obj = JSON.parse(line) as typeof obj;
        } catch {
          continue;
        }
        if (obj.msg === 'compaction run') {
          compaction.runs++;
          compaction.messagesCopied += obj.messagesCopied ?? 0;
          compaction.segmentsRemoved += obj.segmentsRemoved ?? 0;
        }
        if (obj.msg === 'listening' && obj.protocol === 'resp') port = obj.port!;
        if (obj.msg === 'miniqueue ready') {
          clearTimeout(timer);
          resolve({ respPort: port, pid: obj.pid! });
        }
      }
    });
  });
  return {
    respPort,
    pid,
    lines,
    compaction,
    async killAndTrace() {
      // The pid is the traced node process, a child of the strace started above.
      process.kill(pid, 'SIGKILL');
      await exited;
      process.off('exit', reap);
      const calls = readTrace(traceFile);
      const traceBytes = fs.statSync(traceFile).size;
      fs.rmSync(traceFile);
      return { calls, traceBytes };
    },
  };
}

/** The files and directories under `root` (relative path -> bytes, or 'dir'), as an initial snapshot. */
export function readTree(root: string): Map<string, Buffer | 'dir'> {
  const out = new Map<string, Buffer | 'dir'>();
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        out.set(r, 'dir');
        walk(r);
      } else {
        out.set(r, fs.readFileSync(path.join(root, r)));
      }
    }
  };
  walk('');
  return out;
}
