/**
 * One process per data directory (SPEC §5 "one writer"; found by the issue #2 new-user trial:
 * two servers on one --db corrupted the log).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { removeDir, startChild, tempDir } from '../helpers/index.js';

test('issue 2: a second server on the same --db refuses to start; a stale lock after SIGKILL is taken over', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-lock-');
  t.after(() => removeDir(db));
  const first = await startChild(db);
  t.after(() => first.kill('SIGKILL'));
  assert.equal(fs.readFileSync(path.join(db, 'LOCK'), 'utf8').split('\n')[0], String(first.proc.pid));

  await assert.rejects(startChild(db), (err: Error) => {
    assert.match(err.message, /exited with code 2/);
    assert.match(err.message, new RegExp(`in use by process ${first.proc.pid} \\(--db\\)`));
    return true;
  });

  await first.kill('SIGKILL');
  const second = await startChild(db);
  t.after(() => second.kill('SIGKILL'));
  assert.ok(second.lines.some((l) => l.includes('took over a stale lock')));
  const exit = await second.kill('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.equal(fs.existsSync(path.join(db, 'LOCK')), false, 'a clean stop releases the lock');
});
