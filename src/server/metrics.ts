/**
 * `GET /metrics` (SPEC §7): the engine's figures in the Prometheus text format, through
 * prom-client, on a registry of this server's own (so two servers in one process, as in the
 * tests, never share series).
 *
 * Nearly everything is read at scrape time, through the engine seam (QueueEngine: topics,
 * counters, storage figures), from counters the engine (for the segment log: the broker, its
 * writer and compactor) and the listeners' {@link Admission} keep anyway, so serving metrics costs nothing on
 * the hot paths. Counters whose source is such a figure are prom-client Counters whose
 * `collect()` resets them and adds the source's value: the exposed type is `counter` (Prometheus
 * computes `rate()` over them and treats a decrease, after a restart or a deleted topic, as a
 * counter reset), while prom-client's Counter has no `set()`. The one thing measured here is the
 * fsync latency histogram, fed by the log writer's `onFsync` hook (server.ts installs it; an engine
 * without a local log leaves it empty).
 *
 * Topic label cardinality is bounded: the first {@link TOPIC_LABELS_MAX} topics seen by a scrape
 * keep their own `topic` label value for as long as they exist (sticky, so a series does not
 * jump between label values as topics come and go); the figures of any further topic are added
 * up under `topic="_other"`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueEngine, StorageStats, TopicCounters, TopicStats } from '../engine/queue-engine.js';
import { LISTENER_PROTOCOLS, REFUSAL_REASONS_BY_PROTOCOL, type Admission } from '../protocols/admission.js';
import type { MetricsSource } from '../protocols/http2/routes.js';

/** Most topics with a `topic` label value of their own; the rest share {@link OTHER_TOPICS_LABEL}. */
export const TOPIC_LABELS_MAX = 100;
/**
 * The `topic` label value of the topics past {@link TOPIC_LABELS_MAX}. A topic really named
 * `_other` is always counted there too, so the label value never means two things.
 */
export const OTHER_TOPICS_LABEL = '_other';

/** Upper bounds of the fsync latency buckets, in seconds: 50 µs (page cache, tmpfs) to 5 s (a stalled disk). */
const FSYNC_BUCKETS_SECONDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** The per-topic figures of one scrape, folded to at most TOPIC_LABELS_MAX + 1 label values. */
type TopicFigures = Omit<TopicStats, 'topic'> & TopicCounters;

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  engine: QueueEngine;
  admission: Admission;
  /** Also export prom-client's default process and Node.js metrics (`process_*`, `nodejs_*`). Default true. */
  defaultMetrics?: boolean;
}

/** The metrics of one server. */
export interface ServerMetrics extends MetricsSource {
  readonly registry: Registry;
  /** Records one fdatasync; server.ts installs it as the log writer's `onFsync` once the broker is open. */
  observeFsync(durationMs: number): void;
  /** The fsync latency histogram as numbers: count, sum and cumulative count per upper bound, in seconds. */
  fsyncHistogram(): Promise<FsyncHistogram>;
}

/** What {@link ServerMetrics.fsyncHistogram} returns (the dashboard derives interval latencies from it). */
export interface FsyncHistogram {
  count: number;
  sumSeconds: number;
  /** Cumulative counts, by increasing upper bound; the last bound is `Infinity`. */
  buckets: { leSeconds: number; count: number }[];
}

/**
 * Creates the registry with every miniqueue metric. Call once per server; {@link
 * ServerMetrics.render} computes the exposition at call time. Reading `engine` while it is loading
 * is safe: its storage figures are then 0.
 */
