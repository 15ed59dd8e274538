#!/usr/bin/env node
// A gateway beside a plain JetStream client (issue 15; goal: the gateway adds at most 30%). One
// three-node nats-server cluster on loopback (REPLICAS, default 3), one `miniqueue --engine
// jetstream` gateway on it, and in the same run on the same cluster:
// - OP=publish: MESSAGES publishes through the gateway (RESP PUBLISH, CONNECTIONS connections with
//   PIPELINE in flight each) and MESSAGES through nats.js (js.publish, CONNECTIONS × PIPELINE in
//   flight on one connection), each answered after the PubAck;
// - OP=consume: MESSAGES pre-published, consumed through the gateway (RESP `RESERVE topic 1000` +
//   ACK, PIPELINE RESERVEs out per connection; ACK answered after the server confirmed it) and
//   through nats.js (a durable pull consumer, consume() with CONNECTIONS × PIPELINE messages
//   buffered, ackAck() for each: the same double ack). NACK_EVERY=n (default 0: none): every
//   n-th delivery is NACKed instead (RESP `NACK`, answered after the server's reply; nats.js
//   `nak()`, which nats.js sends without waiting for a reply),
//   and the rate counts acked messages only (MESSAGES of them), so a NACK costs what a redelivery
//   costs (issue 15: NACK-heavy consuming through a gateway ran 12x slower than without NACKs).
//   The plain client's durable consumer is made before its timing starts; the gateway makes a
//   topic's consumer at its first RESERVE (156–754 ms for a three-replica consumer on this
//   machine, a tenth of a 10 000-message run or more): so one more message is published and
//   RESERVEd + ACKed before the gateway's timing starts (the notes give how long that first
//   RESERVE took).
// Reports the gateway's msgs/s as opsPerSec and the plain client's as its own baseline; the two
// runs alternate (plain, gateway, plain, gateway: ROUNDS, default 2) and the best of each counts.
// serverCpuUsPerOp: the gateway's CPU µs per message over its timed runs (/proc; steadier than
// msgs/s on a shared machine, where the gateway is far from busy all the time).
// Needs nats-server (Debian: apt-get install nats-server); opt-in in run.mjs: SCENARIOS=jetstream.
import net from 'node:net';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, AckPolicy, RetentionPolicy } from '@nats-io/jetstream';
import { cpuSecondsOf, cpuUsPerOp, fromRoot, freePorts, startChild, stopChild, waitForPort } from '../lib/procs.mjs';
import { RespReader, encodeCommand } from '../lib/resp-reader.mjs';
import { numEnv, strEnv, runScenario } from '../lib/scenario.mjs';
import { payloadOf } from '../lib/tools.mjs';

const op = strEnv('OP', 'publish', ['publish', 'consume']);
const messages = numEnv('MESSAGES', 20_000);
const connections = numEnv('CONNECTIONS', 4);
const pipeline = numEnv('PIPELINE', 16);
const payloadBytes = numEnv('PAYLOAD_BYTES', 10);
const replicas = numEnv('REPLICAS', 3);
const rounds = numEnv('ROUNDS', 2);
const nackEvery = numEnv('NACK_EVERY', 0);
/** Whether the `n`-th delivery (1-based, counted across all workers) is to be NACKed. */
const nackThis = (n) => nackEvery > 0 && n % nackEvery === 0;
const payload = payloadOf(payloadBytes);

/** The test suite's cluster starter (compiled): three nodes on free ports, temp store dirs. */
const { startCluster } = await import(fromRoot('dist', 'test', 'jetstream', 'cluster.js'));

