/**
 * What replay still needs of each segment: the broker's knowledge that compaction acts on
 * (issue #4; moved off log/segment.ts by issue 12, so that log/ holds bytes only).
 *
 * Compaction is split in two. log/compactor.ts is the mechanism (pick segments, have them copied,
 * fdatasync, unlink, fsync the directory, in the order that keeps a crash safe) and asks through
 * its CompactionPolicy. The broker is the policy: this file answers which segments are removable
 * and what copying the others forward costs, live-accounting.ts keeps the counts below in step
 * with the durable records, and evacuate.ts does the copying.
 *
 * A segment is removable once every count is zero, no ACK in it is still needed and no
 * DELETE_TOPIC in it is. What keeps a record needed, per kind (see live-accounting.ts for when
 * each count changes):
 * - the current PUBLISH/RESTORE of a live message (liveMessages): it holds the payload;
 * - a NACK/BACK/DACK/DELIVER of a live message whose PUBLISH/RESTORE is in another segment
 *   (refMessages): it decides the message's place or dackCount;
 * - the newest PUBLISH/RESTORE/TOPIC of an existing topic (topicMarks): the topic exists;
 * - an ACK, while an older segment holds a PUBLISH/RESTORE of that message (acks), or the message
 *   would come back. Compaction may write it again later in the log instead;
 * - a DELETE_TOPIC, while an older segment holds a record that replay would apply to that topic
 *   without it (deletedTopics, checked against the older segments' recordTopics). Copying cannot
 *   free it.
 *
 * The topics' counters (published, acked, deadLettered) keep no segment: before segments are
 * deleted, counter-snapshots.ts writes a COUNTERS record for each existing topic in their
 * recordTopics, which replaces what replay counted from them.
 */
import type { CompactionPolicy } from '../log/compactor.js';
import { RecordType, recordSizeBytes } from '../log/record.js';
import type { Segment } from '../log/segment.js';

/** Rough size of a TOPIC record, to weigh a segment that keeps topics alive. */
const TOPIC_RECORD_BYTES = 48;

/** An ACK record that replay needs while one of `deps` (older segments) exists. */
export interface AckRef {
  readonly messageId: number;
  readonly topic: string;
  /** Segments holding a PUBLISH/RESTORE of the message; pruned as they are deleted. */
  deps: Segment[];
  /** Set once compaction wrote the ACK again in a newer segment, which then keeps it. */
  moved: boolean;
}

/** The live accounting of one segment, from its durable records (see the file comment). */
export class SegmentLiveness {
  /** Live messages whose current PUBLISH/RESTORE record (their payload) is in this segment. */
  liveMessages = 0;
  /** Bytes of those PUBLISH/RESTORE records. */
  liveBytes = 0;
  /**
   * Live messages whose current PUBLISH/RESTORE is in another segment but that have a NACK, BACK,
   * DACK or DELIVER record here: that record decides their place or dackCount on replay.
   */
  refMessages = 0;
  /** Bytes of the PUBLISH/RESTORE records of those messages (what copying them forward costs). */
  refBytes = 0;
  /** Existing topics whose newest PUBLISH, RESTORE or TOPIC record is here (their existence). */
  topicMarks = 0;
  /**
   * ACKs here of messages that still have a PUBLISH/RESTORE in an older segment: while one of
   * those exists, the ACK must stay (or be written again later in the log), or the message would
   * come back on replay. Null when none.
   */
  acks: AckRef[] | null = null;
  /** Topics with a DELETE_TOPIC record here; it must stay while an older segment created the topic. */
  deletedTopics: Set<string> | null = null;
  /**
   * Topics with a PUBLISH, RESTORE, TOPIC, ACK or COUNTERS record here, live or not, and the
   * source topics of dead letters here: the topics whose existence or counters replay of this
   * segment changes.
   */
  recordTopics: Set<string> | null = null;
  /** The last topic added to recordTopics (saves a Set lookup per record). */
  lastRecordTopic = '';
}

/**
 * The live accounting of every segment, and the answers compaction asks for. Records are kept in
 * a WeakMap so that each lives exactly as long as its Segment object, as when they were fields of
 * Segment: AckRef.deps and MessageStore.prevOrigins hold deleted segments until they prune them.
 */
export class SegmentAccounting implements Omit<CompactionPolicy, 'evacuate'> {
  readonly #bySegment = new WeakMap<Segment, SegmentLiveness>();
  /** The segment asked for last and its record: nearly every call is about the active segment. */
  #lastSegment: Segment | null = null;
  #last: SegmentLiveness | null = null;

