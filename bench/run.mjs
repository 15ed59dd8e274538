#!/usr/bin/env node
// `npm run bench` (issue #5): every end-to-end scenario, each in its own child process and
// process group, with its baseline measured in the same run right before it. Prints the
// environment, one table (scenario, tool command, ops/s, p50, p99, target, baseline, ratio)
// and writes bench/results/<timestamp>.json.
// Knobs: DURATION_S (10 s per measured run), WARMUP_S (1), SCENARIOS (a regex on the scenario
// id or name, to run a subset), MAX_RUN_MB (cap on payload bytes stored by one redis-benchmark
// run). Targets are for --fsync always; see "Benchmarks" in README.md.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { ROOT, tail } from './lib/procs.mjs';
import { ensureCerts } from './lib/servers.mjs';
import { snapshotBuild } from './lib/snapshot.mjs';
import { environment, environmentLine, fmtMs, fmtRate } from './lib/stats.mjs';
import { fsyncText, probeFdatasync } from './lib/fsync-probe.mjs';

const DURATION_S = Number(process.env.DURATION_S || 10);
const WARMUP_S = Number(process.env.WARMUP_S || 1);
const FILTER = process.env.SCENARIOS ? new RegExp(process.env.SCENARIOS, 'i') : null;
const KNOBS = ['SERVER', 'FSYNC', 'APPENDFSYNC', 'CONNECTIONS', 'PIPELINE', 'PAYLOAD_BYTES', 'MESSAGES', 'OP'];

// ---------------------------------------------------------------------------------------------
// The plan. A row may name the baseline row its ratio is taken against, and targets:
// minOps (ops/s) and minRatio (× baseline). Baselines run right before the rows that use them.
const plan = [];
const add = (row) => plan.push(row);
const K = 1000;

