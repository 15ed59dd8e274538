/**
 * The compaction mechanism (log/compactor.ts) on its own, on real segment files: which segments
 * it deletes and which it has copied, in what order, and what a failure or a stop leaves.
 *
 * What the records mean is the policy's business, so a small owner of our own stands in for the
 * broker here (FakeOwner: a test double of the compactor's own CompactionPolicy interface). The
 * real pairing with the broker is tested in test/broker/compaction.test.ts,
 * test/integration/compaction.test.ts and the crash suites.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test, type TestContext } from 'node:test';
import type { Logger } from 'pino';
import { Compactor, type CompactionPolicy, type CompactorOptions, type EvacuationResult } from '../../src/log/compactor.js';
import { LogWriter, type FsyncPolicy } from '../../src/log/log-writer.js';
import { RecordType, recordSizeBytes } from '../../src/log/record.js';
import type { SegmentLog } from '../../src/log/segment-log.js';
import type { Segment } from '../../src/log/segment.js';
import { appendPublish, openLog, recordingLogger, removeDir, silentLogger, tempDir } from '../helpers/index.js';

const SEGMENT_BYTES = 2048;
/**
 * Six PUBLISH records of this size fill a segment (1800 bytes), and one alone is over an eighth
 * of a segment (so the compactor rolls before it copies).
 */
const RECORD_BYTES = 300;
const TOPIC = 'g';

/** What the owner says of one segment: bytes replay still needs (0: removable), or kept for good. */
type Need = number | 'kept';

/**
 * A stand-in for the owner of the records. Each segment needs what `needs` says (absent: 0,
 * removable), except one listed in `keptWhile`, which is kept while its partner segment is open.
 * evacuate() writes one record per victim of the size it needs through the real writer; the
 * victim is then removable and the copy's segment needs those bytes.
 */
class FakeOwner implements CompactionPolicy {
  readonly needs = new Map<Segment, Need>();
  readonly keptWhile = new Map<Segment, Segment>();
  /** The victims of each evacuate() call, in order. */
  readonly evacuations: Segment[][] = [];
  /** When set, evacuate() rejects with it before writing anything (as when a payload cannot be read). */
  failWith: Error | null = null;
  /** Called when evacuate() is entered. */
  onEvacuate: (() => void) | null = null;
  /** When set, evacuate() waits for it before writing. */
  gate: Promise<void> | null = null;

  constructor(readonly writer: LogWriter) {}

  need(segment: Segment): Need {
    const partner = this.keptWhile.get(segment);
    if (partner !== undefined && partner.open) return 'kept';
    return this.needs.get(segment) ?? 0;
  }

  isRemovable(segments: readonly Segment[], index: number): boolean {
    assert.ok(index < segments.length - 1, 'never asked about the active segment');
    return this.need(segments[index]!) === 0;
  }

  copyForwardBytes(segments: readonly Segment[], index: number): number | null {
    assert.ok(index < segments.length - 1, 'never asked about the active segment');
    const need = this.need(segments[index]!);
    return need === 0 || need === 'kept' ? null : need;
  }

  async evacuate(victims: ReadonlySet<Segment>, isStopped: () => boolean): Promise<EvacuationResult> {
    this.evacuations.push([...victims]);
    this.onEvacuate?.();
    if (this.failWith !== null) throw this.failWith;
    if (this.gate !== null) await this.gate;
    if (isStopped()) throw new Error('stopped between slices');
    const result: EvacuationResult = { messages: 0, bytes: 0, segments: new Set() };
    const copies = await Promise.all(
      [...victims].map((v) => appendPublish(this.writer, 'copy', Buffer.alloc(payloadBytesFor(this.need(v) as number, 'copy')))),
    );
    for (const [i, victim] of [...victims].entries()) {
      const { err, rec } = copies[i]!;
      if (err !== null) throw err;
      assert.ok(!victims.has(rec.segment!), 'a copy never lands in a segment being compacted');
      assert.ok(victim.open && fs.existsSync(victim.path), 'the source is still there while its copy is written');
      this.needs.delete(victim);
      this.needs.set(rec.segment!, ((this.needs.get(rec.segment!) as number | undefined) ?? 0) + rec.sizeBytes);
      result.messages++;
      result.bytes += rec.sizeBytes;
      result.segments.add(rec.segment!);
    }
    return result;
  }
}

