import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { LogWriter } from '../../src/log/log-writer.js';
import { RecordType } from '../../src/log/record.js';
import { LogCorruptError, SegmentLog } from '../../src/log/segment-log.js';
import { appendPublish, hashTree, openLog, payloadFor, prng, randInt, recordingLogger, scanFile, segmentNames, silentLogger, tempDirFor, writePublishes } from '../helpers/index.js';

const FIRST = '00000000000000000000.log';

test('opening an empty directory creates segment 00000000000000000000.log', (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  const { log, records, stats } = openLog(dir);
  t.after(() => log.close());
  assert.deepEqual(segmentNames(dir), [FIRST]);
  assert.equal(fs.statSync(path.join(dir, FIRST)).size, 0);
  assert.equal(records.length, 0);
  assert.equal(log.nextOffset, 0);
  assert.equal(log.segments.length, 1);
  assert.equal(log.active.baseOffset, 0);
  assert.equal(log.active.sizeBytes, 0);
  assert.equal(stats.truncatedBytes, 0);
  assert.equal(fs.existsSync(path.join(dir, 'damaged')), false);
});

test('opening a missing directory creates it; reopening an empty log adds no segment', (t) => {
  const root = tempDirFor(t, 'mq-seglog-');
  const dir = path.join(root, 'a', 'b');
  const first = openLog(dir);
  first.log.close();
  assert.deepEqual(segmentNames(dir), [FIRST]);
  const second = openLog(dir);
  second.log.close();
  assert.deepEqual(segmentNames(dir), [FIRST]);
  assert.equal(second.records.length, 0);
});

test('files that are not segments are ignored', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  await writePublishes(dir, [Buffer.from('a'), Buffer.from('b')]);
  fs.writeFileSync(path.join(dir, 'README'), 'not a segment');
  fs.writeFileSync(path.join(dir, '123.log'), 'short name');
  fs.writeFileSync(path.join(dir, '00000000000000000005.log.cleaned'), 'leftover');
  const { log, records } = openLog(dir);
  log.close();
  assert.deepEqual(records.map((r) => r.payload!.toString()), ['a', 'b']);
});

test('a multi-segment log replays every record in order; files are named by base offset (20 digits)', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  const rand = prng(1234);
  const payloads = Array.from({ length: 300 }, (_, i) => payloadFor(i, randInt(rand, 0, 200)));
  // Mixed: some records appended one per tick, some in large batches.
  const offsets = await writePublishes(dir, payloads, { segmentBytes: 4096, perBatch: 7 });
  assert.deepEqual(offsets, payloads.map((_, i) => i));

  const names = segmentNames(dir);
  assert.ok(names.length >= 5, `expected several segments, got ${names.length}`);
  assert.equal(names[0], FIRST);
  let expectedNext = 0;
  for (const name of names) {
    assert.match(name, /^\d{20}\.log$/);
    const entries = scanFile(path.join(dir, name));
    assert.ok(entries.length > 0, `${name} is not empty`);
    assert.equal(Number(name.slice(0, 20)), entries[0]!.rec.offset, `${name} is named after its first record`);
    assert.equal(entries[0]!.rec.offset, expectedNext, 'segments continue each other');
    expectedNext = entries[entries.length - 1]!.rec.offset + 1;
    assert.ok(fs.statSync(path.join(dir, name)).size <= 4096, `${name} stays within segmentBytes`);
  }
  assert.deepEqual([...names].sort(), names, 'ls order is log order');

  const { log, records, stats } = openLog(dir);
  t.after(() => log.close());
  assert.equal(stats.segments, names.length);
  assert.equal(stats.records, payloads.length);
  assert.equal(stats.truncatedBytes, 0);
  assert.equal(records.length, payloads.length);
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    assert.equal(r.type, RecordType.PUBLISH);
    assert.equal(r.offset, i);
    assert.equal(r.messageId, i);
    assert.ok(r.payload!.equals(payloads[i]!), `payload ${i}`);
    assert.ok(r.segmentBase <= r.offset);
  }
  // payloadPosition is a position in the segment's file.
  for (const i of [0, 150, 299]) {
    const r = records[i]!;
    const seg = log.segments.find((s) => s.baseOffset === r.segmentBase)!;
    assert.ok(seg.readAt(r.payloadPosition, r.payload!.length).equals(payloads[i]!));
  }
  assert.equal(log.nextOffset, payloads.length);
  assert.deepEqual(
    log.segments.map((s) => s.baseOffset),
    names.map((n) => Number(n.slice(0, 20))),
  );
  assert.equal(log.sizeBytes, names.reduce((sum, n) => sum + fs.statSync(path.join(dir, n)).size, 0));
});

