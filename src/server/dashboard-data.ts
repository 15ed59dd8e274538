/**
 * The figures behind `GET /dashboard/data` (src/protocols/http2/dashboard.ts): read at request time,
 * through the engine seam (QueueEngine), from what the engine, the listeners' {@link Admission}
 * and the metrics registry keep anyway, so the dashboard costs nothing on the hot paths and nothing when
 * nobody looks.
 */
import { DEAD_LETTER_SUFFIX, type QueueEngine } from '../engine/queue-engine.js';
import { BrokerError } from '../errors.js';
import type { Admission } from '../protocols/admission.js';
import { DASHBOARD_TOPICS_MAX, type DashboardSnapshot, type DashboardSource, type DashboardTopic } from '../protocols/http2/dashboard.js';
import type { ServerMetrics } from './metrics.js';

/** Options of {@link createDashboardSource}. */
export interface DashboardSourceOptions {
  engine: QueueEngine;
  admission: Admission;
  metrics: ServerMetrics;
  version: string;
  /** `--fsync`, shown next to the latency. */
  fsyncPolicy: string;
  /** When the server started, ms since the epoch (uptime counts from here). Default: now. */
  startedAtMs?: number;
}

/**
 * Creates the source of the dashboard's snapshots for one server. Its `snapshot()` rejects with
 * MQ_ERR_LOADING while the engine is loading (the route answers 503 before asking, see routes.ts).
 */
export function createDashboardSource(opts: DashboardSourceOptions): DashboardSource {
  const { engine, admission, metrics } = opts;
  const startedAtMs = opts.startedAtMs ?? Date.now();
  return {
    async snapshot(): Promise<DashboardSnapshot> {
      const storage = engine.storageStats();
      if (storage === undefined) throw new BrokerError('MQ_ERR_LOADING');
      const names = engine.topicNames().sort();
      const totals = { topics: names.length, ready: 0, inFlight: 0, delayed: 0, consumers: 0, published: 0, acked: 0, deadLettered: 0 };
      const topics: DashboardTopic[] = [];
      for (const name of names) {
        const stats = engine.topicStats(name);
        const counters = engine.topicCounters(name);
        if (stats === undefined || counters === undefined) continue;
        totals.ready += stats.ready;
        totals.inFlight += stats.inFlight;
        totals.delayed += stats.delayed;
        totals.consumers += stats.consumers;
        totals.published += stats.published;
        totals.acked += stats.acked;
        totals.deadLettered += counters.deadLettered;
        if (topics.length >= DASHBOARD_TOPICS_MAX) continue;
        const dead = name.endsWith(DEAD_LETTER_SUFFIX) ? undefined : engine.topicStats(name + DEAD_LETTER_SUFFIX);
        topics.push({
          ...stats,
          deadLettered: counters.deadLettered,
          deadLetters: dead === undefined ? 0 : dead.ready + dead.inFlight + dead.delayed,
        });
      }
      const fsync = await metrics.fsyncHistogram();
      const nowMs = Date.now();
      return {
        version: opts.version,
        nodeVersion: process.version,
        nowMs,
        uptimeSeconds: (nowMs - startedAtMs) / 1000,
        fsyncPolicy: opts.fsyncPolicy,
        connections: { http: admission.open.http2, resp: admission.open.resp, max: admission.maxConnections },
        log: {
          bytes: storage.logBytes,
          segments: storage.logSegments,
          records: storage.writtenRecords,
          writtenBytes: storage.writtenBytes,
          fsyncs: storage.fsyncs,
          failedBatches: storage.failedBatches,
        },
        fsyncLatency: { ...fsync, buckets: fsync.buckets.map((b) => ({ leSeconds: Number.isFinite(b.leSeconds) ? b.leSeconds : null, count: b.count })) },
        compaction: storage.compaction,
        totals,
        topics,
      };
    },
  };
}
