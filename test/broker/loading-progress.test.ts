/**
 * Issue 13 finding 3: the progress of the replay at start: a line about once a second, and the
 * wait hints (`Retry-After`, INFO `loading_eta_seconds`) between 1 and MAX_WAIT_HINT_SECONDS.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LoadingProgress } from '../../src/broker/loading-progress.js';
import { MAX_WAIT_HINT_SECONDS, retryAfterSeconds } from '../../src/engine/loading-status.js';
import type { ReplayProgress } from '../../src/log/segment-log.js';
import { recordingLogger } from '../helpers/index.js';

function at(elapsedMs: number, bytes: number, totalBytes = 1000): ReplayProgress {
  return { records: bytes / 10, bytes, totalBytes, segments: 1, elapsedMs };
}

test('issue 13 finding 3: a progress line about once a second of replay, with records, bytes, percent and live messages', () => {
  const { logger, lines } = recordingLogger();
  let live = 7;
  const progress = new LoadingProgress(logger, () => live);
  progress.update(at(10, 10));
  progress.update(at(999, 100));
  assert.equal(lines.length, 0, 'nothing within the first second');
  live = 42;
  progress.update(at(1003, 250));
  assert.equal(lines.length, 1);
  assert.deepEqual(
    { ...lines[0], level: undefined, time: undefined, pid: undefined, hostname: undefined },
    {
      level: undefined,
      time: undefined,
      pid: undefined,
      hostname: undefined,
      msg: 'replaying the log',
      records: 25,
      bytes: 250,
      totalBytes: 1000,
      percent: 25,
      messages: 42,
      segments: 1,
      elapsedMs: 1003,
    },
  );
  progress.update(at(1500, 400));
  progress.update(at(2002, 500));
  assert.equal(lines.length, 1, 'the next one a second after the last, not on the second mark');
  progress.update(at(2003, 600));
  assert.equal(lines.length, 2);
  assert.equal(lines[1]!.percent, 60);
});

test('issue 13 finding 3: the wait hint is the estimated rest of the replay, between 1 s and MAX_WAIT_HINT_SECONDS', () => {
  const { logger } = recordingLogger();
  assert.equal(retryAfterSeconds(null), 1, 'before the replay has begun');
  const progress = new LoadingProgress(logger, () => 0);
  assert.equal(progress.etaSeconds, 1, 'before the first slice');
  assert.equal(progress.percent, 0);
  progress.update(at(1000, 10)); // 99 s left at this speed
  assert.equal(progress.etaSeconds, MAX_WAIT_HINT_SECONDS);
  assert.equal(retryAfterSeconds(progress), MAX_WAIT_HINT_SECONDS);
  progress.update(at(2000, 500)); // 2 s left
  assert.equal(progress.etaSeconds, 2);
  progress.update(at(2500, 999)); // a few ms left
  assert.equal(progress.etaSeconds, 1);
  assert.equal(progress.percent, 99.9);
  assert.equal(progress.loadedBytes, 999);
  assert.equal(progress.totalBytes, 1000);
});