/** The payload length that makes a PUBLISH record of `topic` `recordBytes` long. */
function payloadBytesFor(recordBytes: number, topic: string): number {
  return recordBytes - recordSizeBytes(RecordType.PUBLISH, topic.length, 0);
}

interface Rig {
  log: SegmentLog;
  writer: LogWriter;
  owner: FakeOwner;
  compactor: Compactor;
  dir: string;
}

/** A log in a temp directory, its writer, a FakeOwner and a compactor (not started) over them; all closed after the test. */
function rig(t: TestContext, opts: Partial<CompactorOptions> & { fsync?: FsyncPolicy; logger?: Logger } = {}): Rig {
  const dir = tempDir('mq-compactor-');
  const { log } = openLog(dir);
  const fsync = opts.fsync ?? 'always';
  const writer = new LogWriter(log, { fsync, fsyncIntervalMs: 1000, segmentBytes: SEGMENT_BYTES, logger: silentLogger });
  const owner = new FakeOwner(writer);
  const compactor = new Compactor({
    log,
    policy: owner,
    writer,
    segmentBytes: SEGMENT_BYTES,
    fsync,
    logger: opts.logger ?? silentLogger,
    maxLiveRatio: 0.5,
    graceSegments: 0,
    copyMinGarbageBytes: 0,
    ...opts,
  });
  t.after(async () => {
    await compactor.stop();
    await writer.close();
    removeDir(dir);
  });
  return { log, writer, owner, compactor, dir };
}

/** Appends PUBLISH records of RECORD_BYTES until `count` segments are closed; returns the closed ones. */
async function fillSegments(r: Rig, count: number): Promise<Segment[]> {
  while (r.log.segments.length <= count) {
    const { err } = await appendPublish(r.writer, TOPIC, Buffer.alloc(payloadBytesFor(RECORD_BYTES, TOPIC)));
    assert.equal(err, null);
  }
  return r.log.segments.slice(0, count);
}

/** Appends one record in a segment of its own (rolling before it); returns that segment. */
async function smallSegment(r: Rig, recordBytes: number): Promise<Segment> {
  r.writer.rollBeforeNextWrite();
  const { err, rec } = await appendPublish(r.writer, TOPIC, Buffer.alloc(payloadBytesFor(recordBytes, TOPIC)));
  assert.equal(err, null);
  return rec.segment!;
}

function exists(s: Segment): boolean {
  return fs.existsSync(s.path);
}

test('deletes every segment the policy calls removable and no other, never the active one; one info line per pass', async (t) => {
  const { logger, lines } = recordingLogger();
  const r = rig(t, { logger });
  const closed = await fillSegments(r, 6);
  r.owner.needs.set(closed[2]!, 'kept');
  const active = r.log.active;
  const reclaimable = closed.filter((s) => s !== closed[2]).reduce((n, s) => n + s.sizeBytes, 0);
  const run = await r.compactor.run();
  assert.ok(run !== null);
  assert.equal(run.segmentsRemoved, 5);
  assert.equal(run.bytesReclaimed, reclaimable);
  assert.equal(run.messagesCopied, 0);
  assert.deepEqual(r.log.segments, [closed[2], active], 'the kept one and the active one (removable, but active) stay');
  for (const s of closed) assert.equal(exists(s), s === closed[2], s.path);
  for (const s of closed) assert.equal(s.open, s === closed[2], 'a removed segment is closed');
  assert.equal(await r.compactor.run(), null, 'nothing left to do');
  const logged = lines.filter((l) => l['msg'] === 'compaction run');
  assert.equal(logged.length, 1);
  assert.equal(logged[0]!['level'], 30);
  assert.equal(logged[0]!['segmentsRemoved'], 5);
  assert.equal(logged[0]!['segments'], 2);
  assert.deepEqual(r.compactor.stats, { runs: 1, segmentsRemoved: 5, bytesReclaimed: reclaimable, messagesCopied: 0, bytesCopied: 0, failures: 0 });
});

