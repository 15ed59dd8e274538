#!/usr/bin/env node
// Compaction (issue #4): publish latency with and without background compaction, and restart
// time of a log that once held a lot of data but now holds LIVE live messages.
//
// For each mode (compaction on, then --no-compaction) it starts the broker as a child process
// (--segment-bytes SEGMENT_BYTES, --fsync FSYNC) and drives it over RESP with node:net:
// PUBLISHERS connections publish MIB MiB of PAYLOAD_MIN..PAYLOAD_MAX byte messages, one request
// at a time each (the latency of every PUBLISH goes into a perf_hooks histogram), while one
// consumer connection RESERVEs and ACKs them (pipelined, 64 at a time). LIVE messages go to a
// topic nobody consumes, spread evenly over the run: they pin every segment, so compaction keeps
// copying them forward while publishing goes on. Then SIGTERM, restart on the same --db, and
// time the replay ("log replayed" durationMs) and spawn-to-ready.
//
// Run after `npx tsc -p tsconfig.json`. Knobs (env): MIB (128), SEGMENT_BYTES (1048576),
// PUBLISHERS (8), PAYLOAD_MIN (10), PAYLOAD_MAX (4096), LIVE (1000), FSYNC (always), MODES
// (compaction,no-compaction). Results also go to bench/results/compaction.json.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = path.join(root, 'dist', 'bundle', 'miniqueue.js');
const MIB = Number(process.env.MIB ?? 128);
const SEGMENT_BYTES = Number(process.env.SEGMENT_BYTES ?? 1048576);
const PUBLISHERS = Number(process.env.PUBLISHERS ?? 8);
const PAYLOAD_MIN = Number(process.env.PAYLOAD_MIN ?? 10);
const PAYLOAD_MAX = Number(process.env.PAYLOAD_MAX ?? 4096);
const LIVE = Number(process.env.LIVE ?? 1000);
const FSYNC = process.env.FSYNC ?? 'always';
const MODES = (process.env.MODES ?? 'compaction,no-compaction').split(',');

/** Starts the broker on `db`; resolves with its ports, its log lines and timings once ready. */
function startBroker(db, extraArgs) {
  const spawnedAt = performance.now();
  const args = [MAIN, '--port', '0', '--redis-port', '0', '--host', '127.0.0.1', '--no-tls', '--db', db, '--level', 'info',
    '--segment-bytes', String(SEGMENT_BYTES), '--fsync', FSYNC, ...extraArgs];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    let buffered = '';
    let respPort = 0;
    proc.on('exit', (code) => reject(new Error(`broker exited with ${code}: ${stderr}`)));
    proc.stdout.on('data', (d) => {
      buffered += d;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let obj;
        try {
          obj = JSON.parse(line);
        } catch {
          continue;
        }
        lines.push(obj);
        if (obj.msg === 'listening' && obj.protocol === 'resp') respPort = obj.port;
        if (obj.msg === 'miniqueue ready') {
          proc.removeAllListeners('exit');
          const exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
          resolve({ proc, respPort, lines, readyMs: performance.now() - spawnedAt, stop: (sig = 'SIGTERM') => (proc.kill(sig), exited) });
        }
      }
    });
  });
}

/** A pipelining RESP client: send() resolves with the reply (Buffer, string, number, array, null, or Error). */
class Resp {
  constructor(port) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.pending = [];
    this.buf = Buffer.alloc(0);
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.socket.on('data', (d) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      for (;;) {
        const r = parse(this.buf, 0);
        if (r === undefined) break;
        this.buf = this.buf.subarray(r[1]);
        this.pending.shift()(r[0]);
      }
    });
  }

  send(...args) {
    const parts = [`*${args.length}\r\n`];
    for (const a of args) {
      const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
      parts.push(`$${b.length}\r\n`, b, '\r\n');
    }
    this.socket.write(Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))));
    return new Promise((resolve) => this.pending.push(resolve));
  }

  close() {
    this.socket.destroy();
  }
}

