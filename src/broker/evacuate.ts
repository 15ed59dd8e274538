/**
 * The broker's side of compaction (log/compactor.ts): its CompactionPolicy, whose answers come
 * from segment-accounting.ts and whose copy is here: live messages, topics and needed ACKs are
 * copied forward out of the segments being compacted. The compactor then fdatasyncs the copies
 * and deletes the files; it knows nothing of what the records mean.
 *
 * Each live message with a record in a victim segment gets a RESTORE record with its whole state
 * as replay of the log would rebuild it (its placement and placeOffset, dueAtMs, dackCount,
 * deliveries, payload), so every earlier record of it is superseded. The snapshot and the append
 * happen in the same turn of the event loop: any settle of the message after it is appended
 * after it, and replays on top of it. The order of RESTORE records does not matter (placement is
 * explicit). An existing topic whose newest creating record is in a victim gets a TOPIC record,
 * and an ACK that replay still needs (an older segment holds the message) is written again.
 * Writing needed ACKs again matters: the dead PUBLISHes of a mostly live old segment pin the ACKs
 * in the next one, whose own dead PUBLISHes pin the ACKs in the next, and so on; moving the few
 * ACKs that cross from the old segment breaks that chain.
 *
 * Work is sliced: at most SLICE_MESSAGES records or SLICE_BYTES bytes are appended at a time,
 * and the next slice starts only after they completed and one setImmediate, so the writer queue
 * never holds more than one slice of compaction and publishes interleave with it.
 */
import assert from 'node:assert/strict';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { CompactionPolicy, EvacuationResult } from '../log/compactor.js';
import { LogAppend, type LogWriter } from '../log/log-writer.js';
import { Placement, RESTORE_TAIL_BYTES, type RestoreState } from '../log/record.js';
import type { Segment } from '../log/segment.js';
import type { LiveAccounting } from './live-accounting.js';
import { MessageState } from './message.js';
import type { MessageStore } from './message-store.js';
import { writeCounterSnapshots } from './counter-snapshots.js';
import type { AckRef } from './segment-accounting.js';
import type { Topic } from './topic.js';

/** Messages looked at before yielding to the event loop. */
const SCAN_SLICE = 8192;
/** RESTORE records appended at a time. */
const SLICE_MESSAGES = 256;
/** Bytes of RESTORE records appended at a time (one larger message still goes alone). */
const SLICE_BYTES = 1024 * 1024;

/** What evacuate needs from the broker. */
export interface EvacuationDeps {
  /** Every message; payloads are cached or read back from their segment (payloadOf throws the fs error). */
  store: MessageStore;
  /** The live accounting over `store`: the copies take over what the victims counted. */
  live: LiveAccounting;
  topics: Map<string, Topic>;
  writer: LogWriter;
}

/** A record compaction copies forward, with what its completion needs. */
class SliceAppend extends LogAppend {
  /** The slice it is appended in (set by Slice.append, before the writer sees the record). */
  slice!: Slice;
  /** RESTORE: handle of the message. */
  h = -1;
  /** RESTORE: id of the message. */
  id = -1;
  /** ACK written again: the ACK it takes over from. */
  ref: AckRef | null = null;
}

/** Records of one slice in the writer: resolves when all completed, rejects with the first error then. */
class Slice {
  count = 0;
  bytes = 0;
  #pending = 0;
  #error: Error | null = null;
  #sealed = false;
  #resolve: (() => void) | null = null;
  #reject: ((err: Error) => void) | null = null;

  constructor(readonly deps: EvacuationDeps, readonly result: EvacuationResult) {}

  /** Appends `rec` as part of this slice. */
  append(rec: SliceAppend): void {
    rec.slice = this;
    this.count++;
    this.bytes += rec.sizeBytes;
    this.#pending++;
    this.deps.writer.append(rec);
  }

  completed(err: Error | null, rec: LogAppend): void {
    if (err !== null) this.#error ??= err;
    else {
      this.result.bytes += rec.sizeBytes;
      this.result.segments.add(rec.segment!);
    }
    this.#pending--;
    this.#settle();
  }

  /** No more appends; resolves when every appended record completed. */
  done(): Promise<void> {
    this.#sealed = true;
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      this.#settle();
    });
  }

  fail(err: Error): void {
    this.#error ??= err;
  }

  #settle(): void {
    if (!this.#sealed || this.#pending > 0 || this.#resolve === null) return;
    if (this.#error !== null) this.#reject!(this.#error);
    else this.#resolve();
    this.#resolve = null;
  }
}

function holdsVictim(store: MessageStore, h: number, victims: ReadonlySet<Segment>): boolean {
  if (store.ids[h] === -1 || store.states[h] === MessageState.GONE || store.pinned[h] === 0) return false;
  if (victims.has(store.segmentOf(h)!)) return true;
  const refs = store.refSegments.get(h);
  if (refs !== undefined) for (const s of refs) if (victims.has(s)) return true;
  return false;
}

