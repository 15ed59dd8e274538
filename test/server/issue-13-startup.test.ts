/**
 * Issue 13, "found by trying it as a new user would", findings 1, 5 and 7: a `--db` that cannot
 * be created, the data-directory lock under pid reuse, and start failures after "listening".
 * Every case runs the real server as shipped (`dist/bundle/miniqueue.js`) as a child process.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { MAIN_JS, removeDir, ROOT, startChild, tempDir } from '../helpers/index.js';

interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs main.js with `args` (after `--host 127.0.0.1 --no-tls --level info`) and resolves when it
 * exits. A process still running after `timeoutMs` is killed and the promise rejects, so a start
 * that hangs or spins fails the test instead of hanging it.
 */
function runToExit(args: string[], timeoutMs = 10_000): Promise<Exited> {
  const proc: ChildProcess = spawn(process.execPath, [MAIN_JS, '--host', '127.0.0.1', '--no-tls', '--level', 'info', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: ROOT,
  });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`still running after ${timeoutMs} ms; stdout: ${stdout.slice(0, 2000)}; stderr: ${stderr.slice(0, 2000)}`));
    }, timeoutMs);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      // Let the pipes deliver what is left.
      setImmediate(() => resolve({ code, signal, stdout, stderr }));
    });
  });
}

/** Asserts a refused start: `exitCode`, exactly one stderr line naming each of `names`, and no "listening" line. */
function assertRefused(result: Exited, exitCode: number, names: string[]): void {
  const context = `stdout: ${result.stdout}\nstderr: ${result.stderr}`;
  assert.equal(result.code, exitCode, `exit code; ${context}`);
  assert.match(result.stderr, /^miniqueue: [^\n]+\n$/, `one line on stderr; ${context}`);
  for (const name of names) assert.ok(result.stderr.includes(name), `stderr names ${name}; ${context}`);
  assert.ok(!result.stdout.includes('"msg":"listening"'), `nothing was logged as listening; ${context}`);
}

/** A TCP port held by this process for the test. */
async function holdPort(t: { after(fn: () => unknown): void }): Promise<number> {
  const blocker = net.createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  t.after(() => blocker.close());
  return (blocker.address() as net.AddressInfo).port;
}

test('issue 13 finding 1: a --db path that cannot be created exits 2 with one line naming --db and the path, without spinning', { timeout: 30_000 }, async () => {
  // As root every directory passes the access() check; mkdir under /proc fails with ENOENT, on
  // which Node's recursive mkdir retried for ever at 100% CPU.
  const result = await runToExit(['--port', '0', '--redis-port', '0', '--db', '/proc/forbidden/db']);
  assertRefused(result, 2, ['--db', '/proc/forbidden/db']);
});

test('issue 13 finding 7: a port in use refuses the start with exit 2 before anything is logged as listening', { timeout: 30_000 }, async (t) => {
  const db = tempDir('mq-i13-port-');
  t.after(() => removeDir(db));
  const taken = await holdPort(t);

  const resp = await runToExit(['--port', '0', '--redis-port', String(taken), '--db', db]);
  assertRefused(resp, 2, ['--redis-port', String(taken)]);
  const http = await runToExit(['--port', String(taken), '--redis-port', '0', '--db', db]);
  assertRefused(http, 2, ['--port', String(taken)]);
  assert.equal(fs.existsSync(path.join(db, 'LOCK')), false, 'a failed start leaves no LOCK behind');
});

test('issue 13 finding 7: a locked data directory refuses the start with exit 2 before anything is logged as listening', { timeout: 30_000 }, async (t) => {
  const db = tempDir('mq-i13-locked-');
  t.after(() => removeDir(db));
  const first = await startChild(db);
  t.after(() => first.kill('SIGKILL'));

  const second = await runToExit(['--port', '0', '--redis-port', '0', '--db', db]);
  assertRefused(second, 2, ['--db', `process ${first.proc.pid}`]);
  assert.equal(fs.readFileSync(path.join(db, 'LOCK'), 'latin1').split('\n')[0], String(first.proc.pid), "the owner's LOCK is untouched");
  assert.deepEqual(await first.kill('SIGTERM'), { code: 0, signal: null });
});

