// The frame of the consume benchmarks: start the broker, pre-publish MESSAGES messages over a
// pipelined RESP connection, then let the scenario's consumers run for WARMUP_S (not counted)
// plus DURATION_S, or until the queue is drained. A Meter counts settled messages and records
// per-message latency only inside the measured window, and a watchdog reports a stall (no
// progress for STALL_MS while messages are still queued), which would be a broker bug.
// SERVER=bare runs the same consumers against bench/baselines/bare-consume.mjs instead: the
// ceiling of the stack for these exchanges (FSYNC means nothing there).
import { cpuSecondsOf, cpuUsPerOp } from './procs.mjs';
import { latencyHistogram } from './stats.mjs';
import { prepublish } from './prepublish.mjs';
import { payloadOf } from './tools.mjs';
import { commonKnobs, numEnv, strEnv, withServer } from './scenario.mjs';
import { startBareConsume, startBroker } from './servers.mjs';

export const TOPIC = 'bench';

/** The row name of a consume scenario: `bare <what>` against the baseline, else `<what> fsync=<mode>`. */
export function consumeScenarioName(what) {
  return process.env.SERVER === 'bare' ? `bare ${what}` : `${what} fsync=${process.env.FSYNC || 'always'}`;
}

/** Counts and times messages; `finished` resolves once the window closes or the run ends. */
export class Meter {
  constructor({ warmupS, durationS, total, stallMs, serverPid }) {
    this.serverPid = serverPid;
    this.cpuAtStart = null;
    this.cpuAtEnd = null;
    this.hist = latencyHistogram();
    this.total = total;
    this.settled = 0; // every message settled, warm-up included
    this.counted = 0; // messages settled inside the measured window
    this.errors = 0;
    this.errorSamples = [];
    this.notes = [];
    this.measuring = false;
    this.t0 = null;
    this.tEnd = null;
    this.lastProgress = performance.now();
    this.finished = new Promise((resolve) => {
      this.resolve = resolve;
    });
    this.warmTimer = setTimeout(() => {
      this.measuring = true;
      this.t0 = performance.now();
      this.cpuAtStart = cpuSecondsOf(this.serverPid);
      this.endTimer = setTimeout(() => this.end('duration'), durationS * 1000);
    }, warmupS * 1000);
    this.watchdog = setInterval(() => {
      if (performance.now() - this.lastProgress > stallMs) this.end('stall');
    }, 100);
  }

  /** One message settled; `latencyMs` (optional) goes into the histogram. */
  settle(latencyMs) {
    this.lastProgress = performance.now();
    this.settled++;
    if (this.measuring) {
      this.counted++;
      if (latencyMs !== undefined) this.hist.recordMs(latencyMs);
    }
    if (this.settled >= this.total) this.end('drained');
  }

  /** Latency only (e.g. delivery-to-delivery), without counting a message. */
  record(latencyMs) {
    if (this.measuring) this.hist.recordMs(latencyMs);
  }

  error(text) {
    this.errors++;
    if (this.errorSamples.length < 3) this.errorSamples.push(String(text).slice(0, 200));
  }

  end(reason) {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.tEnd = performance.now();
    if (this.cpuAtStart !== null) this.cpuAtEnd = cpuSecondsOf(this.serverPid);
    clearTimeout(this.warmTimer);
    clearTimeout(this.endTimer);
    clearInterval(this.watchdog);
    this.resolve(reason);
  }

  /** The figures of the measured window. */
  result() {
    const windowS = this.t0 === null ? 0 : (this.tEnd - this.t0) / 1000;
    const notes = [...this.notes];
    if (this.reason === 'drained') notes.push(`queue drained after ${windowS.toFixed(1)} s of the measured window (raise MESSAGES or PREPUBLISH_MAX_S for a longer run)`);
    if (this.reason === 'stall') notes.push(`STALL: no message settled for ${Math.round(performance.now() - this.lastProgress)} ms with ${this.total - this.settled} of ${this.total} still queued`);
    if (this.errors > 0) notes.push(`${this.errors} errors, e.g. ${this.errorSamples.map((s) => JSON.stringify(s)).join(', ')}`);
    if (this.reason === 'error') throw new Error(`consumer failed after ${this.settled} messages: ${notes.join('; ')}`);
    if (this.t0 === null || windowS < 0.2) throw new Error(`no measured window (ended by ${this.reason} during warm-up after ${this.settled} messages; raise MESSAGES or lower WARMUP_S)${notes.length ? `: ${notes.join('; ')}` : ''}`);
    // The server's CPU time (user + system) per settled message inside the window: its own cost
    // per message, which the round-trip-bound throughput of one consumer hides.
    const serverCpuUsPerOp = cpuUsPerOp(this.cpuAtStart, this.cpuAtEnd, this.counted);
    return { opsPerSec: this.counted / windowS, serverCpuUsPerOp, ...this.hist.summary(), count: this.counted, durationS: windowS, errors: this.errors, non2xx: 0, endedBy: this.reason, notes };
  }
}

/**
 * Starts the broker, pre-publishes, runs `consume({ broker, meter, payload })` (which returns a
 * cleanup function) until the meter finishes, and returns the result row.
 * @param rateHint - expected msgs/s, used for the default MESSAGES.
 */
export async function runConsume({ rateHint, command, consume }) {
  const { durationS, warmupS } = commonKnobs();
  const fsync = strEnv('FSYNC', 'always', ['always', 'never', 'interval']);
  const payloadBytes = numEnv('PAYLOAD_BYTES', 10);
  const messages = numEnv('MESSAGES', Math.ceil((durationS + warmupS) * rateHint * 1.25));
  const prepublishMaxS = numEnv('PREPUBLISH_MAX_S', Math.max(5, durationS));
  const stallMs = numEnv('STALL_MS', 3000);
  const payload = payloadOf(payloadBytes);
  const bare = strEnv('SERVER', 'miniqueue', ['miniqueue', 'bare']) === 'bare';
  return withServer(
    bare ? 'bare consume server' : 'broker',
    () => (bare ? startBareConsume() : startBroker({ fsync })),
    async (broker) => {
      const pre = await prepublish({ port: broker.respPort, topic: TOPIC, payload, count: messages, maxSeconds: prepublishMaxS });
      process.stderr.write(`pre-published ${pre.published} messages in ${pre.seconds.toFixed(1)} s (${Math.round(pre.rate)}/s)\n`);
      const meter = new Meter({ warmupS, durationS, total: pre.published, stallMs, serverPid: broker.pid });
      let cleanup = () => {};
      try {
        cleanup = await consume({ broker, meter, payload });
        await meter.finished;
      } finally {
        meter.end('error');
        await cleanup();
      }
      const result = meter.result();
      result.prepublished = pre.published;
      result.prepublishRate = pre.rate;
      result.command = command;
      return result;
    },
  );
}
