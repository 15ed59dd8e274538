/**
 * Issue 13, finding 4: `--repair` brought acked messages back. With damage in the middle of a
 * segment, repair moved everything after the damaged record into `damaged/`, ACK records
 * included, so every message published before the damage and acked after it was ready again.
 * Now repair resynchronises at the next intact record, sets aside only the damaged bytes and logs
 * what was lost (SPEC §5). Runs the real server as a child process on a real data directory.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { MAIN_JS, MiniRespClient, removeDir, ROOT, scanFile, segmentNames, startChild, tempDir } from '../helpers/index.js';

const TOPIC = 'repair.acked';
const COUNT = 300;
const ARGS = ['--segment-bytes', '65536', '--no-compaction', '--fsync', 'never'];

/** Publishes COUNT messages, then reserves and acks every one (so the ACKs are in later segments), and stops the server. */
async function allAckedLog(db: string): Promise<void> {
  const server = await startChild(db, ARGS);
  const client = new MiniRespClient(server.respPort);
  await client.ready;
  const published = await Promise.all(
    Array.from({ length: COUNT }, (_, i) => client.send('PUBLISH', TOPIC, `message ${i} ${'p'.repeat(400)}`)),
  );
  assert.ok(published.every((r) => r === 'OK'));
  for (let i = 0; i < COUNT; i++) {
    const r = await client.send('RESERVE', TOPIC);
    assert.ok(Array.isArray(r), `message ${i} is reserved`);
    assert.equal(await client.send('ACK', TOPIC, (r[0] as Buffer).toString()), 'OK');
  }
  client.close();
  assert.deepEqual(await server.kill('SIGTERM'), { code: 0, signal: null });
}

/** Ready and in-flight counts of TOPIC, and whether a RESERVE finds anything. */
async function topicState(db: string, extraArgs: string[]): Promise<{ stats: Record<string, string>; reserved: boolean; lines: string[] }> {
  const server = await startChild(db, [...ARGS, ...extraArgs]);
  try {
    const client = new MiniRespClient(server.respPort);
    await client.ready;
    const flat = (await client.send('STATS', TOPIC)) as Buffer[];
    const stats: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) stats[String(flat[i])] = String(flat[i + 1]);
    const reserved = Array.isArray(await client.send('RESERVE', TOPIC));
    client.close();
    return { stats, reserved, lines: server.lines };
  } finally {
    await server.kill('SIGTERM');
  }
}

/** The PUBLISH record in the middle of the first segment (which holds only PUBLISH records). */
function middlePublish(db: string): { file: string; position: number; sizeBytes: number; payloadPosition: number } {
  const file = path.join(db, segmentNames(db)[0]!);
  const entries = scanFile(file);
  const victim = entries[Math.floor(entries.length / 2)]!;
  return { file, position: victim.position, sizeBytes: victim.sizeBytes, payloadPosition: victim.rec.payloadPosition };
}

function flipByte(file: string, position: number, mask: number): void {
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, position);
  b[0]! ^= mask;
  fs.writeSync(fd, b, 0, 1, position);
  fs.closeSync(fd);
}

function repairLine(lines: string[]): Record<string, unknown> {
  const found = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => typeof l.msg === 'string' && l.msg.startsWith('repair:'));
  assert.equal(found.length, 1, `one repair line: ${lines.join('\n')}`);
  return found[0]!;
}

for (const damage of [
  { what: 'a flipped byte in a payload', exact: true, at: (v: ReturnType<typeof middlePublish>) => [v.payloadPosition + 10, 0x20] as const },
  { what: 'a flipped byte in a length field', exact: false, at: (v: ReturnType<typeof middlePublish>) => [v.position + 2, 0x40] as const },
]) {
  test(`issue 13 finding 4: --repair of ${damage.what} mid-segment keeps every record after it; acked messages stay acked`, { timeout: 120_000 }, async (t) => {
    const db = tempDir('mq-i13-repair-');
    t.after(() => removeDir(db));
    await allAckedLog(db);
    const names = segmentNames(db);
    assert.ok(names.length >= 3, `several segments: ${names.join(' ')}`);
    const victim = middlePublish(db);
    const original = fs.readFileSync(victim.file).subarray(victim.position, victim.position + victim.sizeBytes);
    const [byte, mask] = damage.at(victim);
    flipByte(victim.file, byte, mask);

    // Without --repair: the start stops, naming the file and position.
    const refused = spawnSync(process.execPath, [MAIN_JS, '--port', '0', '--redis-port', '0', '--no-tls', '--db', db, ...ARGS], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    assert.equal(refused.status, 1, refused.stderr);
    assert.ok(refused.stderr.includes(victim.file) && refused.stderr.includes(String(victim.position)), refused.stderr);

    const repaired = await topicState(db, ['--repair']);
    assert.equal(repaired.stats.ready, '0', `no acked message is ready again: ${JSON.stringify(repaired.stats)}`);
    assert.equal(repaired.stats.inFlight, '0');
    assert.equal(repaired.reserved, false, 'nothing to reserve');
    assert.deepEqual(segmentNames(db), names, 'every segment stays in the log');

    const line = repairLine(repaired.lines);
    assert.equal(line.file, victim.file);
    assert.equal(line.position, victim.position);
    assert.equal(line.lostBytes, victim.sizeBytes, 'only the damaged record is set aside');
    assert.equal(line.lostRecords, 1);
    assert.equal(line.lostRecordsExact, damage.exact);
    const aside = fs.readdirSync(path.join(db, 'damaged'));
    assert.deepEqual(aside, [`${names[0]}.${victim.position}.damaged`]);
    const kept = fs.readFileSync(path.join(db, 'damaged', aside[0]!));
    assert.equal(kept.length, original.length);
    const differing = [...kept].filter((b, i) => b !== original[i]).length;
    assert.equal(differing, 1, 'damaged/ holds the damaged record as it was found (the flipped byte included)');

    // The repaired log opens without --repair, and publishing goes on.
    const again = await topicState(db, []);
    assert.equal(again.stats.ready, '0');
    const messages = again.lines.map((l) => String((JSON.parse(l) as { msg?: unknown }).msg));
    assert.ok(!messages.some((m) => m.startsWith('repair') || m.includes('torn')), `the repaired log is whole: ${messages.join(' | ')}`);
    const replayed = again.lines.map((l) => JSON.parse(l) as { msg?: string; records?: number }).find((l) => l.msg === 'log replayed');
    assert.equal(replayed?.records, 3 * COUNT - 1, 'every record but the damaged one replays (PUBLISH, DELIVER and ACK of each message)');
  });
}
