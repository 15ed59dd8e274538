/**
 * Replay: rebuilds the topics, queues and live accounting from the log, record by record, when
 * the broker opens (SPEC §5).
 *
 * Every state change is in the log, so replay applies each record as the running broker did:
 * PUBLISH queues at the back, ACK forgets, NACK/BACK/DACK place, DELIVER marks in flight,
 * DELETE_TOPIC empties. A RESTORE (compaction, dead letters) carries a message's whole state and
 * replaces any older copy. When the log ends, messages placed by RESTOREs join their queues by
 * rank, and messages still in flight go to the front in their original delivery order (SPEC §2
 * "Delivery"). The store is sized once from a sample of the log, not grown record by record.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DEAD_LETTER_SUFFIX } from '../engine/queue-engine.js';
import { listSegments, segmentFileName } from '../log/files.js';
import { Placement, RecordType, type DecodedRecord } from '../log/record.js';
import type { Segment } from '../log/segment.js';
import type { BrokerCore } from './broker-core.js';
import { MessageState } from './message.js';
import type { MessageStore } from './message-store.js';
import { forEachRestoredReady } from './topic-store.js';
import type { Topic } from './topic.js';

/** Records replay looks at before it sizes the message store for the whole log. */
const SIZING_SAMPLE_RECORDS = 4096;

/** Bytes in the segment files of `dir` (0 when it does not exist yet). */
export function logSizeBytes(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  let total = 0;
  for (const base of listSegments(dir)) total += fs.statSync(path.join(dir, segmentFileName(base))).size;
  return total;
}

/** One replay of the log into `core` (call {@link apply} per record, then {@link finish}). */
export class Replay {
  readonly #core: BrokerCore;
  /** Handles of messages whose last record is a DELIVER (or a RESTORE in flight). */
  readonly #inFlight = new Set<number>();
  /** Until SIZING_SAMPLE_RECORDS were seen: the log's size and the records so far. */
  #sizing: { logBytes: number; records: number; recordBytes: number } | null;

  constructor(core: BrokerCore, logBytes: number) {
    this.#core = core;
    this.#sizing = { logBytes, records: 0, recordBytes: 0 };
  }

  /** Applies one record of the log, read from `segment`. */
  apply(rec: DecodedRecord, segment: Segment): void {
    const sizing = this.#sizing;
    if (sizing !== null) {
      sizing.records++;
      sizing.recordBytes += rec.sizeBytes;
      if (sizing.records === SIZING_SAMPLE_RECORDS) {
        // Enough to guess how many records the whole log holds: make room for them at once.
        this.#core.store.reserve(Math.ceil((sizing.logBytes / sizing.recordBytes) * sizing.records));
        this.#sizing = null;
      }
    }
    const { topics, live } = this.#core;
    switch (rec.type) {
      case RecordType.PUBLISH: {
        const topic = topics.topic(rec.topic);
        topic.exists = true;
        topic.published++;
        live.noteTopicRecord(segment, rec.topic);
        live.setTopicMark(topic, segment);
        const h = this.#core.store.add(rec.messageId, topic, rec.payloadPosition, rec.payloadLength);
        live.pinOrigin(h, segment, rec.sizeBytes);
        topic.pushReadyBack(h);
        return;
      }
      case RecordType.RESTORE:
        this.#restore(rec, segment);
        return;
      case RecordType.TOPIC: {
        const topic = topics.topic(rec.topic);
        topic.exists = true;
        live.noteTopicRecord(segment, rec.topic);
        live.setTopicMark(topic, segment);
        return;
      }
      case RecordType.COUNTERS: {
        // Exact as of this place in the log (record.ts): what replay counted before is replaced.
        const topic = topics.topic(rec.topic);
        topic.published = rec.published;
        topic.acked = rec.acked;
        topic.deadLettered = rec.deadLettered;
        live.noteTopicRecord(segment, rec.topic);
        return;
      }
      case RecordType.DELETE_TOPIC: {
        live.noteDeletedTopic(segment, rec.topic);
        const topic = topics.get(rec.topic);
        if (topic !== undefined) {
          for (const h of topics.clear(topic)) {
            this.#inFlight.delete(h);
            live.unpin(h);
          }
          live.setTopicMark(topic, null);
        }
        return;
      }
      default:
        break;
    }
    if (rec.type === RecordType.ACK) live.noteTopicRecord(segment, rec.topic);
    const store = this.#core.store;
    const h = store.handleOf(rec.messageId);
    if (h < 0) return; // settled before, or topic deleted
    const topic = store.topicOf(h);
    if (topic.name !== rec.topic) return;
    this.#unlink(h, topic);
    switch (rec.type) {
      case RecordType.DELIVER:
        store.states[h] = MessageState.IN_FLIGHT;
        store.deliveries[h]!++;
        store.placements[h] = Placement.IN_FLIGHT;
        store.placeOffsets[h] = rec.offset;
        topic.inFlight.add(h);
        this.#inFlight.add(h);
        live.noteRef(h, segment);
        return;
      case RecordType.ACK:
        topic.acked++;
        topics.forget(h, topic);
        live.noteAcked(h, segment);
        return;
      case RecordType.NACK:
        store.placements[h] = Placement.FRONT;
        store.placeOffsets[h] = rec.offset;
        topic.pushReadyFront(h);
        live.noteRef(h, segment);
        return;
      case RecordType.BACK:
        store.placements[h] = Placement.BACK;
        store.placeOffsets[h] = rec.offset;
        topic.pushReadyBack(h);
        live.noteRef(h, segment);
        return;
      case RecordType.DACK:
        store.dackCounts[h]!++;
        store.setDueAt(h, rec.dueAtMs);
        store.states[h] = MessageState.DELAYED;
        store.placements[h] = Placement.DELAYED;
        store.placeOffsets[h] = rec.offset;
        topic.delayed.add(h);
        live.noteRef(h, segment);
        return;
      default:
        return;
    }
  }