async function startGateway(urls) {
  const main = process.env.MQ_BENCH_MAIN || fromRoot('dist', 'bundle', 'miniqueue.js');
  const [h2Port, respPort] = await freePorts(2);
  // MQ_BENCH_NODE_ARGS: node options for the gateway (profiling: '--cpu-prof --cpu-prof-dir=/tmp/prof').
  const nodeArgs = (process.env.MQ_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const args = [...nodeArgs, main, '--engine', 'jetstream', '--nats', urls, '--nats-replicas', String(replicas), '--nats-stream', 'BENCHGW', '--port', String(h2Port), '--redis-port', String(respPort), '--host', '127.0.0.1', '--no-tls', '--level', 'silent'];
  const child = startChild(process.execPath, args);
  await waitForPort(respPort, { child });
  return { child, respPort };
}

/** One RESP connection with a reply queue: send(cmd) resolves with its reply. */
function respConn(port) {
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  const waiting = [];
  const reader = new RespReader((reply) => waiting.shift()?.(reply));
  sock.on('data', (d) => reader.push(d));
  const ready = new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  return {
    ready,
    send(...parts) {
      return new Promise((resolve) => {
        waiting.push(resolve);
        sock.write(encodeCommand(...parts));
      });
    },
    close: () => sock.destroy(),
  };
}

const isOk = (r) => r !== null && typeof r === 'object' && !Buffer.isBuffer(r) && !Array.isArray(r) && r.type === '+';

/** Runs `workers` loops of `step` until `total` steps succeeded; returns msgs/s. */
async function timed(total, workers, step) {
  let started = 0;
  let done = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      while (started < total) {
        started++;
        if (await step(w)) done++;
        else started--; // not done (an empty RESERVE): try again
      }
    }),
  );
  if (done !== total) throw new Error(`${done} of ${total} done`);
  return total / ((performance.now() - t0) / 1000);
}

async function gatewayPublish(conns, topic) {
  return timed(messages, connections * pipeline, async (w) => {
    const r = await conns[w % connections].send('PUBLISH', topic, payload);
    if (!isOk(r)) throw new Error(`PUBLISH: ${JSON.stringify(r)}`);
    return true;
  });
}

async function gatewayConsume(conns, topic) {
  let deliveries = 0;
  return timed(messages, connections * pipeline, async (w) => {
    const c = conns[w % connections];
    const r = await c.send('RESERVE', topic, '1000');
    if (r === null) return false;
    if (!Array.isArray(r)) throw new Error(`RESERVE: ${JSON.stringify(r)}`);
    if (nackThis(++deliveries)) {
      const nack = await c.send('NACK', topic, r[0]);
      if (!isOk(nack)) throw new Error(`NACK: ${JSON.stringify(nack)}`);
      return false; // not acked: it comes again
    }
    const ack = await c.send('ACK', topic, r[0]);
    if (!isOk(ack)) throw new Error(`ACK: ${JSON.stringify(ack)}`);
    return true;
  });
}

/**
 * One more message on `topic`, RESERVEd and ACKed before the timing starts, as the plain client's
 * consumer is made before its timing (see the file comment); returns how long the RESERVE took (ms).
 */
async function warmUp(conn, topic) {
  const pub = await conn.send('PUBLISH', topic, payload);
  if (!isOk(pub)) throw new Error(`PUBLISH: ${JSON.stringify(pub)}`);
  const t0 = performance.now();
  const r = await conn.send('RESERVE', topic, '5000');
  const ms = performance.now() - t0;
  if (!Array.isArray(r)) throw new Error(`warm-up RESERVE: ${JSON.stringify(r)}`);
  const ack = await conn.send('ACK', topic, r[0]);
  if (!isOk(ack)) throw new Error(`ACK: ${JSON.stringify(ack)}`);
  return ms;
}

async function plainPublish(js, subject) {
  return timed(messages, connections * pipeline, async () => {
    await js.publish(subject, payload);
    return true;
  });
}

async function plainConsume(js, stream, durable) {
  const consumer = await js.consumers.get(stream, durable);
  const t0 = performance.now();
  const iter = await consumer.consume({ max_messages: connections * pipeline });
  let acked = 0;
  let deliveries = 0;
  await new Promise((resolve, reject) => {
    (async () => {
      for await (const m of iter) {
        if (nackThis(++deliveries)) {
          m.nak(); // nats.js has no answered NAK
          continue;
        }
        m.ackAck().then(
          () => {
            if (++acked === messages) resolve();
          },
          reject,
        );
      }
    })().catch(reject);
  });
  await iter.close();
  return messages / ((performance.now() - t0) / 1000);
}

