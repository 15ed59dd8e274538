/**
 * Issue 13, fault class "Storage", over a real in-process server, real RESP clients and restarts
 * on the data directory:
 *
 * - compaction never brings back a message whose ACK, or whose topic's DELETE, was written after
 *   the message was copied forward, with crashes in between: the data directory is copied at many
 *   moments while compaction copies messages forward and ACKs and a DEL race it (a copy of the
 *   files of a running process is what a SIGKILL leaves: every write made is in it), and each copy
 *   is started and checked against what had been answered when it was taken;
 * - records that exactly fill a segment, records larger than a segment, and a pipelined batch that
 *   crosses segment rolls all come back intact and in order after a restart;
 * - ids are never reused across compaction and restart.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { RecordType, recordSizeBytes } from '../../src/log/record.js';
import type { RunningServer } from '../../src/server/server.js';
import { asReserved, encodeCommand, isErrorReply, removeDir, RespConn, startInProcess, tempDir, waitFor } from '../helpers/index.js';

/** Copies the data directory as a crash would leave it (without the LOCK, which names this live process). */
function snapshot(db: string, to: string): void {
  fs.mkdirSync(to, { recursive: true });
  for (const name of fs.readdirSync(db)) {
    if (name === 'LOCK') continue;
    try {
      fs.copyFileSync(path.join(db, name), path.join(to, name));
    } catch (err) {
      // Unlinked by compaction between readdir and copy: as if it was gone before the crash.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'EISDIR') throw err;
    }
  }
}

/** Every message of `topic` in `server`, reserved and left in flight: id -> payload. */
async function drain(conn: RespConn, topic: string): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (;;) {
    const r = await conn.send('RESERVE', topic);
    if (r === null) return out;
    const m = asReserved(r);
    out.set(Number(m.id), m.payload.toString());
  }
}

test('compaction racing ACKs and a DEL, crash at many moments: nothing acked or deleted comes back, ids never reused', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-compact-');
  const snaps = tempDir('mq-i13-snaps-');
  t.after(() => {
    removeDir(db);
    removeDir(snaps);
  });
  // Tiny segments, so a few hundred messages span many; the background compactor is left on.
  const server: RunningServer = await startInProcess(db, ['--fsync', 'never', '--segment-bytes', '4096']);
  let closed = false;
  t.after(async () => {
    if (!closed) await server.close();
  });
  const conn = await RespConn.connect(server.resp!.port);
  t.after(() => conn.close());
  const A = 'store.acked';
  const B = 'store.deleted';
  const count = 240;
  const pubs: (string | number)[][] = [];
  for (let i = 0; i < count; i++) {
    pubs.push(['PUBLISH', A, `a${i}-${'x'.repeat(60)}`]);
    if (i % 4 === 0) pubs.push(['PUBLISH', B, `b${i}`]);
  }
  assert.ok((await conn.pipeline(pubs)).every((r) => r === 'OK'));
  // Reserve all of A, ack three of four at once: every old segment is mostly dead, a quarter live.
  const reserved = [...(await drain(conn, A)).keys()];
  assert.equal(reserved.length, count);
  const maxIdBefore = Math.max(...reserved);
  assert.ok((await conn.pipeline(reserved.filter((_, i) => i % 4 !== 0).map((id) => ['ACK', A, id]))).every((r) => r === 'OK'));
  const racing = reserved.filter((_, i) => i % 4 === 0);

  // Start a compaction pass, then ACK the live quarter one by one and DEL topic B while it copies
  // them forward; copy the directory between every step.
  const answeredAcks = new Set<number>();
  let delAnswered = false;
  const snapshots: { dir: string; acked: Set<number>; deleted: boolean }[] = [];
  const take = (): void => {
    const to = path.join(snaps, `s${snapshots.length}`);
    // What was answered is known before the copy starts, so it is all in the copy.
    const acked = new Set(answeredAcks);
    const deleted = delAnswered;
    snapshot(db, to);
    snapshots.push({ dir: to, acked, deleted });
  };
  const copiedBefore = server.broker.compactionStats.messagesCopied;
  const pass = server.broker.compactNow();
  let passDone = false;
  void pass.then(() => (passDone = true), () => (passDone = true));
  for (let i = 0; i < racing.length; i++) {
    const id = racing[i]!;
    const ack = conn.send('ACK', A, id).then((r) => {
      assert.equal(r, 'OK');
      answeredAcks.add(id);
    });
    if (i === racing.length >> 1) {
      void conn.send('DEL', B).then((r) => {
        assert.equal(r, 1);
        delAnswered = true;
      });
    }
    if (i % 6 === 0) take();
    await ack;
    if (i % 6 === 3) await new Promise((r) => setImmediate(r));
  }
  await pass;
  await waitFor(() => delAnswered);
  take();
  assert.ok(passDone);
  assert.ok(server.broker.compactionStats.messagesCopied > copiedBefore, 'the pass copied messages forward while ACKs raced it');
  // One more pass after everything is acked, then a crash copy.
  await server.broker.compactNow();
  take();
  closed = true;
  await server.close();

  for (const s of snapshots) {
    const restarted = await startInProcess(s.dir, ['--fsync', 'never', '--no-compaction']);
    try {
      const c = await RespConn.connect(restarted.resp!.port);
      try {
        const backA = await drain(c, A);
        for (const id of backA.keys()) assert.ok(!s.acked.has(id), `${s.dir}: message ${id} came back after its ACK was answered`);
        for (const id of racing) if (!s.acked.has(id)) assert.ok(backA.has(id), `${s.dir}: unacked message ${id} is lost`);
        for (const id of reserved) if (!racing.includes(id)) assert.ok(!backA.has(id), `${s.dir}: early-acked ${id} came back`);
        const backB = await drain(c, B);
        if (s.deleted) assert.equal(backB.size, 0, `${s.dir}: topic ${B} came back after DEL was answered`);
        else assert.ok(backB.size === 0 || backB.size === count / 4, `${s.dir}: ${B} is whole or gone, not partly back (${backB.size})`);
        // Ids are never reused: a new publish gets an id above every id handed out before.
        assert.equal(await c.send('PUBLISH', A, 'new'), 'OK');
        const fresh = await drain(c, A);
        const newId = [...fresh.entries()].find(([, p]) => p === 'new')![0];
        assert.ok(newId > maxIdBefore, `${s.dir}: new id ${newId} is above ${maxIdBefore}`);
      } finally {
        c.close();
      }
    } finally {
      await restarted.close();
    }
  }
  assert.ok(snapshots.length >= 8);
});

