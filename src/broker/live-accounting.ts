/**
 * Live accounting for compaction (issue #4): which records of each segment replay still needs.
 *
 * It follows the records that are durable, not the state in memory: replay updates it record by
 * record, and at run time it changes only when an append completes successfully (completions
 * come in offset order, so it always describes a prefix of the log). A settle that takes effect
 * in memory at once but whose record then fails therefore never frees a segment.
 *
 * What keeps a record needed, per kind:
 * - the current PUBLISH/RESTORE of a live message (Segment.liveMessages): it holds the payload;
 * - a NACK/BACK/DACK/DELIVER of a live message whose PUBLISH/RESTORE is in another segment
 *   (Segment.refMessages): it decides the message's place or dackCount. Once a RESTORE copies the
 *   message's whole state forward, or the message is acked or deleted, it is no longer needed;
 * - an ACK, while an older segment holds a PUBLISH/RESTORE of that message (Segment.acks),
 *   or the message would come back. Compaction may write it again later in the log instead;
 * - a DELETE_TOPIC, while an older segment holds a PUBLISH/RESTORE/TOPIC of that topic
 *   (Segment.deletedTopics, checked against Segment.createdTopics by the compactor);
 * - the newest PUBLISH/RESTORE/TOPIC of an existing topic (Segment.topicMarks): the topic exists.
 */
import type { Segment } from '../log/segment.js';
import type { MessageStore } from './message-store.js';
import type { Topic } from './topic.js';

/** Message `h` is live and its current PUBLISH/RESTORE record, `recordBytes` long, is in `segment`. */
export function pinOrigin(store: MessageStore, h: number, segment: Segment, recordBytes: number): void {
  store.setSegment(h, segment);
  store.pinned[h] = recordBytes;
  segment.liveMessages++;
  segment.liveBytes += recordBytes;
}

/** Drops what `h` counts in segments, without freeing its handle. */
function dropPins(store: MessageStore, h: number): void {
  const bytes = store.pinned[h]!;
  if (bytes === 0) return;
  const segment = store.segmentOf(h)!;
  segment.liveMessages--;
  segment.liveBytes -= bytes;
  const refs = store.refSegments.get(h);
  if (refs !== undefined) {
    for (let i = 0; i < refs.length; i++) {
      refs[i]!.refMessages--;
      refs[i]!.refBytes -= bytes;
    }
    store.refSegments.delete(h);
  }
  store.pinned[h] = 0;
}

/**
 * Message `h` no longer needs its PUBLISH/RESTORE or NACK/BACK/DACK/DELIVER records (durably
 * gone, or superseded). Its handle is freed if it is GONE.
 */
export function unpin(store: MessageStore, h: number): void {
  dropPins(store, h);
  store.releaseIfDone(h);
}

/** A NACK/BACK/DACK/DELIVER record of message `h` is durable in `segment`. */
export function noteRef(store: MessageStore, h: number, segment: Segment): void {
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
  segment.refMessages++;
  segment.refBytes += bytes;
}

/**
 * An ACK of message `messageId` is durable in `segment`: replay needs it while one of `origins`
 * (segments holding a PUBLISH/RESTORE of the message) older than `segment` exists.
 */
export function noteAckRecord(segment: Segment, messageId: number, topic: string, origins: readonly Segment[]): void {
  let deps: Segment[] | null = null;
  for (const o of origins) {
    if (o !== segment && o.open && o.baseOffset < segment.baseOffset && (deps === null || !deps.includes(o))) (deps ??= []).push(o);
  }
  if (deps !== null) (segment.acks ??= []).push({ messageId, topic, deps, moved: false });
}

/**
 * The ACK of message `h` is durable in `segment`: its records are no longer needed, but the ACK is
 * while older PUBLISH/RESTOREs of it exist. `trackAck` false (compaction off: nothing would ever
 * prune them) keeps no record of the ACK. Frees the handle if the message is GONE.
 */
export function noteAcked(store: MessageStore, h: number, segment: Segment, trackAck: boolean): void {
  if (store.pinned[h] === 0) return;
  const origin = store.segmentOf(h)!;
  const prev = store.prevOrigins.get(h);
  if (trackAck && (origin !== segment || prev !== undefined)) {
    noteAckRecord(segment, store.ids[h]!, store.topicOf(h).name, prev === undefined ? [origin] : [origin, ...prev]);
  }
  store.prevOrigins.delete(h);
  unpin(store, h);
}

/**
 * Message `h`'s whole state is now in a RESTORE record of `recordBytes` in `segment`: what it
 * needed before is superseded. Its old PUBLISH/RESTORE stays in `prevOrigins` while that file exists.
 */
export function reoriginate(store: MessageStore, h: number, segment: Segment, recordBytes: number): void {
  const old = store.segmentOf(h);
  const before = store.prevOrigins.get(h);
  const prev = before === undefined ? [] : before.filter((s) => s.open);
  if (old !== null && old !== segment && old.open && !prev.includes(old)) prev.push(old);
  dropPins(store, h);
  if (prev.length > 0) store.prevOrigins.set(h, prev);
  else store.prevOrigins.delete(h);
  pinOrigin(store, h, segment, recordBytes);
}

/**
 * Replay met a RESTORE of a message that is already live as handle `old` (forgotten by the
 * caller): handle `h`, whose origin is `segment`, takes over. Call before {@link pinOrigin} of `h`.
 */
export function supersede(store: MessageStore, old: number, h: number, segment: Segment): void {
  const prev = store.prevOrigins.get(old) ?? [];
  const oldSegment = store.segmentOf(old);
  if (oldSegment !== null && oldSegment !== segment && !prev.includes(oldSegment)) prev.push(oldSegment);
  store.prevOrigins.delete(old);
  unpin(store, old);
  if (prev.length > 0) store.prevOrigins.set(h, prev);
}

/** The newest durable record that makes `topic` exist is in `segment` (null: deleted). */
export function setTopicMark(topic: Topic, segment: Segment | null): void {
  const old = topic.markSegment;
  if (old === segment) return;
  if (old !== null) old.topicMarks--;
  topic.markSegment = segment;
  if (segment !== null) segment.topicMarks++;
}
