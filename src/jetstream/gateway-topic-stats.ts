/**
 * A topic's STATS as one gateway reports them (README "Differences from the log engine"): the
 * cluster's snapshot (cluster-stats.ts) seen from this gateway, whose own pulled-ahead spares are
 * ready for its clients though JetStream counts them ack pending, and whose DACKs it counts itself.
 */
import type { TopicStats } from '../engine/queue-engine.js';
import type { TopicSnapshot } from './cluster-stats.js';
import type { TopicPuller } from './topic-puller.js';

/**
 * STATS of `topic` from its snapshot (undefined: not in the last one) and this gateway's puller
 * of it (undefined: never consumed here), at `nowMs` (Date.now()).
 */
export function gatewayTopicStats(topic: string, snap: TopicSnapshot | undefined, puller: TopicPuller | undefined, nowMs: number): TopicStats {
  const delayed = puller?.delayedCount(nowMs) ?? 0;
  const stored = snap?.stored ?? 0;
  const ackPending = snap?.ackPending ?? 0;
  // Messages this gateway pulled ahead and holds for its next requests are ack pending for
  // JetStream, but ready for a client: counted as ready (up to what the snapshot has pending).
  const spares = Math.min(puller?.spareCount ?? 0, Math.max(0, ackPending - delayed));
  return {
    topic,
    ready: Math.max(0, stored - ackPending) + spares,
    inFlight: Math.max(0, ackPending - delayed - spares),
    delayed,
    consumers: puller?.subscribers ?? 0,
    published: puller?.counters.published ?? 0,
    acked: puller?.counters.acked ?? 0,
  };
}