test('appending after a reopen continues the offsets in the newest segment', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  await writePublishes(dir, [Buffer.from('one'), Buffer.from('two')]);
  await writePublishes(dir, [Buffer.from('three')]);
  const { log, records } = openLog(dir);
  t.after(() => log.close());
  assert.deepEqual(records.map((r) => [r.offset, r.payload!.toString()]), [
    [0, 'one'],
    [1, 'two'],
    [2, 'three'],
  ]);
  assert.deepEqual(segmentNames(dir), [FIRST]);
});

test('torn tail: a cut at a random byte inside the last records leaves exactly the prefix of whole records', async (t) => {
  const root = tempDirFor(t, 'mq-seglog-');
  const rand = prng(0xc0ffee);
  const ROUNDS = 40;
  for (let round = 0; round < ROUNDS; round++) {
    const dir = path.join(root, `r${round}`);
    const n = randInt(rand, 1, 60);
    const payloads = Array.from({ length: n }, (_, i) => payloadFor(i + round, randInt(rand, 0, 300)));
    await writePublishes(dir, payloads, { segmentBytes: 4096, perBatch: randInt(rand, 1, 10) });
    const names = segmentNames(dir);
    const newest = path.join(dir, names[names.length - 1]!);
    const entries = scanFile(newest);
    const original = fs.readFileSync(newest);
    // Cut strictly inside one of the last three records of the newest segment.
    const victim = entries[Math.max(0, entries.length - 1 - randInt(rand, 0, 3))]!;
    const cut = victim.position + randInt(rand, 1, victim.sizeBytes);
    fs.truncateSync(newest, cut);
    const survivorsInNewest = entries.filter((e) => e.position + e.sizeBytes <= cut).length;
    const expectedCount = n - entries.length + survivorsInNewest;

    const { logger, lines } = recordingLogger();
    const { log, records, stats } = openLog(dir, { logger });
    const ctx = `round ${round}: n=${n}, cut at ${cut} in ${names[names.length - 1]} (record at ${victim.position}, ${victim.sizeBytes} bytes)`;
    try {
      assert.equal(records.length, expectedCount, ctx);
      for (let i = 0; i < records.length; i++) {
        assert.equal(records[i]!.offset, i, ctx);
        assert.ok(records[i]!.payload!.equals(payloads[i]!), ctx);
      }
      assert.equal(fs.statSync(newest).size, victim.position, `${ctx}: the file is truncated to the last whole record`);
      assert.equal(log.active.sizeBytes, victim.position, ctx);
      assert.equal(stats.truncatedBytes, cut - victim.position, ctx);
      assert.equal(log.nextOffset, expectedCount, ctx);
      const warns = lines.filter((l) => l.level === 40);
      assert.equal(warns.length, 1, `${ctx}: one warn line`);
      assert.equal(warns[0]!.file, newest, ctx);
      assert.equal(warns[0]!.position, victim.position, ctx);
      const cutBytes = original.subarray(victim.position, cut);
      const kept = path.join(dir, 'damaged', `${names[names.length - 1]}.${victim.position}.torn`);
      if (cutBytes.some((b) => b !== 0)) {
        assert.ok(fs.existsSync(kept), `${ctx}: the cut bytes are kept in damaged/`);
        assert.ok(fs.readFileSync(kept).equals(cutBytes), `${ctx}: damaged/ holds exactly the cut bytes`);
      }
      // The log goes on: a new record gets the next offset and everything replays again.
      const writer = new LogWriter(log, { fsync: 'never', fsyncIntervalMs: 1000, segmentBytes: 4096, logger: silentLogger });
      const r = await appendPublish(writer, 'topic', Buffer.from('after'));
      assert.equal(r.err, null);
      assert.equal(r.rec.offset, expectedCount, ctx);
      await writer.close();
    } catch (err) {
      log.close();
      throw err;
    }
    const again = openLog(dir);
    again.log.close();
    assert.equal(again.records.length, expectedCount + 1, ctx);
    assert.equal(again.records[expectedCount]!.payload!.toString(), 'after', ctx);
    assert.equal(again.stats.truncatedBytes, 0, ctx);
  }
});

