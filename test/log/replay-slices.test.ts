/**
 * Issue 13 finding 3: SegmentLog.openSliced replays in slices that yield to the event loop. It
 * must replay exactly what SegmentLog.open does (the same records at the same positions, the same
 * statistics, the same torn-tail cut and repair on disk), report its progress, stop cleanly when
 * aborted and fail on damage as open() does, leaving no file open.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { RecordType } from '../../src/log/record.js';
import { LogCorruptError, SegmentLog, type ReplayProgress, type ReplayStats, type ReplaySlicing } from '../../src/log/segment-log.js';
import { REPLAY_CHUNK_BYTES } from '../../src/log/segment-scan.js';
import { hashTree, payloadFor, prng, randInt, scanFile, segmentNames, silentLogger, tempDirFor, writePublishes } from '../helpers/index.js';

interface Seen {
  type: number;
  offset: number;
  topic: string;
  segmentBase: number;
  payloadPosition: number;
  payloadLength: number;
}

/** A copy of `dir` (files only, one level plus damaged/), so open and openSliced each get their own. */
function copyDir(t: TestContext, dir: string): string {
  const copy = tempDirFor(t, 'mq-slices-copy-');
  fs.cpSync(dir, copy, { recursive: true });
  return copy;
}

function visitor(out: Seen[]): (rec: Parameters<Parameters<typeof SegmentLog.open>[1]>[0], segment: { baseOffset: number }) => void {
  return (rec, segment) => {
    out.push({
      type: rec.type,
      offset: rec.offset,
      topic: rec.topic,
      segmentBase: segment.baseOffset,
      payloadPosition: rec.payloadPosition,
      payloadLength: rec.payloadLength,
    });
  };
}

function withoutDuration(stats: ReplayStats): Omit<ReplayStats, 'durationMs'> {
  const { durationMs: _durationMs, ...rest } = stats;
  return rest;
}

/** Open file descriptors of this process. */
function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** Replays `dir` with open() and a copy of it with openSliced(sliceMs 0: a yield after every step); asserts both agree. */
async function assertSameReplay(t: TestContext, dir: string, repair: boolean): Promise<{ slices: ReplayProgress[]; records: Seen[] }> {
  const slicedDir = copyDir(t, dir);
  const once: Seen[] = [];
  const sync = SegmentLog.open({ dir, repair, logger: silentLogger }, visitor(once));
  sync.log.close();
  const sliced: Seen[] = [];
  const slices: ReplayProgress[] = [];
  let turns = 0;
  const ticker = setInterval(() => turns++, 0);
  const result = await SegmentLog.openSliced({ dir: slicedDir, repair, logger: silentLogger }, visitor(sliced), {
    sliceMs: 0,
    onSlice: (p) => slices.push(p),
  });
  clearInterval(ticker);
  result.log.close();
  assert.deepEqual(sliced, once, 'the same records, in the same order, at the same positions');
  assert.deepEqual(withoutDuration(result.stats), withoutDuration(sync.stats));
  assert.equal(result.log.nextOffset, sync.log.nextOffset);
  assert.deepEqual(hashTree(slicedDir), hashTree(dir), 'the same files afterwards (torn-tail cut, repair, damaged/)');
  assert.ok(slices.length > 1, `replayed in ${slices.length + 1} slices`);
  assert.ok(turns > 0, 'timers ran between the slices');
  for (let i = 1; i < slices.length; i++) {
    assert.ok(slices[i]!.records >= slices[i - 1]!.records && slices[i]!.bytes >= slices[i - 1]!.bytes, 'progress never goes back');
  }
  for (const p of slices) assert.ok(p.bytes <= p.totalBytes && p.records <= once.length, JSON.stringify(p));
  return { slices, records: once };
}

/** A log of several 64 KiB segments, 1..2000-byte payloads, and one record larger than a read chunk. */
async function mixedLog(dir: string): Promise<number> {
  const rand = prng(2024);
  const payloads = Array.from({ length: 1500 }, (_, i) => payloadFor(i, randInt(rand, 1, 2000)));
  payloads.splice(700, 0, Buffer.alloc(REPLAY_CHUNK_BYTES + 1000, 0x5a));
  await writePublishes(dir, payloads, { segmentBytes: 64 * 1024, perBatch: 9 });
  return payloads.length;
}

