/**
 * Issue 13 finding 8: `published` and `acked` (STATS, GET /topics, SPEC §7) stay exact across
 * restarts and any number of compactions. Before the fix they were rebuilt from the PUBLISH and
 * ACK records left in the log, and compaction deletes those (a CI run ended with `published 682
 * acked 808`).
 *
 * 1. A real server as a child process with small segments runs a known workload (publishes, ACK,
 *    NACK, DACK, dead letters under `--max-deliveries`, a topic deleted and re-created, a topic
 *    never consumed so that compaction copies messages forward) while compaction runs after every
 *    roll; it is SIGKILLed and restarted several times, and every time STATS and GET /topics must
 *    show exactly what the client counted.
 * 2. A crash in the middle of compaction: an in-process server's data directory is copied right
 *    before each segment file is unlinked (after compaction wrote what replaces it, before it is
 *    gone: what a SIGKILL at that moment leaves) and at random moments of the passes; every copy
 *    must open with the same counters.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { RunningServer } from '../../src/server/server.js';
import { asReserved, type ChildServer, h2connect, h2request, letTimePass, logLines, prng, removeDir, RespConn, startChild, startInProcess, statsOf, tempDir, waitFor } from '../helpers/index.js';

const SEED = Number(process.env.COUNTERS_SEED ?? Math.floor(Math.random() * 1e9));
const CYCLES = Number(process.env.COUNTERS_CYCLES ?? 5);

interface Counts {
  published: number;
  acked: number;
}

/** What the client counted per topic (a deleted topic is absent until published to again). */
class Expected {
  readonly topics = new Map<string, Counts>();

  of(topic: string): Counts {
    let c = this.topics.get(topic);
    if (c === undefined) {
      c = { published: 0, acked: 0 };
      this.topics.set(topic, c);
    }
    return c;
  }
}

async function countsOf(c: RespConn, topic: string): Promise<Counts> {
  const s = await statsOf(c, topic);
  return { published: s.published!, acked: s.acked! };
}

/** STATS of every expected topic and GET /topics must both show exactly the client's counts. */
async function check(server: ChildServer, expected: Expected, when: string): Promise<void> {
  const conn = await RespConn.connect(server.respPort);
  try {
    for (const [topic, counts] of expected.topics) {
      assert.deepEqual(await countsOf(conn, topic), counts, `STATS ${topic} ${when}`);
    }
  } finally {
    conn.close();
  }
  const session = h2connect(server.httpPort);
  try {
    const res = await h2request(session, 'GET', '/topics');
    assert.equal(res.status, 200);
    const listed = JSON.parse(res.body.toString()) as ({ topic: string } & Counts)[];
    const got = new Map(listed.map((t) => [t.topic, { published: t.published, acked: t.acked }]));
    for (const [topic, counts] of expected.topics) {
      assert.deepEqual(got.get(topic), counts, `GET /topics ${topic} ${when}`);
    }
  } finally {
    session.destroy();
  }
}

