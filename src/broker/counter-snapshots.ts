/**
 * Topic counters that survive compaction (issue 13 finding 8, SPEC §7 Stats): `published`,
 * `acked` and `deadLettered` of a topic are rebuilt by replay from its PUBLISH, ACK and
 * dead-letter RESTORE records, and compaction deletes those records once they are no longer
 * needed for the messages. Before it deletes segments, this writes a COUNTERS record (record.ts)
 * for every existing topic that has records in them: the topic's counters as replay of the whole
 * log before that record counts them (Topic.loggedPublished ...). Replay sets the counters to the
 * values of a COUNTERS record and goes on counting the records after it.
 *
 * Why the values are exact. A COUNTERS record is a barrier in the writer (LogAppend.beforeEncode):
 * it is encoded only once every record appended before it has completed, so the logged counters,
 * which change only when a record completes, in log order, count exactly the records before it.
 * A record that failed is not in the log and was not counted; if one completes after, so did the
 * COUNTERS record not (the writer fails every record written after a failed one).
 *
 * Why deleting segments after it changes nothing. Whatever replay counts from the records before
 * a COUNTERS record is replaced by its values, whichever of them still exist, so a crash between
 * writing it and deleting the segments (all still there) counts nothing twice. A record after a
 * topic's newest COUNTERS record counts the same in the compacted log as in the whole one, because
 * every deletion of a segment holding records of that topic writes a newer COUNTERS record first
 * (an ACK counts only while replay holds its message: the PUBLISH or RESTORE it needs, or an
 * earlier ACK of it, can only be gone from a segment that was deleted). A DELETE_TOPIC resets the
 * counters on replay; compaction keeps it while an older segment holds a COUNTERS record of that
 * topic (segment-accounting.ts recordTopics).
 */
import type { EvacuationResult } from '../log/compactor.js';
import { LogAppend, type LogWriter } from '../log/log-writer.js';
import { fillCountersPayload } from '../log/record.js';
import type { Segment } from '../log/segment.js';
import type { LiveAccounting } from './live-accounting.js';
import type { Topic } from './topic.js';

/** What writing counter snapshots needs from the broker. */
export interface CounterSnapshotDeps {
  live: LiveAccounting;
  topics: Map<string, Topic>;
  writer: LogWriter;
}

/** One COUNTERS record of a topic, in a group. */
class CountersAppend extends LogAppend {
  /** The topic whose counters it carries (set by {@link CountersAppend.of}). */
  topicRef!: Topic;
  /** The group it is appended in (set by {@link CountersAppend.of}). */
  group!: SnapshotGroup;

  /** The COUNTERS record of `topic` in `group`, with zeros until the group's barrier fills it. */
  static of(topic: Topic, group: SnapshotGroup): CountersAppend {
    const rec = CountersAppend.forCounters(topic.name, { published: 0, acked: 0, deadLettered: 0 }, countersDone);
    rec.topicRef = topic;
    rec.group = group;
    return rec;
  }
}

/** The COUNTERS records appended together: the first is the barrier that fills them all. */
class SnapshotGroup {
  readonly records: CountersAppend[] = [];
  #pending = 0;
  #error: Error | null = null;
  #resolve: ((result: EvacuationResult) => void) | null = null;
  #reject: ((err: Error) => void) | null = null;
  readonly result: EvacuationResult = { messages: 0, bytes: 0, segments: new Set() };

  constructor(readonly live: LiveAccounting) {}

  /** Every record appended after the group's first one: no record comes between them. */
  readonly fill = (): void => {
    for (const rec of this.records) {
      const t = rec.topicRef;
      fillCountersPayload(rec.payload!, t.loggedPublished, t.loggedAcked, t.loggedDeadLettered);
    }
  };

  append(writer: LogWriter): Promise<EvacuationResult> {
    this.records[0]!.beforeEncode = this.fill;
    this.#pending = this.records.length;
    const done = new Promise<EvacuationResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    for (const rec of this.records) writer.append(rec);
    return done;
  }

  completed(err: Error | null, rec: CountersAppend): void {
    if (err !== null) this.#error ??= err;
    else {
      this.live.noteTopicRecord(rec.segment!, rec.topic);
      this.result.bytes += rec.sizeBytes;
      this.result.segments.add(rec.segment!);
    }
    if (--this.#pending > 0) return;
    if (this.#error !== null) this.#reject!(this.#error);
    else this.#resolve!(this.result);
  }
}

function countersDone(err: Error | null, rec: CountersAppend): void {
  rec.group.completed(err, rec);
}

/**
 * Writes a COUNTERS record for every existing topic with records in `segments`, which are about to
 * be deleted (CompactionPolicy.retire). Resolves when all are written (per fsync policy); rejects
 * with the first write error after all completed. Resolves at once with nothing written when no
 * such topic exists.
 */
export function writeCounterSnapshots(deps: CounterSnapshotDeps, segments: readonly Segment[]): Promise<EvacuationResult> {
  const group = new SnapshotGroup(deps.live);
  for (const name of deps.live.segments.topicsIn(segments)) {
    const topic = deps.topics.get(name);
    // A topic the log says is deleted counts from zero after its DELETE_TOPIC: nothing to keep.
    if (topic !== undefined && topic.markSegment !== null) group.records.push(CountersAppend.of(topic, group));
  }
  if (group.records.length === 0) return Promise.resolve(group.result);
  return group.append(deps.writer);
}
