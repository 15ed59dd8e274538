/**
 * The error table (STYLE.md "Errors"): every code is unique, maps to both protocols, is in the
 * README, and no `MQ_ERR_*` code is made up outside the server's table (src/errors.ts) and the
 * client's table of its own codes (src/client/errors.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CLIENT_ERRORS } from '../src/client/errors.js';
import { BrokerError, ERRORS, type ErrorCode } from '../src/errors.js';
import { ROOT } from './helpers/index.js';

const CODES = Object.keys(ERRORS) as ErrorCode[];
const CLIENT_CODES = Object.keys(CLIENT_ERRORS);

/** Every `.ts` file under `dir`, recursively. */
function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(full));
    else if (entry.name.endsWith('.ts')) files.push(full);
  }
  return files;
}

/** README table rows whose first cell is a code: code → the other cells, trimmed. */
function readmeRows(): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8').split('\n')) {
    const match = /^\|\s*`(MQ_ERR_[A-Z0-9_]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (match === null) continue;
    assert.ok(!rows.has(match[1]!), `README lists ${match[1]} in two table rows`);
    rows.set(match[1]!, match[2]!.split('|').map((cell) => cell.trim()));
  }
  return rows;
}

describe('error table (src/errors.ts)', () => {
  it('declares every code once, named MQ_ERR_*, and no client code reuses a server code', () => {
    // Object keys cannot repeat at run time, so count the declarations in the source.
    const source = fs.readFileSync(path.join(ROOT, 'src', 'errors.ts'), 'utf8');
    const declared = [...source.matchAll(/^ {2}(MQ_ERR_[A-Z0-9_]+): \{/gm)].map((m) => m[1]);
    assert.deepEqual(declared, CODES, 'every entry of ERRORS is declared once, in table order');
    for (const code of [...CODES, ...CLIENT_CODES]) assert.match(code, /^MQ_ERR_[A-Z][A-Z0-9_]*[A-Z0-9]$/);
    const both = CLIENT_CODES.filter((code) => Object.hasOwn(ERRORS, code));
    assert.deepEqual(both, [], 'client-only codes must not reuse server codes');
  });

  it('maps every code to a valid HTTP error status and a one-word RESP prefix', () => {
    for (const code of CODES) {
      const { statusCode, respPrefix } = ERRORS[code];
      assert.ok(statusCode >= 400 && statusCode <= 599 && http.STATUS_CODES[statusCode] !== undefined, `${code}: HTTP status ${statusCode}`);
      assert.match(respPrefix, /^[A-Z]+$/, `${code}: RESP prefix ${respPrefix}`);
    }
  });

  it('has fixed one-line messages whose only holes are %s, and BrokerError fills them', () => {
    for (const code of CODES) {
      const { message, statusCode, respPrefix } = ERRORS[code];
      assert.ok(message.length > 0, code);
      assert.doesNotMatch(message, /[\r\n]/, `${code}: one line`);
      assert.doesNotMatch(message.replace(/%s/g, ''), /%/, `${code}: only %s holes`);
      const holes = message.split('%s').length - 1;
      const args = Array.from({ length: holes }, (_, i) => `arg${i}`);
      const err = new BrokerError(code, args);
      assert.equal(err.code, code);
      assert.equal(err.statusCode, statusCode);
      assert.equal(err.respPrefix, respPrefix);
      assert.doesNotMatch(err.message, /%s/, `${code}: every hole filled`);
      for (const arg of args) assert.ok(err.message.includes(arg), `${code}: ${arg} in the message`);
      assert.ok(err.toRespLine().startsWith(`${respPrefix} `), `${code}: RESP line starts with its prefix`);
    }
  });

  it('uses no MQ_ERR_* code in src/ that is missing from the server or client table', () => {
    const known = new Set<string>([...CODES, ...CLIENT_CODES]);
    const unknown: string[] = [];
    for (const file of sourceFiles(path.join(ROOT, 'src'))) {
      const text = fs.readFileSync(file, 'utf8');
      // Quoted literals only: docstrings name codes in backquotes, and code built at run time
      // from a literal (`{ code: 'MQ_ERR_X' }`, `readonly code = 'MQ_ERR_X'`) is what must not escape the table.
      for (const match of text.matchAll(/['"](MQ_ERR_[A-Z0-9_]+)['"]/g)) {
        if (!known.has(match[1]!)) unknown.push(`${path.relative(ROOT, file)}: ${match[1]}`);
      }
    }
    assert.deepEqual(unknown, []);
  });

  it('is the README table of error codes: every code with its HTTP status and RESP prefix, and no other', () => {
    const rows = readmeRows();
    for (const code of CODES) {
      const row = rows.get(code);
      assert.ok(row !== undefined, `README has no row for ${code}`);
      const [status, prefix, meaning] = row;
      assert.equal(status, String(ERRORS[code].statusCode), `${code}: HTTP status in the README`);
      assert.equal(prefix, `\`${ERRORS[code].respPrefix}\``, `${code}: RESP prefix in the README`);
      assert.ok((meaning ?? '').length > 0, `${code}: meaning in the README`);
    }
    for (const code of CLIENT_CODES) {
      const row = rows.get(code);
      assert.ok(row !== undefined && row.length === 1 && row[0] !== '', `README has no client-code row for ${code}`);
    }
    const stray = [...rows.keys()].filter((code) => !Object.hasOwn(ERRORS, code) && !CLIENT_CODES.includes(code));
    assert.deepEqual(stray, [], 'README rows for codes in neither table');
  });
});
