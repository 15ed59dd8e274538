/**
 * Issue 14, item 3: `GET /dashboard` in a real headless Chromium (Debian `chromium`, driven with
 * playwright-core) against real in-process servers. Over TLS with `--auth-token` (the browser
 * speaks h2; the page asks for the token), and over `--no-tls` (the browser speaks HTTP/1.1, which
 * is all a browser offers without TLS). The page loads with nothing from another origin, shows a
 * topic published during the test, and its numbers move when more is published.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { RunningServer } from '../../../src/server/server.js';
import { ensureDevCert } from '../../../src/server/certs.js';
import { h2connect, removeDir, startInProcess, tempDir } from '../../helpers/index.js';

/** Where CI (.ci/run) and scripts/ensure-tools.mjs install Debian's chromium. */
export const CHROMIUM_PATH = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const TOKEN = 'dashboard-token-c41f';
/** How long to wait for the page to show something: a few polls (one a second). */
const SHOW_MS = 10_000;

let dir: string;
let context: BrowserContext;

before(async () => {
  dir = tempDir('mq-dashboard-');
  // launchPersistentContext passes a fresh --user-data-dir (this temp directory).
  context = await chromium.launchPersistentContext(path.join(dir, 'profile'), {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 900 },
    // The test runner owns signals; the browser is closed in after().
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
});

after(async () => {
  await context?.close();
  removeDir(dir);
});

/** Publishes `count` messages over HTTP/2 (TLS when the server has --auth-token, as the TLS test's does). */
function publish(server: RunningServer, topic: string, count: number): Promise<void> {
  const session = server.admission.authRequired
    ? http2.connect(`https://127.0.0.1:${server.http.port}`, { rejectUnauthorized: false })
    : h2connect(server.http.port);
  session.on('error', () => {});
  const headers = server.admission.authRequired ? { authorization: `Bearer ${TOKEN}` } : {};
  const one = (i: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': `/publish/${topic}`, ...headers });
      req.on('response', (h) => (h[':status'] === 201 ? resolve() : reject(new Error(`publish answered ${h[':status']}`))));
      req.on('error', reject);
      req.end(`message ${i}`);
    });
  return Promise.all(Array.from({ length: count }, (_, i) => one(i))).then(
    () => void session.close(),
    (err: unknown) => {
      session.close();
      throw err;
    },
  );
}

/** The text of one cell of a topic's row, once that row exists. */
function cell(page: Page, topic: string, field: string): Promise<string | null> {
  return page.locator(`tr[data-topic="${topic}"] td[data-field="${field}"]`).textContent({ timeout: SHOW_MS });
}

async function waitForCell(page: Page, topic: string, field: string, expected: string): Promise<void> {
  const selector = `tr[data-topic="${topic}"] td[data-field="${field}"]`;
  await page.waitForFunction(
    ([sel, want]) => (globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } }).document.querySelector(sel!)?.textContent === want,
    [selector, expected],
    { timeout: SHOW_MS },
  );
}

/** Records what a page asks for and every script error or CSP violation it reports. */
function watch(page: Page): { requests: string[]; errors: string[] } {
  const seen = { requests: [] as string[], errors: [] as string[] };
  page.on('request', (r) => seen.requests.push(r.url()));
  page.on('pageerror', (err) => seen.errors.push(err.message));
  page.on('console', (msg) => {
    // A 401 answer to the data poll is logged by Chromium as a failed resource load; it is expected.
    if (msg.type() === 'error' && !/status of 401/.test(msg.text())) seen.errors.push(msg.text());
  });
  return seen;
}