test('a zero-filled tail (4 KiB of zeros after the last record) is treated as torn', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  const payloads = Array.from({ length: 10 }, (_, i) => payloadFor(i, 50));
  await writePublishes(dir, payloads);
  const file = path.join(dir, FIRST);
  const size = fs.statSync(file).size;
  fs.appendFileSync(file, Buffer.alloc(4096));
  const { logger, lines } = recordingLogger();
  const { log, records, stats } = openLog(dir, { logger });
  t.after(() => log.close());
  assert.equal(records.length, 10);
  assert.equal(fs.statSync(file).size, size);
  assert.equal(stats.truncatedBytes, 4096);
  const warns = lines.filter((l) => l.level === 40);
  assert.equal(warns.length, 1);
  assert.equal(warns[0]!.file, file);
  assert.equal(warns[0]!.position, size);
  assert.equal(log.nextOffset, 10);
});

test('a zero-filled file (power cut before any data reached it) opens empty', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, FIRST), Buffer.alloc(4096));
  const { log, records } = openLog(dir);
  t.after(() => log.close());
  assert.equal(records.length, 0);
  assert.equal(fs.statSync(path.join(dir, FIRST)).size, 0);
});

test('a last record whose body was zeroed (header written, data not) is a torn tail', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  const payloads = Array.from({ length: 5 }, (_, i) => payloadFor(i, 40));
  await writePublishes(dir, payloads);
  const file = path.join(dir, FIRST);
  const entries = scanFile(file);
  const last = entries[entries.length - 1]!;
  const data = fs.readFileSync(file);
  data.fill(0, last.position + 8, last.position + last.sizeBytes);
  fs.writeFileSync(file, Buffer.concat([data, Buffer.alloc(1000)]));
  const { log, records } = openLog(dir, { logger: silentLogger });
  t.after(() => log.close());
  assert.equal(records.length, 4);
  assert.equal(fs.statSync(file).size, last.position);
  assert.ok(fs.existsSync(path.join(dir, 'damaged', `${FIRST}.${last.position}.torn`)));
});

/** Writes a log of several segments and returns its segment names and all payloads. */
async function multiSegmentLog(dir: string): Promise<{ names: string[]; payloads: Buffer[] }> {
  const payloads = Array.from({ length: 120 }, (_, i) => payloadFor(i, 100));
  await writePublishes(dir, payloads, { segmentBytes: 4096, perBatch: 5 });
  const names = segmentNames(dir);
  assert.ok(names.length >= 3);
  return { names, payloads };
}

/** Flips one bit of the record in the middle of `file`, in its payload; returns that record. */
function flipMiddle(file: string): { position: number; index: number } {
  const entries = scanFile(file);
  const index = Math.floor(entries.length / 2);
  const victim = entries[index]!;
  const data = fs.readFileSync(file);
  const byte = victim.rec.payloadPosition + Math.floor(victim.rec.payload!.length / 2);
  data[byte]! ^= 0x04;
  fs.writeFileSync(file, data);
  return { position: victim.position, index };
}

test('a flipped bit in the middle of an older segment stops the open with LogCorruptError; nothing changes', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  const { names } = await multiSegmentLog(dir);
  const olderName = names[1]!;
  const older = path.join(dir, olderName);
  const { position } = flipMiddle(older);
  // A torn tail in the newest segment too: it must not be touched when the open fails.
  const newest = path.join(dir, names[names.length - 1]!);
  fs.truncateSync(newest, fs.statSync(newest).size - 3);
  const before = hashTree(dir);

  const { logger, lines } = recordingLogger();
  let thrown: unknown;
  try {
    const { log } = openLog(dir, { logger });
    log.close();
  } catch (err) {
    thrown = err;
  }
  assert.ok(thrown instanceof LogCorruptError, `expected LogCorruptError, got ${String(thrown)}`);
  assert.equal(thrown.code, 'MQ_ERR_LOG_CORRUPT');
  assert.equal(thrown.file, older);
  assert.equal(thrown.position, position);
  assert.equal(thrown.reason, 'crc-mismatch');
  assert.ok(thrown.message.includes(older), 'the message names the file');
  assert.ok(thrown.message.includes(String(position)), 'the message names the byte position');
  assert.deepEqual(hashTree(dir), before, 'the directory is unchanged');
  assert.equal(lines.filter((l) => (l.level as number) >= 40).length, 0);
  // And again: still refused, still unchanged (no fd leak makes it different either).
  assert.throws(() => openLog(dir), LogCorruptError);
  assert.deepEqual(hashTree(dir), before);
});

test('damage in the first record of an older segment is reported at position 0', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  const { names } = await multiSegmentLog(dir);
  const file = path.join(dir, names[0]!);
  const data = fs.readFileSync(file);
  data[5]! ^= 0x80; // inside the CRC field
  fs.writeFileSync(file, data);
  const before = hashTree(dir);
  assert.throws(
    () => openLog(dir),
    (err: unknown) => err instanceof LogCorruptError && err.file === file && err.position === 0,
  );
  assert.deepEqual(hashTree(dir), before);
});

