#!/usr/bin/env node
// RESP request/response consume: CONNECTIONS raw node:net connections each keep PIPELINE
// `RESERVE bench 0` in flight; every reserved message is answered with `ACK bench <id>` and a new
// RESERVE in the same write. The queue is filled first (MESSAGES, pre-published). Reports acked
// msgs/s and, per message, the time from sending its RESERVE to receiving +OK for its ACK.
// Knobs: CONNECTIONS (1), PIPELINE (16), PAYLOAD_BYTES (10), FSYNC (always), DURATION_S (10),
// WARMUP_S (1), MESSAGES, PREPUBLISH_MAX_S, STALL_MS (see bench/lib/consume.mjs).
import net from 'node:net';
import { TOPIC, consumeScenarioName, runConsume } from '../lib/consume.mjs';
import { RespReader, encodeCommand } from '../lib/resp-reader.mjs';
import { numEnv, runScenario } from '../lib/scenario.mjs';
import { sizeLabel } from '../lib/tools.mjs';

const connections = numEnv('CONNECTIONS', 1);
const pipeline = numEnv('PIPELINE', 16);
const payloadBytes = numEnv('PAYLOAD_BYTES', 10);
const RESERVE = encodeCommand('RESERVE', TOPIC, '0');
const ACK_HEAD = `*3\r\n$3\r\nACK\r\n$${TOPIC.length}\r\n${TOPIC}\r\n`;

function consumeOn(port, meter, payload) {
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  let closing = false;
  let reservesOut = 0;
  let empty = false;
  // What each expected reply answers, in order: a RESERVE (kind 0) or an ACK (kind 1), with the
  // time its message's RESERVE was sent. At most 2 × PIPELINE entries.
  const kinds = [];
  const sentAt = [];
  const sendReserve = () => {
    sock.write(RESERVE);
    kinds.push(0);
    sentAt.push(performance.now());
    reservesOut++;
  };
  const reader = new RespReader((reply) => {
    const kind = kinds.shift();
    const t = sentAt.shift();
    if (kind === undefined) {
      meter.error(`unexpected reply ${JSON.stringify(reply)}`);
      return;
    }
    if (kind === 0) {
      reservesOut--;
      if (Array.isArray(reply)) {
        const [id, body] = reply;
        if (!Buffer.isBuffer(body) || body.length !== payload.length) meter.error(`payload of ${body?.length} bytes, expected ${payload.length}`);
        const idText = Buffer.isBuffer(id) ? id.latin1Slice() : String(id?.value ?? id);
        if (!closing) {
          sock.write(`${ACK_HEAD}$${idText.length}\r\n${idText}\r\n`, 'latin1');
          kinds.push(1);
          sentAt.push(t);
          if (!empty) sendReserve();
        }
      } else if (reply === null) {
        empty = true; // the queue is empty: stop asking, let the outstanding ACKs finish
      } else {
        meter.error(`RESERVE: ${reply.type}${reply.value}`);
        if (!closing && !empty) sendReserve();
      }
    } else if (reply !== null && reply.type === '+') {
      meter.settle(performance.now() - t);
    } else {
      meter.error(`ACK: ${reply === null ? 'nil' : `${reply.type}${reply.value}`}`);
    }
    if (empty && kinds.length === 0 && meter.settled < meter.total) {
      meter.notes.push(`RESERVE returned nil with ${meter.total - meter.settled} messages not yet settled`);
      meter.end('drained');
    }
  });
  sock.on('data', (d) => {
    sock.cork();
    try {
      reader.push(d);
    } catch (err) {
      meter.error(err.message);
      meter.end('error');
    }
    sock.uncork();
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
  sock.cork();
  for (let i = 0; i < pipeline; i++) sendReserve();
  sock.uncork();
  return () => {
    closing = true;
    sock.destroy();
  };
}

await runScenario(consumeScenarioName(`resp RESERVE+ACK -P${pipeline} ${connections} conn ${sizeLabel(payloadBytes)}`), () =>
  runConsume({
    rateHint: 250_000,
    command: `node bench/e2e/resp-reserve.mjs (CONNECTIONS=${connections} PIPELINE=${pipeline}, RESERVE ${TOPIC} 0 / ACK ${TOPIC} id)`,
    consume: async ({ broker, meter, payload }) => {
      const closers = [];
      for (let i = 0; i < connections; i++) closers.push(consumeOn(broker.respPort, meter, payload));
      return () => closers.forEach((c) => c());
    },
  }),
);
