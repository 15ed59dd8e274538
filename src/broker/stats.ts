/**
 * Read-only figures of the topics (SPEC §7 Stats and Metrics) and a diagnostic view of their
 * queues. The counters themselves live on Topic and are kept by the pieces that change them.
 */
import type { StorageStats, TopicCounters, TopicStats } from '../engine/queue-engine.js';
import type { CompactionStats } from '../log/compactor.js';
import type { LogWriter } from '../log/log-writer.js';
import type { SegmentLog } from '../log/segment-log.js';
import type { Message } from './message.js';
import { isRestoredReady, type TopicStore } from './topic-store.js';

/** Names of existing topics (published to and not deleted), sorted. */
export function topicNames(topics: TopicStore): string[] {
  const names: string[] = [];
  for (const t of topics.byName.values()) if (t.exists) names.push(t.name);
  return names.sort();
}

/** Stats of one topic, or undefined if it does not exist. */
export function topicStats(topics: TopicStore, name: string): TopicStats | undefined {
  const t = topics.get(name);
  if (t === undefined || !t.exists) return undefined;
  return {
    topic: t.name,
    ready: t.readyCount,
    inFlight: t.inFlight.size,
    delayed: t.delayed.size,
    consumers: t.consumers,
    published: t.published,
    acked: t.acked,
  };
}

/** Counters of one topic since it was created or this process started, or undefined if it does not exist. */
export function topicCounters(topics: TopicStore, name: string): TopicCounters | undefined {
  const t = topics.get(name);
  if (t === undefined || !t.exists) return undefined;
  return {
    published: t.published,
    acked: t.acked,
    nacked: t.nacked,
    backed: t.backed,
    dacked: t.dacked,
    redelivered: t.redelivered,
    ackTimeouts: t.ackTimeouts,
    deadLettered: t.deadLettered,
  };
}

/** The queues of one topic as they are in memory; see Broker.inspect. */
export interface TopicQueues {
  ready: Message[];
  delayed: Message[];
  inFlight: Message[];
}

/**
 * The queues of `topicName`: ready messages front to back, delayed and in-flight messages in no
 * particular order, or undefined for an unknown topic.
 */
export function inspectTopic(topics: TopicStore, topicName: string): TopicQueues | undefined {
  const t = topics.get(topicName);
  if (t === undefined) return undefined;
  const store = topics.messages;
  const view = (h: number): Message => store.view(h);
  const ready: Message[] = [];
  t.ready.forEach((h) => ready.push(view(h)));
  if (t.restoredReady !== null) {
    // During replay (loading): a handle freed and reused by a later RESTORE is listed twice.
    const seen = new Set<number>();
    for (const h of t.restoredReady) {
      if (!isRestoredReady(store, h, t) || seen.has(h)) continue;
      seen.add(h);
      ready.push(view(h));
    }
  }
  return { ready, delayed: [...t.delayed].map(view), inFlight: [...t.inFlight].map(view) };
}

/** The engine's storage figures (INFO, metrics, dashboard): the log's files, the writer's and compaction's counters. */
export function storageStatsOf(log: SegmentLog, writer: LogWriter, compaction: CompactionStats): StorageStats {
  const w = writer.stats;
  return {
    logBytes: log.sizeBytes,
    logSegments: log.segments.length,
    writtenBytes: w.bytes,
    writtenRecords: w.records,
    writeBatches: w.batches,
    failedBatches: w.failedBatches,
    fsyncs: w.fsyncs,
    compaction: { ...compaction },
  };
}