test('damage in the middle of the newest segment (valid records after it) is not a torn tail', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  const { names } = await multiSegmentLog(dir);
  const newest = path.join(dir, names[names.length - 1]!);
  assert.ok(scanFile(newest).length >= 3);
  const { position } = flipMiddle(newest);
  const before = hashTree(dir);
  assert.throws(
    () => openLog(dir),
    (err: unknown) => err instanceof LogCorruptError && err.file === newest && err.position === position,
  );
  assert.deepEqual(hashTree(dir), before);
});

test('repair: only the damaged record moves into damaged/; every record before and after it replays (issue 13)', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  const { names, payloads } = await multiSegmentLog(dir);
  const olderName = names[1]!;
  const older = path.join(dir, olderName);
  const olderEntries = scanFile(older);
  const originalOlder = fs.readFileSync(older);
  const laterContents = new Map(names.slice(2).map((n) => [n, fs.readFileSync(path.join(dir, n))]));
  const { position, index } = flipMiddle(older);
  const victim = olderEntries[index]!;
  const damagedRecord = fs.readFileSync(older).subarray(position, position + victim.sizeBytes);
  const lost = victim.rec.offset;

  const { logger, lines } = recordingLogger();
  const { log, records } = openLog(dir, { repair: true, logger });
  try {
    assert.equal(records.length, payloads.length - 1, 'every record but the damaged one replays');
    const expected = payloads.filter((_, i) => i !== lost);
    for (let i = 0; i < records.length; i++) assert.ok(records[i]!.payload!.equals(expected[i]!), `record ${i}`);
    assert.ok(!records.some((r) => r.offset === lost));
    assert.deepEqual(segmentNames(dir), names, 'every segment stays in the log');
    assert.ok(
      fs.readFileSync(older).equals(Buffer.concat([originalOlder.subarray(0, position), originalOlder.subarray(position + victim.sizeBytes)])),
      'the segment is the same without the damaged record',
    );
    for (const [n, content] of laterContents) assert.ok(fs.readFileSync(path.join(dir, n)).equals(content), `${n} is unchanged`);
    const aside = path.join(dir, 'damaged', `${olderName}.${position}.damaged`);
    assert.ok(fs.readFileSync(aside).equals(damagedRecord), 'the damaged record is kept byte for byte');
    assert.deepEqual(fs.readdirSync(path.join(dir, 'damaged')), [path.basename(aside)]);
    assert.equal(fs.readdirSync(dir).filter((n) => n.endsWith('.repairing')).length, 0, 'no temporary file is left');
    const errors = lines.filter((l) => l.level === 50);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.file, older);
    assert.equal(errors[0]!.position, position);
    assert.equal(errors[0]!.lostBytes, victim.sizeBytes);
    assert.equal(errors[0]!.lostRecords, 1);
    assert.equal(errors[0]!.lostRecordsExact, true);
    assert.equal(log.nextOffset, payloads.length);

    const writer = new LogWriter(log, { fsync: 'always', fsyncIntervalMs: 1000, segmentBytes: 4096, logger: silentLogger });
    const r = await appendPublish(writer, 'topic', Buffer.from('after repair'));
    assert.equal(r.err, null);
    assert.equal(r.rec.offset, payloads.length);
    await writer.close();
  } catch (err) {
    log.close();
    throw err;
  }
  const again = openLog(dir);
  again.log.close();
  assert.equal(again.records.length, payloads.length);
  assert.equal(again.records[payloads.length - 1]!.payload!.toString(), 'after repair');
});

test('repair: garbage between records (no length to follow) is cut out up to the next intact record', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  const { names, payloads } = await multiSegmentLog(dir);
  const file = path.join(dir, names[0]!);
  const entries = scanFile(file);
  const cut = entries[3]!.position;
  const data = fs.readFileSync(file);
  const garbage = Buffer.from('\xff\xff\xff\x7f not a record at all, and a fake magic \x01\x01', 'latin1');
  fs.writeFileSync(file, Buffer.concat([data.subarray(0, cut), garbage, data.subarray(cut)]));

  const { logger, lines } = recordingLogger();
  const { log, records } = openLog(dir, { repair: true, logger });
  log.close();
  assert.equal(records.length, payloads.length, 'nothing but the garbage is lost');
  assert.ok(fs.readFileSync(file).equals(data));
  assert.ok(fs.readFileSync(path.join(dir, 'damaged', `${names[0]}.${cut}.damaged`)).equals(garbage));
  const line = lines.find((l) => l.level === 50)!;
  assert.equal(line.lostBytes, garbage.length);
  assert.equal(line.lostRecordsExact, false);
});

