#!/usr/bin/env node
// Regenerates docs/dashboard.png, the README's picture of GET /dashboard: starts miniqueue (from
// dist/, so run `npm run build` first) in this process on free ports, drives some traffic with
// the miniqueue client (producers, ackers, a consumer that DACKs, one that never acks so its
// messages are dead-lettered), lets the dashboard chart it for DURATION_S seconds (default 40),
// and photographs the page in headless Chromium (/usr/bin/chromium, via playwright-core).
//
//   npm run build && node scripts/dashboard-screenshot.mjs [out.png]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { pino } from 'pino';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { parseConfig } = await import(path.join(root, 'dist/src/server/config.js'));
const { startServer } = await import(path.join(root, 'dist/src/server/server.js'));
const { MiniqueueClient } = await import(path.join(root, 'dist/src/client/index.js'));

const out = path.resolve(process.argv[2] ?? path.join(root, 'docs', 'dashboard.png'));
const durationMs = Number(process.env.DURATION_S ?? 40) * 1000;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-screenshot-'));
const config = parseConfig(
  ['--port', '0', '--redis-port', '0', '--host', '127.0.0.1', '--db', path.join(dir, 'db'), '--no-tls', '--max-deliveries', '3', '--segment-bytes', '262144'],
  {},
);
const server = await startServer(config, pino({ level: 'silent' }), null);
const url = `http://127.0.0.1:${server.http.port}`;
const mq = new MiniqueueClient({ url });

let running = true;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const workers = [];

/** Publishes to `topic` at about `perSecond` messages a second, in small bursts. */
function producer(topic, perSecond) {
  workers.push((async () => {
    let i = 0;
    while (running) {
      const burst = Math.max(1, Math.round((perSecond / 10) * (0.6 + Math.random() * 0.8)));
      await Promise.all(Array.from({ length: burst }, () => mq.publish(topic, JSON.stringify({ n: i++, at: Date.now() }))));
      await sleep(100);
    }
  })());
}

/** Consumes `topic`, spending about `workMs` per message, settling with `settle(msg)`. */
function consumer(topic, workMs, settle) {
  const sub = mq.subscribe(topic);
  workers.push((async () => {
    for await (const msg of sub) {
      if (!running) break;
      if (workMs > 0) await sleep(workMs * (0.5 + Math.random()));
      await settle(msg);
    }
  })().catch(() => {}));
  return sub;
}

producer('orders', 120);
producer('emails', 40);
producer('payments', 6);
producer('audit', 15);
const subs = [
  consumer('orders', 8, (m) => m.ack()),
  consumer('orders', 8, (m) => m.ack()),
  consumer('emails', 20, (m) => (Math.random() < 0.15 ? m.dack(30) : m.ack())),
  consumer('payments', 5, (m) => (Math.random() < 0.4 ? m.nack() : m.ack())),
  consumer('audit', 75, (m) => m.ack()),
];

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 860 },
  deviceScaleFactor: 1,
});
const page = await context.newPage();
await page.goto(`${url}/dashboard`);
await sleep(durationMs);
fs.mkdirSync(path.dirname(out), { recursive: true });
await page.screenshot({ path: out, fullPage: true });
console.log(`wrote ${out}`);

running = false;
await context.close();
await Promise.all(subs.map((s) => s.close()));
await mq.close();
await server.close();
fs.rmSync(dir, { recursive: true, force: true });
fs.rmSync(profile, { recursive: true, force: true });