function parse(buf, pos) {
  if (pos >= buf.length) return undefined;
  const end = buf.indexOf('\r\n', pos);
  if (end < 0) return undefined;
  const line = buf.latin1Slice(pos + 1, end);
  switch (buf[pos]) {
    case 0x2b: return [line, end + 2];
    case 0x2d: return [new Error(line), end + 2];
    case 0x3a: return [Number(line), end + 2];
    case 0x24: {
      const n = Number(line);
      if (n < 0) return [null, end + 2];
      if (buf.length < end + 2 + n + 2) return undefined;
      return [Buffer.from(buf.subarray(end + 2, end + 2 + n)), end + 4 + n];
    }
    case 0x2a: {
      const n = Number(line);
      if (n < 0) return [null, end + 2];
      const items = [];
      let p = end + 2;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (r === undefined) return undefined;
        items.push(r[0]);
        p = r[1];
      }
      return [items, p];
    }
    default:
      throw new Error(`bad reply byte ${buf[pos]}`);
  }
}

function dirBytes(dir) {
  let total = 0;
  for (const name of fs.readdirSync(dir)) {
    try {
      const st = fs.statSync(path.join(dir, name));
      if (st.isFile()) total += st.size;
    } catch {
      // removed meanwhile
    }
  }
  return total;
}

let seed = 12345;
function rand() {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x80000000;
}