test('issue 13 finding 3: openSliced replays exactly what open does, in many slices, torn tail included', async (t) => {
  const dir = tempDirFor(t, 'mq-slices-');
  const count = await mixedLog(dir);
  // A torn last record: half of its bytes.
  const names = segmentNames(dir);
  assert.ok(names.length >= 5, `${names.length} segments`);
  const newest = path.join(dir, names[names.length - 1]!);
  const last = scanFile(newest).at(-1)!;
  fs.truncateSync(newest, last.position + Math.floor(last.sizeBytes / 2));
  const { records } = await assertSameReplay(t, dir, false);
  assert.equal(records.length, count - 1);
  assert.ok(records.some((r) => r.payloadLength > REPLAY_CHUNK_BYTES), 'the record larger than a read chunk was replayed');
  assert.ok(fs.existsSync(path.join(dir, 'damaged')), 'the torn bytes were kept');
});

test('issue 13 finding 3: openSliced with repair resynchronises exactly as open does', async (t) => {
  const dir = tempDirFor(t, 'mq-slices-repair-');
  await mixedLog(dir);
  const names = segmentNames(dir);
  const file = path.join(dir, names[1]!);
  const entries = scanFile(file);
  const victim = entries[Math.floor(entries.length / 2)]!;
  const data = fs.readFileSync(file);
  data[victim.position + victim.sizeBytes - 1]! ^= 0x10; // a payload byte: the CRC fails
  fs.writeFileSync(file, data);
  const { records } = await assertSameReplay(t, dir, true);
  assert.ok(!records.some((r) => r.offset === victim.rec.offset), 'the damaged record is not replayed');
  assert.ok(records.some((r) => r.offset === victim.rec.offset + 1), 'the record after it is');
});

test('issue 13 finding 3: damage found during a sliced replay rejects with LogCorruptError like open; nothing changed, no file left open', async (t) => {
  const dir = tempDirFor(t, 'mq-slices-corrupt-');
  await mixedLog(dir);
  const names = segmentNames(dir);
  const file = path.join(dir, names[2]!);
  const victim = scanFile(file)[3]!;
  const data = fs.readFileSync(file);
  data[victim.position + 9] = 0xee; // the type byte
  fs.writeFileSync(file, data);
  const before = hashTree(dir);
  const thrownBySync = (() => {
    try {
      SegmentLog.open({ dir, repair: false, logger: silentLogger }, () => {});
    } catch (err) {
      return err;
    }
    return undefined;
  })();
  assert.ok(thrownBySync instanceof LogCorruptError);
  const fds = openFds();
  let slices = 0;
  const rejected = await SegmentLog.openSliced({ dir, repair: false, logger: silentLogger }, () => {}, {
    sliceMs: 0,
    onSlice: () => slices++,
  }).then(
    () => undefined,
    (err: unknown) => err,
  );
  assert.ok(rejected instanceof LogCorruptError, `rejected with ${String(rejected)}`);
  assert.equal(rejected.file, file);
  assert.equal(rejected.position, victim.position);
  assert.deepEqual([rejected.file, rejected.position, rejected.reason], [thrownBySync.file, thrownBySync.position, thrownBySync.reason]);
  assert.ok(slices > 1, 'the damage was found after several slices');
  assert.equal(openFds(), fds, 'every segment file opened by the replay was closed');
  assert.deepEqual(hashTree(dir), before);
});

test('issue 13 finding 3: aborting a sliced replay stops it at the next slice with the abort reason; nothing changed, no file left open', async (t) => {
  const dir = tempDirFor(t, 'mq-slices-abort-');
  await mixedLog(dir);
  // A torn tail the full replay would cut away: an aborted one must not get that far.
  const names = segmentNames(dir);
  const newest = path.join(dir, names[names.length - 1]!);
  fs.truncateSync(newest, fs.statSync(newest).size - 3);
  const before = hashTree(dir);
  const fds = openFds();
  const controller = new AbortController();
  let seen = 0;
  let slices = 0;
  const slicing: ReplaySlicing = {
    sliceMs: 0,
    signal: controller.signal,
    onSlice: () => {
      if (++slices === 3) controller.abort();
    },
  };
  const rejected = await SegmentLog.openSliced({ dir, repair: false, logger: silentLogger }, () => seen++, slicing).then(
    () => undefined,
    (err: unknown) => err,
  );
  assert.ok(rejected instanceof Error && rejected.name === 'AbortError', `rejected with ${String(rejected)}`);
  assert.equal(slices, 3, 'no slice ran after the abort');
  assert.ok(seen > 0, 'some records had been replayed');
  assert.equal(openFds(), fds, 'every segment file opened by the replay was closed');
  assert.deepEqual(hashTree(dir), before, 'nothing changed on disk');
  // The log still opens in full afterwards.
  const records: Seen[] = [];
  const { log } = SegmentLog.open({ dir, repair: false, logger: silentLogger }, visitor(records));
  log.close();
  assert.ok(records.length > seen);
  assert.ok(records.every((r) => r.type === RecordType.PUBLISH));
});
