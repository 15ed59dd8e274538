import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GroupCommit } from '../../src/log/group-commit.js';
import { LogAppend } from '../../src/log/log-append.js';
import type { Segment } from '../../src/log/segment.js';

// The bookkeeping only stores the segment it is given; a tag object stands for the active one.
const SEGMENT = { path: 'active' } as unknown as Segment;

function batch(name: string): LogAppend[] {
  return [LogAppend.forPublish('t', Buffer.from(name), () => {})];
}

const names = (bs: { records: LogAppend[] }[]): string[] => bs.map((b) => b.records[0]!.payload!.toString());

test('a sync confirms every batch written before it started, oldest first, even those an older sync in flight covers', () => {
  const gc = new GroupCommit(2);
  gc.written(batch('a'), SEGMENT, 0);
  const first = gc.begin(gc.freeSlot(2));
  assert.equal(first.slot, 0);
  gc.written(batch('b'), SEGMENT, 40);
  gc.written(batch('c'), SEGMENT, 80);
  assert.ok(gc.uncovered);
  const second = gc.begin(gc.freeSlot(2));
  assert.equal(second.slot, 1);
  assert.equal(gc.freeSlot(2), -1, 'both slots busy');
  gc.written(batch('d'), SEGMENT, 120);
  assert.deepEqual(names(gc.succeeded(second)), ['a', 'b', 'c']);
  assert.ok(gc.unconfirmed, 'd is not covered by any sync that returned');
  assert.deepEqual(names(gc.succeeded(first)), [], 'the older sync confirms nothing more');
  assert.equal(gc.syncing, false);
  assert.ok(gc.uncovered);
  const third = gc.begin(gc.freeSlot(2));
  assert.deepEqual(names(gc.succeeded(third)), ['d']);
  assert.equal(gc.unconfirmed, false);
});

test('a failed sync fails every unconfirmed batch; the syncs in flight become stale and confirm nothing', () => {
  const gc = new GroupCommit(2);
  gc.written(batch('a'), SEGMENT, 0);
  const first = gc.begin(0);
  gc.written(batch('b'), SEGMENT, 40);
  const second = gc.begin(1);
  const failed = gc.failed(first);
  assert.deepEqual(names(failed), ['a', 'b']);
  assert.equal(failed[0]!.startPosition, 0, 'the cut goes back to where the first unconfirmed batch began');
  gc.written(batch('c'), SEGMENT, 0);
  assert.deepEqual(names(gc.succeeded(second)), [], 'stale: it started before the failure');
  assert.ok(gc.unconfirmed);
  const third = gc.begin(gc.freeSlot(2));
  assert.deepEqual(names(gc.failed(gc.begin(gc.freeSlot(2)))), ['c'], 'a failure fails c');
  assert.deepEqual(names(gc.succeeded(third)), [], 'and makes the sync begun before it stale');
  assert.equal(gc.syncing, false);
});

test('freeSlot stays below the descriptors the segment could open', () => {
  const gc = new GroupCommit(3);
  gc.written(batch('a'), SEGMENT, 0);
  assert.equal(gc.freeSlot(1), 0);
  gc.begin(0);
  assert.equal(gc.freeSlot(1), -1, 'only one descriptor could be opened');
  assert.equal(gc.freeSlot(3), 1);
});
