/**
 * `miniqueue check` (SPEC §10, issue 14 item 4): finds a flipped byte and a torn tail in a data
 * directory written by the real server, names the file and byte position, tells the two apart
 * the way the server's own recovery does, changes nothing, and runs safely beside a live server.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { LogCorruptError } from '../../src/log/segment-log.js';
import { runToolCommand } from '../../src/tools/cli.js';
import { fillWithServer, hashTree, openLog, removeDir, RespConn, runMain, scanFile, segmentNames, silentLogger, startChild, tempDir } from '../helpers/index.js';

/** A data directory filled by the real server, copied fresh for each case. */
async function filledDb(t: { after: (fn: () => void) => void }): Promise<string> {
  const db = tempDir('mq-check-');
  t.after(() => removeDir(db));
  await fillWithServer(db);
  return db;
}

test('check: an intact log written by the server passes (exit 0) and nothing changes', async (t) => {
  const db = await filledDb(t);
  const before = hashTree(db);
  const run = await runMain(['check', '--db', db]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '');
  const records = segmentNames(db).reduce((a, n) => a + scanFile(path.join(db, n)).length, 0);
  assert.match(run.stdout, new RegExp(`^OK: \\d+ segments, ${records} records, `, 'm'));
  for (const name of segmentNames(db)) assert.match(run.stdout, new RegExp(`^${name}  \\d+ records, \\d+ bytes: ok$`, 'm'));
  assert.deepEqual(hashTree(db), before);
});

test('check: a flipped byte in an older segment is damage (exit 1) at the position of its record, as the server reports it', async (t) => {
  const db = await filledDb(t);
  const names = segmentNames(db);
  assert.ok(names.length >= 3);
  const victim = path.join(db, names[1]!);
  const records = scanFile(victim);
  const target = records[Math.floor(records.length / 2)]!;
  const data = fs.readFileSync(victim);
  data[target.position + target.sizeBytes - 1]! ^= 0x01; // the last payload byte: framing stays, CRC fails
  fs.writeFileSync(victim, data);
  const before = hashTree(db);

  const run = await runMain(['check', '--db', db]);
  assert.equal(run.code, 1, `${run.stdout}\n${run.stderr}`);
  const line = `damaged record in ${victim} at byte position ${target.position} (crc-mismatch;`;
  assert.ok(run.stderr.includes(line), `stderr names the file and position: ${run.stderr}`);
  assert.match(run.stderr, /--repair/);
  assert.equal(run.stderr.trim().split('\n').length, 1, 'one line on stderr');
  assert.match(run.stdout, new RegExp(`^${names[1]}  \\d+ records, \\d+ bytes: DAMAGED at byte position ${target.position} \\(crc-mismatch\\)`, 'm'));
  // Later segments are still read and reported.
  for (const name of names.slice(2)) assert.match(run.stdout, new RegExp(`^${name}  \\d+ records, \\d+ bytes: ok$`, 'm'));
  assert.match(run.stdout, /^DAMAGED: /m);
  assert.deepEqual(hashTree(db), before, 'check changed nothing');

  // The server's own recovery stops at the same file and byte.
  assert.throws(
    () => openLog(db, { logger: silentLogger }),
    (err: unknown) => err instanceof LogCorruptError && err.file === victim && err.position === target.position,
  );
});

test('check: a torn tail of the newest segment (cut mid-record, or zero-filled) is told apart from damage (exit 3)', async (t) => {
  const db = await filledDb(t);
  const names = segmentNames(db);
  const newest = path.join(db, names[names.length - 1]!);
  const records = scanFile(newest);
  const last = records[records.length - 1]!;
  const original = fs.readFileSync(newest);

  // 1. Cut in the middle of the last record, as a crash mid-write leaves it.
  fs.truncateSync(newest, last.position + Math.floor(last.sizeBytes / 2));
  let run = await runMain(['check', '--db', db]);
  assert.equal(run.code, 3, `${run.stdout}\n${run.stderr}`);
  assert.ok(run.stderr.includes(`torn record at the end of the log in ${newest} at byte position ${last.position} (truncated-body;`), run.stderr);
  assert.match(run.stdout, /^TORN TAIL: /m);

  // 2. The last record's bytes zeroed after its header, the file size kept (a power cut).
  const zeroed = Buffer.from(original);
  zeroed.fill(0, last.position + 8);
  fs.writeFileSync(newest, zeroed);
  run = await runMain(['check', '--db', db]);
  assert.equal(run.code, 3, `${run.stdout}\n${run.stderr}`);
  assert.ok(run.stderr.includes(`at byte position ${last.position} (crc-mismatch;`), run.stderr);

  // 3. A flipped byte in the newest segment with intact records after it is damage, not a tear.
  const flipped = Buffer.from(original);
  const mid = records[Math.floor(records.length / 2)]!;
  assert.notEqual(mid, last);
  flipped[mid.position + mid.sizeBytes - 1]! ^= 0x80;
  fs.writeFileSync(newest, flipped);
  run = await runMain(['check', '--db', db]);
  assert.equal(run.code, 1, `${run.stdout}\n${run.stderr}`);
  assert.ok(run.stderr.includes(`damaged record in ${newest} at byte position ${mid.position} (crc-mismatch;`), run.stderr);
});

test('check beside a running server under publish load: exit 0 every time, LOCK untouched, the server keeps serving', async (t) => {
  const db = tempDir('mq-check-live-');
  t.after(() => removeDir(db));
  const server = await startChild(db, ['--segment-bytes', '4096']);
  t.after(() => server.kill('SIGKILL'));
  const lock = fs.readFileSync(path.join(db, 'LOCK'), 'utf8');
  const resp = await RespConn.connect(server.respPort);
  t.after(() => resp.close());
  let publishing = true;
  let published = 0;
  const load = (async () => {
    while (publishing) {
      const batch: string[][] = [];
      for (let i = 0; i < 50; i++) batch.push(['PUBLISH', 'live', `payload-${published + i}`]);
      const replies = await resp.pipeline(batch);
      assert.ok(replies.every((r) => String(r) === 'OK'));
      published += batch.length;
    }
  })();
  for (let i = 0; i < 4; i++) {
    const run = await runMain(['check', '--db', db]);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /^OK: /m);
  }
  publishing = false;
  await load;
  assert.ok(published > 0);
  assert.equal(fs.readFileSync(path.join(db, 'LOCK'), 'utf8'), lock);
  assert.equal(String(await resp.send('PUBLISH', 'live', 'after')), 'OK');
});

test('check reports progress on stderr while it reads (here every interval of 0 ms)', async (t) => {
  const db = await filledDb(t);
  const out: string[] = [];
  const err: string[] = [];
  const code = runToolCommand(['check', '--db', db], { writeOut: (s) => out.push(s), writeErr: (s) => err.push(s), progressIntervalMs: 0 });
  assert.equal(code, 0);
  assert.ok(err.length > 0, 'progress lines');
  for (const line of err) assert.match(line, /^miniqueue check: \d+% read \(.* of .*, segment \d+ of \d+, \d+ records, \d+\.\d s\)\n$/);
  assert.match(out.join(''), /^OK: /m);
});
