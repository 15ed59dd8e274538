import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { LogAppend, LogWriter, type FsyncPolicy, type WriterFs } from '../../src/log/log-writer.js';
import { RecordType, fillCountersPayload } from '../../src/log/record.js';
import type { SegmentLog } from '../../src/log/segment-log.js';
import { append, appendPublish, letTimePass, openLog, payloadFor, prng, recordingLogger, removeDir, scanFile, segmentNames, silentLogger, tempDir, waitFor } from '../helpers/index.js';

const FIRST = '00000000000000000000.log';

interface Ctx {
  dir: string;
  log: SegmentLog;
  writer: LogWriter;
}

function setup(
  t: { after: (fn: () => void | Promise<void>) => void },
  opts: { fsync?: FsyncPolicy; segmentBytes?: number; fsyncIntervalMs?: number; batchMaxBytes?: number; syncSlots?: number; logger?: ReturnType<typeof recordingLogger>['logger'] } = {},
): Ctx {
  const dir = tempDir('mq-writer-');
  const { log } = openLog(dir);
  const writer = new LogWriter(log, {
    fsync: opts.fsync ?? 'always',
    fsyncIntervalMs: opts.fsyncIntervalMs ?? 1000,
    segmentBytes: opts.segmentBytes ?? 1 << 20,
    ...(opts.batchMaxBytes === undefined ? {} : { batchMaxBytes: opts.batchMaxBytes }),
    ...(opts.syncSlots === undefined ? {} : { syncSlots: opts.syncSlots }),
    logger: opts.logger ?? silentLogger,
  });
  let closed = false;
  const ctx = { dir, log, writer };
  t.after(async () => {
    if (!closed) {
      closed = true;
      await writer.close().catch(() => {});
    }
    removeDir(dir);
  });
  return ctx;
}

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected`), { code });
}

function publishMany(writer: LogWriter, payloads: Buffer[]): Promise<{ err: Error | null; rec: LogAppend }>[] {
  return payloads.map((p) => appendPublish(writer, 'topic', p));
}

test('records appended in the same tick go out in one batch, answered in order with increasing offsets', async (t) => {
  const { writer, log } = setup(t);
  const payloads = Array.from({ length: 25 }, (_, i) => payloadFor(i, i * 3));
  const order: number[] = [];
  const results = await Promise.all(
    payloads.map(
      (p, i) =>
        new Promise<LogAppend>((resolve, reject) => {
          writer.append(
            LogAppend.forPublish('topic', p, (err, rec) => {
              order.push(i);
              if (err !== null) reject(err);
              else resolve(rec);
            }),
          );
        }),
    ),
  );
  assert.deepEqual(order, payloads.map((_, i) => i), 'callbacks run in append order');
  assert.equal(writer.stats.batches, 1);
  assert.equal(writer.stats.records, 25);
  assert.equal(writer.stats.fsyncs, 1, 'one fdatasync covers the whole batch');
  assert.equal(writer.stats.failedBatches, 0);
  for (let i = 0; i < results.length; i++) {
    const rec = results[i]!;
    assert.equal(rec.offset, i);
    assert.equal(rec.segment, log.active);
    assert.ok(rec.segment!.readAt(rec.payloadPosition, payloads[i]!.length).equals(payloads[i]!), `payload ${i} is at payloadPosition`);
  }
  assert.equal(writer.stats.bytes, log.active.sizeBytes);
  assert.equal(fs.statSync(log.active.path).size, log.active.sizeBytes);
  assert.equal(writer.pendingCount, 0);
  assert.equal(writer.pendingBytes, 0);
});

test('records appended while a write is in flight go together into the next batch (group commit)', async (t) => {
  const { writer } = setup(t);
  const realWrite = writer.fs.write;
  let release: (() => void) | undefined;
  let writes = 0;
  writer.fs.write = ((fd: number, buf: Buffer, off: number, len: number, pos: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void) => {
    writes++;
    if (writes === 1) {
      release = () => realWrite(fd, buf, off, len, pos, cb);
      return;
    }
    realWrite(fd, buf, off, len, pos, cb);
  }) as WriterFs['write'];
  const first = publishMany(writer, [Buffer.from('a')]);
  await waitFor(() => release !== undefined);
  assert.equal(writer.pendingCount, 0);
  const later: Promise<{ err: Error | null; rec: LogAppend }>[] = [];
  for (let i = 0; i < 10; i++) {
    later.push(...publishMany(writer, [Buffer.from(`b${i}`)]));
    await new Promise((r) => setImmediate(r)); // different ticks
  }
  assert.equal(writer.pendingCount, 10);
  assert.ok(writer.pendingBytes > 0);
  release!();
  const all = await Promise.all([...first, ...later]);
  assert.deepEqual(all.map((r) => r.err), all.map(() => null));
  assert.deepEqual(all.map((r) => r.rec.offset), all.map((_, i) => i));
  assert.equal(writer.stats.batches, 2);
  // Both batches were written by the time the first could be synced: one fdatasync covers both.
  assert.equal(writer.stats.fsyncs, 1);
});

test("fsync 'always' fdatasyncs once per batch; callbacks come after it", async (t) => {
  const { writer } = setup(t, { fsync: 'always' });
  const realSync = writer.fs.fdatasync;
  const events: string[] = [];
  writer.fs.fdatasync = ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
    events.push('fdatasync');
    realSync(fd, cb);
  }) as WriterFs['fdatasync'];
  for (let batch = 0; batch < 4; batch++) {
    const rs = await Promise.all(
      publishMany(writer, [Buffer.from('x'), Buffer.from('y')]).map((p) => p.then((r) => (events.push('done'), r))),
    );
    assert.ok(rs.every((r) => r.err === null));
  }
  assert.equal(writer.stats.batches, 4);
  assert.equal(writer.stats.fsyncs, 4);
  assert.deepEqual(events, Array(4).fill(['fdatasync', 'done', 'done']).flat());
});

test("fsync 'never' does no fdatasync while writing", async (t) => {
  const { writer, log } = setup(t, { fsync: 'never' });
  let syncs = 0;
  writer.fs.fdatasync = ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
    syncs++;
    fs.fdatasync(fd, cb);
  }) as WriterFs['fdatasync'];
  for (let batch = 0; batch < 3; batch++) {
    const rs = await Promise.all(publishMany(writer, [Buffer.from('x'), Buffer.from('y')]));
    assert.ok(rs.every((r) => r.err === null));
  }
  assert.equal(writer.stats.batches, 3);
  assert.equal(writer.stats.fsyncs, 0);
  assert.equal(syncs, 0);
  // Written to the file before the answer, even without fsync.
  assert.equal(fs.statSync(log.active.path).size, log.active.sizeBytes);
  assert.equal(scanFile(log.active.path).length, 6);
});

test("fsync 'interval' fdatasyncs on the timer only after writes", async (t) => {
  const { writer } = setup(t, { fsync: 'interval', fsyncIntervalMs: 10 });
  await letTimePass(40); // four timer periods with nothing written: none of them may sync
  assert.equal(writer.stats.fsyncs, 0, 'nothing written, nothing synced');
  const rs = await Promise.all(publishMany(writer, [Buffer.from('x')]));
  assert.equal(rs[0]!.err, null);
  await waitFor(() => writer.stats.fsyncs >= 1, 2000, 5);
  const after = writer.stats.fsyncs;
  await letTimePass(40); // four more timer periods with nothing new written: none of them may sync
  assert.equal(writer.stats.fsyncs, after, 'no fsync while nothing new was written');
});

test('the writer rolls segments at segmentBytes; a record larger than a segment is written alone', async (t) => {
  const { writer, log, dir } = setup(t, { segmentBytes: 4096 });
  const small = Array.from({ length: 100 }, (_, i) => payloadFor(i, 150));
  const rs = await Promise.all(publishMany(writer, small));
  assert.ok(rs.every((r) => r.err === null));
  const big = payloadFor(999, 10_000);
  const bigResult = await appendPublish(writer, 'topic', big);
  assert.equal(bigResult.err, null);
  const afterBig = await appendPublish(writer, 'topic', Buffer.from('tail'));
  assert.equal(afterBig.err, null);
  const names = segmentNames(dir);
  assert.equal(names[0], FIRST);
  assert.ok(names.length >= 5);
  for (const n of names) assert.match(n, /^\d{20}\.log$/);
  assert.equal(bigResult.rec.segment!.sizeBytes, bigResult.rec.sizeBytes, 'the oversized record is alone in its segment');
  assert.equal(afterBig.rec.segment!.baseOffset, afterBig.rec.offset, 'the next record starts a new segment');
  for (const r of [...rs, bigResult]) {
    const p = r.rec.payload!;
    assert.ok(r.rec.segment!.readAt(r.rec.payloadPosition, p.length).equals(p));
    assert.equal(path.basename(r.rec.segment!.path), String(r.rec.segment!.baseOffset).padStart(20, '0') + '.log');
  }
  assert.deepEqual(log.segments.map((s) => path.basename(s.path)), names);
  for (const s of log.segments.slice(0, -1)) {
    const entries = scanFile(s.path);
    assert.equal(entries[0]!.rec.offset, s.baseOffset);
    assert.ok(s.sizeBytes <= 4096 || entries.length === 1);
  }
});

test('batchMaxBytes splits one tick of records into several writes', async (t) => {
  const { writer } = setup(t, { batchMaxBytes: 1000 });
  const rs = await Promise.all(publishMany(writer, Array.from({ length: 20 }, (_, i) => payloadFor(i, 178)))); // 200 bytes each
  assert.ok(rs.every((r) => r.err === null));
  assert.deepEqual(rs.map((r) => r.rec.offset), rs.map((_, i) => i));
  assert.equal(writer.stats.batches, 4);
});

test('short writes are continued until the whole batch is written', async (t) => {
  const { writer, log } = setup(t);
  let calls = 0;
  writer.fs.write = ((fd: number, buf: Buffer, off: number, len: number, pos: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void) => {
    calls++;
    fs.write(fd, buf, off, Math.min(len, 7), pos, cb);
  }) as WriterFs['write'];
  const payloads = Array.from({ length: 5 }, (_, i) => payloadFor(i, 20));
  const rs = await Promise.all(publishMany(writer, payloads));
  assert.ok(rs.every((r) => r.err === null));
  assert.ok(calls > 10);
  assert.equal(writer.stats.batches, 1);
  const entries = scanFile(log.active.path);
  assert.equal(entries.length, 5);
  entries.forEach((e, i) => assert.ok(e.rec.payload!.equals(payloads[i]!)));
});

/** Runs the failure scenario: good batch, failing batch, good batches after restore; checks the file and a reopen. */
async function failureScenario(
  t: { after: (fn: () => void | Promise<void>) => void },
  inject: (writer: LogWriter) => () => void,
  expectedCode: string,
): Promise<void> {
  const { logger, lines } = recordingLogger();
  const { writer, log, dir } = setup(t, { logger });
  const good1 = await Promise.all(publishMany(writer, [Buffer.from('good-1'), Buffer.from('good-2')]));
  assert.ok(good1.every((r) => r.err === null));
  const sizeBefore = fs.statSync(log.active.path).size;

  const restore = inject(writer);
  const failed = await Promise.all(
    publishMany(writer, [Buffer.from('bad-1'), Buffer.from('bad-2'), Buffer.from('bad-3')]),
  );
  for (const r of failed) {
    assert.ok(r.err !== null, 'every record of the failed batch gets the error');
    assert.equal((r.err as NodeJS.ErrnoException).code, expectedCode);
  }
  assert.equal(writer.stats.failedBatches, 1);
  assert.equal(fs.statSync(log.active.path).size, sizeBefore, 'the file is cut back to its size before the batch');
  assert.equal(log.active.sizeBytes, sizeBefore);
  const errorLines = lines.filter((l) => l.level === 50);
  assert.equal(errorLines.length, 1, 'the failure is logged at error level once');
  assert.equal(errorLines[0]!.file, log.active.path);
  assert.equal(errorLines[0]!.position, sizeBefore);

  // A second failing batch is answered with errors too, but not logged again.
  const failedAgain = await Promise.all(publishMany(writer, [Buffer.from('bad-4')]));
  assert.ok(failedAgain[0]!.err !== null);
  assert.equal(lines.filter((l) => l.level === 50).length, 1);

  restore();
  const good2 = await Promise.all(publishMany(writer, [Buffer.from('good-3'), Buffer.from('good-4')]));
  assert.ok(good2.every((r) => r.err === null), 'appends succeed again once the disk works');
  assert.ok(good2[0]!.rec.offset > failedAgain[0]!.rec.offset, 'offsets keep increasing past the failed ones');
  assert.ok(lines.some((l) => l.level === 30 && typeof l.msg === 'string' && /works again/.test(l.msg)));
  for (const r of good2) {
    assert.ok(r.rec.segment!.readAt(r.rec.payloadPosition, r.rec.payload!.length).equals(r.rec.payload!));
  }
  await writer.close();

  const { log: reopened, records, stats } = openLog(dir);
  reopened.close();
  assert.deepEqual(
    records.map((r) => r.payload!.toString()),
    ['good-1', 'good-2', 'good-3', 'good-4'],
    'only the successful records replay',
  );
  assert.equal(stats.truncatedBytes, 0, 'no leftover of the failed batch in the file');
  const offsets = records.map((r) => r.offset);
  assert.deepEqual([...offsets].sort((a, b) => a - b), offsets);
}

test('a write failing with ENOSPC fails the whole batch, the log recovers after', async (t) => {
  await failureScenario(
    t,
    (writer) => {
      const real = writer.fs.write;
      writer.fs.write = ((_fd: number, _buf: Buffer, _off: number, _len: number, _pos: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void) => {
        setImmediate(() => cb(errno('ENOSPC'), 0));
      }) as WriterFs['write'];
      return () => (writer.fs.write = real);
    },
    'ENOSPC',
  );
});

test('a write that writes half the batch and then fails is cut back from the file', async (t) => {
  await failureScenario(
    t,
    (writer) => {
      const real = writer.fs.write;
      writer.fs.write = ((fd: number, buf: Buffer, off: number, len: number, pos: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void) => {
        const half = Math.max(1, Math.floor(len / 2));
        fs.write(fd, buf, off, half, pos, (err, n) => {
          if (err !== null) return cb(err, 0);
          // The first call writes half and reports it; the continuation fails.
          writer.fs.write = ((_fd: number, _b: Buffer, _o: number, _l: number, _p: number, cb2: (e: NodeJS.ErrnoException | null, n: number) => void) => {
            setImmediate(() => cb2(errno('EIO'), 0));
          }) as WriterFs['write'];
          cb(null, n);
        });
      }) as WriterFs['write'];
      return () => (writer.fs.write = real);
    },
    'EIO',
  );
});

test('a write that puts bytes in the file and then reports an error is cut back', async (t) => {
  await failureScenario(
    t,
    (writer) => {
      const real = writer.fs.write;
      writer.fs.write = ((fd: number, buf: Buffer, off: number, len: number, pos: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void) => {
        fs.write(fd, buf, off, Math.ceil(len / 2), pos, () => cb(errno('ENOSPC'), 0));
      }) as WriterFs['write'];
      return () => (writer.fs.write = real);
    },
    'ENOSPC',
  );
});

test('an fdatasync failure fails the whole batch and cuts it from the file', async (t) => {
  await failureScenario(
    t,
    (writer) => {
      const real = writer.fs.fdatasync;
      writer.fs.fdatasync = ((_fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
        setImmediate(() => cb(errno('EIO')));
      }) as WriterFs['fdatasync'];
      return () => (writer.fs.fdatasync = real);
    },
    'EIO',
  );
});

/**
 * Wraps the writer's fs seam so that every fdatasync records how far the file was written when
 * it started, and marks that much durable when it returns; `durableEnd` is what an answer may
 * rely on. `sync` is the fdatasync to delegate to (asynchronous with a random delay, or calling
 * back before it returns, as the on-loop path does).
 */
function instrumentDurability(writer: LogWriter, mode: 'async' | 'on-loop', rand: () => number): { durableEnd: () => number; writes: () => number } {
  let writtenEnd = 0;
  let durable = 0;
  let writes = 0;
  const realWrite = writer.fs.write;
  writer.fs.write = ((fd: number, buf: Buffer, off: number, len: number, pos: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void) => {
    writes++;
    realWrite(fd, buf, off, len, pos, (err, n) => {
      if (err === null) writtenEnd = Math.max(writtenEnd, pos + n);
      cb(err, n);
    });
  }) as WriterFs['write'];
  writer.fs.fdatasync = ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
    const covers = writtenEnd;
    if (mode === 'on-loop') {
      fs.fdatasyncSync(fd);
      durable = Math.max(durable, covers);
      cb(null);
      return;
    }
    fs.fdatasync(fd, (err) => {
      setTimeout(() => {
        if (err === null) durable = Math.max(durable, covers);
        cb(err);
      }, Math.floor(rand() * 3));
    });
  }) as WriterFs['fdatasync'];
  return { durableEnd: () => durable, writes: () => writes };
}

for (const [mode, syncSlots] of [['async', 1], ['async', 2], ['async', 4], ['on-loop', 1]] as const) {
  test(`fsync 'always' (${mode} fdatasync, ${syncSlots} at once): no record is answered before an fdatasync that started after its write returned`, async (t) => {
    const { writer } = setup(t, { fsync: 'always', segmentBytes: 1 << 30, syncSlots });
    const rand = prng(mode === 'async' ? 11 + syncSlots : 12);
    const probe = instrumentDurability(writer, mode, rand);
    const answered: Promise<void>[] = [];
    let early = 0;
    for (let round = 0; round < 60; round++) {
      const n = 1 + Math.floor(rand() * 20);
      for (let i = 0; i < n; i++) {
        answered.push(
          new Promise<void>((resolve, reject) => {
            writer.append(
              LogAppend.forPublish('topic', payloadFor(round * 100 + i, 1 + Math.floor(rand() * 300)), (err, rec) => {
                if (err !== null) return reject(err);
                if (rec.payloadPosition + rec.payload!.length > probe.durableEnd()) early++;
                resolve();
              }),
            );
          }),
        );
      }
      // Spread appends over ticks and turns, so new records arrive while syncs are in flight.
      if (rand() < 0.5) await new Promise((r) => setImmediate(r));
      else if (rand() < 0.5) await letTimePass(1); // and over timer phases: a sync may return meanwhile
    }
    await Promise.all(answered);
    assert.equal(early, 0, 'records answered before an fdatasync covering them returned');
    assert.ok(writer.stats.fsyncs > 1 && writer.stats.fsyncs < answered.length, `group commit: ${writer.stats.fsyncs} fdatasyncs for ${answered.length} records`);
  });
}

test('an fdatasync failure also fails the records written while it ran, and cuts them all from the file', async (t) => {
  const { writer, log, dir } = setup(t, { fsync: 'always' });
  const ok = await appendPublish(writer, 'topic', Buffer.from('kept'));
  assert.equal(ok.err, null);
  const goodEnd = log.active.sizeBytes;
  // The disk fails every fdatasync while it is broken (an EIO is told to every descriptor);
  // the first one is held until the records written during it are in the file.
  const real = writer.fs.fdatasync;
  const held: (() => void)[] = [];
  writer.fs.fdatasync = ((_fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
    held.push(() => cb(errno('EIO')));
  }) as WriterFs['fdatasync'];
  const first = publishMany(writer, [Buffer.from('synced-by-the-failing-fdatasync')]);
  await waitFor(() => held.length === 1);
  // Written to the page cache while that fdatasync is in flight.
  const during = publishMany(writer, [Buffer.from('written-during-1'), Buffer.from('written-during-2')]);
  await waitFor(() => log.active.sizeBytes > goodEnd + 60);
  writer.fs.fdatasync = real;
  for (const fail of held.splice(0)) fail();
  const failed = await Promise.all([...first, ...during]);
  assert.deepEqual(failed.map((r) => (r.err as NodeJS.ErrnoException | null)?.code), ['EIO', 'EIO', 'EIO']);
  assert.equal(fs.statSync(log.active.path).size, goodEnd);
  const after = await appendPublish(writer, 'topic', Buffer.from('after'));
  assert.equal(after.err, null);
  await writer.close();
  const reopened = openLog(dir);
  reopened.log.close();
  assert.deepEqual(reopened.records.map((r) => r.payload!.toString()), ['kept', 'after']);
});

test('a batch written while an fdatasync is in flight starts its own on another descriptor; its success answers both batches', async (t) => {
  const { writer, log, dir } = setup(t, { fsync: 'always', syncSlots: 2 });
  const real = writer.fs.fdatasync;
  const fds: number[] = [];
  let releaseFirst: ((err: NodeJS.ErrnoException | null) => void) | undefined;
  writer.fs.fdatasync = ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
    fds.push(fd);
    if (releaseFirst === undefined) releaseFirst = cb; // held: the disk is slow for this one
    else real(fd, cb);
  }) as WriterFs['fdatasync'];
  const order: string[] = [];
  const track = (ps: Promise<{ err: Error | null; rec: LogAppend }>[]): Promise<{ err: Error | null; rec: LogAppend }>[] =>
    ps.map((p) => p.then((r) => (order.push(r.rec.payload!.toString()), r)));
  const first = track(publishMany(writer, [Buffer.from('a')]));
  await waitFor(() => releaseFirst !== undefined);
  const second = track(publishMany(writer, [Buffer.from('b'), Buffer.from('c')]));
  // The second fdatasync covers 'a' too (written before it started): all three are answered
  // while the first is still in flight, in write order.
  const answered = await Promise.all([...first, ...second]);
  assert.deepEqual(answered.map((r) => r.err), [null, null, null]);
  assert.deepEqual(order, ['a', 'b', 'c']);
  assert.equal(fds.length, 2);
  assert.notEqual(fds[0], fds[1], 'the two fdatasyncs ran on two descriptors');
  // The held sync's failure now concerns nothing unconfirmed: nothing is cut.
  const sizeBefore = log.active.sizeBytes;
  releaseFirst!(errno('EIO'));
  await new Promise((r) => setImmediate(r));
  assert.equal(fs.statSync(log.active.path).size, sizeBefore);
  writer.fs.fdatasync = real;
  await writer.close();
  const reopened = openLog(dir);
  reopened.log.close();
  assert.deepEqual(reopened.records.map((r) => r.payload!.toString()), ['a', 'b', 'c']);
});

test('with one sync slot, a batch written during an fdatasync waits for it to end (the writer before group-commit.ts)', async (t) => {
  const { writer } = setup(t, { fsync: 'always', syncSlots: 1 });
  const real = writer.fs.fdatasync;
  let calls = 0;
  let releaseFirst: (() => void) | undefined;
  writer.fs.fdatasync = ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
    calls++;
    if (releaseFirst === undefined) releaseFirst = () => real(fd, cb);
    else real(fd, cb);
  }) as WriterFs['fdatasync'];
  const first = publishMany(writer, [Buffer.from('a')]);
  await waitFor(() => releaseFirst !== undefined);
  const second = publishMany(writer, [Buffer.from('b')]);
  await letTimePass(20);
  assert.equal(calls, 1, 'no second fdatasync while the first is in flight');
  releaseFirst!();
  const answered = await Promise.all([...first, ...second]);
  assert.deepEqual(answered.map((r) => r.err), [null, null]);
  assert.equal(calls, 2);
  writer.fs.fdatasync = real;
});

test('records appended while a failing batch is in flight are written by the next batch', async (t) => {
  const { writer, dir } = setup(t);
  const real = writer.fs.write;
  let fail: (() => void) | undefined;
  writer.fs.write = ((_fd: number, _b: Buffer, _o: number, _l: number, _p: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void) => {
    writer.fs.write = real;
    fail = () => cb(errno('ENOSPC'), 0);
  }) as WriterFs['write'];
  const bad = publishMany(writer, [Buffer.from('bad')]);
  await waitFor(() => fail !== undefined);
  const good = publishMany(writer, [Buffer.from('good')]);
  fail!();
  const [b] = await Promise.all(bad);
  const [g] = await Promise.all(good);
  assert.equal((b!.err as NodeJS.ErrnoException).code, 'ENOSPC');
  assert.equal(g!.err, null);
  await writer.close();
  const { log, records } = openLog(dir);
  log.close();
  assert.deepEqual(records.map((r) => r.payload!.toString()), ['good']);
});

test('a failed batch at a segment roll leaves no record behind; later records replay', async (t) => {
  const { writer, dir } = setup(t, { segmentBytes: 300 });
  const first = await appendPublish(writer, 'topic', payloadFor(1, 200));
  assert.equal(first.err, null);
  const real = writer.fs.write;
  writer.fs.write = ((_fd: number, _b: Buffer, _o: number, _l: number, _p: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void) => {
    setImmediate(() => cb(errno('ENOSPC'), 0));
  }) as WriterFs['write'];
  const bad = await appendPublish(writer, 'topic', payloadFor(2, 200));
  assert.ok(bad.err !== null);
  writer.fs.write = real;
  const good = await appendPublish(writer, 'topic', payloadFor(3, 200));
  assert.equal(good.err, null);
  await writer.close();
  const { log, records } = openLog(dir);
  log.close();
  assert.deepEqual(records.map((r) => r.payload!.equals(payloadFor(1, 200)) ? 1 : r.payload!.equals(payloadFor(3, 200)) ? 3 : -1), [1, 3]);
});

test('settle records (ACK, NACK, BACK, DACK, DELETE_TOPIC) are written and replayed with their fields', async (t) => {
  const { writer, dir } = setup(t);
  const pub = await appendPublish(writer, 'q', Buffer.from('m'));
  const id = pub.rec.offset;
  const rs = await Promise.all([
    append(writer, (done) => LogAppend.forNack('q', id, done)),
    append(writer, (done) => LogAppend.forBack('q', id, done)),
    append(writer, (done) => LogAppend.forDack('q', id, 1_700_000_000_123, done)),
    append(writer, (done) => LogAppend.forAck('q', id, done)),
    append(writer, (done) => LogAppend.forDeleteTopic('q', done)),
  ]);
  assert.ok(rs.every((r) => r.err === null && r.rec.payloadPosition === -1));
  await writer.close();
  const { log, records } = openLog(dir);
  log.close();
  assert.deepEqual(
    records.map((r) => [r.type, r.topic, r.messageId, r.dueAtMs]),
    [
      [RecordType.PUBLISH, 'q', id, 0],
      [RecordType.NACK, 'q', id, 0],
      [RecordType.BACK, 'q', id, 0],
      [RecordType.DACK, 'q', id, 1_700_000_000_123],
      [RecordType.ACK, 'q', id, 0],
      [RecordType.DELETE_TOPIC, 'q', 5, 0],
    ],
  );
});

test('after close, appends are refused with MQ_ERR_SHUTTING_DOWN; drain resolves when idle', async (t) => {
  const { writer } = setup(t);
  await writer.drain();
  const pending = publishMany(writer, [Buffer.from('a'), Buffer.from('b')]);
  await writer.drain();
  assert.equal(writer.pendingCount, 0);
  const rs = await Promise.all(pending);
  assert.ok(rs.every((r) => r.err === null));
  await writer.close();
  const late = await appendPublish(writer, 'topic', Buffer.from('late'));
  assert.equal((late.err as NodeJS.ErrnoException | null)?.code, 'MQ_ERR_SHUTTING_DOWN');
});

test('close waits for pending records before closing the file', async (t) => {
  const dir = tempDir('mq-writer-');
  t.after(() => removeDir(dir));
  const { log } = openLog(dir);
  const writer = new LogWriter(log, { fsync: 'always', fsyncIntervalMs: 1000, segmentBytes: 1 << 20, logger: silentLogger });
  const pending = publishMany(writer, Array.from({ length: 50 }, (_, i) => payloadFor(i, 10)));
  await writer.close();
  const rs = await Promise.all(pending);
  assert.ok(rs.every((r) => r.err === null));
  const again = openLog(dir);
  again.log.close();
  assert.equal(again.records.length, 50);
});

test("fsync 'interval' also fdatasyncs segments that were rolled away from", async (t) => {
  const { writer } = setup(t, { fsync: 'interval', fsyncIntervalMs: 10, segmentBytes: 300 });
  const synced = new Set<number>();
  const realSync = writer.fs.fdatasync;
  writer.fs.fdatasync = ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
    synced.add(fd);
    realSync(fd, cb);
  }) as WriterFs['fdatasync'];
  const fds: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await appendPublish(writer, 'topic', payloadFor(i, 200)); // one record per segment
    assert.equal(r.err, null);
    fds.push(r.rec.segment!.fd);
  }
  assert.equal(new Set(fds).size, 3, 'three segments');
  await waitFor(() => fds.every((fd) => synced.has(fd)), 1000, 5).catch(() => {});
  assert.deepEqual(fds.filter((fd) => !synced.has(fd)), [], 'every segment written to is fdatasynced within the interval');
});

test('close fdatasyncs every segment written since the last sync, not only the active one', async (t) => {
  for (const fsync of ['interval', 'never'] as const) {
    const { writer } = setup(t, { fsync, fsyncIntervalMs: 60_000, segmentBytes: 300 });
    const fds: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await appendPublish(writer, 'topic', payloadFor(i, 200));
      assert.equal(r.err, null);
      fds.push(r.rec.segment!.fd);
    }
    const synced = new Set<number>();
    const realSyncSync = fs.fdatasyncSync;
    const realFsyncSync = fs.fsyncSync;
    fs.fdatasyncSync = (fd: number) => {
      synced.add(fd);
      realSyncSync(fd);
    };
    fs.fsyncSync = (fd: number) => {
      synced.add(fd);
      realFsyncSync(fd);
    };
    const realAsync = writer.fs.fdatasync;
    writer.fs.fdatasync = ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
      synced.add(fd);
      realAsync(fd, cb);
    }) as WriterFs['fdatasync'];
    try {
      await writer.close();
    } finally {
      fs.fdatasyncSync = realSyncSync;
      fs.fsyncSync = realFsyncSync;
    }
    assert.deepEqual(fds.filter((fd) => !synced.has(fd)), [], `${fsync}: close syncs every written segment`);
  }
});

test('a segment roll that fails (directory fsync EIO) fails its batch; the next roll works once the disk does', async (t) => {
  const { writer, log, dir } = setup(t, { segmentBytes: 300 });
  const first = await appendPublish(writer, 'topic', payloadFor(1, 200));
  assert.equal(first.err, null);
  const realFsyncSync = fs.fsyncSync;
  let failed = 0;
  fs.fsyncSync = (fd: number) => {
    failed++;
    fs.fsyncSync = realFsyncSync;
    void fd;
    throw errno('EIO');
  };
  let bad: { err: Error | null; rec: LogAppend }[];
  try {
    bad = await Promise.all(publishMany(writer, [payloadFor(2, 200), payloadFor(3, 200)]));
  } finally {
    fs.fsyncSync = realFsyncSync;
  }
  assert.equal(failed, 1, 'the roll fsynced the directory and failed');
  for (const r of bad) assert.equal((r.err as NodeJS.ErrnoException | null)?.code, 'EIO');
  assert.equal(writer.pendingCount, 0);
  assert.equal(writer.pendingBytes, 0, 'no bytes counted as pending after the failed batch');
  const good = await appendPublish(writer, 'topic', payloadFor(4, 200));
  assert.equal(good.err, null, 'the next roll succeeds');
  assert.notEqual(good.rec.segment, first.rec.segment);
  assert.equal(log.segments.length, 2);
  await writer.close();
  const { log: reopened, records } = openLog(dir);
  reopened.close();
  assert.equal(records.length, 2);
  assert.ok(records[0]!.payload!.equals(payloadFor(1, 200)));
  assert.ok(records[1]!.payload!.equals(payloadFor(4, 200)));
  assert.deepEqual(segmentNames(dir), [FIRST, String(records[1]!.offset).padStart(20, '0') + '.log'].sort());
});

test('issue 13 finding 6: probe() reports a storage failure until the segment takes a write again, and leaves the log unchanged', async (t) => {
  const { logger, lines } = recordingLogger();
  const { writer, log, dir } = setup(t, { logger });
  const probe = (): Promise<Error | null> => new Promise((resolve) => writer.probe(resolve));
  assert.equal(await probe(), null, 'nothing failed: nothing to probe');
  assert.ok((await appendPublish(writer, 'topic', Buffer.from('good-1'))).err === null);
  const sizeBefore = fs.statSync(log.active.path).size;

  const real = writer.fs.write;
  const probeWrites: number[] = [];
  writer.fs.write = ((_fd: number, _buf: Buffer, _off: number, len: number, _pos: number, cb: (e: NodeJS.ErrnoException | null, n: number) => void) => {
    probeWrites.push(len);
    cb(errno('ENOSPC'), 0);
  }) as WriterFs['write'];
  const failed = await appendPublish(writer, 'topic', Buffer.alloc(10_000, 1));
  assert.equal((failed.err as NodeJS.ErrnoException).code, 'ENOSPC');
  assert.equal((writer.storageFailure as NodeJS.ErrnoException | null)?.code, 'ENOSPC');
  probeWrites.length = 0;
  assert.equal(((await probe()) as NodeJS.ErrnoException).code, 'ENOSPC', 'the probe fails while the disk does');
  assert.ok(probeWrites[0]! >= failed.rec.sizeBytes, 'the probe writes as much as the batch that failed');
  assert.ok(writer.storageFailure !== null);

  // The disk works again; a record appended during the probe waits for it and is then written.
  writer.fs.write = real;
  const probed = probe();
  const during = appendPublish(writer, 'topic', Buffer.from('good-2'));
  assert.equal(await probed, null);
  assert.equal(writer.storageFailure, null);
  assert.ok((await during).err === null);
  assert.ok(lines.some((l) => typeof l.msg === 'string' && /works again/.test(l.msg)));
  assert.ok(fs.statSync(log.active.path).size > sizeBefore);
  await writer.close();

  const { log: reopened, records, stats } = openLog(dir);
  reopened.close();
  assert.deepEqual(records.map((r) => r.payload!.toString()), ['good-1', 'good-2'], 'the probe wrote nothing that replays');
  assert.equal(stats.truncatedBytes, 0, 'and left no tail behind');
});

test('a barrier record (beforeEncode) is encoded only after every earlier record completed, first in its batch', async (t) => {
  const { writer, dir } = setup(t, { fsync: 'always' });
  // fdatasyncs take a while, so records appended meanwhile would otherwise be written at once.
  const realSync = writer.fs.fdatasync;
  let failNextSync = false;
  writer.fs = {
    write: writer.fs.write,
    fdatasync: (fd, cb) =>
      setTimeout(() => {
        if (failNextSync) {
          failNextSync = false;
          cb(errno('EIO'));
        } else realSync(fd, cb);
      }, 20),
  };
  for (const failEarlier of [false, true]) {
    const outcomes: string[] = [];
    const record = (tag: string) => (err: Error | null) => outcomes.push(`${tag}:${err === null ? 'ok' : 'failed'}`);
    const before = Array.from({ length: 10 }, (_, i) => {
      const rec = LogAppend.forPublish('topic', payloadFor(i, 20), record(`p${i}`));
      writer.append(rec);
      return rec;
    });
    failNextSync = failEarlier;
    await new Promise((r) => setImmediate(r)); // the first batch is written, its fdatasync in flight
    let seenAtEncode: string[] | null = null;
    const barrier = LogAppend.forCounters('topic', { published: 0, acked: 0, deadLettered: 0 }, record('barrier'));
    barrier.beforeEncode = (rec) => {
      seenAtEncode = [...outcomes];
      fillCountersPayload(rec.payload!, outcomes.filter((o) => o.endsWith(':ok')).length, 0, 0);
    };
    writer.append(barrier);
    const after = Array.from({ length: 5 }, (_, i) => {
      const rec = LogAppend.forPublish('topic', payloadFor(i, 20), record(`q${i}`));
      writer.append(rec);
      return rec;
    });
    await writer.drain();
    assert.deepEqual(seenAtEncode, before.map((_, i) => `p${i}:${failEarlier ? 'failed' : 'ok'}`), 'every earlier record had completed');
    assert.ok(outcomes.includes('barrier:ok'));
    assert.ok(barrier.offset > before[9]!.offset && barrier.offset < after[0]!.offset);
    const records = scanFile(path.join(dir, FIRST)).map((r) => r.rec);
    const written = records.find((r) => r.offset === barrier.offset)!;
    assert.equal(written.type, RecordType.COUNTERS);
    assert.equal(written.published, failEarlier ? 0 : 10, 'the values filled in at encode time are what is on disk');
  }
});
