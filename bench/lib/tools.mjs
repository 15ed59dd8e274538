// Running the external load tools and reading their output:
// - h2load (nghttp2-client): "finished in", req/s, request/status counts, and p50/p99 computed
//   from --log-file (tab-separated: start µs since epoch, status, duration µs), since h2load
//   itself prints only min/max/mean/sd.
// - redis-benchmark: --csv gives rps and p50/p95/p99 (version 7 exits on the first error
//   reply); -n is sized from a warm-up and a short calibration run, so that the measured run
//   lasts about DURATION_S.
import fs from 'node:fs';
import path from 'node:path';
import { latencyHistogram } from './stats.mjs';
import { cpuSecondsOf, cpuUsPerOp, makeTempDir, runCommand, tail } from './procs.mjs';

/** A payload of `bytes` bytes: "helloworld" for 10, otherwise repeated 'x'. */
export function payloadOf(bytes) {
  if (bytes === 10) return Buffer.from('helloworld');
  return Buffer.alloc(bytes, 0x78);
}

/** "10B", "4KiB". */
export function sizeLabel(bytes) {
  return bytes >= 1024 && bytes % 1024 === 0 ? `${bytes / 1024}KiB` : `${bytes}B`;
}

/** Reads an h2load --log-file into a histogram and a status tally. */
function readH2loadLog(file) {
  const hist = latencyHistogram();
  const statuses = {};
  let firstStartUs = Infinity;
  let lastEndUs = 0;
  const text = fs.readFileSync(file, 'latin1');
  let pos = 0;
  while (pos < text.length) {
    let nl = text.indexOf('\n', pos);
    if (nl === -1) nl = text.length;
    const line = text.slice(pos, nl);
    pos = nl + 1;
    if (line.length === 0) continue;
    const [startUs, status, durUs] = line.split('\t');
    const s = Number(startUs);
    const d = Number(durUs);
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status === '-1' || !Number.isFinite(d)) continue; // failed request: no timing
    hist.recordUs(d);
    if (s < firstStartUs) firstStartUs = s;
    if (s + d > lastEndUs) lastEndUs = s + d;
  }
  return { hist, statuses, spanS: lastEndUs > firstStartUs ? (lastEndUs - firstStartUs) / 1e6 : null };
}

/**
 * Runs `h2load -D durationS --warm-up-time=warmupS -c clients -m streams -d <payload file> url`.
 * With `serverPid`, also the server's CPU µs per request (`serverCpuUsPerOp`): its CPU time from
 * the end of the warm-up to the end of the run over req/s × that time.
 * @returns `{ opsPerSec, p50Ms, p99Ms, meanMs, maxMs, count, durationS, errors, non2xx, serverCpuUsPerOp, command, raw }`.
 */
