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
import type { Message } from './message.js';
import type { Topic } from './topic.js';

/** `msg` is live and its current PUBLISH/RESTORE record, `recordBytes` long, is in `segment`. */
export function pinOrigin(msg: Message, segment: Segment, recordBytes: number): void {
  msg.segment = segment;
  msg.pinnedBytes = recordBytes;
  segment.liveMessages++;
  segment.liveBytes += recordBytes;
}

/** `msg` no longer needs its PUBLISH/RESTORE or NACK/BACK/DACK/DELIVER records (durably gone, or superseded). */
export function unpin(msg: Message): void {
  const bytes = msg.pinnedBytes;
  if (bytes === 0) return;
  const segment = msg.segment!;
  segment.liveMessages--;
  segment.liveBytes -= bytes;
  const refs = msg.refSegments;
  if (refs !== null) {
    for (let i = 0; i < refs.length; i++) {
      refs[i]!.refMessages--;
      refs[i]!.refBytes -= bytes;
    }
    msg.refSegments = null;
  }
  msg.pinnedBytes = 0;
}

/** A NACK/BACK/DACK/DELIVER record of `msg` is durable in `segment`. */
export function noteRef(msg: Message, segment: Segment): void {
  if (msg.pinnedBytes === 0 || segment === msg.segment) return;
  const refs = msg.refSegments;
  if (refs === null) {
    msg.refSegments = [segment];
  } else {
    // Records of one message come in log order, so a segment already noted is the last one.
    if (refs[refs.length - 1] === segment) return;
    refs.push(segment);
  }
  segment.refMessages++;
  segment.refBytes += msg.pinnedBytes;
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
 * The ACK of `msg` is durable in `segment`: its records are no longer needed, but the ACK is
 * while older PUBLISH/RESTOREs of it exist. `trackAck` false (compaction off: nothing would ever
 * prune them) keeps no record of the ACK.
 */
export function noteAcked(msg: Message, segment: Segment, trackAck: boolean): void {
  if (msg.pinnedBytes === 0) return;
  const origin = msg.segment!;
  if (trackAck && (origin !== segment || msg.prevOrigins !== null)) {
    noteAckRecord(segment, msg.id, msg.topic, msg.prevOrigins === null ? [origin] : [origin, ...msg.prevOrigins]);
  }
  msg.prevOrigins = null;
  unpin(msg);
}

/**
 * `msg`'s whole state is now in a RESTORE record of `recordBytes` in `segment`: what it needed
 * before is superseded. Its old PUBLISH/RESTORE stays in `prevOrigins` while that file exists.
 */
export function reoriginate(msg: Message, segment: Segment, recordBytes: number): void {
  const old = msg.segment;
  const prev = msg.prevOrigins === null ? [] : msg.prevOrigins.filter((s) => s.open);
  if (old !== null && old !== segment && old.open && !prev.includes(old)) prev.push(old);
  unpin(msg);
  msg.prevOrigins = prev.length > 0 ? prev : null;
  pinOrigin(msg, segment, recordBytes);
}

/**
 * Replay met a RESTORE of a message that is already live as `old`: the new object `msg` takes
 * over. Call before {@link pinOrigin} of `msg`.
 */
export function supersede(old: Message, msg: Message): void {
  const prev = old.prevOrigins ?? [];
  if (old.segment !== null && old.segment !== msg.segment && !prev.includes(old.segment)) prev.push(old.segment);
  unpin(old);
  old.prevOrigins = null;
  msg.prevOrigins = prev.length > 0 ? prev : null;
}

/** The newest durable record that makes `topic` exist is in `segment` (null: deleted). */
export function setTopicMark(topic: Topic, segment: Segment | null): void {
  const old = topic.markSegment;
  if (old === segment) return;
  if (old !== null) old.topicMarks--;
  topic.markSegment = segment;
  if (segment !== null) segment.topicMarks++;
}
