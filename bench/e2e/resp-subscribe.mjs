#!/usr/bin/env node
// RESP stream-mode consume: CONNECTIONS raw node:net connections each send `SUBSCRIBE bench`;
// the broker sends one payload as a bulk string, the client answers ACK, gets +OK and the next
// payload. The queue is filled first (MESSAGES, pre-published). Reports settled msgs/s and the
// time from one delivery to the next on the same connection as p50/p99.
// Knobs: CONNECTIONS (1), PAYLOAD_BYTES (10), FSYNC (always), DURATION_S (10), WARMUP_S (1),
// MESSAGES, PREPUBLISH_MAX_S, STALL_MS (see bench/lib/consume.mjs).
import net from 'node:net';
import { TOPIC, consumeScenarioName, runConsume } from '../lib/consume.mjs';
import { RespReader, encodeCommand } from '../lib/resp-reader.mjs';
import { numEnv, runScenario } from '../lib/scenario.mjs';
import { sizeLabel } from '../lib/tools.mjs';

const connections = numEnv('CONNECTIONS', 1);
const payloadBytes = numEnv('PAYLOAD_BYTES', 10);
const ACK = encodeCommand('ACK');

function subscribe(port, meter, payload) {
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  let lastDelivery = null;
  let closing = false;
  const reader = new RespReader((reply) => {
    if (Buffer.isBuffer(reply)) {
      const now = performance.now();
      if (reply.length !== payload.length) meter.error(`payload of ${reply.length} bytes, expected ${payload.length}`);
      if (lastDelivery !== null) meter.settle(now - lastDelivery);
      else meter.settle();
      lastDelivery = now;
      if (!closing) sock.write(ACK);
    } else if (reply !== null && reply.type === '+') {
      // +OK for the ACK; the next payload follows.
    } else {
      meter.error(reply === null ? 'nil reply' : `${reply.type}${reply.value}`);
    }
  });
  sock.on('data', (d) => {
    try {
      reader.push(d);
    } catch (err) {
      meter.error(err.message);
      meter.end('error');
    }
  });
  sock.on('error', (err) => {
    if (!closing) meter.error(`socket: ${err.message}`);
  });
  sock.on('close', () => {
    if (!closing) {
      meter.error('connection closed by the server');
      meter.end('error');
    }
  });
  sock.write(encodeCommand('SUBSCRIBE', TOPIC));
  return () => {
    closing = true;
    sock.destroy();
  };
}

await runScenario(consumeScenarioName(`resp SUBSCRIBE+ACK ${connections} conn ${sizeLabel(payloadBytes)}`), () =>
  runConsume({
    rateHint: 50_000,
    command: `node bench/e2e/resp-subscribe.mjs (CONNECTIONS=${connections}, SUBSCRIBE ${TOPIC} then ACK per payload)`,
    consume: async ({ broker, meter, payload }) => {
      const closers = [];
      for (let i = 0; i < connections; i++) closers.push(subscribe(broker.respPort, meter, payload));
      return () => closers.forEach((c) => c());
    },
  }),
);
