/**
 * Graceful shutdown under load (issue #3, SPEC §1): SIGTERM while publishers and consumers are
 * busy over both protocols exits 0 within 5 s, and after a restart every answered publish that
 * was not acked is there, and no answered ACK's message is.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { test } from 'node:test';
import { MiniRespClient, removeDir, startChild, tempDir, waitFor } from '../helpers/index.js';

test('SIGTERM under load exits 0 within 5 s and loses nothing answered', { timeout: 60_000 }, async (t) => {
  const db = tempDir('mq-shutdown-');
  t.after(() => removeDir(db));
  let server = await startChild(db);
  t.after(() => server.kill('SIGKILL'));

  const answered = new Set<string>();
  const acked = new Set<string>();
  let stop = false;
  const respPublisher = async (name: string): Promise<void> => {
    const c = new MiniRespClient(server.respPort);
    await c.ready;
    let n = 0;
    const inFlight: Promise<void>[] = [];
    while (!stop && !c.closed) {
      // 16 pipelined publishes at a time.
      for (let k = 0; k < 16; k++) {
        const payload = `${name}:${n++}`;
        inFlight.push(
          c.send('PUBLISH', 'shut', payload).then(
            (r) => {
              if (r === 'OK') answered.add(payload);
            },
            () => {},
          ),
        );
      }
      await Promise.all(inFlight.splice(0));
    }
    c.close();
  };
  const httpPublisher = async (): Promise<void> => {
    const session = http2.connect(`http://127.0.0.1:${server.httpPort}`);
    session.on('error', () => {});
    let n = 0;
    while (!stop && !session.destroyed && !session.closed) {
      const payload = `h:${n++}`;
      const status = await new Promise<number>((resolve) => {
        let req: http2.ClientHttp2Stream;
        try {
          req = session.request({ ':method': 'POST', ':path': '/publish/shut' });
        } catch {
          resolve(0);
          return;
        }
        let s = 0;
        req.on('response', (h) => (s = Number(h[':status'])));
        req.on('data', () => {});
        req.on('close', () => resolve(s));
        req.on('error', () => resolve(0));
        req.end(payload);
      });
      if (status === 201) answered.add(payload);
    }
    session.destroy();
  };
  const consumer = async (): Promise<void> => {
    const c = new MiniRespClient(server.respPort);
    await c.ready;
    try {
      while (!stop && !c.closed) {
        const r = await c.send('RESERVE', 'shut', 50);
        if (!Array.isArray(r)) continue;
        const id = (r[0] as Buffer).toString();
        const payload = (r[1] as Buffer).toString();
        if ((await c.send('ACK', 'shut', id)) === 'OK') acked.add(payload);
      }
    } catch {
      // the server went away
    }
    c.close();
  };
  const workers = [respPublisher('a'), respPublisher('b'), httpPublisher(), consumer()];
  // Under load: every publisher has been answered and the consumer has acked, then SIGTERM.
  const from = (prefix: string): number => [...answered].filter((p) => p.startsWith(prefix)).length;
  await waitFor(() => answered.size >= 1000 && from('a:') > 0 && from('b:') > 0 && from('h:') > 0 && acked.size >= 20, 20_000, 5, () => `load: ${answered.size} answered, ${acked.size} acked`);
  const sentAt = Date.now();
  const exit = await server.kill('SIGTERM');
  const tookMs = Date.now() - sentAt;
  stop = true;
  await Promise.all(workers);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(tookMs < 5000, `shutdown took ${tookMs} ms`);
  assert.ok(server.lines.some((l) => l.includes('"msg":"stopped"')));
  assert.ok(answered.size > 100, `load was real: ${answered.size} answered publishes`);

  server = await startChild(db);
  const c = new MiniRespClient(server.respPort);
  await c.ready;
  const left = new Set<string>();
  for (;;) {
    const r = await c.send('RESERVE', 'shut');
    if (!Array.isArray(r)) break;
    const payload = (r[1] as Buffer).toString();
    assert.ok(!acked.has(payload), `${payload} was acked before the shutdown and came back`);
    left.add(payload);
    await c.send('ACK', 'shut', (r[0] as Buffer).toString());
  }
  c.close();
  const lost = [...answered].filter((p) => !acked.has(p) && !left.has(p));
  assert.deepEqual(lost, []);
  t.diagnostic(`answered=${answered.size} acked=${acked.size} left=${left.size} shutdownMs=${tookMs}`);
});