for (const bytes of [10, 4096]) {
  const size = bytes === 10 ? '10B' : '4KiB';
  for (const m of [1, 10]) {
    const base = `h2-bare-m${m}-${size}`;
    const env = { CONNECTIONS: 12, PIPELINE: m, PAYLOAD_BYTES: bytes };
    add({ id: base, script: 'e2e/h2-publish.mjs', env: { ...env, SERVER: 'bare' }, isBaseline: true });
    for (const fsync of ['always', 'never']) {
      // Issue 11's goals: >= 0.8x the bare node:http2 server, and above the Go original (24-25.5k / 29-30k).
      const targets = fsync === 'always' && bytes === 10 ? (m === 1 ? { minOps: 25.5 * K, minRatio: 0.8 } : { minOps: 30 * K, minRatio: 0.8 }) : {};
      add({ id: `h2-publish-m${m}-${size}-${fsync}`, script: 'e2e/h2-publish.mjs', env: { ...env, SERVER: 'miniqueue', FSYNC: fsync }, baseline: base, ...targets });
    }
  }
}
for (const bytes of [10, 4096]) {
  const size = bytes === 10 ? '10B' : '4KiB';
  for (const p of [1, 16]) {
    const env = { CONNECTIONS: 12, PIPELINE: p, PAYLOAD_BYTES: bytes };
    for (const appendfsync of ['always', 'everysec']) {
      add({ id: `redis-lpush-P${p}-${size}-${appendfsync}`, script: 'e2e/resp-publish.mjs', env: { ...env, SERVER: 'redis', APPENDFSYNC: appendfsync }, isBaseline: true });
    }
    for (const fsync of ['always', 'never']) {
      let targets = {};
      // Issue 11's goals: >= 1.0x redis-server appendfsync always; -P1 also above the Go original (87-89k).
      if (fsync === 'always' && bytes === 10) targets = p === 16 ? { minOps: 148 * K, minRatio: 1.0 } : { minOps: 89 * K, minRatio: 1.0 };
      const baseline = `redis-lpush-P${p}-${size}-${fsync === 'always' ? 'always' : 'everysec'}`;
      add({ id: `resp-publish-P${p}-${size}-${fsync}`, script: 'e2e/resp-publish.mjs', env: { ...env, SERVER: 'miniqueue', FSYNC: fsync }, baseline, ...targets });
    }
  }
}
// Consume: each scenario's baseline is the same consumers against bench/baselines/bare-consume.mjs
// (bare node:net / node:http2 answering the same exchanges from a counter), measured right before;
// the fsync=never rows show how much of the time goes to durable ACKs.
// Issue 11's goals: HTTP/2 consume 1 subscriber >= 40k; RESP SUBSCRIBE 1 connection >= 53k with
// --fsync never (with every ACK fsynced one connection is capped near 1 / (fsync + round trip));
// RESERVE+ACK 16 in flight on one connection >= 150k.
const consumeRows = [
  { id: 'h2-consume-1sub', script: 'e2e/h2-consume.mjs', env: { CONNECTIONS: 1 }, goal: { always: 40 * K } },
  { id: 'h2-consume-4subs', script: 'e2e/h2-consume.mjs', env: { CONNECTIONS: 4 }, goal: {} },
  { id: 'resp-subscribe-1conn', script: 'e2e/resp-subscribe.mjs', env: { CONNECTIONS: 1 }, goal: { never: 53 * K } },
  { id: 'resp-reserve-P16', script: 'e2e/resp-reserve.mjs', env: { CONNECTIONS: 1, PIPELINE: 16 }, goal: { always: 150 * K } },
];
for (const { id, script, env, goal } of consumeRows) {
  add({ id: `${id}-bare`, script, env: { ...env, SERVER: 'bare' }, isBaseline: true });
  for (const fsync of ['always', 'never']) {
    add({ id: `${id}-${fsync}`, script, env: { ...env, FSYNC: fsync }, baseline: `${id}-bare`, ...(goal[fsync] ? { minOps: goal[fsync] } : {}) });
  }
}
// Restart on 1M live messages (issue 11 item 4): spawn -> first PUBLISH +OK, and RSS per live message.
add({ id: 'restart-1M', script: 'e2e/restart.mjs', env: { MESSAGES: 1_000_000, PAYLOAD_BYTES: 10 } });
// The JetStream gateway beside a plain nats.js client on the same 3-node cluster (issue 15's goal:
// the gateway adds at most 30%, i.e. >= 0.77x). Opt-in (they need nats-server): SCENARIOS=jetstream.
// The ratio is against the plain client measured inside the same scenario (ownBaselineOps).
for (const op of ['publish', 'consume']) {
  add({ id: `jetstream-gateway-${op}`, script: 'e2e/jetstream-gateway.mjs', env: { OP: op, CONNECTIONS: 4, PIPELINE: 16, PAYLOAD_BYTES: 10, MESSAGES: 10_000 }, optIn: 'jetstream', minRatio: 0.77 });
}

