/**
 * The wait hint every protocol gives while an engine loads (engine/loading-status.ts): whole
 * seconds from 1 to MAX_WAIT_HINT_SECONDS, whatever estimate the engine makes (the segment log's
 * is already whole and bounded; another engine's need not be).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_WAIT_HINT_SECONDS, retryAfterSeconds, type LoadingStatus } from '../../src/engine/loading-status.js';

function status(etaSeconds: number): LoadingStatus {
  return { startedAtMs: Date.now(), loadedBytes: 0, totalBytes: 0, percent: 0, etaSeconds };
}

test('Retry-After is whole seconds between 1 and MAX_WAIT_HINT_SECONDS, 1 without a progress', () => {
  assert.equal(retryAfterSeconds(null), 1);
  assert.equal(retryAfterSeconds(status(0)), 1);
  assert.equal(retryAfterSeconds(status(0.2)), 1);
  assert.equal(retryAfterSeconds(status(2.5)), 3, 'rounded up: a client asking early only asks again');
  assert.equal(retryAfterSeconds(status(MAX_WAIT_HINT_SECONDS)), MAX_WAIT_HINT_SECONDS);
  assert.equal(retryAfterSeconds(status(3600)), MAX_WAIT_HINT_SECONDS);
});