test('a segment kept by another is deleted in a later round of the same pass, after that one is gone', async (t) => {
  const r = rig(t);
  const [a, b, c] = await fillSegments(r, 3);
  r.owner.keptWhile.set(a!, b!); // a needs nothing once b is gone (an ACK whose message was in b)
  r.owner.keptWhile.set(b!, c!);
  const run = await r.compactor.run();
  assert.ok(run !== null);
  assert.equal(run.segmentsRemoved, 3);
  assert.ok(![a, b, c].some((s) => exists(s!)));
});

for (const fsync of ['always', 'never'] as const) {
  test(`copies what the policy asks into segments of their own, then deletes the sources (fsync ${fsync})`, async (t) => {
    const r = rig(t, { fsync });
    const closed = await fillSegments(r, 4);
    // Two mostly dead segments; one mostly live (over maxLiveRatio); one kept for good.
    r.owner.needs.set(closed[0]!, RECORD_BYTES);
    r.owner.needs.set(closed[1]!, 2 * RECORD_BYTES);
    r.owner.needs.set(closed[2]!, 6 * RECORD_BYTES);
    r.owner.needs.set(closed[3]!, 'kept');
    const activeBefore = r.log.active;
    const run = await r.compactor.run();
    assert.ok(run !== null);
    assert.equal(r.owner.evacuations.length, 1);
    assert.deepEqual(r.owner.evacuations[0], [closed[0], closed[1]], 'emptiest first, and only those worth copying');
    assert.equal(run.messagesCopied, 2);
    assert.equal(run.bytesCopied, 3 * RECORD_BYTES);
    assert.equal(run.segmentsRemoved, 3, 'the two sources, and the segment active before (removable) once closed');
    assert.ok(!exists(closed[0]!) && !exists(closed[1]!) && !exists(activeBefore));
    assert.ok(exists(closed[2]!) && exists(closed[3]!));
    // The copies went into a segment of their own: not the one active before (it held more than
    // an eighth of a segment), and the next append rolls again.
    const copies = [...r.owner.needs.entries()].filter(([, n]) => n === RECORD_BYTES * 3).map(([s]) => s);
    assert.equal(copies.length, 1);
    assert.notEqual(copies[0], activeBefore);
    const { rec } = await appendPublish(r.writer, TOPIC, Buffer.alloc(10));
    assert.notEqual(rec.segment, copies[0], 'records after the copies start a new segment');
    assert.equal(r.compactor.stats.messagesCopied, 2);
  });
}

test('a segment that a copy made cheap to free is copied in the next round of the same pass', async (t) => {
  const r = rig(t);
  const [a, b, c] = await fillSegments(r, 3);
  r.owner.needs.set(a!, RECORD_BYTES);
  r.owner.needs.set(b!, RECORD_BYTES);
  r.owner.keptWhile.set(b!, a!); // as an ACK in b of a message whose PUBLISH is in a
  r.owner.needs.set(c!, 'kept');
  const run = await r.compactor.run();
  assert.ok(run !== null);
  assert.deepEqual(r.owner.evacuations, [[a], [b]]);
  assert.equal(run.messagesCopied, 2);
  assert.ok(!exists(a!) && !exists(b!) && exists(c!));
});

test('a copy-forward pass waits for copyMinGarbageBytes and stays within maxCopyBytesPerRun', async (t) => {
  const r = rig(t, { copyMinGarbageBytes: 5 * SEGMENT_BYTES, maxCopyBytesPerRun: RECORD_BYTES });
  let closed = await fillSegments(r, 4);
  for (const s of closed) r.owner.needs.set(s, RECORD_BYTES);
  assert.equal(await r.compactor.run(), null, 'four segments with 1500 bytes of garbage each are less than five segments: no copying yet');
  assert.equal(r.owner.evacuations.length, 0);
  closed = await fillSegments(r, 8);
  for (const s of closed) r.owner.needs.set(s, RECORD_BYTES);
  const run = await r.compactor.run();
  assert.ok(run !== null);
  assert.deepEqual(r.owner.evacuations[0], [closed[0]], 'equally empty: oldest first, and one fits the budget');
  assert.equal(run.messagesCopied, 1, 'the budget is used up after one copy');
  assert.ok(!exists(closed[0]!) && closed.slice(1).every(exists));
});