export function createMetrics(opts: MetricsOptions): ServerMetrics {
  const { engine, admission } = opts;
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

  const labelled = new Set<string>();
  let topics = new Map<string, TopicFigures>();

  /** Reads every topic once per scrape, before the collect() functions below run. */
  function snapshotTopics(): void {
    const names = engine.topicNames();
    const existing = new Set(names);
    for (const name of labelled) if (!existing.has(name)) labelled.delete(name);
    const next = new Map<string, TopicFigures>();
    for (const name of names) {
      const stats = engine.topicStats(name);
      const counters = engine.topicCounters(name);
      if (stats === undefined || counters === undefined) continue;
      if (!labelled.has(name) && labelled.size < TOPIC_LABELS_MAX && name !== OTHER_TOPICS_LABEL) labelled.add(name);
      const label = labelled.has(name) ? name : OTHER_TOPICS_LABEL;
      const sum = next.get(label);
      const { topic: _name, ...gauges } = stats;
      const figures: TopicFigures = { ...gauges, ...counters };
      if (sum === undefined) {
        next.set(label, figures);
      } else {
        for (const key of Object.keys(figures) as (keyof TopicFigures)[]) sum[key] += figures[key];
      }
    }
    topics = next;
  }

  const topicGauge = (name: string, help: string, field: keyof TopicFigures): void => {
    new Gauge({
      name,
      help,
      labelNames: ['topic'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [topic, figures] of topics) this.set({ topic }, figures[field]);
      },
    });
  };
  const topicCounter = (name: string, help: string, field: keyof TopicFigures): void => {
    new Counter({
      name,
      help,
      labelNames: ['topic'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [topic, figures] of topics) this.inc({ topic }, figures[field]);
      },
    });
  };
  /** A counter without labels mirroring `read()`; nothing is exported while it returns undefined. */
  const sourceCounter = (name: string, help: string, read: () => number | undefined): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read() ?? 0);
      },
    });
  };
  const sourceGauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };

  topicGauge('miniqueue_topic_ready_messages', 'Messages waiting to be delivered.', 'ready');
  topicGauge('miniqueue_topic_in_flight_messages', 'Messages delivered and not yet settled.', 'inFlight');
  topicGauge('miniqueue_topic_delayed_messages', 'Messages DACKed and waiting for their due time.', 'delayed');
  topicGauge('miniqueue_topic_consumers', 'Attached subscribers (HTTP/2 streams and RESP SUBSCRIBE connections).', 'consumers');
  topicCounter('miniqueue_topic_published_total', 'Messages published to the topic since it was created.', 'published');
  topicCounter('miniqueue_topic_acked_total', 'Messages acked on the topic since it was created.', 'acked');
  topicCounter('miniqueue_topic_nacked_total', 'NACK settles since the topic was created or the server started.', 'nacked');
  topicCounter('miniqueue_topic_backed_total', 'BACK settles since the topic was created or the server started.', 'backed');
  topicCounter('miniqueue_topic_dacked_total', 'DACK settles since the topic was created or the server started.', 'dacked');
  topicCounter(
    'miniqueue_topic_redelivered_total',
    'Deliveries of messages delivered before (after NACK, BACK, DACK, a disconnect, an ack timeout or a restart).',
    'redelivered',
  );
  topicCounter('miniqueue_topic_ack_timeouts_total', 'Deliveries not settled within --ack-timeout and returned to the queue.', 'ackTimeouts');
  topicCounter('miniqueue_topic_dead_lettered_total', 'Messages moved to <topic>.dead after --max-deliveries deliveries.', 'deadLettered');
  sourceGauge('miniqueue_topics', 'Topics that exist (every one, also those folded into topic="_other").', () => engine.topicNames().length);
  sourceGauge('miniqueue_messages', 'Live messages (ready, in flight, delayed) across all topics.', () => engine.messageCount);

  /** A figure of the engine's storage; undefined while it is loading. */
  const storage = <T>(read: (s: StorageStats) => T): T | undefined => {
    const stats = engine.storageStats();
    return stats === undefined ? undefined : read(stats);
  };
  sourceGauge('miniqueue_log_bytes', 'Bytes in the log segment files.', () => storage((s) => s.logBytes) ?? 0);
  sourceGauge('miniqueue_log_segments', 'Log segment files.', () => storage((s) => s.logSegments) ?? 0);
  sourceCounter('miniqueue_log_written_bytes_total', 'Bytes written to the log since start.', () => storage((s) => s.writtenBytes));
  sourceCounter('miniqueue_log_records_total', 'Records written to the log since start.', () => storage((s) => s.writtenRecords));
  sourceCounter('miniqueue_log_batches_total', 'Write calls (batches of records) since start.', () => storage((s) => s.writeBatches));
  sourceCounter('miniqueue_log_failed_batches_total', 'Batches whose write or fdatasync failed.', () => storage((s) => s.failedBatches));
  sourceCounter('miniqueue_log_fsyncs_total', 'fdatasync calls since start.', () => storage((s) => s.fsyncs));
  const fsyncSeconds = new Histogram({
    name: 'miniqueue_fsync_duration_seconds',
    help: 'Duration of each fdatasync of the log.',
    buckets: FSYNC_BUCKETS_SECONDS,
    registers: [registry],
  });

  sourceCounter('miniqueue_compaction_runs_total', 'Compaction passes that removed or copied something.', () => storage((s) => s.compaction.runs));
  sourceCounter('miniqueue_compaction_segments_removed_total', 'Log segments deleted by compaction.', () => storage((s) => s.compaction.segmentsRemoved));
  sourceCounter('miniqueue_compaction_reclaimed_bytes_total', 'Bytes of the segment files deleted by compaction.', () => storage((s) => s.compaction.bytesReclaimed));
  sourceCounter('miniqueue_compaction_copied_bytes_total', 'Bytes of live records copied forward by compaction.', () => storage((s) => s.compaction.bytesCopied));
  sourceCounter('miniqueue_compaction_failures_total', 'Compaction passes cut short by an I/O error.', () => storage((s) => s.compaction.failures));

  new Gauge({
    name: 'miniqueue_connections',
    help: 'Client connections open now (an HTTP/2 session counts as one).',
    labelNames: ['protocol'],
    registers: [registry],
    collect() {
      for (const protocol of LISTENER_PROTOCOLS) this.set({ protocol }, admission.open[protocol]);
    },
  });
  sourceGauge('miniqueue_connections_max', 'The --max-connections limit, over both listeners.', () => admission.maxConnections);
  new Counter({
    name: 'miniqueue_connections_accepted_total',
    help: 'Client connections accepted since start.',
    labelNames: ['protocol'],
    registers: [registry],
    collect() {
      this.reset();
      for (const protocol of LISTENER_PROTOCOLS) this.inc({ protocol }, admission.accepted[protocol]);
    },
  });
  new Counter({
    name: 'miniqueue_refusals_total',
    help: 'Connections, requests and commands refused by a limit or by authentication, by reason.',
    labelNames: ['protocol', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const protocol of LISTENER_PROTOCOLS) {
        for (const reason of REFUSAL_REASONS_BY_PROTOCOL[protocol]) this.inc({ protocol, reason }, admission.refused[protocol][reason]);
      }
    },
  });

  return {
    registry,
    contentType: registry.contentType,
    observeFsync(durationMs: number): void {
      fsyncSeconds.observe(durationMs / 1000);
    },
    async fsyncHistogram(): Promise<FsyncHistogram> {
      const { values } = await fsyncSeconds.get();
      const out: FsyncHistogram = { count: 0, sumSeconds: 0, buckets: [] };
      for (const v of values) {
        if (v.metricName === 'miniqueue_fsync_duration_seconds_count') out.count = v.value;
        else if (v.metricName === 'miniqueue_fsync_duration_seconds_sum') out.sumSeconds = v.value;
        else out.buckets.push({ leSeconds: Number(v.labels.le), count: v.value });
      }
      return out;
    },
    async render(): Promise<string> {
      snapshotTopics();
      return registry.metrics();
    },
  };
}
