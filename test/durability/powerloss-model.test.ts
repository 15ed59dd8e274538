/**
 * The parts of the power-loss checker (issue #13) that decide what a crash state is: the strace
 * parser and the persistence model, on hand-written traces whose answers are known.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FsModel, type CrashChoice } from './powerloss/fs-model.js';
import { parseTrace } from './powerloss/strace.js';

const hex = (s: string): string => [...Buffer.from(s)].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
const fd = (n: number, p: string): string => `${n}<${hex(p)}>`;
const ROOT = '/r';
const NONE: CrashChoice = { dataKept: new Map(), tear: new Map(), namesKept: new Set() };

function model(lines: string[]): FsModel {
  const m = new FsModel(ROOT, '/', 6379);
  for (const sc of parseTrace(lines.map((l) => `100  12:00:00.000000 ${l}`).join('\n'))) m.feed(sc);
  return m;
}

test('parser: hex strings, fd paths, TCP endpoints, unfinished calls joined, calls cut by the kill', () => {
  const text = [
    `1  12:00:00.000001 openat(AT_FDCWD<${hex('/')}>, "${hex('/r/a')}", O_RDWR|O_CREAT|O_EXCL, 0644) = ${fd(5, '/r/a')}`,
    `2  12:00:00.000002 fdatasync(${fd(5, '/r/a')} <unfinished ...>`,
    `1  12:00:00.000003 accept4(${fd(7, 'TCP:[127.0.0.1:6379]')}, NULL, NULL, SOCK_CLOEXEC) = 9<TCP:[127.0.0.1:6379->127.0.0.1:5000]>`,
    `2  12:00:00.000004 <... fdatasync resumed>) = 0`,
    `1  12:00:00.000005 read(0x9, 0x7ff, 0x10000) = 0xe`,
    `1  12:00:00.000006 writev(9<TCP:[127.0.0.1:6379->127.0.0.1:5000]>, [{iov_base="${hex('+OK\r\n')}", iov_len=5}], 1 <unfinished ...>`,
    `1  12:00:00.000007 +++ killed by SIGKILL +++`,
  ].join('\n');
  const calls = parseTrace(text);
  assert.deepEqual(calls.map((c) => [c.name, c.ret]), [['openat', 5], ['accept4', 9], ['fdatasync', 0], ['read', 14], ['writev', 5]]);
  assert.equal(calls[0]!.retPath, '/r/a');
  assert.equal(calls[1]!.retPath, 'TCP:[127.0.0.1:6379->127.0.0.1:5000]');
  // The fdatasync was entered before the accept completed: it covers only what came before it.
  assert.equal(calls[2]!.enteredAfterSeq, 0);
  const m = new FsModel(ROOT, '/', 6379);
  for (const c of calls) m.feed(c);
  assert.deepEqual(m.socketIo.map((io) => [io.clientPort, io.direction, io.bytes]), [[5000, 'in', 14], [5000, 'out', 5]]);
});

test('model: an unsynced create is lost unless the directory was fsynced; synced data is kept', () => {
  const lines = [
    `openat(AT_FDCWD<${hex('/')}>, "${hex('/r/seg')}", O_RDWR|O_CREAT|O_EXCL, 0644) = ${fd(5, '/r/seg')}`, // 0
    `pwrite64(${fd(5, '/r/seg')}, "${hex('hello')}", 5, 0) = 5`, // 1
    `fdatasync(${fd(5, '/r/seg')}) = 0`, // 2
    `openat(AT_FDCWD<${hex('/')}>, "${hex('/r')}", O_RDONLY|O_CLOEXEC) = ${fd(6, '/r')}`, // 3
    `fsync(${fd(6, '/r')}) = 0`, // 4
    `pwrite64(${fd(5, '/r/seg')}, "${hex(' world')}", 6, 5) = 6`, // 5
  ];
  const m = model(lines);
  // Cut after the fdatasync but before the directory fsync: the file's entry may be gone.
  assert.deepEqual([...m.build(2, NONE).keys()], []);
  assert.deepEqual(m.pending(2).names.map((o) => FsModel.describe(o)), ['link seg']);
  // After the directory fsync: the file is there with its synced bytes; the later write may be lost.
  assert.equal((m.build(5, NONE).get('seg') as Buffer).toString(), 'hello');
  const p = m.pending(5);
  const [id] = [...p.data.keys()];
  const keep: CrashChoice = { ...NONE, dataKept: new Map([[id!, 1]]) };
  assert.equal((m.build(5, keep).get('seg') as Buffer).toString(), 'hello world');
  const torn: CrashChoice = { ...NONE, tear: new Map([[id!, { kind: 'partial' as const, bytes: 2 }]]) };
  assert.equal((m.build(5, torn).get('seg') as Buffer).toString(), 'hello w');
  const zeros: CrashChoice = { ...NONE, tear: new Map([[id!, { kind: 'zeros' as const }]]) };
  assert.deepEqual(m.build(5, zeros).get('seg'), Buffer.concat([Buffer.from('hello'), Buffer.alloc(6)]));
});

test('model: unlink and rename are undone by a power cut until the directory is fsynced', () => {
  const lines = [
    `openat(AT_FDCWD<${hex('/')}>, "${hex('/r/a')}", O_RDWR|O_CREAT|O_EXCL, 0644) = ${fd(5, '/r/a')}`, // 0
    `write(${fd(5, '/r/a')}, "${hex('A')}", 1) = 1`, // 1
    `fsync(${fd(5, '/r/a')}) = 0`, // 2
    `openat(AT_FDCWD<${hex('/')}>, "${hex('/r')}", O_RDONLY) = ${fd(6, '/r')}`, // 3
    `fsync(${fd(6, '/r')}) = 0`, // 4
    `rename("${hex('/r/a')}", "${hex('/r/b')}") = 0`, // 5
    `unlink("${hex('/r/b')}") = 0`, // 6
    `fsync(${fd(6, '/r')}) = 0`, // 7
  ];
  const m = model(lines);
  assert.deepEqual([...m.build(6, NONE).keys()], ['a']);
  const renameKept: CrashChoice = { ...NONE, namesKept: new Set([5]) };
  assert.deepEqual([...m.build(6, renameKept).keys()], ['b']);
  assert.deepEqual([...m.build(7, NONE).keys()], []);
  // A directory made by mkdir needs its parent fsynced; files under a lost directory are lost.
  const m2 = model([
    `mkdir("${hex('/r/db')}", 0777) = 0`, // 0
    `openat(AT_FDCWD<${hex('/')}>, "${hex('/r/db/x')}", O_RDWR|O_CREAT|O_EXCL, 0644) = ${fd(5, '/r/db/x')}`, // 1
    `openat(AT_FDCWD<${hex('/')}>, "${hex('/r/db')}", O_RDONLY) = ${fd(6, '/r/db')}`, // 2
    `fsync(${fd(6, '/r/db')}) = 0`, // 3
  ]);
  assert.deepEqual([...m2.build(3, NONE).keys()], []);
  assert.deepEqual([...m2.build(3, { ...NONE, namesKept: new Set([0]) }).keys()], ['db', 'db/x']);
  assert.deepEqual(m2.unsupported, []);
});