test('records that exactly fill a segment, records larger than a segment and a batch that crosses rolls survive a restart in order', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-i13-roll-');
  t.after(() => removeDir(db));
  const segmentBytes = 4096;
  const topic = 'store.roll';
  // A PUBLISH record of exactly one segment, of one byte more, and one far larger than a segment.
  const exact = segmentBytes - recordSizeBytes(RecordType.PUBLISH, topic.length, 0);
  const sizes = [exact, exact + 1, exact - 1, 3 * segmentBytes + 17, 1, exact, 0, exact];
  const payloads = sizes.map((n, i) => Buffer.alloc(n, 0x41 + i));
  // Then a pipeline of 300 small publishes in one write: one batch that crosses several rolls.
  const small = Array.from({ length: 300 }, (_, i) => Buffer.from(`s${i}-${'y'.repeat(i % 50)}`));
  let server = await startInProcess(db, ['--fsync', 'always', '--segment-bytes', String(segmentBytes), '--max-message-bytes', '64KiB', '--no-compaction']);
  let conn = await RespConn.connect(server.resp!.port);
  for (const p of payloads) assert.equal(await conn.send('PUBLISH', topic, p), 'OK');
  await conn.write(Buffer.concat(small.map((p) => encodeCommand(['PUBLISH', topic, p]))));
  const replies = await conn.nextN(small.length);
  assert.ok(replies.every((r) => r === 'OK'), 'every publish of the batch is answered');
  const oversized = sizes.map((n) => recordSizeBytes(RecordType.PUBLISH, topic.length, n)).filter((b) => b > segmentBytes);
  const segmentsBefore = fs.readdirSync(db).filter((n) => n.endsWith('.log'));
  assert.ok(segmentsBefore.length > 10, `many segments (${segmentsBefore.length})`);
  for (const name of segmentsBefore) {
    const size = fs.statSync(path.join(db, name)).size;
    // A segment only passes --segment-bytes when it holds a single record larger than a segment.
    assert.ok(size <= segmentBytes || oversized.includes(size), `${name}: ${size} bytes`);
  }
  conn.close();
  await server.close();

  server = await startInProcess(db, ['--fsync', 'always', '--segment-bytes', String(segmentBytes), '--max-message-bytes', '64KiB', '--no-compaction']);
  t.after(() => server.close());
  conn = await RespConn.connect(server.resp!.port);
  t.after(() => conn.close());
  const expected = [...payloads, ...small];
  const ids: number[] = [];
  for (let i = 0; i < expected.length; i++) {
    const r = await conn.send('RESERVE', topic);
    assert.ok(!isErrorReply(r) && r !== null, `message ${i} is back`);
    const m = asReserved(r);
    assert.ok(m.payload.equals(expected[i]!), `message ${i} (${expected[i]!.length} bytes) intact and in order`);
    ids.push(Number(m.id));
  }
  assert.equal(await conn.send('RESERVE', topic), null);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, 'ids increase in publish order');
});
