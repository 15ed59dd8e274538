// Latency histograms (perf_hooks.createHistogram, nanoseconds in, milliseconds out) and the
// environment line every benchmark prints.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { createHistogram } from 'node:perf_hooks';

/** A histogram that takes durations in milliseconds (fractions allowed) and records ns. */
export function latencyHistogram() {
  const h = createHistogram({ lowest: 1, highest: 120e9, figures: 3 });
  return {
    h,
    recordMs(ms) {
      h.record(Math.max(1, Math.round(ms * 1e6)));
    },
    recordUs(us) {
      h.record(Math.max(1, Math.round(us * 1e3)));
    },
    get count() {
      return h.count;
    },
    /** `{ p50Ms, p99Ms, meanMs, maxMs }`, or nulls when nothing was recorded. */
    summary() {
      if (h.count === 0) return { p50Ms: null, p99Ms: null, meanMs: null, maxMs: null };
      return {
        p50Ms: h.percentile(50) / 1e6,
        p99Ms: h.percentile(99) / 1e6,
        meanMs: h.mean / 1e6,
        maxMs: h.max / 1e6,
      };
    },
  };
}

function firstLine(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
  } catch {
    return null;
  }
}

/** Node version, CPU model, cores, OS, memory and the load tools' versions. */
export function environment() {
  let osName = `${os.type()} ${os.release()}`;
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(fs.readFileSync('/etc/os-release', 'utf8'));
    if (pretty) osName = `${pretty[1]} (${os.type()} ${os.release()} ${os.arch()})`;
  } catch {
    // not Linux
  }
  const cpus = os.cpus();
  return {
    node: process.version,
    cpu: cpus[0]?.model?.trim() ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    os: osName,
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    h2load: firstLine('h2load', ['--version']),
    redisBenchmark: firstLine('redis-benchmark', ['--version']),
    redisServer: firstLine('redis-server', ['--version']),
  };
}

/** One line for the top of a benchmark's output. */
export function environmentLine(env = environment()) {
  return `node ${env.node} | ${env.cpu} | ${env.cores} cores | ${env.os} | ${env.memGiB} GiB | load ${env.loadavg.join(' ')}`;
}

/** Formats a number of operations per second (1234567 → "1.23M", 25300 → "25.3k"). */
export function fmtRate(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(2)}k`;
  return x.toFixed(0);
}

/** Formats milliseconds with about three significant digits. */
export function fmtMs(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  if (x >= 1) return x.toFixed(2);
  return x.toFixed(3);
}