test('repair: damage at the end of an older segment sets aside the rest of that segment only', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  const { names, payloads } = await multiSegmentLog(dir);
  const file = path.join(dir, names[1]!);
  const entries = scanFile(file);
  const last = entries[entries.length - 1]!;
  const data = fs.readFileSync(file);
  data[last.position]! ^= 0x10; // its length field
  fs.writeFileSync(file, data);

  const { logger, lines } = recordingLogger();
  const { log, records } = openLog(dir, { repair: true, logger });
  log.close();
  assert.equal(records.length, payloads.length - 1);
  assert.ok(!records.some((r) => r.offset === last.rec.offset));
  const line = lines.find((l) => l.level === 50)!;
  assert.equal(line.lostBytes, last.sizeBytes);
  assert.equal(line.lostRecords, 1, 'the offsets missing before the next segment');
});

test('repair of an undamaged log changes nothing', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  await multiSegmentLog(dir);
  const before = hashTree(dir);
  const { log, records } = openLog(dir, { repair: true });
  log.close();
  assert.equal(records.length, 120);
  assert.deepEqual(hashTree(dir), before);
});

test('a record whose offset does not increase is damage', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  await writePublishes(dir, [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]);
  const file = path.join(dir, FIRST);
  const data = fs.readFileSync(file);
  const entries = scanFile(file);
  // Append a copy of the first two records: valid CRCs, but offsets 0 and 1 again.
  fs.writeFileSync(file, Buffer.concat([data, data.subarray(0, entries[2]!.position)]));
  const before = hashTree(dir);
  assert.throws(
    () => SegmentLog.open({ dir, repair: false, logger: silentLogger }, () => {}),
    (err: unknown) => err instanceof LogCorruptError && err.reason === 'offset-not-increasing' && err.position === data.length,
  );
  assert.deepEqual(hashTree(dir), before);
});

/** Contents of every file under `<dir>/damaged/`. */
function damagedContents(dir: string): Buffer[] {
  const d = path.join(dir, 'damaged');
  if (!fs.existsSync(d)) return [];
  return fs.readdirSync(d).map((n) => fs.readFileSync(path.join(d, n)));
}

test('two torn tails at the same position: both cut parts are kept in damaged/ (nothing overwritten)', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  await writePublishes(dir, [Buffer.from('keep-1'), Buffer.from('keep-2')]);
  const file = path.join(dir, FIRST);
  const cuts: Buffer[] = [];
  for (const text of ['first torn record', 'second torn record, different bytes']) {
    const size = fs.statSync(file).size;
    await writePublishes(dir, [Buffer.from(text)]);
    const cut = size + 20;
    cuts.push(fs.readFileSync(file).subarray(size, cut));
    fs.truncateSync(file, cut);
    const { log, records } = openLog(dir);
    log.close();
    assert.deepEqual(records.map((r) => r.payload!.toString()), ['keep-1', 'keep-2']);
    assert.equal(fs.statSync(file).size, size);
  }
  assert.notDeepEqual(cuts[0], cuts[1]);
  const kept = damagedContents(dir);
  for (const c of cuts) assert.ok(kept.some((k) => k.equals(c)), 'every cut part is still in damaged/');
});

test('a second repair does not overwrite what the first one moved into damaged/', async (t) => {
  const dir = tempDirFor(t, 'mq-seglog-');
  const { names } = await multiSegmentLog(dir);
  const seg1 = path.join(dir, names[1]!);
  const first = flipMiddle(seg1);
  const damagedPart1 = fs.readFileSync(seg1).subarray(first.position, first.position + scanFileLoose(seg1, first.position));
  openLog(dir, { repair: true }).log.close();
  // Damage again at the same place in the same segment (now the record after the first one).
  const entries = scanFile(seg1);
  const victim = entries.find((e) => e.position === first.position)!;
  const data = fs.readFileSync(seg1);
  data[victim.rec.payloadPosition + 1]! ^= 0x01;
  fs.writeFileSync(seg1, data);
  const damagedPart2 = data.subarray(first.position, first.position + victim.sizeBytes);
  openLog(dir, { repair: true }).log.close();
  const kept = damagedContents(dir);
  assert.equal(kept.length, 2);
  assert.ok(kept.some((k) => k.equals(damagedPart1)), 'the first damaged part is kept');
  assert.ok(kept.some((k) => k.equals(damagedPart2)), 'the second damaged part is kept');
});

/** Size of the record at `position` of `file` by its length field (the record may be damaged). */
function scanFileLoose(file: string, position: number): number {
  return fs.readFileSync(file).readUInt32LE(position) + 4;
}
