#!/usr/bin/env node
// Competing consumers: several subscriptions on one topic share the work; each message goes to
// one of them at a time, and a random share of deliveries is NACKed (put back at the front for
// the next free worker) instead of acked.
//
//   node examples/workers.mjs --insecure                      # 4 workers, 20 jobs, 20% NACKs, logs each step
//   node examples/workers.mjs --insecure --validate           # 500 jobs, quiet, checks every job is acked once
//
// --validate publishes N numbered messages, waits until all are acked, keeps the workers
// subscribed a moment longer, then checks that every number was acked exactly once, that no
// message came back after its ACK, and that the topic is empty. Exit status 1 when a check
// fails (or after --timeout-ms), 0 otherwise.
import { clientFrom, freshTopic, intOption, parseOptions } from './_shared.mjs';

const usage =
  'node examples/workers.mjs [--url URL] [--ca FILE | --insecure] [--topic NAME] [--workers 4] [--count N] [--nack-rate 0.2] [--validate] [--timeout-ms 60000]';
const { values } = parseOptions(
  {
    workers: { type: 'string', default: '4' },
    count: { type: 'string' },
    'nack-rate': { type: 'string', default: '0.2' },
    validate: { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: '60000' },
  },
  usage,
);
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const validate = values.validate;
values.count ??= validate ? '500' : '20';
const workerCount = intOption(values, 'workers', 1);
const count = intOption(values, 'count', 1);
const timeoutMs = intOption(values, 'timeout-ms', 1);
const nackRate = Number(values['nack-rate']);
if (!(nackRate >= 0 && nackRate < 1)) {
  console.error(`--nack-rate must be in [0, 1), got ${values['nack-rate']}`);
  process.exit(2);
}
const log = validate ? () => {} : (line) => console.log(line);
const topic = values.topic ?? freshTopic('workers');
const mq = clientFrom(values);

/** Job number -> worker that acked it. */
const acked = new Map();
const problems = [];
const perWorker = Array.from({ length: workerCount }, () => ({ acked: 0, nacked: 0 }));
let deliveries = 0;
let allAcked;
const allAckedPromise = new Promise((resolve) => (allAcked = resolve));

async function worker(index, sub) {
  for await (const msg of sub) {
    deliveries++;
    const n = Number(msg.data.toString('utf8'));
    if (!Number.isInteger(n) || n < 0 || n >= count) {
      problems.push(`worker ${index} got a message that was never published: ${JSON.stringify(msg.data.toString())}`);
      await msg.ack();
      continue;
    }
    if (acked.has(n)) problems.push(`job ${n} was delivered again (to worker ${index}) after worker ${acked.get(n)} acked it`);
    if (Math.random() < nackRate) {
      perWorker[index].nacked++;
      log(`worker ${index}: NACK job ${n} (back to the front)`);
      await msg.nack();
      continue;
    }
    await new Promise((r) => setTimeout(r, Math.random() * 3)); // "work"
    if (!acked.has(n)) acked.set(n, index);
    perWorker[index].acked++;
    log(`worker ${index}: ACK  job ${n}`);
    await msg.ack();
    if (acked.size === count) allAcked();
  }
}

let failed = false;
try {
  const started = Date.now();
  for (let i = 0; i < count; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, j) => mq.publish(topic, String(i + j))));
  }
  log(`published ${count} jobs to ${topic}; starting ${workerCount} workers`);
  const subs = Array.from({ length: workerCount }, () =>
    mq.subscribe(topic, { onError: (err) => problems.push(`subscription error ${err.code}: ${err.message}`) }),
  );
  const running = subs.map((sub, i) => worker(i, sub));
  const timer = setTimeout(() => allAcked('timeout'), timeoutMs);
  const outcome = await allAckedPromise;
  clearTimeout(timer);
  if (outcome === 'timeout') problems.push(`only ${acked.size} of ${count} jobs acked within ${timeoutMs} ms`);
  // Stay subscribed a little longer so that a message coming back after its ACK would be seen.
  if (validate) await new Promise((r) => setTimeout(r, 300));
  await Promise.all(subs.map((s) => s.close()));
  await Promise.all(running);
  const elapsedMs = Date.now() - started;

  if (validate) {
    for (let n = 0; n < count; n++) if (!acked.has(n)) problems.push(`job ${n} was never acked`);
    const stats = (await mq.topics()).find((s) => s.topic === topic);
    if (stats === undefined) problems.push(`topic ${topic} is missing from GET /topics`);
    else if (stats.ready !== 0 || stats.inFlight !== 0 || stats.delayed !== 0) {
      problems.push(`topic not empty after the run: ${JSON.stringify(stats)}`);
    } else if (stats.acked !== count) problems.push(`server counted ${stats.acked} acks, expected ${count}`);
  }
  const shares = perWorker.map((w, i) => `worker ${i}: ${w.acked} acked, ${w.nacked} nacked`).join('; ');
  console.log(`${acked.size}/${count} jobs acked in ${elapsedMs} ms over ${deliveries} deliveries (${shares})`);
  if (values.topic === undefined) await mq.deleteTopic(topic);
} catch (err) {
  problems.push(`${err.code ?? 'error'}: ${err.message}`);
} finally {
  await mq.close();
}
if (problems.length > 0) {
  failed = true;
  console.error(`${validate ? 'validate ' : ''}FAILED:\n  ${problems.slice(0, 20).join('\n  ')}`);
} else if (validate) {
  console.log(`validate OK: every one of ${count} jobs acked exactly once, none delivered after its ACK, topic empty`);
}
process.exitCode = failed ? 1 : 0;