async function runMode(mode) {
  const db = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-bench-compaction-'));
  const extra = mode === 'no-compaction' ? ['--no-compaction'] : [];
  const broker = await startBroker(db, extra);
  const publishers = Array.from({ length: PUBLISHERS }, () => new Resp(broker.respPort));
  const consumer = new Resp(broker.respPort);
  await Promise.all([...publishers.map((p) => p.ready), consumer.ready]);
  const hist = createHistogram({ lowest: 1, highest: 60e9, figures: 3 });
  const total = MIB * 1024 * 1024;
  let published = 0;
  let publishedBytes = 0;
  let liveSent = 0;
  let acked = 0;
  let maxDirBytes = 0;
  const liveEveryBytes = total / LIVE;
  const sampler = setInterval(() => (maxDirBytes = Math.max(maxDirBytes, dirBytes(db))), 250);
  const started = performance.now();
  let done = false;
  const publisher = async (c) => {
    while (publishedBytes < total) {
      const size = PAYLOAD_MIN + Math.floor(rand() * (PAYLOAD_MAX - PAYLOAD_MIN + 1));
      publishedBytes += size;
      const toLive = liveSent < LIVE && publishedBytes >= liveSent * liveEveryBytes;
      if (toLive) liveSent++;
      const t0 = process.hrtime.bigint();
      const r = await c.send('PUBLISH', toLive ? 'live' : 'load', Buffer.alloc(size, 120));
      hist.record(Number(process.hrtime.bigint() - t0));
      if (r !== 'OK') throw new Error(`PUBLISH answered ${r}`);
      published++;
    }
  };
  const consume = async () => {
    while (!done || acked < published - liveSent) {
      const replies = await Promise.all(Array.from({ length: 64 }, () => consumer.send('RESERVE', 'load', 0)));
      const got = replies.filter(Array.isArray);
      if (got.length === 0) {
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      await Promise.all(got.map((r) => consumer.send('ACK', 'load', r[0])));
      acked += got.length;
    }
  };
  const consuming = consume();
  await Promise.all(publishers.map(publisher));
  const publishMs = performance.now() - started;
  done = true;
  await consuming;
  while (liveSent < LIVE) {
    await publishers[0].send('PUBLISH', 'live', Buffer.alloc(PAYLOAD_MIN, 120));
    liveSent++;
  }
  await new Promise((r) => setTimeout(r, 1500)); // let compaction catch up
  clearInterval(sampler);
  const endDirBytes = dirBytes(db);
  for (const c of [...publishers, consumer]) c.close();
  const runs = broker.lines.filter((l) => l.msg === 'compaction run');
  await broker.stop('SIGTERM');

  // Restart on the same log.
  const again = await startBroker(db, extra);
  const replayed = again.lines.find((l) => l.msg === 'log replayed');
  const check = new Resp(again.respPort);
  await check.ready;
  const stats = await check.send('STATS', 'live');
  const liveReady = stats[stats.findIndex((x) => String(x) === 'ready') + 1];
  check.close();
  await again.stop('SIGTERM');
  fs.rmSync(db, { recursive: true, force: true });
  return {
    mode,
    published,
    publishedMiB: +(publishedBytes / 2 ** 20).toFixed(1),
    publishMs: Math.round(publishMs),
    publishesPerSec: Math.round(published / (publishMs / 1000)),
    mibPerSec: +((publishedBytes / 2 ** 20) / (publishMs / 1000)).toFixed(1),
    p50Ms: +(hist.percentile(50) / 1e6).toFixed(3),
    p99Ms: +(hist.percentile(99) / 1e6).toFixed(3),
    p999Ms: +(hist.percentile(99.9) / 1e6).toFixed(3),
    maxMs: +(hist.max / 1e6).toFixed(3),
    maxDirMiB: +(maxDirBytes / 2 ** 20).toFixed(1),
    endDirMiB: +(endDirBytes / 2 ** 20).toFixed(1),
    compactionRuns: runs.length,
    segmentsRemoved: runs.reduce((n, r) => n + r.segmentsRemoved, 0),
    messagesCopied: runs.reduce((n, r) => n + r.messagesCopied, 0),
    mibCopied: +(runs.reduce((n, r) => n + r.bytesCopied, 0) / 2 ** 20).toFixed(1),
    restart: {
      liveMessages: liveReady,
      segments: replayed.segments,
      logMiB: +(replayed.bytes / 2 ** 20).toFixed(1),
      replayMs: replayed.durationMs,
      spawnToReadyMs: Math.round(again.readyMs),
    },
  };
}

const env = `node ${process.version}, ${os.cpus()[0]?.model} x${os.cpus().length}, ${os.type()} ${os.release()}`;
console.log(`compaction bench: ${MIB} MiB per mode, ${PAYLOAD_MIN}..${PAYLOAD_MAX} B payloads, ${PUBLISHERS} publishers, ` +
  `${LIVE} live messages, --segment-bytes ${SEGMENT_BYTES} --fsync ${FSYNC}; ${env}`);
const results = [];
for (const mode of MODES) {
  const r = await runMode(mode);
  results.push(r);
  console.log(
    `${mode.padEnd(14)} publish p50 ${r.p50Ms} ms  p99 ${r.p99Ms} ms  p99.9 ${r.p999Ms} ms  max ${r.maxMs} ms  ` +
      `${r.publishesPerSec} publishes/s (${r.mibPerSec} MiB/s); data dir max ${r.maxDirMiB} MiB, end ${r.endDirMiB} MiB; ` +
      `${r.compactionRuns} compaction runs, ${r.segmentsRemoved} segments removed, ${r.messagesCopied} messages (${r.mibCopied} MiB) copied`,
  );
  console.log(
    `${''.padEnd(14)} restart with ${r.restart.liveMessages} live messages: ${r.restart.segments} segments, ${r.restart.logMiB} MiB, ` +
      `replay ${r.restart.replayMs} ms, spawn to ready ${r.restart.spawnToReadyMs} ms`,
  );
}
fs.mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
fs.writeFileSync(
  path.join(root, 'bench', 'results', 'compaction.json'),
  JSON.stringify({ date: new Date().toISOString(), env, MIB, SEGMENT_BYTES, PUBLISHERS, PAYLOAD_MIN, PAYLOAD_MAX, LIVE, FSYNC, results }, null, 2),
);
