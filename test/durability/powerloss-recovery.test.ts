/**
 * Power loss during recovery (issue #13): a server starting on a log with a torn tail cuts the
 * tail away and keeps the cut bytes in `<db>/damaged/` ("nothing is deleted silently", SPEC §5).
 * The start is recorded under strace, and in every state a power cut during it could leave in
 * which the truncation survived, the cut bytes must be in damaged/ too. Before the fix the
 * damaged/ directory's own entry was never fsynced into the data directory, so a power cut could
 * keep the truncation and lose the directory with the bytes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { removeDir, RespConn, ROOT, startChild, tempDir } from '../helpers/index.js';
import { listSegments, segmentFileName } from '../../src/log/files.js';
import { FsModel, type CrashChoice } from './powerloss/fs-model.js';
import { readTree, startTracedServer } from './powerloss/traced-server.js';

test('power loss while the start cuts a torn tail: the cut bytes are kept in damaged/ whenever the cut survives', { timeout: 60_000 }, async (t) => {
  const work = fs.realpathSync(tempDir('mq-powerloss-recovery-'));
  t.after(() => removeDir(work));
  const root = path.join(work, 'root');
  const db = path.join(root, 'db');
  // A log with a few records (SIGKILL keeps them all), then a torn record at the end.
  const first = await startChild(db);
  const conn = await RespConn.connect(first.respPort);
  for (let i = 0; i < 5; i++) assert.equal(await conn.send('PUBLISH', 'rec', `m${i}`), 'OK');
  conn.close();
  await first.kill('SIGKILL');
  const segName = segmentFileName(listSegments(db).at(-1)!);
  const tail = Buffer.from([0x40, 0, 0, 0, 1, 2, 3, 4, 5]); // claims 64 bytes, has 5
  fs.appendFileSync(path.join(db, segName), tail);
  const segBytes = fs.statSync(path.join(db, segName)).size;
  const initial = readTree(root);

  const server = await startTracedServer(db, ['--fsync', 'always'], path.join(work, 'trace.txt'), 1 << 20);
  assert.ok(server.lines.some((l) => l.includes('truncated a torn record')), 'the start cut the torn tail');
  const { calls } = await server.killAndTrace();
  const model = new FsModel(root, ROOT, server.respPort, initial);
  for (const sc of calls) model.feed(sc);
  assert.deepEqual(model.unsupported, []);

  const cuts = [...new Set([...model.dataSeqs, ...model.syncs.map((s) => s.seq), ...model.nameOps.map((o) => o.seq)])].sort((a, b) => a - b);
  let states = 0;
  let truncated = 0;
  for (const cut of cuts) {
    const pending = model.pending(cut);
    const allData = new Map([...pending.data].map(([id, ops]) => [id, ops.length]));
    const choices: CrashChoice[] = [
      { dataKept: new Map(), tear: new Map(), namesKept: new Set() }, // lose everything unsynced
      { dataKept: allData, tear: new Map(), namesKept: new Set() }, // keep data, lose directory entries
    ];
    for (const choice of choices) {
      states++;
      const tree = model.build(cut, choice);
      const seg = tree.get(`db/${segName}`);
      assert.ok(Buffer.isBuffer(seg), `cut ${cut}: the segment is there`);
      if (seg.length >= segBytes) continue;
      truncated++;
      const kept = [...tree].filter(([p, c]) => p.startsWith('db/damaged/') && Buffer.isBuffer(c) && c.equals(tail));
      assert.equal(kept.length, 1, `cut ${cut}: the segment was cut to ${seg.length} bytes but damaged/ does not hold the cut bytes (${[...tree.keys()].join(', ')})`);
    }
  }
  t.diagnostic(`checked ${states} crash states of the start at ${cuts.length} cuts; in ${truncated} of them the truncation had survived`);
  assert.ok(truncated > 0);
});
