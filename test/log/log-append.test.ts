import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { LogAppend, LogWriter, type MessageRecordType } from '../../src/log/log-writer.js';
import { MAX_U48, Placement, RESTORE_TAIL_BYTES, RecordType, recordSizeBytes } from '../../src/log/record.js';
import { append, openLog, removeDir, scanFile, silentLogger, tempDir } from '../helpers/index.js';

const FIRST = '00000000000000000000.log';

/** A writer on a fresh log, closed and removed after the test. */
function setup(t: { after: (fn: () => void | Promise<void>) => void }): { dir: string; writer: LogWriter } {
  const dir = tempDir('mq-append-');
  const { log } = openLog(dir);
  const writer = new LogWriter(log, { fsync: 'always', fsyncIntervalMs: 1000, segmentBytes: 1 << 20, logger: silentLogger });
  t.after(async () => {
    await writer.close().catch(() => {});
    removeDir(dir);
  });
  return { dir, writer };
}

/** What a record should decode to; fields left out are 0 (payload: null). */
interface Expected {
  type: RecordType;
  topic: string;
  messageId?: number;
  dueAtMs?: number;
  dackCount?: number;
  placement?: Placement;
  placeOffset?: number;
  deliveries?: number;
  published?: number;
  acked?: number;
  deadLettered?: number;
  /** The message payload (for RESTORE: after its fields). */
  payload?: Buffer;
}