test('issue 13 finding 8: published/acked exact across SIGKILL restarts and compactions (child server)', { timeout: 180_000 }, async (t) => {
  t.diagnostic(`COUNTERS_SEED=${SEED} COUNTERS_CYCLES=${CYCLES}`);
  const rand = prng(SEED);
  const db = tempDir('mq-i13-counters-');
  t.after(() => removeDir(db));
  const args = ['--segment-bytes', '4096', '--fsync', 'never', '--max-deliveries', '2', '--period', '50ms'];
  let server: ChildServer | null = null;
  t.after(async () => {
    await server?.kill('SIGKILL');
  });
  const A = 'ctr.a';
  const DEAD = `${A}.dead`;
  const B = 'ctr.b';
  const C = 'ctr.c';
  const COLD = 'ctr.cold';
  const expected = new Expected();
  /** Deliveries per message id of A, as the server counts them for --max-deliveries. */
  const deliveries = new Map<string, number>();
  let segmentsRemoved = 0;
  let messagesCopied = 0;
  let runs = 0;
  const payload = (tag: string): string => `${tag}-${'x'.repeat(40 + Math.floor(rand() * 80))}`;

  for (let cycle = 0; cycle < CYCLES; cycle++) {
    server = await startChild(db, args);
    if (cycle > 0) await check(server, expected, `after restart ${cycle}`);
    const conn = await RespConn.connect(server.respPort);
    const publish = async (topic: string, n: number): Promise<void> => {
      const replies = await conn.pipeline(Array.from({ length: n }, (_, i) => ['PUBLISH', topic, payload(`${topic}-${cycle}-${i}`)]));
      assert.ok(replies.every((r) => r === 'OK'));
      expected.of(topic).published += n;
    };
    /** Reserves everything ready in `topic` (left in flight on `conn`). */
    const reserveAll = async (topic: string): Promise<{ id: string; payload: Buffer; dackCount: number }[]> => {
      const out = [];
      for (;;) {
        const r = await conn.send('RESERVE', topic);
        if (r === null) return out;
        out.push(asReserved(r));
      }
    };
    const ack = async (topic: string, ids: string[]): Promise<void> => {
      if (ids.length === 0) return;
      assert.ok((await conn.pipeline(ids.map((id) => ['ACK', topic, id]))).every((r) => r === 'OK'));
      expected.of(topic).acked += ids.length;
    };

    await publish(A, 80);
    await publish(B, 30);
    await publish(COLD, 4);
    // A: three rounds of ACK / NACK / DACK 0; a message NACKed or DACKed on its second delivery
    // moves to A.dead (its original leaves A through an ACK record: counted as acked).
    for (let round = 0; round < 3; round++) {
      const got = await reserveAll(A);
      const settles: (string | number)[][] = [];
      for (const m of got) {
        const n = (deliveries.get(m.id) ?? 0) + 1;
        deliveries.set(m.id, n);
        const x = rand();
        if (x < 0.6) {
          settles.push(['ACK', A, m.id]);
          expected.of(A).acked++;
          deliveries.delete(m.id);
          continue;
        }
        settles.push(x < 0.8 ? ['NACK', A, m.id] : ['DACK', A, m.id, 0]);
        if (n >= 2) {
          expected.of(A).acked++;
          expected.of(DEAD).published++;
          deliveries.delete(m.id);
        }
      }
      assert.ok((await conn.pipeline(settles)).every((r) => r === 'OK'));
    }
    // The dead letters: half acked, half left there.
    const dead = await reserveAll(DEAD);
    await ack(DEAD, dead.filter((_, i) => i % 2 === 0).map((m) => m.id));
    for (const m of dead.filter((_, i) => i % 2 === 1)) assert.equal(await conn.send('NACK', DEAD, m.id), 'OK');
    await ack(B, (await reserveAll(B)).map((m) => m.id));
    // C: counts since it was (re-)created.
    // C: counts since it was (re-)created; two of its messages are in flight when it is deleted.
    await publish(C, 4);
    const gotC = await reserveAll(C);
    assert.ok(gotC.length >= 4);
    await ack(C, gotC.slice(0, 2).map((m) => m.id));
    assert.equal(await conn.send('DEL', C), 1);
    expected.topics.delete(C);
    await publish(C, 2);
    await ack(C, (await reserveAll(C)).slice(0, 1).map((m) => m.id));
    conn.close();

    await check(server, expected, `before kill ${cycle}`);
    // Let compaction work (it runs after every roll and every second), then kill it, often in
    // the middle of a pass.
    const lines = server.lines;
    const linesBefore = lines.length;
    // A pass with nothing to do logs nothing: after 3 s without a run, kill anyway.
    await waitFor(() => lines.slice(linesBefore).some((l) => l.includes('"compaction run"')), 3000, 20).catch(() => {});
    await letTimePass(Math.floor(rand() * 1200)); // the kill lands at a random moment, often in a pass
    await server.kill('SIGKILL');
    for (const run of logLines<Record<string, number>>(server, 'compaction run')) {
      runs++;
      segmentsRemoved += run.segmentsRemoved!;
      messagesCopied += run.messagesCopied!;
    }
  }
  server = await startChild(db, args);
  await check(server, expected, `after restart ${CYCLES}`);
  t.diagnostic(
    `${runs} compaction runs, ${segmentsRemoved} segments removed, ${messagesCopied} messages copied; ` +
      [...expected.topics].map(([topic, c]) => `${topic} published=${c.published} acked=${c.acked}`).join(', '),
  );
  assert.ok(segmentsRemoved > 0 && messagesCopied > 0, 'compaction removed segments and copied messages forward');
});