// ---------------------------------------------------------------------------------------------
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** Installs the load tools from Debian when one is missing (root only). */
function ensureTools() {
  const tools = [
    { cmd: 'h2load', pkg: 'nghttp2-client' },
    { cmd: 'redis-benchmark', pkg: 'redis-tools' },
    { cmd: 'redis-server', pkg: 'redis-server' },
  ];
  const missing = tools.filter((t) => !has(t.cmd));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((t) => t.pkg))];
  if (!isRoot || !has('apt-get')) {
    console.error(`missing ${missing.map((t) => t.cmd).join(', ')} (Debian: apt-get install ${pkgs.join(' ')}); those scenarios will fail`);
    return;
  }
  console.error(`installing ${pkgs.join(' ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  spawnSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env });
}

let current = null; // the running scenario's child, for SIGINT

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is gone already
  }
}

/** Runs one scenario script in its own process group; resolves to its RESULT object. */
function runOne(row) {
  return new Promise((resolve) => {
    const env = { ...process.env, DURATION_S: String(DURATION_S), WARMUP_S: String(WARMUP_S), MQ_BENCH_MAIN: build?.mainPath ?? '' };
    for (const k of KNOBS) env[k] = '';
    for (const [k, v] of Object.entries(row.env)) env[k] = String(v);
    const child = spawn(process.execPath, [path.join(ROOT, 'bench', row.script)], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    current = child;
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => {
      err += d;
      if (err.length > 1 << 20) err = err.slice(-(1 << 19));
    });
    const limitMs = ((DURATION_S + WARMUP_S) * 4 + Math.max(5, DURATION_S) + 120) * 1000;
    const timer = setTimeout(() => {
      err += `\n(run.mjs: killed after ${limitMs / 1000} s)`;
      killGroup(child);
    }, limitMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      killGroup(child); // anything the scenario left behind (broker, redis-server, h2load)
      current = null;
      const line = out.split('\n').reverse().find((l) => l.startsWith('RESULT '));
      let result = null;
      try {
        result = line ? JSON.parse(line.slice(7)) : null;
      } catch {
        // fall through to the error below
      }
      if (result === null) result = { error: `exited with ${code ?? signal} and no RESULT line: ${tail(err)}` };
      else if (result.error && code !== 0) result.error = `${result.error}`;
      resolve(result);
    });
  });
}

// ---------------------------------------------------------------------------------------------
const startedAt = new Date();
const started = performance.now();
ensureTools();
const env = environment();
console.log(`miniqueue benchmarks — ${startedAt.toISOString()}`);
console.log(`environment: ${environmentLine(env)}`);
console.log(`tools: ${env.h2load ?? 'h2load missing'} | ${env.redisBenchmark ?? 'redis-benchmark missing'} | ${env.redisServer ?? 'redis-server missing'}`);
const fsyncBefore = probeFdatasync();
console.log(`${fsyncText(fsyncBefore)}`);
console.log(`DURATION_S=${DURATION_S} WARMUP_S=${WARMUP_S}${FILTER ? ` SCENARIOS=${FILTER.source}` : ''}; targets apply to --fsync always\n`);

// Certificates first (gen-certs imports dist/), then a private copy of the broker build.
let build = null;
try {
  await ensureCerts();
  build = await snapshotBuild();
  console.log(`broker build: a copy of dist/ taken at ${new Date().toISOString()} (${build.dir})\n`);
} catch (err) {
  console.error(`cannot prepare the broker: ${err.message}; broker scenarios will fail`);
}
process.on('exit', () => build?.remove());

const selected = plan.filter((r) => (FILTER ? FILTER.test(r.id) : r.optIn === undefined) && (r.optIn === undefined || FILTER?.test(r.optIn)));
const rows = [];
let interrupted = false;

function finish() {
  const wallTimeS = (performance.now() - started) / 1000;
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const r of rows) {
    const b = r.baseline ? byId.get(r.baseline) : undefined;
    r.baselineScenario = b?.scenario ?? r.ownBaselineScenario ?? null;
    r.baselineOps = b && !b.error ? b.opsPerSec : (r.ownBaselineOps ?? null);
    r.ratio = r.baselineOps && !r.error ? r.opsPerSec / r.baselineOps : null;
    // A ratio target whose baseline failed or was not run cannot be judged; it is left out.
    const checks = [];
    if (r.minOps !== undefined) checks.push(!r.error && r.opsPerSec >= r.minOps);
    if (r.minRatio !== undefined && (r.ratio !== null || r.error)) checks.push(!r.error && r.ratio >= r.minRatio);
    r.pass = checks.length === 0 ? null : checks.every(Boolean);
  }
  printTable(rows);
  const fsyncAfter = probeFdatasync();
  console.log(`\nafter the scenarios: ${fsyncText(fsyncAfter)}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const dir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const report = { startedAt: startedAt.toISOString(), wallTimeS, interrupted, env, fsync: { before: fsyncBefore, after: fsyncAfter }, loadAverageAfter: os.loadavg(), knobs: { DURATION_S, WARMUP_S, SCENARIOS: FILTER?.source ?? null }, rows };
  fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwall time ${wallTimeS.toFixed(0)} s; results in ${path.relative(ROOT, file)}`);
}

function targetText(r) {
  const parts = [];
  if (r.minOps !== undefined) parts.push(`≥${r.minOps / 1000}k`);
  if (r.minRatio !== undefined) parts.push(`≥${r.minRatio.toFixed(2).replace(/0$/, '')}×`);
  return parts.join(', ') || '';
}

function baselineText(r, list) {
  if (r.baseline === undefined && r.ownBaselineOps !== undefined) return `in run: ${fmtRate(r.ownBaselineOps)}`;
  const i = list.findIndex((b) => b.id === r.baseline);
  if (i === -1) return `${r.baseline}: not run`;
  return `#${i + 1}: ${list[i].error ? 'error' : fmtRate(list[i].opsPerSec)}`;
}