/** A RESTORE record of message `h`'s current state (see the file comment). */
function restoreRecord(store: MessageStore, h: number, payload: Buffer): SliceAppend {
  const placement = store.placements[h] as Placement;
  const state: RestoreState = {
    messageId: store.ids[h]!,
    dackCount: store.dackCounts[h]!,
    dueAtMs: placement === Placement.DELAYED ? store.dueAtOf(h) : 0,
    placement,
    placeOffset: store.placeOffsetOf(h),
    deliveries: store.deliveries[h]!,
  };
  const rec = SliceAppend.forRestore(store.topicOf(h).name, state, payload, restoreDone);
  rec.h = h;
  rec.id = state.messageId;
  return rec;
}

function restoreDone(err: Error | null, rec: SliceAppend): void {
  const { slice, h, id } = rec;
  if (err === null) {
    const segment = rec.segment!;
    const { store, live } = slice.deps;
    // Death records of a message are appended after any RESTORE of it (the snapshot needs it
    // live in memory), so it still counts as live here; the RESTORE is now where its state is.
    assert.ok(store.isCurrent(h, id) && store.pinned[h]! > 0, 'a RESTORE completed for a message that is durably gone');
    live.reoriginate(h, segment, rec.sizeBytes);
    store.payloadPositions[h] = rec.payloadPosition + RESTORE_TAIL_BYTES;
    live.noteTopicRecord(segment, rec.topic);
    const topic = slice.deps.topics.get(rec.topic);
    if (topic !== undefined) live.setTopicMark(topic, segment);
    slice.result.messages++;
  }
  slice.completed(err, rec);
}

function topicDone(err: Error | null, rec: SliceAppend): void {
  const slice = rec.slice;
  if (err === null) {
    const segment = rec.segment!;
    const live = slice.deps.live;
    live.noteTopicRecord(segment, rec.topic);
    const topic = slice.deps.topics.get(rec.topic);
    if (topic !== undefined) live.setTopicMark(topic, segment);
  }
  slice.completed(err, rec);
}

/**
 * An ACK written again: the message is durably dead, and no record of it can follow (ids are
 * never reused), so a second ACK later in the log means the same. The new one takes over the
 * old one's dependencies.
 */
function ackDone(err: Error | null, rec: SliceAppend): void {
  const slice = rec.slice;
  const ref = rec.ref!;
  if (err === null) {
    ref.moved = true;
    slice.deps.live.segments.noteAckRecord(rec.segment!, ref.messageId, ref.topic, ref.deps);
  }
  slice.completed(err, rec);
}

/** Raised between slices once compaction is stopped (shutdown). */
export class EvacuationStopped extends Error {
  readonly code = 'MQ_ERR_SHUTTING_DOWN';

  constructor() {
    super('compaction stopped');
  }
}

/**
 * Copies forward everything that keeps `victims` needed (CompactionPolicy.evacuate). Rejects with
 * the first write or read error, after the records already appended completed, or with
 * {@link EvacuationStopped}.
 */
export async function evacuate(
  deps: EvacuationDeps,
  victims: ReadonlySet<Segment>,
  isStopped: () => boolean,
): Promise<EvacuationResult> {
  const result: EvacuationResult = { messages: 0, bytes: 0, segments: new Set() };
  // Handles allocated after this point hold messages published into the active segment (or
  // reused for them): no need to look.
  const store = deps.store;
  const limit = store.handleLimit;
  let h = 0;
  while (h < limit) {
    const slice = new Slice(deps, result);
    let scanned = 0;
    try {
      for (; h < limit && scanned < SCAN_SLICE && slice.count < SLICE_MESSAGES && slice.bytes < SLICE_BYTES; h++, scanned++) {
        if (!holdsVictim(store, h, victims)) continue;
        slice.append(restoreRecord(store, h, store.payloadOf(h)));
      }
    } catch (err) {
      slice.fail(err as Error); // a payload could not be read back: stop after this slice
      h = limit;
    }
    await slice.done();
    if (isStopped()) throw new EvacuationStopped();
    await yieldToLoop();
  }
  const marks = new Slice(deps, result);
  for (const topic of deps.topics.values()) {
    if (topic.exists && topic.markSegment !== null && victims.has(topic.markSegment)) {
      marks.append(SliceAppend.forTopic(topic.name, topicDone));
    }
  }
  await marks.done();
  for (const victim of victims) {
    const acks = deps.live.segments.neededAcks(victim);
    for (let i = 0; i < acks.length; i += SLICE_MESSAGES) {
      const slice = new Slice(deps, result);
      for (const ref of acks.slice(i, i + SLICE_MESSAGES)) {
        const rec = SliceAppend.forAck(ref.topic, ref.messageId, ackDone);
        rec.ref = ref;
        slice.append(rec);
      }
      await slice.done();
      if (isStopped()) throw new EvacuationStopped();
    }
  }
  return result;
}

/**
 * The broker's answers to the compactor: segment-accounting.ts for what is needed, {@link evacuate}
 * for the copy, counter-snapshots.ts for what replaces the counted records of deleted segments.
 */
export function compactionPolicy(deps: EvacuationDeps): CompactionPolicy {
  const segments = deps.live.segments;
  return {
    isRemovable: (log, index) => segments.isRemovable(log, index),
    copyForwardBytes: (log, index) => segments.copyForwardBytes(log, index),
    evacuate: (victims, isStopped) => evacuate(deps, victims, isStopped),
    retire: (gone) => writeCounterSnapshots(deps, gone),
  };
}
