#!/usr/bin/env node
// Baseline (c), the ceiling for the consume scenarios: the same wire exchanges as the broker's
// consumers over bare node:net (RESP) and node:http2 (TLS, the broker's development certificate),
// with a message counter instead of a queue: no storage, no bookkeeping, no framework. One
// consumer round trip here costs what the machine's loopback, TLS and event loop cost.
//   RESP: PUBLISH t v → +OK (counted, v kept as the payload); SUBSCRIBE t → a bulk payload, then
//         each ACK → +OK and the next payload; RESERVE t n → [id, payload] or nil when none is
//         left; ACK t id → +OK; PING → +PONG; anything else → -ERR.
//   HTTP/2: POST /subscribe/<t>: "INIT" and every "ACK" line → {"msg":"<base64>","id":N}\n.
// Usage: RESP_PORT=0 H2_PORT=0 node bench/baselines/bare-consume.mjs (0 picks a port; the
// ports are printed as {"msg":"listening",...} lines).
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RespReader } from '../lib/resp-reader.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let available = 0; // messages published and not yet handed out
let nextId = 1;
let payload = Buffer.from('0123456789');
let bulkPayload = bulk(payload);
let jsonPayload = payload.toString('base64');

function bulk(buf) {
  return Buffer.concat([Buffer.from(`$${buf.length}\r\n`, 'latin1'), buf, Buffer.from('\r\n', 'latin1')]);
}

/** Takes one message; returns its id, or 0 when none is left. */
function take() {
  if (available === 0) return 0;
  available--;
  return nextId++;
}

const OK = Buffer.from('+OK\r\n', 'latin1');
const NIL = Buffer.from('$-1\r\n', 'latin1');
const PONG = Buffer.from('+PONG\r\n', 'latin1');

const respServer = net.createServer((sock) => {
  sock.setNoDelay(true);
  let streaming = false;
  const reader = new RespReader((cmd) => {
    if (!Array.isArray(cmd) || cmd.length === 0) return sock.write('-ERR expected a command array\r\n');
    const name = cmd[0].latin1Slice().toUpperCase();
    if (name === 'PUBLISH' && cmd.length === 3) {
      if (cmd[2].length !== payload.length || !cmd[2].equals(payload)) {
        payload = cmd[2];
        bulkPayload = bulk(payload);
        jsonPayload = payload.toString('base64');
      }
      available++;
      return sock.write(OK);
    }
    if (name === 'SUBSCRIBE' && cmd.length === 2) {
      streaming = true;
      return take() === 0 ? undefined : sock.write(bulkPayload);
    }
    if (name === 'ACK' && cmd.length === 1 && streaming) {
      return sock.write(take() === 0 ? OK : Buffer.concat([OK, bulkPayload]));
    }
    if (name === 'RESERVE' && cmd.length === 3) {
      const id = take();
      if (id === 0) return sock.write(NIL);
      const idText = String(id);
      return sock.write(Buffer.concat([Buffer.from(`*2\r\n$${idText.length}\r\n${idText}\r\n`, 'latin1'), bulkPayload]));
    }
    if (name === 'ACK' && cmd.length === 3) return sock.write(OK);
    if (name === 'PING') return sock.write(PONG);
    return sock.write(`-ERR unknown command '${name}' for the bare consume baseline\r\n`);
  });
  sock.on('data', (d) => {
    sock.cork();
    try {
      reader.push(d);
    } catch (err) {
      sock.destroy(err);
    }
    sock.uncork();
  });
  sock.on('error', () => {});
});

const h2Server = http2.createSecureServer({
  cert: fs.readFileSync(process.env.CERT ?? path.join(root, 'certs', 'localhost.pem')),
  key: fs.readFileSync(process.env.KEY ?? path.join(root, 'certs', 'localhost-key.pem')),
});
h2Server.on('stream', (stream, headers) => {
  if (!String(headers[':path']).startsWith('/subscribe/')) {
    stream.respond({ ':status': 404 }, { endStream: true });
    return;
  }
  stream.respond({ ':status': 200, 'content-type': 'application/json' });
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) !== -1) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line !== '"INIT"' && line !== '"ACK"') continue;
      const id = take();
      if (id !== 0 && !stream.destroyed) stream.write(`{"msg":"${jsonPayload}","id":${id}}\n`);
    }
  });
  stream.on('error', () => {});
});
h2Server.on('sessionError', () => {});

const listening = (protocol, server) => process.stdout.write(`${JSON.stringify({ msg: 'listening', protocol, port: server.address().port })}\n`);
respServer.listen(Number(process.env.RESP_PORT ?? 0), '127.0.0.1', () => listening('resp', respServer));
h2Server.listen(Number(process.env.H2_PORT ?? 0), '127.0.0.1', () => listening('h2', h2Server));
const stop = () => {
  respServer.close();
  h2Server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
