/**
 * Dead letters (SPEC §7): a message whose Nth delivery (`--max-deliveries`) ends without an ACK
 * (NACK, BACK, DACK, ack timeout, disconnect) moves to `<topic>.dead`, with its dackCount and
 * deliveries.
 *
 * Two records: a RESTORE in the dead-letter topic, a new message whose id is the record's own
 * offset (so the id is new and unique, and replay tells it from compaction's RESTOREs), placed
 * at the back; then, only once that is durable, an ACK of the original. A crash in between
 * leaves both, a duplicate (at-least-once), never neither. The new message is visible once its
 * record is durable, as a publish is. If the RESTORE fails the original goes back to the front,
 * and dead-lettering pauses for a second rather than spin on the failing disk.
 */
import { DEAD_LETTER_SUFFIX, type DoneCallback } from '../engine/queue-engine.js';
import type { LogWriter } from '../log/log-writer.js';
import { Placement, RESTORE_TAIL_BYTES, type RestoreState } from '../log/record.js';
import { BrokerAppend } from './broker-append.js';
import type { BrokerCore } from './broker-core.js';
import type { Dispatcher } from './dispatch.js';
import type { Topic } from './topic.js';

/** How long dead-lettering pauses after a dead-letter record failed (ms). */
const PAUSE_AFTER_FAILURE_MS = 1000;

export class DeadLetters {
  readonly #core: BrokerCore;
  readonly #dispatcher: Dispatcher;
  readonly #maxDeliveries: number;
  /**
   * Until this time (Date.now() ms) no dead-lettering is tried: the last dead-letter record failed
   * (disk full, EIO), and retrying at every delivery attempt would spin on the failing disk.
   */
  #pausedUntilMs = 0;

  constructor(core: BrokerCore, maxDeliveries: number, dispatcher: Dispatcher) {
    this.#core = core;
    this.#maxDeliveries = maxDeliveries;
    this.#dispatcher = dispatcher;
  }

