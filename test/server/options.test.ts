/**
 * The option table (src/server/options.ts) is where each default is written; the README's options
 * table repeats them for readers, so this test keeps the two the same.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { OPTIONS, OPTION_NAMES, defaultText } from '../../src/server/options.js';
import { ROOT } from '../helpers/index.js';

test('the README options table names every option with the default of the option table', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('| option | default | meaning |');
  assert.ok(start >= 0, 'README has the options table');
  const documented = new Map<string, string>();
  for (const line of readme.slice(start).split('\n').slice(2)) {
    if (!line.startsWith('|')) break;
    const [names = '', defaults = ''] = line.split('|').slice(1, 3).map((cell) => cell.trim());
    const flags = [...names.matchAll(/`--([a-z-]+)`/g)].map((m) => m[1]!);
    // A row may document two options (`--cert`, `--key`) with one default each.
    const values = flags.length === 1 ? [defaults] : defaults.split(', ');
    assert.equal(values.length, flags.length, `one default per option in README row ${names}`);
    flags.forEach((flag, i) => documented.set(flag, values[i]!));
  }
  for (const name of OPTION_NAMES) {
    if (!('derivedDefault' in OPTIONS[name])) {
      assert.equal(documented.get(name), defaultText(name), `README default of --${name}`);
    } else {
      // A default that follows other options is described in words, in the README's typography.
      assert.ok((documented.get(name) ?? '').length > 0, `README row and default of --${name}`);
    }
  }
  assert.deepEqual([...documented.keys()].filter((name) => !(OPTION_NAMES as string[]).includes(name)), [], 'README rows for options that do not exist');
});
