/**
 * `GET /dashboard` (SPEC §10, issue 14): a live page served by the broker itself, over HTTP/2 or
 * HTTP/1.1, with nothing fetched from anywhere else (it works offline and behind firewalls).
 *
 * - `/dashboard` is the page (assets/dashboard/index.html); its script and style, and uPlot (the
 *   charting library, MIT, served from node_modules with its license), live under `/dashboard/`.
 *   They hold no data, so they are served without `--auth-token`.
 * - `GET /dashboard/data` is the JSON the page polls once a second ({@link DashboardSnapshot}).
 *   It is an ordinary route: with `--auth-token` it needs `Authorization: Bearer <token>`. The page
 *   asks for the token when it gets a 401, keeps it in the tab's sessionStorage and sends it as
 *   that header; no cookie is set, so no other site can make the browser send it (no CSRF).
 *
 * The files are read once, when the routes are registered; a missing file fails the start.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGE } from '../../package-root.js';
import type { StorageStats, TopicStats } from '../../engine/queue-engine.js';
import type { Http2Fastify } from './server.js';

/**
 * One topic on the dashboard: the figures of `GET /topics` (`published` and `acked` are counters;
 * the page derives the rates) and the dead letters.
 */
export interface DashboardTopic extends TopicStats {
  /** Messages moved to `<topic>.dead` after `--max-deliveries` (a counter). */
  deadLettered: number;
  /** Live messages (ready, in flight, delayed) in `<topic>.dead` now. */
  deadLetters: number;
}

/** The body of `GET /dashboard/data`. Counters are totals since start; the page derives rates. */
export interface DashboardSnapshot {
  version: string;
  nodeVersion: string;
  /** Server time of the snapshot, ms since the epoch. */
  nowMs: number;
  /** Seconds since this server started. */
  uptimeSeconds: number;
  /** `--fsync` policy. */
  fsyncPolicy: string;
  connections: { http: number; resp: number; max: number };
  log: { bytes: number; segments: number; records: number; writtenBytes: number; fsyncs: number; failedBatches: number };
  /**
   * The fsync latency histogram of `GET /metrics`: cumulative counts per upper bound in seconds,
   * increasing; the last bound is +Inf, sent as null (JSON has no Infinity).
   */
  fsyncLatency: { count: number; sumSeconds: number; buckets: { leSeconds: number | null; count: number }[] };
  compaction: StorageStats['compaction'];
  /** Sums over every topic (also those past `topics`' limit). */
  totals: { topics: number; ready: number; inFlight: number; delayed: number; consumers: number; published: number; acked: number; deadLettered: number };
  /** At most {@link DASHBOARD_TOPICS_MAX} topics, sorted by name. */
  topics: DashboardTopic[];
}

/** Most topics listed in one snapshot, so the page and the JSON stay small with many topics. */
export const DASHBOARD_TOPICS_MAX = 500;

/** Computes the snapshots (src/server/dashboard-data.ts implements it). */
export interface DashboardSource {
  snapshot(): Promise<DashboardSnapshot>;
}

interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
}

/** Repository (or installed package) root: assets/ is there. */
const PACKAGE_ROOT = PACKAGE?.root ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

/** The files under `/dashboard/`, by URL path, and where they come from. */
function assetFiles(): Record<string, { file: string; contentType: string }> {
  const own = path.join(PACKAGE_ROOT, 'assets', 'dashboard');
  const uplot = path.dirname(createRequire(import.meta.url).resolve('uplot/package.json'));
  return {
    '/dashboard': { file: path.join(own, 'index.html'), contentType: 'text/html; charset=utf-8' },
    '/dashboard/dashboard.js': { file: path.join(own, 'dashboard.js'), contentType: 'text/javascript; charset=utf-8' },
    '/dashboard/dashboard.css': { file: path.join(own, 'dashboard.css'), contentType: 'text/css; charset=utf-8' },
    '/dashboard/uPlot.iife.min.js': { file: path.join(uplot, 'dist', 'uPlot.iife.min.js'), contentType: 'text/javascript; charset=utf-8' },
    '/dashboard/uPlot.min.css': { file: path.join(uplot, 'dist', 'uPlot.min.css'), contentType: 'text/css; charset=utf-8' },
    '/dashboard/uPlot.LICENSE.txt': { file: path.join(uplot, 'LICENSE'), contentType: 'text/plain; charset=utf-8' },
  };
}

const ASSET_PATHS: ReadonlySet<string> = new Set(Object.keys(assetFiles()));

/** Whether `urlPath` (without query) is one of the dashboard's static files, served without a token. */
export function isDashboardAssetPath(urlPath: string): boolean {
  return ASSET_PATHS.has(urlPath);
}

/**
 * Scripts and styles only from this server; no frames, no plugins. uPlot sets element styles
 * from script (allowed by style-src through the CSSOM) and draws on a canvas.
 */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Registers `/dashboard`, its files and `/dashboard/data` on `fastify`. Throws if a file is missing. */
export function registerDashboard(fastify: Http2Fastify, source: DashboardSource): void {
  const assets = new Map<string, Asset>();
  for (const [urlPath, { file, contentType }] of Object.entries(assetFiles())) {
    assets.set(urlPath, { body: fs.readFileSync(file), contentType });
  }
  for (const [urlPath, asset] of assets) {
    fastify.get(urlPath, (_request, reply) => {
      reply
        .header('content-security-policy', CONTENT_SECURITY_POLICY)
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-cache')
        .type(asset.contentType)
        .send(asset.body);
    });
  }
  fastify.get('/dashboard/data', async (_request, reply) => {
    const snapshot = await source.snapshot();
    return reply.header('cache-control', 'no-store').send(snapshot);
  });
}