export async function runH2load({ url, clients, streams, payloadBytes, durationS, warmupS = 1, serverPid }) {
  const dir = makeTempDir('mq-bench-h2load-');
  const bodyFile = path.join(dir, `body-${sizeLabel(payloadBytes)}`);
  fs.writeFileSync(bodyFile, payloadOf(payloadBytes));
  const logFile = path.join(dir, 'requests.tsv');
  // h2load takes whole seconds without a unit, and fractions only as milliseconds.
  const dur = (sec) => (Number.isInteger(sec) ? String(sec) : `${Math.round(sec * 1000)}ms`);
  const args = ['-D', dur(durationS), `--warm-up-time=${dur(warmupS)}`, '-c', String(clients), '-m', String(streams), '-d', bodyFile, '--log-file', logFile, url];
  const shown = ['h2load', '-D', dur(durationS), `--warm-up-time=${dur(warmupS)}`, '-c', String(clients), '-m', String(streams), '-d', `<${sizeLabel(payloadBytes)} file>`, url.replace(/:\d+\//, ':$PORT/')].join(' ');
  let cpuStart = null;
  let tStart = 0;
  const warmedUp = setTimeout(() => {
    cpuStart = cpuSecondsOf(serverPid);
    tStart = performance.now();
  }, warmupS * 1000);
  const r = await runCommand('h2load', args, { timeoutMs: (durationS + warmupS) * 1000 + 60_000 });
  clearTimeout(warmedUp);
  const cpuEnd = cpuSecondsOf(serverPid);
  const windowS = (performance.now() - tStart) / 1000;
  const out = r.stdout;
  const finished = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(out);
  if (!finished) throw new Error(`h2load exited ${r.code} without a result: ${tail(r.stderr || out)}`);
  const reqs = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const timing = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(out);
  const toMs = (v, unit) => Number(v) * (unit === 'us' ? 1e-3 : unit === 's' ? 1e3 : 1);
  const log = fs.existsSync(logFile) ? readH2loadLog(logFile) : null;
  const summary = log ? log.hist.summary() : { p50Ms: null, p99Ms: null };
  const notes = [];
  const failed = reqs ? Number(reqs[5]) + Number(reqs[6]) + Number(reqs[7]) : 0;
  const non2xx = codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : 0;
  if (failed > 0) notes.push(`h2load: ${reqs[5]} failed, ${reqs[6]} errored, ${reqs[7]} timeout`);
  if (non2xx > 0) notes.push(`h2load: non-2xx responses: ${codes[2]} 3xx, ${codes[3]} 4xx, ${codes[4]} 5xx`);
  if (reqs && Number(reqs[4]) === 0) notes.push('h2load: no request succeeded');
  return {
    opsPerSec: Number(finished[3]),
    p50Ms: summary.p50Ms,
    p99Ms: summary.p99Ms,
    meanMs: timing ? toMs(timing[5], timing[6]) : summary.meanMs,
    maxMs: timing ? toMs(timing[3], timing[4]) : summary.maxMs,
    count: reqs ? Number(reqs[4]) : null,
    // "finished in" includes the warm-up; req/s (and the log) cover only the -D period.
    durationS: log?.spanS ?? durationS,
    errors: failed,
    non2xx,
    serverCpuUsPerOp: cpuUsPerOp(cpuStart, cpuEnd, Number(finished[3]) * windowS),
    statuses: log?.statuses ?? null,
    notes,
    command: shown,
    raw: out.split('\n').filter((l) => /finished in|requests:|status codes:|time for request/.test(l)).map((l) => l.trim()),
  };
}

function parseBenchmarkCsv(stdout) {
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const line = stdout.split('\n').reverse().find((l) => /^"[^"]*","[\d.]+"/.test(l));
  if (!line) return null;
  const cols = line.split('","').map((c) => c.replace(/"/g, ''));
  const [, rps, avg, , p50, , p99, max] = cols.map(Number);
  return { rps, avg, p50, p99, max };
}

/**
 * Runs redis-benchmark with `command` (array of words) against 127.0.0.1:port.
 * First a warm-up run (n grows ×4 until it lasts ≥ 1 s), then a ~1 s calibration run, then the
 * measured run with n = calibrated rate × durationS, capped at `maxCount`. With `serverPid`, also
 * the server's CPU µs per request of the measured run (`serverCpuUsPerOp`).
 * @returns `{ opsPerSec, p50Ms, p99Ms, meanMs, maxMs, count, durationS, errors, serverCpuUsPerOp, command, notes }`.
 */
export async function runRedisBenchmark({ port, clients, pipeline, command, shownCommand, durationS, maxCount, serverPid }) {
  const base = ['-h', '127.0.0.1', '-p', String(port), '-c', String(clients), '-P', String(pipeline), '--csv'];
  const once = async (n) => {
    const started = performance.now();
    const r = await runCommand('redis-benchmark', [...base, '-n', String(n), ...command], { timeoutMs: Math.max(60_000, durationS * 6000) });
    const wallS = (performance.now() - started) / 1000;
    const parsed = parseBenchmarkCsv(r.stdout);
    if (!parsed) throw new Error(`redis-benchmark exited ${r.code} without a result: ${tail(r.stderr || r.stdout)}`);
    const errorLines = r.stdout.split('\n').filter((l) => /error/i.test(l) && !/Could not fetch server CONFIG/.test(l));
    return { ...parsed, wallS, errorLines, n };
  };
  let n = Math.min(maxCount, 4000 * pipeline);
  let cal = await once(n);
  for (let i = 0; i < 3 && cal.wallS < 1 && n < maxCount; i++) {
    n = Math.min(maxCount, n * 4);
    cal = await once(n);
  }
  // The first runs are slow (cold JIT, new connections): size the measured run from a second,
  // warm, ~1 s calibration.
  cal = await once(Math.max(1000, Math.min(maxCount, Math.round(cal.rps))));
  const target = Math.max(1000, Math.min(maxCount, Math.round(cal.rps * durationS)));
  const cpuStart = cpuSecondsOf(serverPid);
  const main = await once(target);
  const cpuEnd = cpuSecondsOf(serverPid);
  const notes = [];
  const errorLines = [...cal.errorLines, ...main.errorLines];
  if (errorLines.length > 0) notes.push(`redis-benchmark: server errors, e.g. ${JSON.stringify(errorLines[0].trim().slice(0, 160))}`);
  if (target === maxCount && cal.rps * durationS > maxCount) notes.push(`n capped at ${maxCount} (MAX_RUN_MB)`);
  return {
    opsPerSec: main.rps,
    p50Ms: main.p50,
    p99Ms: main.p99,
    meanMs: main.avg,
    maxMs: main.max,
    count: target,
    durationS: main.wallS,
    errors: errorLines.length,
    non2xx: 0,
    serverCpuUsPerOp: cpuUsPerOp(cpuStart, cpuEnd, target),
    notes,
    calibration: { n: cal.n, rps: cal.rps },
    command: ['redis-benchmark', '-p', '$PORT', '-c', String(clients), '-P', String(pipeline), '-n', String(target), '--csv', ...(shownCommand ?? command)].join(' '),
  };
}
