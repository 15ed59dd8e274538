#!/usr/bin/env node
// HTTP/2 consume + ACK: CONNECTIONS subscribers (one HTTP/2 session each, over TLS) each open
// POST /subscribe/bench, write "INIT", and answer every delivery line with "ACK". The queue is
// filled first (MESSAGES, pre-published over RESP). Reports settled msgs/s and the time from
// one delivery to the next on the same subscriber (ACK round trip + next delivery) as p50/p99.
// Knobs: CONNECTIONS (1), PAYLOAD_BYTES (10), FSYNC (always), DURATION_S (10), WARMUP_S (1),
// MESSAGES, PREPUBLISH_MAX_S, STALL_MS (see bench/lib/consume.mjs).
import http2 from 'node:http2';
import { TOPIC, consumeScenarioName, runConsume } from '../lib/consume.mjs';
import { numEnv, runScenario } from '../lib/scenario.mjs';
import { sizeLabel } from '../lib/tools.mjs';

const subscribers = numEnv('CONNECTIONS', 1);
const payloadBytes = numEnv('PAYLOAD_BYTES', 10);
const NEWLINE = 0x0a;
const INIT = '"INIT"\n';
const ACK = '"ACK"\n';

function subscribe(port, meter) {
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
  session.on('error', (err) => meter.error(`session: ${err.message}`));
  const stream = session.request({ ':method': 'POST', ':path': `/subscribe/${TOPIC}` });
  let pending = null;
  let lastDelivery = null;
  let closing = false;
  stream.on('response', (headers) => {
    const status = headers[':status'];
    if (status !== 200) {
      meter.error(`subscribe answered HTTP ${status}`);
      meter.end('error');
    }
  });
  stream.on('data', (chunk) => {
    let buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(NEWLINE, start);
      if (nl === -1) break;
      // A delivery is {"msg":"...","id":N[,"dackCount":N]}; anything else (an {"error":...}) is counted as an error.
      if (buf[start] === 0x7b && buf[start + 2] === 0x6d && buf[start + 3] === 0x73 && buf[start + 4] === 0x67) {
        const now = performance.now();
        if (lastDelivery !== null) meter.settle(now - lastDelivery);
        else meter.settle();
        lastDelivery = now;
        if (!closing) stream.write(ACK);
      } else if (nl > start) {
        meter.error(buf.toString('utf8', start, Math.min(nl, start + 200)));
      }
      start = nl + 1;
    }
    pending = start < buf.length ? buf.subarray(start) : null;
    buf = null;
  });
  stream.on('error', (err) => {
    if (!closing) meter.error(`stream: ${err.message}`);
  });
  stream.on('close', () => {
    if (!closing) {
      meter.error(`subscribe stream closed by the server (rstCode ${stream.rstCode})`);
      meter.end('error');
    }
  });
  stream.write(INIT);
  return async () => {
    closing = true;
    stream.close();
    await new Promise((resolve) => session.close(resolve));
  };
}

await runScenario(consumeScenarioName(`h2 consume+ACK ${subscribers} sub${subscribers > 1 ? 's' : ''} ${sizeLabel(payloadBytes)}`), () =>
  runConsume({
    rateHint: 40_000,
    command: `node bench/e2e/h2-consume.mjs (CONNECTIONS=${subscribers}, node:http2 subscribe "INIT"/"ACK")`,
    consume: async ({ broker, meter }) => {
      const closers = [];
      for (let i = 0; i < subscribers; i++) closers.push(subscribe(broker.h2Port, meter));
      return () => Promise.all(closers.map((c) => c()));
    },
  }),
);
