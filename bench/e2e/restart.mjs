#!/usr/bin/env node
// Restart on a log of live messages (issue 11 item 4): writes MESSAGES (default 1,000,000) PUBLISH
// records of PAYLOAD_BYTES (default 10) over TOPICS (4) topics straight into segment files with the
// real record encoder, then RUNS times (default 3): spawns the broker on that --db and sends RESP
// `PUBLISH` as soon as the port accepts, again after each `-LOADING`, until one is answered `+OK`.
// Reports spawn -> first +OK (median and max of the runs), and the resident memory (VmRSS) right
// after it minus that of the same broker started on an empty --db, per live message.
// Prints `RESULT {json}` for bench/run.mjs (ops/s = live messages loaded per second of restart).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePorts, makeTempDir, removeTempDir, stopChild, fromRoot } from '../lib/procs.mjs';
import { numEnv, runScenario } from '../lib/scenario.mjs';

const MESSAGES = numEnv('MESSAGES', 1_000_000);
const PAYLOAD_BYTES = numEnv('PAYLOAD_BYTES', 10);
const TOPICS = Math.max(1, numEnv('TOPICS', 4));
const RUNS = Math.max(1, numEnv('RUNS', 3));
const main = process.env.MQ_BENCH_MAIN || fromRoot('dist', 'bundle', 'miniqueue.js');
// dist/ of that build: main is dist/bundle/miniqueue.js, or dist/src/server/main.js in older builds.
const distDir = path.basename(path.dirname(main)) === 'bundle' ? path.resolve(path.dirname(main), '..') : path.resolve(path.dirname(main), '..', '..');

/** Writes the log: segments of 64 MiB, each record a PUBLISH whose id is its offset. */
async function writeLog(db) {
  const record = await import(path.join(distDir, 'src', 'log', 'record.js'));
  const { RecordType, recordSizeBytes } = record;
  // Builds older than encodePublish (an A/B against one) have only the 9-argument encodeRecord.
  const encodePublish =
    record.encodePublish ?? ((buf, p, offset, topic, payload) => record.encodeRecord(buf, p, RecordType.PUBLISH, offset, topic, 0, 0, 0, payload));
  const { segmentFileName } = await import(path.join(distDir, 'src', 'log', 'files.js'));
  const payload = Buffer.alloc(PAYLOAD_BYTES, 0x61);
  const maxRecordBytes = recordSizeBytes(RecordType.PUBLISH, `topic-${TOPICS - 1}`.length, PAYLOAD_BYTES);
  const perSegment = Math.max(1, Math.floor((64 * 1024 * 1024) / maxRecordBytes));
  for (let offset = 0; offset < MESSAGES; ) {
    const count = Math.min(perSegment, MESSAGES - offset);
    const buf = Buffer.allocUnsafe(count * maxRecordBytes);
    const base = offset;
    let p = 0;
    for (let i = 0; i < count; i++, offset++) p = encodePublish(buf, p, offset, `topic-${offset % TOPICS}`, payload);
    fs.writeFileSync(path.join(db, segmentFileName(base)), buf.subarray(0, p));
  }
}

/** One RESP PUBLISH on a fresh connection: resolves with the first reply line, or '' if the port is not open. */
function publishOnce(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    sock.setEncoding('latin1');
    sock.once('connect', () => sock.write('*3\r\n$7\r\nPUBLISH\r\n$7\r\nrestart\r\n$1\r\nx\r\n'));
    sock.on('data', (d) => {
      got += d;
      if (got.includes('\r\n')) {
        sock.destroy();
        resolve(got.slice(0, got.indexOf('\r\n')));
      }
    });
    sock.once('error', () => resolve(''));
    sock.once('close', () => resolve(got));
  });
}

function rssBytes(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) * 1024;
}

/** Spawns the broker on `db`; resolves with spawn -> first +OK (ms) and the RSS then. */
async function restartOnce(db) {
  const [h2Port, respPort] = await freePorts(2);
  const args = [main, '--db', db, '--port', String(h2Port), '--host', '127.0.0.1', '--redis-port', String(respPort), '--no-tls', '--level', 'silent', '--fsync', 'always'];
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`broker exited with ${child.exitCode}: ${stderr.slice(-300)}`);
      if (performance.now() - spawnedAt > 120_000) throw new Error('no +OK within 120 s');
      const reply = await publishOnce(respPort);
      if (reply === '+OK') break;
      if (reply !== '' && !reply.startsWith('-LOADING')) throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
      if (reply === '') await new Promise((r) => setTimeout(r, 2));
    }
    const okMs = performance.now() - spawnedAt;
    return { okMs, rss: rssBytes(child.pid) };
  } finally {
    await stopChild(child, { signal: 'SIGKILL' });
  }
}

await runScenario(`restart on ${MESSAGES} live ${PAYLOAD_BYTES}-byte messages: spawn -> first PUBLISH +OK`, async () => {
  const db = makeTempDir('mq-bench-restart-');
  const empty = makeTempDir('mq-bench-restart-empty-');
  try {
    await writeLog(db);
    const emptyRun = await restartOnce(empty);
    const runs = [];
    for (let i = 0; i < RUNS; i++) runs.push(await restartOnce(db));
    const ms = runs.map((r) => r.okMs).sort((a, b) => a - b);
    const median = ms[Math.floor(ms.length / 2)];
    const rss = runs.map((r) => r.rss).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
    const perMessage = (rss - emptyRun.rss) / MESSAGES;
    const notes = [
      `spawn -> +OK ${ms.map((x) => x.toFixed(0)).join(', ')} ms (empty --db: ${emptyRun.okMs.toFixed(0)} ms); ` +
        `RSS ${(rss / 2 ** 20).toFixed(0)} MiB (empty --db ${(emptyRun.rss / 2 ** 20).toFixed(0)} MiB) = ${perMessage.toFixed(0)} B per live message`,
    ];
    process.stderr.write(`${notes[0]}\n`);
    return {
      command: `node bench/e2e/restart.mjs (MESSAGES=${MESSAGES} PAYLOAD_BYTES=${PAYLOAD_BYTES} TOPICS=${TOPICS} RUNS=${RUNS})`,
      opsPerSec: MESSAGES / (median / 1000),
      p50Ms: median,
      p99Ms: ms[ms.length - 1],
      restartMs: ms,
      emptyRestartMs: emptyRun.okMs,
      rssBytes: rss,
      emptyRssBytes: emptyRun.rss,
      rssBytesPerLiveMessage: perMessage,
      notes,
    };
  } finally {
    removeTempDir(db);
    removeTempDir(empty);
  }
});