  /** Whether message `h`, whose delivery just ended without an ACK, has used up `--max-deliveries`. */
  exhausted(h: number, topic: Topic): boolean {
    return (
      this.#maxDeliveries > 0 &&
      this.#core.store.deliveries[h]! >= this.#maxDeliveries &&
      !topic.name.endsWith(DEAD_LETTER_SUFFIX) &&
      (this.#pausedUntilMs === 0 || Date.now() >= this.#pausedUntilMs)
    );
  }

  /**
   * Moves message `h` (taken out of every queue by the caller, or just popped from the ready
   * queue) to `<topic>.dead` (see the file comment). Returns false, and changes nothing, when
   * that is impossible: the payload cannot be read back, or the topic name is too long for the
   * suffix. `cb` (a settle's reply) runs once the move is durable.
   */
  move(writer: LogWriter, h: number, topic: Topic, cb: DoneCallback | null): boolean {
    const { store, logger } = this.#core;
    const msgId = store.ids[h]!;
    const deadName = topic.name + DEAD_LETTER_SUFFIX;
    if (deadName.length > 255) {
      if (!topic.deadLetterNameWarned) {
        topic.deadLetterNameWarned = true;
        logger.warn({ topic: topic.name, id: msgId }, 'topic name too long for a dead-letter topic: its messages are never dead-lettered (logged once)');
      }
      return false;
    }
    let payload: Buffer;
    try {
      payload = store.payloadOf(h);
    } catch (err) {
      logger.error({ err, topic: topic.name, id: msgId }, 'could not read a payload back to dead-letter it: message kept');
      return false;
    }
    this.#core.topics.forget(h, topic);
    topic.deadLettered++;
    const id = writer.nextAppendOffset;
    const deliveries = store.deliveries[h]!;
    const dackCount = store.dackCounts[h]!;
    const state: RestoreState = { messageId: id, dackCount, dueAtMs: 0, placement: Placement.BACK, placeOffset: id, deliveries };
    const topics = this.#core.topics;
    const original = { h, id: msgId, deletes: topics.deletesOf(deadName), sourceDeletes: topics.deletesOf(topic.name), countsAsAcked: false, reply: cb };
    writer.append(BrokerAppend.deadLetterCopy(deadName, state, payload, original, this.#onWritten));
    logger.warn(
      { topic: topic.name, id: msgId, deliveries, dackCount, deadLetterTopic: deadName, deadLetterId: id },
      'message moved to its dead-letter topic after --max-deliveries deliveries',
    );
    return true;
  }

  readonly #onWritten = (err: Error | null, rec: BrokerAppend): void => {
    const { h, originalId: id, onDone: cb, deletes } = rec;
    const core = this.#core;
    const store = core.store;
    // The original stays allocated (GONE, pinned) until its ACK is durable.
    const current = store.isCurrent(h, id);
    if (err !== null) {
      // Delivered normally for a second, rather than moved again at once onto the failing disk.
      this.#pausedUntilMs = Date.now() + PAUSE_AFTER_FAILURE_MS;
      const topic = current ? this.#dispatcher.reinstate(h) : undefined;
      if (topic !== undefined) topic.deadLettered--;
      cb?.(core.storageError(err));
      return;
    }
    const segment = rec.segment!;
    const sourceName = rec.topic.slice(0, -DEAD_LETTER_SUFFIX.length);
    core.live.noteTopicRecord(segment, sourceName);
    core.live.noteTopicRecord(segment, rec.topic);
    const deadTopic = core.topics.topic(rec.topic);
    // As replay counts this record (replay.ts): a publish of the dead-letter topic, and a dead
    // letter of the source while the log says it exists.
    deadTopic.loggedPublished++;
    const source = core.topics.get(sourceName);
    if (source !== undefined && source.markSegment !== null) source.loggedDeadLettered++;
    if (deletes === core.topics.deletesOf(rec.topic)) {
      const payload = rec.payload!.subarray(RESTORE_TAIL_BYTES);
      const copy = core.topics.addDurable(rec.offset, deadTopic, segment, rec.payloadPosition + RESTORE_TAIL_BYTES, payload, rec.sizeBytes);
      core.live.setTopicMark(deadTopic, segment);
      store.dackCounts[copy] = rec.dackCount;
      // The deliveries field ends the RESTORE tail (record.ts).
      const deliveries = rec.payload!.readUInt32LE(RESTORE_TAIL_BYTES - 4);
      store.deliveries[copy] = deliveries;
      store.carried.set(copy, deliveries);
      deadTopic.exists = true;
      deadTopic.published++;
      deadTopic.pushReadyBack(copy);
    }
    // else: the dead-letter topic was deleted after the append; its DELETE_TOPIC follows in the log.
    const topicName = current ? store.topicOf(h).name : sourceName;
    // A delete of the source since the move puts its DELETE_TOPIC before this ACK in the log: the
    // original is gone from replay's queues there, and the ACK is not counted.
    const countsAsAcked = rec.sourceDeletes === core.topics.deletesOf(sourceName);
    const ack = { h, id, deletes, sourceDeletes: rec.sourceDeletes, countsAsAcked, reply: cb };
    core.writer!.append(BrokerAppend.deadLetterAck(topicName, ack, this.#onAcked));
    this.#dispatcher.dispatch(deadTopic);
  };

  readonly #onAcked = (err: Error | null, rec: BrokerAppend): void => {
    const { h, originalId: id, onDone: cb } = rec;
    const core = this.#core;
    // On failure the original stays in the log next to its copy: a duplicate after a restart, and
    // its segment is kept until then. The move itself is durable, so the settle succeeded.
    if (err === null) {
      // Left its topic through an ACK record, as replay will count it.
      const topic = core.topics.get(rec.topic);
      if (topic !== undefined && rec.countsAsAcked) {
        topic.loggedAcked++;
        // The counters shown were reset by a delete appended since, which follows this ACK.
        if (core.topics.deletesOf(rec.topic) === rec.sourceDeletes) topic.acked++;
      }
      core.live.noteTopicRecord(rec.segment!, rec.topic);
      if (core.store.isCurrent(h, id)) core.live.noteAcked(h, rec.segment!);
    }
    cb?.(null);
  };
}