test('issue 13 finding 5: a LOCK whose pid now belongs to another live process (pid reuse after a crash) is taken over', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-reuse-');
  t.after(() => removeDir(db));
  const crashed = await startChild(db);
  await crashed.kill('SIGKILL');
  const lockFile = path.join(db, 'LOCK');
  const left = fs.readFileSync(lockFile, 'latin1');
  assert.equal(left.split('\n')[0], String(crashed.proc.pid));

  // The kernel gives the crashed server's pid to a new process: a live Node process, as a CI
  // runner or another service would be. Simulate it by pointing the LOCK at one.
  const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
  t.after(() => other.kill('SIGKILL'));
  await once(other, 'spawn');
  fs.writeFileSync(lockFile, left.replace(/^\d+/, String(other.pid)));

  const restarted = await startChild(db);
  t.after(() => restarted.kill('SIGKILL'));
  assert.ok(restarted.lines.some((l) => l.includes('took over a stale lock')), 'the stale LOCK is taken over with a warning');
  assert.equal(fs.readFileSync(lockFile, 'latin1').split('\n')[0], String(restarted.proc.pid));
  assert.equal(other.exitCode, null, 'the other process is left alone');
  assert.deepEqual(await restarted.kill('SIGTERM'), { code: 0, signal: null });
  assert.equal(fs.existsSync(lockFile), false, 'a clean stop removes the LOCK');
});

test('a LOCK whose owner was killed and is not reaped yet (a zombie: kill -9 then an immediate restart) is taken over (new-user finding)', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-zombie-');
  t.after(() => removeDir(db));
  const crashed = await startChild(db);
  await crashed.kill('SIGKILL');
  const lockFile = path.join(db, 'LOCK');
  const left = fs.readFileSync(lockFile, 'latin1');
  // A zombie: `sleep 0` exits while its parent (sh, which then becomes `sleep 30`) never reaps it.
  const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.after(() => parent.kill('SIGKILL'));
  const [out] = (await once(parent.stdout!, 'data')) as [Buffer];
  const zombie = Number.parseInt(out.toString(), 10);
  let state = '';
  for (let i = 0; i < 200 && state !== 'Z'; i++) {
    const stat = fs.readFileSync(`/proc/${zombie}/stat`, 'latin1');
    state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!;
    if (state !== 'Z') await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(state, 'Z', `pid ${zombie} is a zombie`);
  const stat = fs.readFileSync(`/proc/${zombie}/stat`, 'latin1');
  const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[22 - 3]!;
  // The LOCK names the zombie with its own start time, as the killed server's LOCK named it.
  fs.writeFileSync(lockFile, left.replace(/^\d+/, String(zombie)).replace(/start=\d+/, `start=${start}`));

  const restarted = await startChild(db);
  t.after(() => restarted.kill('SIGKILL'));
  assert.ok(restarted.lines.some((l) => l.includes('took over a stale lock')), 'the stale LOCK is taken over with a warning');
  assert.deepEqual(await restarted.kill('SIGTERM'), { code: 0, signal: null });
});

test('issue 13 finding 5: a live server is never shared, even when its command line does not say "node"', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-live-');
  t.after(() => removeDir(db));
  // Started as a service manager or a packaged binary would: argv[0] is not "node".
  const first = await startChild(db, [], 15_000, { argv0: 'mq-service' });
  t.after(() => first.kill('SIGKILL'));
  assert.ok(!fs.readFileSync(`/proc/${first.proc.pid}/cmdline`, 'latin1').includes('node'), 'the test needs a command line without "node"');

  const second = await runToExit(['--port', '0', '--redis-port', '0', '--db', db]);
  assertRefused(second, 2, ['--db', `process ${first.proc.pid}`]);
  assert.equal(fs.readFileSync(path.join(db, 'LOCK'), 'latin1').split('\n')[0], String(first.proc.pid));
});

