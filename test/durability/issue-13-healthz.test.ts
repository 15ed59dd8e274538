/**
 * Issue 13, finding 6: `/healthz` answered 200 while the disk refused every write. Now it answers
 * 503 naming the storage failure while writes fail, and 200 again once the storage takes writes,
 * also when no client has written meanwhile (a load balancer that took the server out of
 * rotation sends none). On a real, small tmpfs that fills up, like disk-full.test.ts; mounting
 * needs root, elsewhere this file reports itself as skipped.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { h2connect, h2request, MiniRespClient, removeDir, startChild, tempDir, tryMountTmpfs, waitFor } from '../helpers/index.js';

const mountPoint = tempDir('mq-i13-health-');
const mounted = tryMountTmpfs(mountPoint, 1024 * 1024);
if (!mounted) removeDir(mountPoint);

interface Health {
  status: string;
  code?: string;
  error?: string;
}

test('issue 13 finding 6: /healthz answers 503 naming the storage failure while writes fail, and 200 once they work again', { skip: mounted ? false : 'cannot mount a tmpfs here (not root?)', timeout: 60_000 }, async (t) => {
  const db = path.join(mountPoint, 'db');
  const filler = path.join(mountPoint, 'filler');
  const server = await startChild(db, ['--segment-bytes', '65536']);
  let current = server;
  // One hook, in order: the server must be gone before the file system can be unmounted.
  t.after(async () => {
    await current.kill('SIGKILL');
    try {
      execFileSync('umount', [mountPoint], { stdio: 'ignore' });
    } catch {
      // already unmounted
    }
    removeDir(mountPoint);
  });
  const session = h2connect(server.httpPort);
  t.after(() => session.destroy());
  const health = async (): Promise<{ status: number; body: Health }> => {
    const res = await h2request(session, 'GET', '/healthz');
    return { status: res.status, body: JSON.parse(res.body.toString()) as Health };
  };
  assert.deepEqual(await health(), { status: 200, body: { status: 'ok' } });

  // Fill the disk until publishes are refused.
  const client = new MiniRespClient(server.respPort);
  await client.ready;
  t.after(() => client.close());
  const pad = 'x'.repeat(4096);
  for (let i = 0; i < 5; i++) assert.equal(await client.send('PUBLISH', 'health', `m${i}:${pad}`), 'OK');
  // Take every free byte: append to the filler until the file system refuses.
  const fd = fs.openSync(filler, 'w');
  const block = Buffer.alloc(4096);
  try {
    for (;;) fs.writeSync(fd, block);
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  const r = await client.send('PUBLISH', 'health', `full:${pad}`);
  assert.ok(r instanceof Error && /ENOSPC/.test(r.message), `a publish on the full disk is refused: ${String(r)}`);

  // Asked several times (a probe runs at most once a second): 503 each time, naming the failure.
  for (let i = 0; i < 3; i++) {
    const failing = await health();
    assert.equal(failing.status, 503, `while writes fail (${i}): ${JSON.stringify(failing.body)}`);
    assert.equal(failing.body.code, 'MQ_ERR_STORAGE');
    assert.match(failing.body.error ?? '', /ENOSPC/);
  }

  // Space comes back; no client writes. The health check finds out by itself.
  fs.rmSync(filler);
  let recovered = await health();
  await waitFor(async () => (recovered = await health()).status === 200, 10_000, 100);
  assert.deepEqual(recovered, { status: 200, body: { status: 'ok' } }, `healthy again once the storage takes writes; log: ${server.lines.slice(-3).join('\n')}`);
  assert.ok(server.lines.some((l) => l.includes('storage works again')));
  assert.equal(await client.send('PUBLISH', 'health', 'after'), 'OK');
  assert.equal((await health()).status, 200);

  // The probe left nothing in the log: after a restart, the log opens cleanly.
  await server.kill('SIGKILL');
  const again = await startChild(db, ['--segment-bytes', '65536']);
  current = again;
  assert.ok(!again.lines.some((l) => l.includes('torn')), `no torn tail: ${again.lines.join('\n')}`);
});