  /** The record of `segment`, created empty on first use. */
  of(segment: Segment): SegmentLiveness {
    if (segment === this.#lastSegment) return this.#last!;
    let liveness = this.#bySegment.get(segment);
    if (liveness === undefined) {
      liveness = new SegmentLiveness();
      this.#bySegment.set(segment, liveness);
    }
    this.#lastSegment = segment;
    this.#last = liveness;
    return liveness;
  }

  /** Notes a record of `topic` in `segment` (see recordTopics). */
  noteTopicRecord(segment: Segment, topic: string): void {
    const liveness = this.of(segment);
    if (liveness.lastRecordTopic === topic) return;
    liveness.lastRecordTopic = topic;
    (liveness.recordTopics ??= new Set()).add(topic);
  }

  /** The union of the recordTopics of `segments`. */
  topicsIn(segments: Iterable<Segment>): Set<string> {
    const out = new Set<string>();
    for (const segment of segments) {
      const topics = this.#bySegment.get(segment)?.recordTopics;
      if (topics !== undefined && topics !== null) for (const t of topics) out.add(t);
    }
    return out;
  }

  /** Notes a durable DELETE_TOPIC record of `topic` in `segment` (see deletedTopics). */
  noteDeletedTopic(segment: Segment, topic: string): void {
    (this.of(segment).deletedTopics ??= new Set()).add(topic);
  }

  /**
   * An ACK of message `messageId` is durable in `segment`: replay needs it while one of `origins`
   * (segments holding a PUBLISH/RESTORE of the message) older than `segment` exists.
   */
  noteAckRecord(segment: Segment, messageId: number, topic: string, origins: readonly Segment[]): void {
    let deps: Segment[] | null = null;
    for (const o of origins) {
      if (o !== segment && o.open && o.baseOffset < segment.baseOffset && (deps === null || !deps.includes(o))) (deps ??= []).push(o);
    }
    if (deps !== null) (this.of(segment).acks ??= []).push({ messageId, topic, deps, moved: false });
  }

  /**
   * The ACKs of `segment` replay still needs (dropping those whose dependencies are all gone, or
   * that were written again). Empty when none.
   */
  neededAcks(segment: Segment): AckRef[] {
    const liveness = this.of(segment);
    const acks = liveness.acks;
    if (acks === null) return [];
    const needed: AckRef[] = [];
    for (const ref of acks) {
      if (ref.moved) continue;
      let open = 0;
      for (const d of ref.deps) if (d.open) ref.deps[open++] = d;
      ref.deps.length = open;
      if (open > 0) needed.push(ref);
    }
    liveness.acks = needed.length > 0 ? needed : null;
    return needed;
  }

  /** CompactionPolicy.isRemovable: nothing in `segments[index]` is needed (file comment). */
  isRemovable(segments: readonly Segment[], index: number): boolean {
    const segment = segments[index]!;
    const s = this.of(segment);
    if (s.liveMessages > 0 || s.refMessages > 0 || s.topicMarks > 0) return false;
    return this.neededAcks(segment).length === 0 && !this.#neededDeletes(segments, index);
  }

  /**
   * CompactionPolicy.copyForwardBytes: the bytes of the RESTORE, TOPIC and ACK records that
   * evacuate.ts would write for `segments[index]`; null when nothing is needed there, or a needed
   * DELETE_TOPIC keeps it whatever is copied.
   */
  copyForwardBytes(segments: readonly Segment[], index: number): number | null {
    const segment = segments[index]!;
    const s = this.of(segment);
    const acks = this.neededAcks(segment);
    if (s.liveMessages === 0 && s.refMessages === 0 && s.topicMarks === 0 && acks.length === 0) return null;
    if (this.#neededDeletes(segments, index)) return null;
    let neededBytes = s.liveBytes + s.refBytes + s.topicMarks * TOPIC_RECORD_BYTES;
    for (const ref of acks) neededBytes += recordSizeBytes(RecordType.ACK, ref.topic.length, 0);
    return neededBytes;
  }

  /** Whether replay still needs a DELETE_TOPIC of `segments[index]`: an older segment has records of that topic. */
  #neededDeletes(segments: readonly Segment[], index: number): boolean {
    const s = this.of(segments[index]!);
    const deleted = s.deletedTopics;
    if (deleted === null) return false;
    for (const topic of deleted) {
      let created = false;
      for (let j = 0; j < index && !created; j++) created = this.#bySegment.get(segments[j]!)?.recordTopics?.has(topic) === true;
      // No older segment creates it, and none can appear: this DELETE_TOPIC is done for good.
      if (!created) deleted.delete(topic);
    }
    if (deleted.size > 0) return true;
    s.deletedTopics = null;
    return false;
  }
}
