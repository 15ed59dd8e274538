// Command-line handling shared by the examples (not an example itself).
//
// Every example takes:
//   --url <url>      server origin (env MINIQUEUE_URL), default https://localhost:8080;
//                    http://host:port for a server started with --no-tls
//   --ca <file>      PEM certificate to trust (env MINIQUEUE_CA), e.g. certs/localhost.pem
//   --insecure       accept any TLS certificate, like curl -k (env MINIQUEUE_INSECURE=1);
//                    for the self-signed development certificate only
//   --topic <name>   topic to use (a fresh one per run when not given)
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { MiniqueueClient } from '../dist/src/client/index.js';

/**
 * Parses process.argv with the common options plus `extra` (node:util parseArgs option specs).
 * Exits with status 2 and a usage line on a bad option.
 */
export function parseOptions(extra = {}, usage = '') {
  try {
    return parseArgs({
      options: {
        url: { type: 'string', default: process.env.MINIQUEUE_URL || 'https://localhost:8080' },
        ca: { type: 'string', default: process.env.MINIQUEUE_CA || undefined },
        insecure: { type: 'boolean', default: process.env.MINIQUEUE_INSECURE === '1' },
        topic: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        ...extra,
      },
      allowPositionals: true,
    });
  } catch (err) {
    console.error(`${err.message}\nusage: ${usage}`);
    process.exit(2);
  }
}

/** A client for the parsed options; the certificate check is off only when --insecure was given. */
export function clientFrom(values, extra = {}) {
  return new MiniqueueClient({
    url: values.url,
    ...(values.ca !== undefined ? { ca: fs.readFileSync(values.ca) } : {}),
    ...(values.insecure ? { rejectUnauthorized: false } : {}),
    ...extra,
  });
}

/** Parses a whole number option, exiting with status 2 when it is not one. */
export function intOption(values, name, min = 0) {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be a whole number >= ${min}, got ${JSON.stringify(values[name])}`);
    process.exit(2);
  }
  return n;
}

/** A topic name of its own for this run: examples.<name>.<time>.<pid>. */
export function freshTopic(name) {
  return `examples.${name}.${Date.now()}.${process.pid}`;
}