test('the newest graceSegments closed segments are not copied, but deleted when removable', async (t) => {
  const r = rig(t, { graceSegments: 2 });
  const closed = await fillSegments(r, 4);
  for (const s of closed) r.owner.needs.set(s, RECORD_BYTES);
  const activeBefore = r.log.active; // removable, closed by the roll before the copies
  const run = await r.compactor.run();
  assert.ok(run !== null);
  assert.deepEqual(r.owner.evacuations, [[closed[0], closed[1]]]);
  assert.ok(!exists(closed[0]!) && !exists(closed[1]!));
  assert.ok(!exists(activeBefore), 'the newest closed segment, removable: deleted despite the grace');
  assert.ok(exists(closed[2]!) && exists(closed[3]!), 'within the grace: not copied');
});

test('small segments that are mostly live are merged once there are eight of them', async (t) => {
  const r = rig(t);
  await fillSegments(r, 1);
  for (const s of r.log.segments) r.owner.needs.set(s, 'kept');
  const small: Segment[] = [];
  for (let i = 0; i < 7; i++) small.push(await smallSegment(r, 100));
  await smallSegment(r, 100); // the active one
  for (const s of small) r.owner.needs.set(s, 100); // all live: ratio 1
  assert.equal(await r.compactor.run(), null, 'seven are left alone');
  small.push(r.log.active);
  await smallSegment(r, 100);
  r.owner.needs.set(small[7]!, 100);
  const run = await r.compactor.run();
  assert.ok(run !== null);
  assert.deepEqual(r.owner.evacuations[0], small, 'oldest first');
  assert.equal(run.segmentsRemoved, 8);
  assert.ok(!small.some(exists));
});

test('a failed copy deletes nothing, is counted, warns once per burst, and a later pass works', async (t) => {
  const { logger, lines } = recordingLogger();
  const r = rig(t, { logger });
  const closed = await fillSegments(r, 2);
  for (const s of closed) r.owner.needs.set(s, RECORD_BYTES);
  r.owner.failWith = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
  assert.equal(await r.compactor.run(), null);
  assert.equal(await r.compactor.run(), null);
  assert.equal(r.compactor.stats.failures, 2);
  assert.ok(closed.every(exists), 'the sources stay when the copy failed');
  assert.equal(lines.filter((l) => l['level'] === 40).length, 1, 'one warning for the burst');
  r.owner.failWith = null;
  const run = await r.compactor.run();
  assert.ok(run !== null && run.messagesCopied === 2, JSON.stringify(run));
  assert.ok(!closed.some(exists));
  assert.equal(lines.filter((l) => l['msg'] === 'compaction works again').length, 1);
});

test('a file already gone is still taken out of the log', async (t) => {
  const r = rig(t);
  const closed = await fillSegments(r, 2);
  fs.unlinkSync(closed[0]!.path);
  const run = await r.compactor.run();
  assert.ok(run !== null && run.segmentsRemoved === 2);
  assert.equal(r.log.segments.length, 1);
});

test('stop() waits for the pass in progress, which stops between slices and deletes nothing', async (t) => {
  const r = rig(t);
  const closed = await fillSegments(r, 2);
  for (const s of closed) r.owner.needs.set(s, RECORD_BYTES);
  let open!: () => void;
  r.owner.gate = new Promise((resolve) => (open = resolve));
  const reached = new Promise<void>((resolve) => (r.owner.onEvacuate = resolve));
  const running = r.compactor.run();
  await reached;
  let stopped = false;
  const stopping = r.compactor.stop().then(() => (stopped = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(stopped, false, 'stop() waits for the pass');
  open();
  await stopping;
  assert.equal(await running, null);
  assert.equal(r.compactor.stats.failures, 0, 'a stop is not a failure');
  assert.ok(closed.every(exists));
  assert.equal(await r.compactor.run(), null, 'no pass after stop()');
});