function printTable(list) {
  const header = ['#', 'scenario', 'tool command', 'ops/s', 'p50 ms', 'p99 ms', 'server CPU µs/op', 'target', 'baseline', 'ratio', 'result'];
  const notes = [];
  const body = list.map((r, i) => {
    const n = String(i + 1);
    if (r.error) notes.push(`[${n}] ERROR: ${r.error}`);
    for (const note of r.notes ?? []) notes.push(`[${n}] ${note}`);
    const result = r.error ? 'ERROR' : r.pass === null ? (r.isBaseline ? 'baseline' : '') : r.pass ? 'ok' : 'MISS';
    return [
      n,
      r.scenario ?? r.id,
      r.command ?? `node bench/${r.script} (${Object.entries(r.knobs ?? {}).map(([k, v]) => `${k}=${v}`).join(' ')})`,
      r.error ? 'error' : fmtRate(r.opsPerSec),
      r.error ? '' : fmtMs(r.p50Ms),
      r.error ? '' : fmtMs(r.p99Ms),
      r.error || r.serverCpuUsPerOp == null ? '' : r.serverCpuUsPerOp.toFixed(1),
      targetText(r),
      r.baseline || r.ownBaselineOps !== undefined ? baselineText(r, list) : '',
      r.ratio !== null && r.ratio !== undefined ? `${r.ratio.toFixed(2)}×` : '',
      result + ((r.notes ?? []).length > 0 && !r.error ? ' *' : ''),
    ];
  });
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((row) => [...row[c]].length)));
  const line = (cells) => `| ${cells.map((cell, c) => cell + ' '.repeat(widths[c] - [...cell].length)).join(' | ')} |`;
  console.log('');
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of body) console.log(line(row));
  if (notes.length > 0) {
    console.log('\nnotes (* in the result column):');
    for (const n of notes) console.log(`  ${n}`);
  }
}

process.on('SIGINT', () => {
  interrupted = true;
  if (current) killGroup(current);
  console.log('\ninterrupted: partial results');
  finish();
  process.exit(130);
});
process.on('SIGTERM', () => {
  if (current) killGroup(current);
  process.exit(143);
});

for (const [i, row] of selected.entries()) {
  const t = performance.now();
  const result = await runOne(row);
  const merged = { ...row, ...result, id: row.id };
  delete merged.env;
  merged.knobs = row.env;
  rows.push(merged);
  const secs = ((performance.now() - t) / 1000).toFixed(1);
  const summary = result.error ? `ERROR ${result.error.slice(0, 200)}` : `${fmtRate(result.opsPerSec)} ops/s, p50 ${fmtMs(result.p50Ms)} ms, p99 ${fmtMs(result.p99Ms)} ms`;
  console.error(`[${i + 1}/${selected.length}] ${result.scenario ?? row.id}: ${summary} (${secs} s)`);
}
finish();
