/**
 * Runs every script in examples/ the way the README tells users to (`node examples/<name>.mjs
 * --insecure ...`), against a real TLS server with its self-signed certificate and a RESP
 * listener, so the README commands stay honest. Needs a build (the examples import dist/).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ensureDevCert } from '../../src/server/certs.js';
import type { RunningServer } from '../../src/server/server.js';
import { removeDir, ROOT, startInProcess, tempDir } from '../helpers/index.js';

let dir: string;
let server: RunningServer;
let certPath: string;
let url: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of the examples, without the MINIQUEUE_* variables they read. */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MINIQUEUE_')));

/** `node examples/<script> ...args`, from the repository root; resolves with its exit code and output. */
function runExample(script: string, args: string[], timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join('examples', script), ...args],
      { cwd: ROOT, timeout: timeoutMs, env },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function assertOk(run: Run, label: string): void {
  assert.equal(run.code, 0, `${label} exited ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
}

before(async () => {
  dir = tempDir('mq-examples-');
  certPath = path.join(dir, 'certs', 'cert.pem');
  const pair = await ensureDevCert({ certPath, keyPath: path.join(dir, 'certs', 'key.pem'), certExplicit: false }, { warn: () => {} });
  server = await startInProcess(path.join(dir, 'db'), ['--period', '100ms'], pair);
  url = `https://localhost:${server.http.port}`;
});

after(async () => {
  await server.close();
  removeDir(dir);
});

test('echo: publishes a line and receives it (with --insecure, with --ca, refused without either)', async () => {
  const [insecure, trusted, refused] = await Promise.all([
    runExample('echo.mjs', ['--url', url, '--insecure', 'hello', 'there']),
    runExample('echo.mjs', ['--url', url, '--ca', certPath, '--topic', 'examples.echo.fixed']),
    runExample('echo.mjs', ['--url', url]),
  ]);
  assertOk(insecure, 'echo --insecure');
  assert.match(insecure.stdout, /received #\d+ "hello there"/);
  assertOk(trusted, 'echo --ca');
  assert.match(trusted.stdout, /received #\d+ "hello from miniqueue"/);
  assert.equal(server.broker.topicStats('examples.echo.fixed')?.acked, 1);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /MQ_ERR_CONNECTION/);
});

test('workers: competing consumers with NACKs; --validate checks and sets the exit status', async () => {
  const [demo, validate, unreachable] = await Promise.all([
    runExample('workers.mjs', ['--url', url, '--insecure', '--count', '12', '--workers', '3', '--nack-rate', '0.3']),
    runExample('workers.mjs', ['--url', url, '--insecure', '--validate', '--count', '300']),
    runExample('workers.mjs', ['--url', 'https://localhost:1', '--insecure', '--validate', '--count', '3']),
  ]);
  assertOk(demo, 'workers');
  assert.match(demo.stdout, /12\/12 jobs acked/);
  assert.match(demo.stdout, /worker \d: ACK +job/);
  assertOk(validate, 'workers --validate');
  assert.match(validate.stdout, /validate OK/);
  assert.equal(unreachable.code, 1, 'a failed run exits non-zero');
  assert.match(unreachable.stderr, /FAILED/);
});

test('backoff: DACK 2^dackCount seconds, then ack; gives up after --max-retries', async () => {
  const [retried, givenUp] = await Promise.all([
    runExample('backoff.mjs', ['--url', url, '--insecure', '--fail-times', '2']),
    runExample('backoff.mjs', ['--url', url, '--insecure', '--fail-times', '5', '--max-retries', '1']),
  ]);
  assertOk(retried, 'backoff');
  assert.match(retried.stdout, /attempt 1: .*DACK 1\n/);
  assert.match(retried.stdout, /attempt 2: .*DACK 2\n/);
  assert.match(retried.stdout, /attempt 3: done, ACK/);
  assertOk(givenUp, 'backoff --max-retries 1');
  assert.match(givenUp.stdout, /attempt 2: .*giving up after 2 attempts, ACK/);
});

test('redis-consumer: PUBLISH, then RESERVE/ACK with ioredis until the topic is empty', async () => {
  const run = await runExample('redis-consumer.mjs', ['--redis-url', `redis://127.0.0.1:${server.resp!.port}`, '--count', '3', '--timeout-ms', '300']);
  assertOk(run, 'redis-consumer');
  assert.equal(run.stdout.match(/RESERVE -> id \d+ "job \d"/g)?.length, 3);
  assert.match(run.stdout, /consumed 3 messages/);
});