test('over TLS with --auth-token: the page asks for the token, shows a topic, and ready moves as messages are published', async (t) => {
  const pair = await ensureDevCert(
    { certPath: path.join(dir, 'certs', 'cert.pem'), keyPath: path.join(dir, 'certs', 'key.pem'), certExplicit: false },
    { warn: () => {} },
  );
  const server = await startInProcess(path.join(dir, 'db-tls'), ['--auth-token', TOKEN, '--fsync', 'always'], pair);
  t.after(() => server.close());
  const origin = `https://localhost:${server.http.port}`;
  await publish(server, 'dash.orders', 3);

  // Without the token the data route is closed, while the page itself loads.
  const page = await context.newPage();
  t.after(() => page.close());
  const seen = watch(page);
  const res = await page.goto(`${origin}/dashboard`);
  assert.equal(res?.status(), 200);
  await page.locator('#login').waitFor({ state: 'visible', timeout: SHOW_MS });
  assert.equal(await page.locator('#main').isVisible(), false, 'no figures without the token');

  await page.fill('#token', 'not-the-token');
  await page.click('#login button[type=submit]');
  await page.locator('#login-error', { hasText: 'not accepted' }).waitFor({ timeout: SHOW_MS });

  await page.fill('#token', TOKEN);
  await page.click('#login button[type=submit]');
  await page.locator('#main').waitFor({ state: 'visible', timeout: SHOW_MS });
  assert.equal(await cell(page, 'dash.orders', 'ready'), '3');
  assert.equal(await cell(page, 'dash.orders', 'published'), '3');

  // Numbers move: publish more, see ready and the publish rate change without a reload.
  await publish(server, 'dash.orders', 5);
  await waitForCell(page, 'dash.orders', 'ready', '8');
  await publish(server, 'dash.new-topic', 2);
  await waitForCell(page, 'dash.new-topic', 'ready', '2');
  await page.waitForFunction(
    () => Number((globalThis as unknown as { document: { getElementById(id: string): { textContent: string } } }).document.getElementById('log-records').textContent.replace(/,/g, '')) >= 10,
    undefined,
    { timeout: SHOW_MS },
  );

  assert.match((await page.textContent('#version')) ?? '', /^v\d+\.\d+\.\d+/);
  assert.match((await page.textContent('#uptime')) ?? '', /^\d+m \d+s$/);
  assert.equal(await page.textContent('#log-segments'), '1');
  assert.equal(await page.textContent('#fsync-policy'), 'always');
  assert.equal(await page.locator('.uplot canvas').count(), 3, 'three uPlot charts drawn');
  assert.equal(await page.locator('tr[data-topic="dash.orders"] svg.spark polyline').count(), 2);

  // Deleting a topic removes its row.
  await new Promise<void>((resolve, reject) => server.broker.deleteTopic('dash.new-topic', (err) => (err === null ? resolve() : reject(err))));
  await page.locator('tr[data-topic="dash.new-topic"]').waitFor({ state: 'detached', timeout: SHOW_MS });

  assert.deepEqual(seen.errors, [], 'no script errors or CSP violations');
  const foreign = seen.requests.filter((u) => !u.startsWith(`${origin}/`));
  assert.deepEqual(foreign, [], 'everything comes from the server itself (no CDN)');
  assert.ok(seen.requests.includes(`${origin}/dashboard/uPlot.iife.min.js`));
  assert.ok(seen.requests.filter((u) => u === `${origin}/dashboard/data`).length >= 3, 'the page polls');
});

test('over --no-tls (the browser speaks HTTP/1.1): the page loads and follows a topic', async (t) => {
  const server = await startInProcess(path.join(dir, 'db-h2c'), ['--fsync', 'never']);
  t.after(() => server.close());
  await publish(server, 'dash.plain', 1);
  const page = await context.newPage();
  t.after(() => page.close());
  const seen = watch(page);
  const res = await page.goto(`http://127.0.0.1:${server.http.port}/dashboard`);
  assert.equal(res?.status(), 200);
  assert.equal(await cell(page, 'dash.plain', 'ready'), '1');
  assert.equal(await page.locator('#login').isVisible(), false, 'no token asked for without --auth-token');
  await publish(server, 'dash.plain', 4);
  await waitForCell(page, 'dash.plain', 'ready', '5');
  assert.deepEqual(seen.errors, []);
});
