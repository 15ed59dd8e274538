#!/usr/bin/env node
// Baseline (a), the ceiling for HTTP/2 publishing: a bare node:http2 secure server with the
// broker's development certificate that answers every request on the 'stream' event with 201
// once it has read the whole body. No routing, no storage, no framework.
// Usage: PORT=8443 node bench/baselines/bare-h2.mjs   (PORT=0 picks one; the port is printed)
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const port = Number(process.env.PORT ?? 0);
const server = http2.createSecureServer({
  cert: fs.readFileSync(process.env.CERT ?? path.join(root, 'certs', 'localhost.pem')),
  key: fs.readFileSync(process.env.KEY ?? path.join(root, 'certs', 'localhost-key.pem')),
});

const HEADERS_201 = { ':status': 201 };
server.on('stream', (stream) => {
  stream.on('data', () => {});
  stream.on('end', () => {
    // h2load resets its streams when the run ends; a stream may be gone by now.
    if (stream.destroyed || stream.closed) return;
    stream.respond(HEADERS_201, { endStream: true });
  });
  stream.on('error', () => {});
});
server.on('sessionError', () => {});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ msg: 'listening', protocol: 'h2', port: server.address().port })}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