test('issue 13 finding 5: a LOCK naming a live process with its own start time is respected; a LOCK from before a reboot is not', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-file-');
  t.after(() => removeDir(db));
  const lockFile = path.join(db, 'LOCK');
  // A live owner this server cannot see through the lock socket (another network namespace, an
  // older version): this test process, with its real start time.
  const stat = fs.readFileSync(`/proc/${process.pid}/stat`, 'latin1');
  const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
  const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
  fs.writeFileSync(lockFile, `${process.pid}\nstart=${start}\nboot=${boot}\n`);
  const refused = await runToExit(['--port', '0', '--redis-port', '0', '--db', db]);
  assertRefused(refused, 2, ['--db', `process ${process.pid}`]);

  // The same pid and start time, but written during an earlier boot: stale.
  fs.writeFileSync(lockFile, `${process.pid}\nstart=${start}\nboot=00000000-0000-0000-0000-000000000000\n`);
  const started = await startChild(db);
  assert.ok(started.lines.some((l) => l.includes('took over a stale lock')));
  assert.deepEqual(await started.kill('SIGTERM'), { code: 0, signal: null });
});

test('issue 13 finding 5: servers started at the same moment on a crashed data directory: exactly one runs', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-race-');
  t.after(() => removeDir(db));
  const crashed = await startChild(db);
  await crashed.kill('SIGKILL');
  assert.ok(fs.existsSync(path.join(db, 'LOCK')), 'the crash left its LOCK');

  const attempts = await Promise.allSettled(Array.from({ length: 4 }, () => startChild(db)));
  const running = attempts.filter((a) => a.status === 'fulfilled').map((a) => a.value);
  t.after(() => Promise.all(running.map((s) => s.kill('SIGKILL'))));
  const refusals = attempts.filter((a) => a.status === 'rejected').map((a) => String(a.reason));
  assert.equal(running.length, 1, `exactly one server runs; refusals: ${refusals.join(' | ')}`);
  for (const r of refusals) assert.match(r, /exited with code 2 .*in use by/s);
});

test('a start refused for its --db writes no development certificate first (new-user finding)', { timeout: 30_000 }, async (t) => {
  const cwd = tempDir('mq-i13-nocert-');
  t.after(() => removeDir(cwd));
  const proc = spawn(process.execPath, [MAIN_JS, '--host', '127.0.0.1', '--port', '0', '--redis-port', '0', '--db', '/proc/forbidden/db'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  assert.equal(code, 2, stderr);
  assert.match(stderr, /--db/);
  assert.deepEqual(fs.readdirSync(cwd), [], 'nothing written in the working directory (no certs/)');
});

test('the shipped server started with TLS in an empty directory generates its development certificate and serves HTTPS (fresh-clone finding: the bundle could not call selfsigned)', { timeout: 60_000 }, async (t) => {
  const cwd = tempDir('mq-devcert-');
  t.after(() => removeDir(cwd));
  const proc = spawn(process.execPath, [MAIN_JS, '--host', '127.0.0.1', '--port', '0', '--redis-port', '0', '--db', path.join(cwd, 'data'), '--level', 'info'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => proc.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const h2Port = await new Promise<number>((resolve, reject) => {
    let port = 0;
    proc.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as { msg?: string; protocol?: string; port?: number };
        if (entry.msg === 'listening' && entry.protocol !== 'resp') port = entry.port!;
        if (entry.msg === 'miniqueue ready' && port !== 0) resolve(port);
      }
    });
    proc.on('exit', (code) => reject(new Error(`exited with ${code}: ${stderr}${stdout}`)));
  });
  assert.ok(fs.existsSync(path.join(cwd, 'certs', 'localhost.pem')), `certs/localhost.pem written; ${fs.readdirSync(cwd).join(', ')}`);
  const status = await new Promise<number | undefined>((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${h2Port}`, { rejectUnauthorized: false });
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': '/publish/devcert' });
    req.on('response', (headers) => {
      resolve(headers[':status']);
      session.close();
    });
    req.on('error', reject);
    req.end('hello');
  });
  assert.equal(status, 201);
});
