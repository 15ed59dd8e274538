/** Assertions on error codes (never on message text: STYLE.md "Avoid"). */
import assert from 'node:assert/strict';
import { BrokerError } from '../../src/errors.js';

/** Asserts that `fn` throws a BrokerError with `code`. */
export function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BrokerError, `expected a BrokerError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

/** Asserts that `p` rejects with a BrokerError with `code`. */
export async function rejectsCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof BrokerError, `expected a BrokerError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}
