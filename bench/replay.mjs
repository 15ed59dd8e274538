#!/usr/bin/env node
// Replay speed and memory (issue #3): writes a log of MESSAGES live messages of PAYLOAD_BYTES
// each (default 1,000,000 x 100 bytes) straight into segment files with the real record encoder,
// starts the broker on it as a child process, and reports how long the replay took (from the
// broker's "log replayed" line and from spawn to "miniqueue ready") and the resident memory
// (VmRSS) afterwards. Run after `npm run build`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RecordType, encodePublish, recordSizeBytes } from '../dist/src/log/record.js';
import { segmentFileName } from '../dist/src/log/files.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MESSAGES = Number(process.env.MESSAGES ?? 1_000_000);
const PAYLOAD_BYTES = Number(process.env.PAYLOAD_BYTES ?? 100);
const SEGMENT_BYTES = 64 * 1024 * 1024;
const TOPICS = Number(process.env.TOPICS ?? 4);

const db = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-replay-'));
const payload = Buffer.alloc(PAYLOAD_BYTES, 0x61);
const recBytes = recordSizeBytes(RecordType.PUBLISH, 'topic-0'.length, PAYLOAD_BYTES);
const perSegment = Math.floor(SEGMENT_BYTES / recBytes);
let offset = 0;
const writeStarted = performance.now();
while (offset < MESSAGES) {
  const count = Math.min(perSegment, MESSAGES - offset);
  const buf = Buffer.allocUnsafe(count * recBytes);
  let p = 0;
  const base = offset;
  for (let i = 0; i < count; i++, offset++) {
    p = encodePublish(buf, p, offset, `topic-${offset % TOPICS}`, payload);
  }
  fs.writeFileSync(path.join(db, segmentFileName(base)), buf);
}
const logBytes = fs.readdirSync(db).reduce((n, f) => n + fs.statSync(path.join(db, f)).size, 0);
console.log(`wrote ${MESSAGES} messages (${PAYLOAD_BYTES} B payloads, ${(logBytes / 2 ** 20).toFixed(1)} MiB in ${fs.readdirSync(db).length} segments) in ${(performance.now() - writeStarted).toFixed(0)} ms`);

const spawned = performance.now();
const child = spawn(process.execPath, [path.join(root, 'dist/bundle/miniqueue.js'), '--db', db, '--port', '0', '--redis-port', '0', '--no-tls'], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
const result = await new Promise((resolve, reject) => {
  child.stdout.on('data', (d) => {
    out += d;
    const ready = out.split('\n').find((l) => l.includes('"miniqueue ready"'));
    if (ready === undefined) return;
    const replayed = JSON.parse(out.split('\n').find((l) => l.includes('"log replayed"')));
    const readyMs = performance.now() - spawned;
    setTimeout(() => {
      const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
      resolve({ replayMs: replayed.durationMs, messages: replayed.messages, readyMs, rssMiB: rssKiB / 1024 });
    }, 500);
  });
  child.on('exit', (code) => reject(new Error(`broker exited with ${code}`)));
});
child.kill('SIGKILL');
fs.rmSync(db, { recursive: true, force: true });
console.log(
  `replayed ${result.messages} messages: log replay ${result.replayMs} ms, spawn to ready ${result.readyMs.toFixed(0)} ms, ` +
    `RSS after start ${result.rssMiB.toFixed(0)} MiB (node ${process.version}, ${os.cpus()[0]?.model}, ${os.cpus().length} cores)`,
);
fs.mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
fs.writeFileSync(path.join(root, 'bench', 'results', 'replay.json'), JSON.stringify({ date: new Date().toISOString(), MESSAGES, PAYLOAD_BYTES, ...result }, null, 2));
process.exit(0);