/** Copies the segment files of `db` into a new directory under `into` (what a SIGKILL leaves). */
function crashCopy(db: string, into: string, n: number): string {
  const to = path.join(into, `c${n}`);
  fs.mkdirSync(to, { recursive: true });
  for (const name of fs.readdirSync(db)) {
    if (!name.endsWith('.log')) continue;
    try {
      fs.copyFileSync(path.join(db, name), path.join(to, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return to;
}

test('issue 13 finding 8: a crash in the middle of compaction counts nothing twice (crash copies)', { timeout: 120_000 }, async (t) => {
  const db = tempDir('mq-i13-counters-crash-');
  const copies = tempDir('mq-i13-counters-copies-');
  t.after(() => {
    removeDir(db);
    removeDir(copies);
  });
  const server: RunningServer = await startInProcess(db, ['--fsync', 'never', '--segment-bytes', '4096']);
  let closed = false;
  t.after(async () => {
    if (!closed) await server.close();
  });
  const conn = await RespConn.connect(server.resp!.port);
  t.after(() => conn.close());
  const A = 'crash.a';
  const B = 'crash.b';
  const count = 600;
  const pubs: string[][] = [];
  for (let i = 0; i < count; i++) {
    pubs.push(['PUBLISH', A, `a${i}-${'y'.repeat(50)}`]);
    if (i % 5 === 0) pubs.push(['PUBLISH', B, `b${i}`]);
  }
  assert.ok((await conn.pipeline(pubs)).every((r) => r === 'OK'));
  const expected = new Map<string, Counts>([
    [A, { published: count, acked: 0 }],
    [B, { published: count / 5, acked: 0 }],
  ]);

  // Copy the directory right before every segment file is unlinked: compaction has written what
  // replaces it, and it is still there.
  const taken: string[] = [];
  const unlink = fs.promises.unlink;
  let copying = false;
  fs.promises.unlink = async (p: fs.PathLike): Promise<void> => {
    if (copying && String(p).startsWith(db)) taken.push(crashCopy(db, copies, taken.length));
    return unlink(p);
  };
  t.after(() => {
    fs.promises.unlink = unlink;
  });

  // Reserve everything, ack three of four of A and all of B: the old segments are mostly dead,
  // and compaction copies A's live quarter forward and deletes them.
  const reservedA: string[] = [];
  for (;;) {
    const r = await conn.send('RESERVE', A);
    if (r === null) break;
    reservedA.push(asReserved(r).id);
  }
  const reservedB: string[] = [];
  for (;;) {
    const r = await conn.send('RESERVE', B);
    if (r === null) break;
    reservedB.push(asReserved(r).id);
  }
  const ackA = reservedA.filter((_, i) => i % 4 !== 0);
  copying = true;
  assert.ok((await conn.pipeline([...ackA.map((id) => ['ACK', A, id]), ...reservedB.map((id) => ['ACK', B, id])])).every((r) => r === 'OK'));
  expected.get(A)!.acked = ackA.length;
  expected.get(B)!.acked = reservedB.length;
  // Nothing changes the counters from here on: copies taken at any moment must show them.
  const copiedBefore = server.broker.compactionStats.messagesCopied;
  for (let i = 0; i < 6; i++) {
    const pass = server.broker.compactNow();
    let passDone = false;
    void pass.finally(() => (passDone = true));
    while (!passDone) {
      taken.push(crashCopy(db, copies, taken.length));
      await new Promise((r) => setImmediate(r));
    }
  }
  copying = false;
  const stats = server.broker.compactionStats;
  assert.ok(stats.messagesCopied > copiedBefore && stats.segmentsRemoved > 0, 'compaction copied messages and removed segments');
  for (const [topic, counts] of expected) {
    const s = server.broker.topicStats(topic)!;
    assert.deepEqual({ published: s.published, acked: s.acked }, counts, `${topic} in the running server`);
  }
  closed = true;
  await server.close();
  taken.push(crashCopy(db, copies, taken.length));
  t.diagnostic(`${taken.length} crash copies (${stats.segmentsRemoved} segments removed, ${stats.messagesCopied} messages copied)`);
  const differentFileSets = new Set<string>();
  for (const dir of taken) {
    differentFileSets.add(fs.readdirSync(dir).sort().join(','));
    const copy = await startInProcess(dir, ['--fsync', 'never', '--segment-bytes', '4096', '--no-compaction']);
    try {
      for (const [topic, counts] of expected) {
        const s = copy.broker.topicStats(topic);
        assert.ok(s !== undefined, `${topic} exists in ${dir}`);
        assert.deepEqual({ published: s.published, acked: s.acked }, counts, `${topic} in crash copy ${dir}`);
      }
    } finally {
      await copy.close();
    }
  }
  assert.ok(differentFileSets.size >= 3, `the copies saw compaction at several stages (${differentFileSets.size} file sets)`);
});
