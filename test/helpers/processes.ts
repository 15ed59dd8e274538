/** Child processes for tests: the real CLI, curl, any command, each run to completion. */
import { spawn } from 'node:child_process';
import { MAIN_JS, ROOT } from './servers.js';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/bundle/miniqueue.js ...args` (the real CLI: inspect, check, --help ...) to completion, killed after `timeoutMs`. */
export function runMain(args: string[], timeoutMs = 15_000): Promise<CliRun> {
  const proc = spawn(process.execPath, [MAIN_JS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs curl with `args` and resolves with `<http_version> <status>` (the body is discarded). */
export function runCurl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`curl exited ${code}: ${err} ${out}`))));
  });
}

/** Runs a command and resolves with its exit code, stdout and stderr. */
export function runCommand(cmd: string, args: string[], input?: string | Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    proc.stdout.on('data', (d: Buffer) => out.push(d));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    proc.stdin.end(input);
  });
}
