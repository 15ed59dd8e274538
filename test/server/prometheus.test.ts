/**
 * Issue 14: a real Prometheus (Debian package `prometheus`) scrapes `/metrics` of real in-process
 * servers, with HTTP/2 off (`enable_http2: false`, i.e. HTTP/1.1 over TLS), with HTTP/2 on (h2 by
 * ALPN), and over cleartext (HTTP/1.1 to a `--no-tls` port), the TLS server with `--auth-token`.
 * Checked through Prometheus' own HTTP API: every target `up`, and a query returning a miniqueue
 * metric from each job. Bounded: scrape_interval 1s, at most ~20 s of waiting.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { ensureDevCert } from '../../src/server/certs.js';
import { freePort, removeDir, startInProcess, tempDir, waitFor } from '../helpers/index.js';

const TOKEN = 'prometheus-token-3b9d';
const WAIT_MS = 20_000;

interface Target {
  labels: { job: string };
  health: string;
  lastError: string;
  scrapeUrl: string;
}

test('Prometheus scrapes /metrics with HTTP/2 off (HTTP/1.1 over TLS), with HTTP/2 on, and over cleartext HTTP/1.1', async (t) => {
  const dir = tempDir('mq-prometheus-');
  t.after(() => removeDir(dir));
  const pair = await ensureDevCert(
    { certPath: path.join(dir, 'certs', 'cert.pem'), keyPath: path.join(dir, 'certs', 'key.pem'), certExplicit: false },
    { warn: () => {} },
  );
  const secure = await startInProcess(path.join(dir, 'db-tls'), ['--fsync', 'never', '--auth-token', TOKEN], pair);
  t.after(() => secure.close());
  const cleartext = await startInProcess(path.join(dir, 'db-h2c'), ['--fsync', 'never']);
  t.after(() => cleartext.close());

  // Which protocol each TLS connection negotiated, seen from the server (public 'secureConnection' event).
  const alpn = new Set<string>();
  secure.http.fastify.server.on('secureConnection', (socket: TLSSocket) => alpn.add(String(socket.alpnProtocol)));

  for (const server of [secure, cleartext]) {
    await new Promise<void>((resolve, reject) => server.broker.publish('prom.topic', Buffer.from('x'), (err) => (err === null ? resolve() : reject(err))));
  }

  const promPort = await freePort();
  const config = `
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: tls-http1
    scheme: https
    enable_http2: false
    tls_config: { insecure_skip_verify: true }
    authorization: { type: Bearer, credentials: ${TOKEN} }
    static_configs: [{ targets: ['127.0.0.1:${secure.http.port}'] }]
  - job_name: tls-http2
    scheme: https
    enable_http2: true
    tls_config: { insecure_skip_verify: true }
    authorization: { type: Bearer, credentials: ${TOKEN} }
    static_configs: [{ targets: ['localhost:${secure.http.port}'] }]
  - job_name: cleartext-http1
    scheme: http
    static_configs: [{ targets: ['127.0.0.1:${cleartext.http.port}'] }]
`;
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), config);
  const prom: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let promLog = '';
  prom.stderr!.on('data', (d: Buffer) => (promLog += d.toString()));
  const exited = once(prom, 'exit');
  t.after(async () => {
    if (prom.exitCode === null && prom.signalCode === null) {
      prom.kill('SIGTERM');
      await exited;
    }
  });

  const api = async (query: string): Promise<unknown> => {
    const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/${query}`);
    return ((await res.json()) as { data: unknown }).data;
  };
  let targets: Target[] = [];
  let series: { metric: { job: string }; value: [number, string] }[] = [];
  await waitFor(
    async () => {
      assert.equal(prom.exitCode, null, `prometheus exited: ${promLog}`);
      try {
        targets = ((await api('targets?state=active')) as { activeTargets: Target[] }).activeTargets;
        const query = encodeURIComponent('miniqueue_topic_published_total{topic="prom.topic"}');
        series = ((await api(`query?query=${query}`)) as { result: typeof series }).result;
      } catch {
        // Prometheus is still starting.
      }
      return targets.length === 3 && targets.every((x) => x.health === 'up') && series.length === 3;
    },
    WAIT_MS,
    250,
    () => `every target up: ${JSON.stringify(targets.map((x) => [x.labels.job, x.health, x.lastError]))}; ${promLog}`,
  );
  assert.deepEqual(targets.map((x) => x.labels.job).sort(), ['cleartext-http1', 'tls-http1', 'tls-http2']);
  assert.deepEqual(series.map((s) => [s.metric.job, s.value[1]]).sort(), [
    ['cleartext-http1', '1'],
    ['tls-http1', '1'],
    ['tls-http2', '1'],
  ]);
  // The TLS jobs really spoke different protocols: with HTTP/2 on, Go negotiates h2; with it off,
  // Prometheus 2.42 offers no ALPN at all (alpnProtocol false), which node:http2 serves as HTTP/1.1.
  assert.ok(alpn.has('h2'), `ALPN seen: ${[...alpn].join(', ')}`);
  assert.ok(alpn.has('false') || alpn.has('http/1.1'), `ALPN seen: ${[...alpn].join(', ')}`);
});
