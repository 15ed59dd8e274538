/**
 * The bundle (scripts/bundle.mjs) leaves some packages out and requires them at run time: those
 * no start loads (Fastify's schema compilers, light-my-request, pino-pretty). Each must resolve
 * from the file that requires it, or the first route with a schema, inject() or --human fails
 * long after the start looked fine.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import path from 'node:path';
import test from 'node:test';
import { MAIN_JS } from '../helpers/index.js';

/** The .js files of the bundle, recursively. */
function bundleFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const file = path.join(dir, e.name);
    if (e.isDirectory()) return bundleFiles(file);
    return e.name.endsWith('.js') ? [file] : [];
  });
}

test('every package the bundle requires at run time resolves from the file that requires it', () => {
  const seen: string[] = [];
  for (const file of bundleFiles(path.dirname(MAIN_JS))) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/__require\("([^"]+)"\)/g)) {
      const name = m[1]!;
      if (isBuiltin(name)) continue;
      seen.push(name);
      assert.doesNotThrow(() => createRequire(file).resolve(name), `${path.basename(file)} requires ${name}`);
    }
  }
  // The externals of scripts/bundle.mjs that are required by name in the bundled code.
  for (const name of ['@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'light-my-request']) assert.ok(seen.includes(name), `${name} is required by the bundle`);
});
