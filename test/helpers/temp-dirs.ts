/** Temporary directories for tests: each test gets its own, removed when it ends (STYLE.md "Tests"). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** What tempDirFor needs of a test context (node:test's TestContext, or a suite's). */
export interface AfterHook {
  after: (fn: () => void | Promise<void>) => void;
}

/** A fresh directory under the OS temp dir; the caller removes it ({@link removeDir}). */
export function tempDir(prefix = 'mq-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Removes `dir` and everything below it; no error when it is gone already. */
export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** A fresh directory removed after the test `t` (its `after` hook). */
export function tempDirFor(t: AfterHook, prefix = 'mq-test-'): string {
  const dir = tempDir(prefix);
  t.after(() => removeDir(dir));
  return dir;
}
