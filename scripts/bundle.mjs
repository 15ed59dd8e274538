#!/usr/bin/env node
// The server as shipped: dist/bundle/miniqueue.js, one ES module holding the server and the
// packages it loads at start (fastify, pino, prom-client, yargs, ...), built by esbuild from the
// compiled tree (dist/src/server/main.js, so the bundle runs exactly the code tsc checked).
// Why: Node spent half of an empty start finding, reading and compiling 434 separate files;
// from one file it starts in about half the CPU time (README, end of "Development").
// Parts loaded only on demand stay separate chunks next to it (the JetStream gateway with the
// NATS client, selfsigned), so a plain start never compiles them.
// Run by `npm run build` after tsc. Usage: node scripts/bundle.mjs
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist', 'bundle');
fs.rmSync(outdir, { recursive: true, force: true });

await build({
  entryPoints: { miniqueue: path.join(root, 'dist', 'src', 'server', 'main.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Bundled CommonJS packages call require() for Node's modules and their own optional parts;
  // in an ES module that needs a real require, and __dirname for the few that build file paths
  // (pino's transports, which miniqueue does not use: it logs synchronously to stdout).
  banner: {
    js: [
      "import { createRequire as __mqCreateRequire } from 'node:module';",
      "import { dirname as __mqDirnameOf } from 'node:path';",
      "import { fileURLToPath as __mqFileURLToPath } from 'node:url';",
      'const require = __mqCreateRequire(import.meta.url);',
      'const __mqDirname = __mqDirnameOf(__mqFileURLToPath(import.meta.url));',
    ].join('\n'),
  },
  define: { __dirname: '__mqDirname' },
  // Loaded at run time through require from node_modules, never bundled, because a start never
  // loads them: pino-pretty (only with --human); the Fastify schema compilers with ajv and
  // fast-json-stringify (src/protocols/http2/lazy-schema-compilers.ts: only for a route with a
  // schema) and light-my-request (only for fastify.inject()). Bundled, they were about 1 MB of the
  // chunk every start parses. They are dependencies of fastify, so npm installs them with it.
  external: ['pino-pretty', '@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'light-my-request'],
  chunkNames: 'chunks/[name]-[hash]',
  legalComments: 'linked',
  logLevel: 'warning',
});
fs.chmodSync(path.join(outdir, 'miniqueue.js'), 0o755);
