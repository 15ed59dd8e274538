#!/usr/bin/env node
// Generates the self-signed development certificate for localhost into certs/ (the server also
// does this on its first start). Run after `npm run build`. Private keys are never committed.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { ensureDevCert } from '../dist/src/server/certs.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pair = await ensureDevCert(
  {
    certPath: path.join(root, 'certs', 'localhost.pem'),
    keyPath: path.join(root, 'certs', 'localhost-key.pem'),
    certExplicit: false,
  },
  pino(),
);
console.log(`certs/localhost.pem (${pair.cert.length} bytes) and certs/localhost-key.pem are ready`);
