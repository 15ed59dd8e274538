/**
 * `GET /dashboard/data` (issue 14 item 3) against a real in-process server, over HTTP/1.1 with
 * Node's fetch: the figures the page shows (per topic, dead letters, log, fsync histogram,
 * compaction, connections, version, uptime) and what `--auth-token` leaves open.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DashboardSnapshot } from '../../src/protocols/http2/dashboard.js';
import { VERSION } from '../../src/server/version.js';
import { removeDir, RespConn, startInProcess, tempDir } from '../helpers/index.js';

test('the snapshot: per-topic figures with dead letters, totals, log, fsync histogram, connections, version', async (t) => {
  const dir = tempDir('mq-dashboard-data-');
  const server = await startInProcess(dir, ['--max-deliveries', '1', '--fsync', 'always']);
  const resp = await RespConn.connect(server.resp!.port);
  t.after(async () => {
    resp.close();
    await server.close();
    removeDir(dir);
  });
  const base = `http://127.0.0.1:${server.http.port}`;
  for (const body of ['a', 'b', 'c']) assert.equal((await fetch(`${base}/publish/jobs`, { method: 'POST', body })).status, 201);
  // One delivery without an ACK is the last one with --max-deliveries 1: it goes to jobs.dead.
  const reserved = (await resp.send('RESERVE', 'jobs')) as [Buffer, Buffer, number];
  assert.equal(await resp.send('NACK', 'jobs', reserved[0].toString()), 'OK');
  const inFlight = (await resp.send('RESERVE', 'jobs')) as [Buffer, Buffer, number];
  assert.ok(Array.isArray(inFlight));

  const res = await fetch(`${base}/dashboard/data`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const snap = (await res.json()) as DashboardSnapshot;
  assert.equal(snap.version, VERSION);
  assert.equal(snap.nodeVersion, process.version);
  assert.equal(snap.fsyncPolicy, 'always');
  assert.ok(snap.uptimeSeconds >= 0 && snap.uptimeSeconds < 60);
  assert.ok(Math.abs(snap.nowMs - Date.now()) < 5000);
  assert.deepEqual(
    snap.topics.map((x) => [x.topic, x.ready, x.inFlight, x.delayed, x.consumers, x.published, x.acked, x.deadLettered, x.deadLetters]),
    [
      ['jobs', 1, 1, 0, 0, 3, 1, 1, 1],
      ['jobs.dead', 1, 0, 0, 0, 1, 0, 0, 0],
    ],
  );
  assert.deepEqual(snap.totals, { topics: 2, ready: 2, inFlight: 1, delayed: 0, consumers: 0, published: 4, acked: 1, deadLettered: 1 });
  assert.equal(snap.log.segments, server.broker.log.segments.length);
  assert.equal(snap.log.bytes, server.broker.log.sizeBytes);
  assert.ok(snap.log.records >= 5, `records ${snap.log.records}`);
  assert.equal(snap.log.failedBatches, 0);
  assert.ok(snap.fsyncLatency.count >= 1);
  assert.equal(snap.fsyncLatency.count, snap.log.fsyncs);
  assert.ok(snap.fsyncLatency.sumSeconds > 0);
  const last = snap.fsyncLatency.buckets.at(-1)!;
  assert.deepEqual(last, { leSeconds: null, count: snap.fsyncLatency.count }, 'the +Inf bucket holds every fsync');
  assert.deepEqual(snap.compaction, { ...server.broker.compactionStats });
  assert.equal(snap.connections.resp, 1);
  assert.equal(snap.connections.max, 10_000);
});

test('with --auth-token the page and its files are open, /dashboard/data needs the bearer token', async (t) => {
  const dir = tempDir('mq-dashboard-auth-');
  const token = 'dash-data-token';
  const server = await startInProcess(dir, ['--auth-token', token, '--fsync', 'never']);
  t.after(async () => {
    await server.close();
    removeDir(dir);
  });
  const base = `http://127.0.0.1:${server.http.port}`;
  const page = await fetch(`${base}/dashboard`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
  assert.match(await page.text(), /<script src="\/dashboard\/uPlot\.iife\.min\.js" defer>/);
  for (const file of ['/dashboard/dashboard.js', '/dashboard/dashboard.css', '/dashboard/uPlot.iife.min.js', '/dashboard/uPlot.min.css']) {
    assert.equal((await fetch(`${base}${file}`)).status, 200, file);
  }
  const license = await fetch(`${base}/dashboard/uPlot.LICENSE.txt`);
  assert.match(await license.text(), /MIT License/);

  const without = await fetch(`${base}/dashboard/data`);
  assert.equal(without.status, 401);
  assert.equal(((await without.json()) as { code: string }).code, 'MQ_ERR_NOAUTH');
  const wrong = await fetch(`${base}/dashboard/data`, { headers: { authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
  const right = await fetch(`${base}/dashboard/data`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(right.status, 200);
  assert.deepEqual(((await right.json()) as DashboardSnapshot).topics, []);
  // Only the listed files are open: anything else under /dashboard/ is a 401 like any route.
  assert.equal((await fetch(`${base}/dashboard/../topics`)).status, 401);
  assert.equal((await fetch(`${base}/dashboard/other.js`)).status, 401);
});
