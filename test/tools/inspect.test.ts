/**
 * `miniqueue inspect` (SPEC §10, issue 14 item 4) on data directories written by the real server:
 * the segment and topic tables agree with what the server itself reports (STATS), the record
 * dump lists exactly the records in the files, and nothing in the directory changes.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { fillWithServer, hashTree, removeDir, runMain, scanFile, segmentNames, tempDir } from '../helpers/index.js';
import { RecordType } from '../../src/log/record.js';

/** Cells of the table row whose first cell is `first` (columns separated by 2+ spaces). */
function row(output: string, first: string): string[] {
  const line = output.split('\n').find((l) => l.startsWith(`${first} `));
  assert.ok(line !== undefined, `no row for ${first} in:\n${output}`);
  return line.trim().split(/\s{2,}/);
}

function stats(reply: unknown): Record<string, number> {
  const r = reply as (Buffer | number)[];
  const s: Record<string, number> = {};
  for (let i = 0; i < r.length; i += 2) s[String(r[i])] = Number(r[i + 1]);
  return s;
}

test('inspect beside a running server: segments and topics match the files and the server\'s STATS; LOCK untouched', async (t) => {
  const db = tempDir('mq-inspect-');
  t.after(() => removeDir(db));
  const { stop, resp } = await fillWithServer(db, true);
  t.after(stop);
  const lockBefore = hashTree(db).get('LOCK');

  const server = stats(await resp.send('STATS', 'jobs'));
  const run = await runMain(['inspect', '--db', db]);
  assert.equal(run.code, 0, run.stderr);
  const out = run.stdout;
  assert.match(out, /running \(pid \d+ holds LOCK\)/);

  // Topic table: live messages and their states as the server sees them.
  const jobs = row(out, 'jobs');
  // topic exists live ready in-flight delayed live-bytes records publishes acks
  assert.equal(jobs[1], 'yes');
  assert.equal(Number(jobs[2]), server['ready']! + server['inFlight']! + server['delayed']!);
  assert.deepEqual(jobs.slice(3, 6).map(Number), [server['ready'], server['inFlight'], server['delayed']]);
  assert.deepEqual(jobs.slice(3, 6).map(Number), [197, 1, 1]);
  assert.equal(Number(jobs[8]), 200, 'publishes');
  assert.equal(Number(jobs[9]), 1, 'acks');
  assert.deepEqual(row(out, 'mail').slice(1, 4), ['yes', '3', '3']);
  assert.deepEqual(row(out, 'tmp').slice(1, 3), ['deleted', '0']);

  // Segment table: one row per file, with the records and bytes actually in it.
  const names = segmentNames(db);
  assert.ok(names.length >= 3, `4 KiB segments: expected several, got ${names.join(', ')}`);
  let liveBytesInFirst = 0;
  for (const name of names) {
    const records = scanFile(path.join(db, name));
    const cells = row(out, name);
    assert.equal(Number(cells[1]), records.length, `records of ${name}`);
    assert.equal(Number(cells[2]), records.reduce((a, r) => a + r.sizeBytes, 0), `bytes of ${name}`);
    assert.equal(cells[cells.length - 1], 'ok');
    if (name === names[0]) {
      // jobs offsets 0.. are in the first segment; offset 0 was ACKed, so its bytes are not live.
      for (const r of records) if (r.rec.type === RecordType.PUBLISH && r.rec.offset !== 0 && r.rec.topic === 'jobs') liveBytesInFirst += r.sizeBytes;
      assert.equal(Number(cells[4]), liveBytesInFirst, 'live bytes of the first segment');
      assert.match(cells[5]!, /^\d+\.\d%$/);
    }
  }
  assert.equal(hashTree(db).get('LOCK'), lockBefore, 'the LOCK file is left alone');
});

test('inspect --records [--topic T] dumps every record with position, offset, type, id, size and CRC; the directory is unchanged', async (t) => {
  const db = tempDir('mq-inspect-records-');
  t.after(() => removeDir(db));
  await fillWithServer(db);
  const before = hashTree(db);

  const all = await runMain(['inspect', '--db', db, '--records']);
  assert.equal(all.code, 0, all.stderr);
  const expected = segmentNames(db).flatMap((name) => scanFile(path.join(db, name)));
  const recordLines = all.stdout.split('\n').filter((l) => /^\s*\d+\s+\d+\s+[A-Z_]+\s/.test(l));
  assert.equal(recordLines.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const cells = recordLines[i]!.trim().split(/\s+/);
    const e = expected[i]!;
    assert.deepEqual(cells.slice(0, 7), [String(e.position), String(e.rec.offset), Object.keys(RecordType).find((k) => RecordType[k as keyof typeof RecordType] === e.rec.type), String(e.rec.messageId), String(e.sizeBytes), 'ok', e.rec.topic]);
  }
  assert.ok(recordLines.some((l) => / DACK .* jobs\s+due \d{4}-/.test(l)), 'a DACK shows its due time');
  assert.ok(recordLines.some((l) => / DELETE_TOPIC .* tmp$/.test(l)));

  const mail = await runMain(['inspect', '--db', db, '--records', '--topic', 'mail']);
  assert.equal(mail.code, 0, mail.stderr);
  const mailLines = mail.stdout.split('\n').filter((l) => /^\s*\d+\s+\d+\s+[A-Z_]+\s/.test(l));
  assert.deepEqual(
    mailLines.map((l) => l.trim().split(/\s+/).slice(2, 7)),
    expected.filter((e) => e.rec.topic === 'mail').map((e) => ['PUBLISH', String(e.rec.messageId), String(e.sizeBytes), 'ok', 'mail']),
  );
  assert.equal(mailLines.length, 3);

  // After a clean stop, the reserved message that was still in flight was NACKed back by its
  // connection closing, or is in flight at the log's end; either way 199 jobs are live.
  const summary = await runMain(['inspect', '--db', db, '--topic', 'jobs']);
  assert.equal(summary.code, 0);
  const jobs = row(summary.stdout, 'jobs');
  assert.equal(jobs[2], '199');
  assert.equal(Number(jobs[3]) + Number(jobs[4]), 198);
  assert.equal(jobs[5], '1');
  assert.ok(!summary.stdout.includes('\nmail '), '--topic filters the topic table');
  assert.match(summary.stdout, /server\s+not running/);
  assert.deepEqual(hashTree(db), before, 'inspect changed nothing in the data directory');
});

test('inspect: a missing --db and stray arguments are clear usage errors (exit 2)', async () => {
  const missing = await runMain(['inspect', '--db', '/nonexistent/mq-data']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no data directory at \/nonexistent\/mq-data \(--db\)/);
  const stray = await runMain(['inspect', '--db', '/tmp', '--bogus']);
  assert.equal(stray.code, 2);
  assert.match(stray.stderr, /bogus/);
  const help = await runMain(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /miniqueue inspect/);
  assert.match(help.stdout, /miniqueue check/);
});
