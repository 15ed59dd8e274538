// The frame every scenario script shares: knobs from env vars, the environment line, one
// `RESULT {json}` line on stdout for bench/run.mjs (a human summary goes to stderr), and an
// exit status of 1 with `RESULT {"error": ...}` when the scenario fails.
import { environment, environmentLine, fmtMs, fmtRate } from './stats.mjs';

/** A numeric knob from the environment. */
export function numEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number >= 0, got ${JSON.stringify(raw)}`);
  return n;
}

/** A string knob from the environment, checked against `allowed`. */
export function strEnv(name, fallback, allowed) {
  const v = process.env[name] || fallback;
  if (allowed && !allowed.includes(v)) throw new Error(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return v;
}

/** The knobs every scenario reads. */
export function commonKnobs() {
  return {
    durationS: numEnv('DURATION_S', 10),
    warmupS: numEnv('WARMUP_S', 1),
  };
}

/**
 * Starts a server with `start()`, runs `drive(server)`, always stops the server, and adds a
 * note when the server crashed during the run, needed SIGKILL, or exited non-zero.
 */
export async function withServer(label, start, drive) {
  const server = await start();
  let result;
  let failure;
  try {
    result = await drive(server);
  } catch (err) {
    failure = err;
  }
  const stopped = await server.stop();
  const notes = [];
  const stderr = stopped.stderr ? `: ${stopped.stderr.trim().slice(-300)}` : '';
  // A signal other than the one stop() sent means the process died on its own (or was killed by
  // someone else) before we stopped it, even if its 'exit' event had not been seen yet.
  const diedEarly = stopped.crashed || (stopped.signal !== null && stopped.signal !== stopped.sent && !stopped.forced);
  if (diedEarly) notes.push(`${label} exited during the run (code ${stopped.code}, signal ${stopped.signal})${stderr}`);
  else if (stopped.forced) notes.push(`${label} did not stop within the grace period after ${stopped.sent} (killed)`);
  else if (stopped.sent === 'SIGTERM' && stopped.code !== 0) notes.push(`${label} exited with code ${stopped.code ?? stopped.signal} on SIGTERM${stderr}`);
  if (failure) {
    if (notes.length > 0) failure.message += ` (${notes.join('; ')})`;
    throw failure;
  }
  result.notes = [...(result.notes ?? []), ...notes];
  result.server = server.command;
  return result;
}

/** Runs a scenario's `fn` as the script's main: prints env, the summary and the RESULT line. */
export async function runScenario(name, fn) {
  const env = environment();
  process.stderr.write(`# ${name}\n# ${environmentLine(env)}\n`);
  try {
    const result = { scenario: name, ...(await fn()) };
    process.stderr.write(
      `${name}: ${fmtRate(result.opsPerSec)} ops/s, p50 ${fmtMs(result.p50Ms)} ms, p99 ${fmtMs(result.p99Ms)} ms` +
        `${result.notes?.length ? `\n  notes: ${result.notes.join('; ')}` : ''}\n  ${result.command}\n`,
    );
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    process.exit(0);
  } catch (err) {
    process.stderr.write(`${name}: FAILED: ${err?.stack ?? err}\n`);
    process.stdout.write(`RESULT ${JSON.stringify({ scenario: name, error: String(err?.message ?? err) })}\n`);
    process.exit(1);
  }
}