  /** Takes replayed message `h` out of whichever queue or set holds it. */
  #unlink(h: number, topic: Topic): void {
    const state = this.#core.store.states[h];
    if (state === MessageState.READY) {
      // One placed by a RESTORE (slot -1) is not in the ring; it is skipped at the merge instead.
      topic.unlinkReady(h);
    } else if (state === MessageState.DELAYED) topic.delayed.delete(h);
    else if (state === MessageState.IN_FLIGHT) {
      topic.inFlight.delete(h);
      this.#inFlight.delete(h);
    }
  }

  /**
   * A RESTORE carries the whole state of a message (record.ts); it replaces an older copy of the
   * same id, which a crash between writing the RESTORE and deleting the old segment leaves.
   */
  #restore(rec: DecodedRecord, segment: Segment): void {
    const { topics, live } = this.#core;
    const topic = topics.topic(rec.topic);
    if (rec.messageId === rec.offset) {
      // A dead letter (dead-letter.ts): a new message, whose original's ACK follows.
      topic.published++;
      const sourceName = rec.topic.slice(0, -DEAD_LETTER_SUFFIX.length);
      const source = topics.get(sourceName);
      if (source !== undefined && source.exists) source.deadLettered++;
      live.noteTopicRecord(segment, sourceName);
    }
    topic.exists = true;
    live.noteTopicRecord(segment, rec.topic);
    live.setTopicMark(topic, segment);
    const store = this.#core.store;
    const old = store.handleOf(rec.messageId);
    if (old >= 0) {
      const oldTopic = store.topicOf(old);
      this.#unlink(old, oldTopic);
      topics.forget(old, oldTopic);
    }
    const h = store.add(rec.messageId, topic, rec.payloadPosition, rec.payloadLength);
    if (old >= 0) live.supersede(old, h, segment);
    live.pinOrigin(h, segment, rec.sizeBytes);
    store.dackCounts[h] = rec.dackCount;
    store.deliveries[h] = rec.deliveries;
    if (rec.messageId === rec.offset) store.carried.set(h, rec.deliveries);
    store.placements[h] = rec.placement;
    store.placeOffsets[h] = rec.placeOffset;
    switch (rec.placement) {
      case Placement.DELAYED:
        store.states[h] = MessageState.DELAYED;
        store.setDueAt(h, rec.dueAtMs);
        topic.delayed.add(h);
        return;
      case Placement.IN_FLIGHT:
        store.states[h] = MessageState.IN_FLIGHT;
        topic.inFlight.add(h);
        this.#inFlight.add(h);
        return;
      default:
        // Ready at its rank, which need not be the back: merged into the queue when replay ends.
        store.states[h] = MessageState.READY;
        store.slots[h] = -1;
        topic.readyCount++;
        (topic.restoredReady ??= []).push(h);
        return;
    }
  }

  /**
   * The log has ended: ready messages placed by RESTORE records join their queues by rank
   * (record.ts), and messages in flight go to the front in their original delivery order (the
   * offsets of their DELIVER records; a RESTORE keeps that offset).
   */
  finish(): void {
    const { store, topics } = this.#core;
    this.#sizing = null;
    store.endReserve();
    for (const topic of topics.byName.values()) {
      if (topic.restoredReady !== null) mergeRestoredReady(topic, store);
      topic.adoptReplayedCounters();
    }
    const inFlight = [...this.#inFlight].sort((a, b) => store.placeOffsetOf(a) - store.placeOffsetOf(b));
    this.#inFlight.clear();
    for (let i = inFlight.length - 1; i >= 0; i--) {
      const h = inFlight[i]!;
      if (store.states[h] !== MessageState.IN_FLIGHT) continue;
      const topic = store.topicOf(h);
      topic.inFlight.delete(h);
      topic.pushReadyFront(h);
    }
    for (const topic of topics.byName.values()) {
      if (topic.ready.slotCount > topic.readyCount) topic.ready.compact();
    }
  }
}

/** Rank of ready message `h` in its queue (record.ts "Queue order on replay"). */
function readyRank(store: MessageStore, h: number): number {
  return store.placements[h] === Placement.FRONT ? -1 - store.placeOffsetOf(h) : store.placeOffsetOf(h);
}

/**
 * Merges the ready messages placed by RESTORE records into the topic's queue. The queue is
 * already in rank order (pushes to the front and back in log order), so sorting the two runs
 * together is a merge.
 */
function mergeRestoredReady(topic: Topic, store: MessageStore): void {
  const all: number[] = [];
  topic.ready.forEach((h) => all.push(h));
  forEachRestoredReady(store, topic, (h) => all.push(h));
  topic.restoredReady = null;
  all.sort((a, b) => readyRank(store, a) - readyRank(store, b));
  topic.ready.clear();
  for (const h of all) topic.ready.pushBack(h);
  topic.readyCount = all.length;
}