await runScenario(`jetstream-gateway-${op}`, async () => {
  const cluster = await startCluster(3);
  let gw;
  const nc = await connect({ servers: cluster.urls.split(',') });
  try {
    gw = await startGateway(cluster.urls);
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'PLAIN', subjects: ['PLAIN.>'], retention: RetentionPolicy.Workqueue, num_replicas: replicas });
    const conns = Array.from({ length: connections }, () => respConn(gw.respPort));
    await Promise.all(conns.map((c) => c.ready));
    // The gateway connects in the background: wait until it publishes (it answers -LOADING first).
    for (let i = 0; ; i++) {
      if (isOk(await conns[0].send('PUBLISH', 'warmup', 'x'))) break;
      if (i > 200) throw new Error('the gateway never became ready');
      await new Promise((r) => setTimeout(r, 100));
    }
    const gwRates = [];
    const plainRates = [];
    const firstReserveMs = [];
    let gwCpuS = 0;
    /** Runs the gateway's timed work, adding the gateway's CPU seconds meanwhile to gwCpuS. */
    const gwTimed = async (run) => {
      const c0 = cpuSecondsOf(gw.child.pid);
      const rate = await run();
      const c1 = cpuSecondsOf(gw.child.pid);
      gwCpuS = c0 === null || c1 === null || gwCpuS === null ? null : gwCpuS + (c1 - c0);
      return rate;
    };
    for (let round = 0; round < rounds; round++) {
      const topic = `t${round}`;
      const subject = `PLAIN.t${round}`;
      if (op === 'publish') {
        plainRates.push(await plainPublish(js, subject));
        gwRates.push(await gwTimed(() => gatewayPublish(conns, topic)));
      } else {
        const durable = `d${round}`;
        await jsm.consumers.add('PLAIN', { durable_name: durable, filter_subject: subject, ack_policy: AckPolicy.Explicit });
        await plainPublish(js, subject);
        plainRates.push(await plainConsume(js, 'PLAIN', durable));
        await gatewayPublish(conns, topic);
        firstReserveMs.push(await warmUp(conns[0], topic));
        gwRates.push(await gwTimed(() => gatewayConsume(conns, topic)));
      }
    }
    for (const c of conns) c.close();
    const opsPerSec = Math.max(...gwRates);
    const baselineOps = Math.max(...plainRates);
    const serverCpuUsPerOp = cpuUsPerOp(0, gwCpuS, messages * rounds);
    return {
      opsPerSec,
      p50Ms: null,
      p99Ms: null,
      serverCpuUsPerOp,
      ownBaselineOps: baselineOps,
      ownBaselineScenario: `nats.js ${op} on the same cluster`,
      notes: [
        `gateway ${gwRates.map((r) => r.toFixed(0)).join('/')} msgs/s, nats.js ${plainRates.map((r) => r.toFixed(0)).join('/')} msgs/s (rounds); gateway/plain ${(opsPerSec / baselineOps).toFixed(2)}`,
        ...(serverCpuUsPerOp === null ? [] : [`gateway CPU ${serverCpuUsPerOp.toFixed(1)} µs per message over its timed runs`]),
        ...(firstReserveMs.length > 0 ? [`first RESERVE of each round's topic (its consumer made; not timed): ${firstReserveMs.map((ms) => ms.toFixed(0)).join('/')} ms`] : []),
      ],
      command: `${op}: ${messages} msgs of ${payloadBytes} B${op === 'consume' && nackEvery > 0 ? `, every ${nackEvery}. delivery NACKed (acked msgs/s)` : ''}, ${connections} conns × ${pipeline} in flight, R${replicas}; gateway RESP vs nats.js`,
    };
  } finally {
    await nc.close().catch(() => {});
    if (gw) await stopChild(gw.child, { signal: 'SIGTERM', graceMs: 10_000 });
    await cluster.stop();
  }
});
