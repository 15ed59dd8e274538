/**
 * Reconnect delays of `miniqueue/client` subscriptions: exponential, capped, fully jittered.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelayMs, resolveBackoff } from '../../src/client/backoff.js';

test('the delay ceiling doubles per attempt up to maxDelayMs; the delay is uniform in [0, ceiling]', () => {
  const opts = resolveBackoff({ initialDelayMs: 100, maxDelayMs: 1000 });
  const top = (attempt: number): number => backoffDelayMs(attempt, opts, () => 0.999999999);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 30, 2000].map(top), [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
  assert.equal(backoffDelayMs(3, opts, () => 0), 0);
  assert.equal(backoffDelayMs(3, opts, () => 0.5), 400);
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelayMs(2, opts);
    assert.ok(Number.isInteger(d) && d >= 0 && d <= 400, String(d));
  }
});

test('bad policies are refused', () => {
  assert.throws(() => resolveBackoff({ initialDelayMs: -1 }), RangeError);
  assert.throws(() => resolveBackoff({ factor: 0.5 }), RangeError);
  assert.throws(() => resolveBackoff({ maxAttempts: 0 }), RangeError);
  assert.deepEqual(resolveBackoff(), { initialDelayMs: 100, maxDelayMs: 5000, factor: 2, maxAttempts: Infinity });
});
