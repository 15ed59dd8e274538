/**
 * Live accounting for compaction (issue #4): keeps each segment's record of what replay still
 * needs (segment-accounting.ts) in step with the messages (message-store.ts).
 *
 * It follows the records that are durable, not the state in memory: replay updates it record by
 * record, and at run time it changes only when an append completes successfully (completions
 * come in offset order, so it always describes a prefix of the log). A settle that takes effect
 * in memory at once but whose record then fails therefore never frees a segment.
 *
 * Per message, the store keeps where its current PUBLISH/RESTORE is (`segmentOf`), the bytes it
 * counts there while live (`pinned`), the other segments whose NACK/BACK/DACK/DELIVER records of
 * it count it (`refSegments`), and the older segments still holding a PUBLISH/RESTORE of it that
 * a RESTORE superseded (`prevOrigins`, which an ACK of it must outlive). Once a RESTORE copies the
 * message's whole state forward, or the message is acked or deleted, its older records are no
 * longer needed.
 */
import type { Segment } from '../log/segment.js';
import type { MessageStore } from './message-store.js';
import { SegmentAccounting, type SegmentLiveness } from './segment-accounting.js';
import type { Topic } from './topic.js';

/** The broker's live accounting: one per broker, over its message store. */
export class LiveAccounting {
  /** Per-segment records; also what compaction asks (CompactionPolicy). */
  readonly segments = new SegmentAccounting();
  readonly #store: MessageStore;
  readonly #trackAcks: boolean;

  /**
   * `trackAcks` false (compaction off: nothing would ever prune them) keeps no record of the ACKs
   * compaction might have to write again.
   */
  constructor(store: MessageStore, trackAcks: boolean) {
    this.#store = store;
    this.#trackAcks = trackAcks;
  }

  /** The record of `segment` (tests and metrics read it; only this class changes its counts). */
  of(segment: Segment): Readonly<SegmentLiveness> {
    return this.segments.of(segment);
  }

  /** Message `h` is live and its current PUBLISH/RESTORE record, `recordBytes` long, is in `segment`. */
  pinOrigin(h: number, segment: Segment, recordBytes: number): void {
    const store = this.#store;
    store.setSegment(h, segment);
    store.pinned[h] = recordBytes;
    const liveness = this.segments.of(segment);
    liveness.liveMessages++;
    liveness.liveBytes += recordBytes;
  }

  /** Drops what `h` counts in segments, without freeing its handle. */
  #dropPins(h: number): void {
    const store = this.#store;
    const bytes = store.pinned[h]!;
    if (bytes === 0) return;
    const liveness = this.segments.of(store.segmentOf(h)!);
    liveness.liveMessages--;
    liveness.liveBytes -= bytes;
    const refs = store.refSegments.get(h);
    if (refs !== undefined) {
      for (let i = 0; i < refs.length; i++) {
        const ref = this.segments.of(refs[i]!);
        ref.refMessages--;
        ref.refBytes -= bytes;
      }
      store.refSegments.delete(h);
    }
    store.pinned[h] = 0;
  }

  /**
   * Message `h` no longer needs its PUBLISH/RESTORE or NACK/BACK/DACK/DELIVER records (durably
   * gone, or superseded). Its handle is freed if it is GONE.
   */
  unpin(h: number): void {
    this.#dropPins(h);
    this.#store.releaseIfDone(h);
  }

  /** A NACK/BACK/DACK/DELIVER record of message `h` is durable in `segment`. */
  noteRef(h: number, segment: Segment): void {
    const store = this.#store;
    const bytes = store.pinned[h]!;
    if (bytes === 0 || segment === store.segmentOf(h)) return;
    const refs = store.refSegments.get(h);
    if (refs === undefined) {
      store.refSegments.set(h, [segment]);
    } else {
      // Records of one message come in log order, so a segment already noted is the last one.
      if (refs[refs.length - 1] === segment) return;
      refs.push(segment);
    }
    const liveness = this.segments.of(segment);
    liveness.refMessages++;
    liveness.refBytes += bytes;
  }

  /**
   * The ACK of message `h` is durable in `segment`: its records are no longer needed, but the ACK is
   * while older PUBLISH/RESTOREs of it exist. Frees the handle if the message is GONE.
   */
  noteAcked(h: number, segment: Segment): void {
    const store = this.#store;
    if (store.pinned[h] === 0) return;
    const origin = store.segmentOf(h)!;
    const prev = store.prevOrigins.get(h);
    if (this.#trackAcks && (origin !== segment || prev !== undefined)) {
      this.segments.noteAckRecord(segment, store.ids[h]!, store.topicOf(h).name, prev === undefined ? [origin] : [origin, ...prev]);
    }
    store.prevOrigins.delete(h);
    this.unpin(h);
  }

  /**
   * Message `h`'s whole state is now in a RESTORE record of `recordBytes` in `segment`: what it
   * needed before is superseded. Its old PUBLISH/RESTORE stays in `prevOrigins` while that file exists.
   */
  reoriginate(h: number, segment: Segment, recordBytes: number): void {
    const store = this.#store;
    const old = store.segmentOf(h);
    const before = store.prevOrigins.get(h);
    const prev = before === undefined ? [] : before.filter((s) => s.open);
    if (old !== null && old !== segment && old.open && !prev.includes(old)) prev.push(old);
    this.#dropPins(h);
    if (prev.length > 0) store.prevOrigins.set(h, prev);
    else store.prevOrigins.delete(h);
    this.pinOrigin(h, segment, recordBytes);
  }

  /**
   * Replay met a RESTORE of a message that is already live as handle `old` (forgotten by the
   * caller): handle `h`, whose origin is `segment`, takes over. Call before {@link pinOrigin} of `h`.
   */
  supersede(old: number, h: number, segment: Segment): void {
    const store = this.#store;
    const prev = store.prevOrigins.get(old) ?? [];
    const oldSegment = store.segmentOf(old);
    if (oldSegment !== null && oldSegment !== segment && !prev.includes(oldSegment)) prev.push(oldSegment);
    store.prevOrigins.delete(old);
    this.unpin(old);
    if (prev.length > 0) store.prevOrigins.set(h, prev);
  }

  /** The newest durable record that makes `topic` exist is in `segment` (null: deleted). */
  setTopicMark(topic: Topic, segment: Segment | null): void {
    const old = topic.markSegment;
    if (old === segment) return;
    if (old !== null) this.segments.of(old).topicMarks--;
    topic.markSegment = segment;
    if (segment !== null) this.segments.of(segment).topicMarks++;
  }

  /** Notes a PUBLISH, RESTORE, TOPIC, ACK or COUNTERS record of `topic` in `segment` (SegmentLiveness.recordTopics). */
  noteTopicRecord(segment: Segment, topic: string): void {
    this.segments.noteTopicRecord(segment, topic);
  }

  /** Notes a durable DELETE_TOPIC record of `topic` in `segment` (SegmentLiveness.deletedTopics). */
  noteDeletedTopic(segment: Segment, topic: string): void {
    this.segments.noteDeletedTopic(segment, topic);
  }
}