test('each named constructor makes its record type with its fields, as the writer writes and replay reads them', async (t) => {
  const { dir, writer } = setup(t);
  const message = Buffer.from('hello, log');
  const cases: { make: Parameters<typeof append>[1]; expect: Expected }[] = [
    { make: (done) => LogAppend.forPublish('jobs', message, done), expect: { type: RecordType.PUBLISH, topic: 'jobs', payload: message } },
    { make: (done) => LogAppend.forAck('jobs', 11, done), expect: { type: RecordType.ACK, topic: 'jobs', messageId: 11 } },
    { make: (done) => LogAppend.forNack('jobs', 12, done), expect: { type: RecordType.NACK, topic: 'jobs', messageId: 12 } },
    { make: (done) => LogAppend.forBack('jobs', 13, done), expect: { type: RecordType.BACK, topic: 'jobs', messageId: 13 } },
    {
      make: (done) => LogAppend.forDack('jobs', 14, 1_700_000_000_123, done),
      expect: { type: RecordType.DACK, topic: 'jobs', messageId: 14, dueAtMs: 1_700_000_000_123 },
    },
    { make: (done) => LogAppend.forDeleteTopic('gone', done), expect: { type: RecordType.DELETE_TOPIC, topic: 'gone' } },
    {
      make: (done) =>
        LogAppend.forRestore(
          'jobs',
          { messageId: MAX_U48 - 1, dackCount: 4_000_000_001, dueAtMs: 1_800_000_000_000, placement: Placement.DELAYED, placeOffset: 77, deliveries: 9 },
          message,
          done,
        ),
      expect: {
        type: RecordType.RESTORE,
        topic: 'jobs',
        messageId: MAX_U48 - 1,
        dackCount: 4_000_000_001,
        dueAtMs: 1_800_000_000_000,
        placement: Placement.DELAYED,
        placeOffset: 77,
        deliveries: 9,
        payload: message,
      },
    },
    { make: (done) => LogAppend.forDeliver('jobs', 15, done), expect: { type: RecordType.DELIVER, topic: 'jobs', messageId: 15 } },
    { make: (done) => LogAppend.forTopic('kept', done), expect: { type: RecordType.TOPIC, topic: 'kept' } },
    {
      make: (done) => LogAppend.forCounters('jobs', { published: MAX_U48, acked: 5, deadLettered: 6 }, done),
      expect: { type: RecordType.COUNTERS, topic: 'jobs', published: MAX_U48, acked: 5, deadLettered: 6 },
    },
  ];
  // forMessage, for types picked at run time, makes the same records as the fixed ones.
  for (const type of [RecordType.ACK, RecordType.NACK, RecordType.BACK, RecordType.DACK, RecordType.DELIVER] as MessageRecordType[]) {
    const dueAtMs = type === RecordType.DACK ? 1_700_000_000_999 : 0;
    cases.push({ make: (done) => LogAppend.forMessage(type, 'runtime', 100 + type, dueAtMs, done), expect: { type, topic: 'runtime', messageId: 100 + type, dueAtMs } });
  }

  const results = await Promise.all(cases.map((c) => append(writer, c.make)));
  for (const [i, { err, rec }] of results.entries()) {
    assert.equal(err, null);
    const want = cases[i]!.expect;
    assert.equal(rec.type, want.type, `case ${i}`);
    const bodyBytes = want.type === RecordType.RESTORE ? RESTORE_TAIL_BYTES + want.payload!.length : rec.payload?.length ?? 0;
    assert.equal(rec.sizeBytes, recordSizeBytes(want.type, want.topic.length, bodyBytes), `case ${i}: sizeBytes`);
  }
  await writer.drain();

  const written = scanFile(path.join(dir, FIRST)).map((r) => r.rec);
  assert.equal(written.length, cases.length);
  for (const [i, rec] of written.entries()) {
    const want = cases[i]!.expect;
    assert.equal(rec.offset, results[i]!.rec.offset, `case ${i}: offset`);
    assert.deepEqual(
      {
        type: rec.type,
        topic: rec.topic,
        messageId: rec.messageId,
        dueAtMs: rec.dueAtMs,
        dackCount: rec.dackCount,
        placement: rec.placement,
        placeOffset: rec.placeOffset,
        deliveries: rec.deliveries,
        published: rec.published,
        acked: rec.acked,
        deadLettered: rec.deadLettered,
      },
      {
        type: want.type,
        topic: want.topic,
        // A record without a message id field (PUBLISH, DELETE_TOPIC, TOPIC, COUNTERS) decodes its own offset as one.
        messageId: want.messageId ?? rec.offset,
        dueAtMs: want.dueAtMs ?? 0,
        dackCount: want.dackCount ?? 0,
        placement: want.placement ?? Placement.BACK,
        placeOffset: want.placeOffset ?? 0,
        deliveries: want.deliveries ?? 0,
        published: want.published ?? 0,
        acked: want.acked ?? 0,
        deadLettered: want.deadLettered ?? 0,
      },
      `case ${i}`,
    );
    if (want.payload === undefined) assert.equal(rec.payload, null, `case ${i}: no payload`);
    else {
      assert.ok(rec.payload!.equals(want.payload), `case ${i}: payload`);
      // The writer's payloadPosition points at the message payload in the file.
      const filled = results[i]!.rec;
      assert.equal(filled.payloadPosition + (want.type === RecordType.RESTORE ? RESTORE_TAIL_BYTES : 0), rec.payloadPosition, `case ${i}: payloadPosition`);
    }
  }
});

test('a named constructor called on a subclass makes that subclass, and its completion gets the same instance', async (t) => {
  const { writer } = setup(t);
  class Tagged extends LogAppend {
    tag = 'unset';
  }
  const seen: Tagged[] = [];
  const rec = Tagged.forAck('jobs', 3, (err, done) => {
    assert.equal(err, null);
    seen.push(done); // typed Tagged: no cast
  });
  rec.tag = 'mine';
  assert.ok(rec instanceof Tagged);
  writer.append(rec);
  await writer.drain();
  assert.equal(seen.length, 1);
  assert.equal(seen[0], rec);
  assert.equal(seen[0]!.tag, 'mine');
  assert.equal(seen[0]!.type, RecordType.ACK);
  assert.ok(seen[0]!.offset >= 0, 'the writer filled in the offset');
});
