/**
 * Every message the broker knows, as a struct of typed arrays indexed by a handle (issue 11 item
 * 4): 62 bytes a message at most, instead of a JS object, its Map entry and the garbage
 * collector's time for both. A message published and not yet redelivered writes 41 of them: the
 * fields that stay 0 (dackCounts, deliveries, placements, placeOffsets, cacheRefs) are never
 * written for a handle never used before, so their pages cost no resident memory. Payloads are not kept here: they stay in the segment
 * files, read back on delivery, except for those in the bounded payload cache.
 *
 * A handle is allocated when a message is published (or restored, or replayed) and freed once the
 * message is gone from memory (acked, deleted, moved) and no segment's live accounting counts it
 * (live-accounting.ts), so a handle held by a pending record's completion stays valid exactly as
 * long as that completion can still change something. Anything that keeps a handle across turns
 * of the event loop also keeps the message id and checks {@link isCurrent}: a freed handle is
 * reused by a later message.
 *
 * Rare or per-delivery state lives in side maps keyed by handle: segments referring to a message,
 * its older copies, cached payloads, the Message view of a delivery, dead-letter carry-over.
 */
import assert from 'node:assert/strict';
import type { Segment } from '../log/segment.js';
import { IdIndex } from './id-index.js';
import { Message, MessageState } from './message.js';
import { PayloadCache } from './payload-cache.js';
import type { Topic } from './topic.js';

/** Handles are Int32 in the ready queues and the id index. */
const MAX_HANDLES = 2 ** 31 - 1;

/** Handles {@link MessageStore.reserve} adds past its count at least (an eighth of it past 8192). */
const RESERVE_HEADROOM_MIN = 1024;

export { CACHE_ENTRY_OVERHEAD_BYTES } from './payload-cache.js';

export class MessageStore {
  #capacity = 0;
  /** Message id (offset of its PUBLISH or dead-letter RESTORE); -1 when the handle is free. */
  ids: Float64Array = new Float64Array(0);
  /** Topic number (see {@link registerTopic}). */
  topics: Uint32Array = new Uint32Array(0);
  /** Segment number of the segment holding its current PUBLISH/RESTORE (0: none). */
  segments: Uint32Array = new Uint32Array(0);
  /** Byte position of the payload in that segment's file. */
  payloadPositions: Float64Array = new Float64Array(0);
  /** Payload bytes. */
  payloadSizes: Uint32Array = new Uint32Array(0);
  /** Bytes of its current PUBLISH/RESTORE record while the live accounting counts it; 0 once not. */
  pinned: Uint32Array = new Uint32Array(0);
  dackCounts: Uint32Array = new Uint32Array(0);
  /** Deliveries since publish (in this process, or carried by a RESTORE). */
  deliveries: Uint32Array = new Uint32Array(0);
  states: Uint8Array = new Uint8Array(0);
  /** Where replay of the log would put it (record.ts Placement); see {@link placeOffsets}. */
  placements: Uint8Array = new Uint8Array(0);
  /**
   * Offset of the record that placed it last; for one not written yet, the offset it will get.
   * 0 stands for its own id (placed by its own PUBLISH/RESTORE: no record at offset 0 places any
   * other message), so that most messages never write here. Read it with {@link placeOffsetOf}.
   */
  placeOffsets: Float64Array = new Float64Array(0);
  /** Token of the ready-queue slot that holds it (ready-queue.ts); -1: placed by a RESTORE during replay. */
  slots: Float64Array = new Float64Array(0);
  /** Its payload's reference in the payload cache (payload-cache.ts); 0: not cached. */
  cacheRefs: Uint32Array = new Uint32Array(0);

  /** Dead-letter copies: the deliveries carried over from the original (not redeliveries here). */
  readonly carried = new Map<number, number>();
  /** Segments other than its own with its NACK/BACK/DACK/DELIVER records, oldest first (live accounting). */
  readonly refSegments = new Map<number, Segment[]>();
  /** Older segments that still hold a PUBLISH/RESTORE of it superseded by a RESTORE (live accounting). */
  readonly prevOrigins = new Map<number, Segment[]>();
  /** The Message view of a message in flight to a consumer (carries its owner and ack deadline). */
  readonly views = new Map<number, Message>();
  /**
   * DELAYED messages: when each becomes ready again (Unix epoch ms). A side map, not an array
   * per handle: few messages are ever delayed, and every live message would pay 8 bytes.
   */
  readonly #dueAts = new Map<number, number>();
  /** Cached payloads (their references are in {@link cacheRefs}). */
  readonly #cache: PayloadCache;

  /** Live messages (not GONE) by id. */
  readonly #index = new IdIndex();
  /** Free handles below #top, as a stack. */
  #free: Int32Array = new Int32Array(0);
  #freeCount = 0;
  /** Handles ever used: [0, #top). */
  #top = 0;
  nextSlotToken = 1;

  readonly #topicTable: Topic[] = [];
  /** Segment numbers: index 0 is "none"; closed segments' numbers are reused. */
  readonly #segmentTable: (Segment | null)[] = [null];
  readonly #segmentNumbers = new Map<Segment, number>();
  #lastSegment: Segment | null = null;
  #lastSegmentNumber = 0;

  constructor(cacheLimitBytes: number) {
    this.#cache = new PayloadCache(cacheLimitBytes);
  }

  /** Live messages (ready, in flight, delayed). */
  get liveCount(): number {
    return this.#index.size;
  }

  /** One past the highest handle ever allocated (for scans over every handle). */
  get handleLimit(): number {
    return this.#top;
  }

  /** Gives `topic` its number (Topic.number); topics are never unregistered. */
  registerTopic(topic: Topic): number {
    this.#topicTable.push(topic);
    return this.#topicTable.length - 1;
  }

  topicOf(h: number): Topic {
    return this.#topicTable[this.topics[h]!]!;
  }

  /**
   * A new live message, READY, placed at the back by its own record, with no pins. Returns its
   * handle.
   */
  add(id: number, topic: Topic, payloadPosition: number, payloadBytes: number): number {
    let h: number;
    if (this.#freeCount > 0) {
      h = this.#free[--this.#freeCount]!;
      this.#reset(h);
    } else {
      // A handle never used: every array holds 0 for it already. Not writing those zeros keeps
      // the pages of fields that stay 0 (dackCounts, deliveries, placements, cacheRefs) untouched:
      // no page fault during replay, no resident memory.
      if (this.#top === this.#capacity) this.#grow();
      h = this.#top++;
    }
    this.ids[h] = id;
    this.topics[h] = topic.number;
    this.payloadPositions[h] = payloadPosition;
    this.payloadSizes[h] = payloadBytes;
    this.states[h] = MessageState.READY;
    this.#index.set(id, h);
    return h;
  }

  /** Zeroes what a freed handle `h` kept, before {@link add} reuses it. */
  #reset(h: number): void {
    this.segments[h] = 0;
    this.pinned[h] = 0;
    this.dackCounts[h] = 0;
    this.deliveries[h] = 0;
    this.placements[h] = 0;
    this.placeOffsets[h] = 0;
    this.slots[h] = 0;
    this.cacheRefs[h] = 0;
    this.#dueAts.delete(h);
  }

  /** Offset of the record that placed `h` last (see {@link placeOffsets}). */
  placeOffsetOf(h: number): number {
    const offset = this.placeOffsets[h]!;
    return offset === 0 ? this.ids[h]! : offset;
  }

  /** The handle of live message `id`, or -1. */
  handleOf(id: number): number {
    return this.#index.get(id);
  }

  /** Whether `h` still holds message `id` (it was not freed and reused). */
  isCurrent(h: number, id: number): boolean {
    return h >= 0 && h < this.#top && this.ids[h] === id;
  }

  /** Whether message `h` is in the live index. */
  isIndexed(h: number): boolean {
    return this.#index.get(this.ids[h]!) === h;
  }

  /**
   * Message `h` left memory (acked, deleted, moved): it is GONE, out of the index, its cached
   * payload dropped. Its handle is freed now if nothing counts it, else when {@link releaseIfDone}.
   */
  forget(h: number): void {
    this.states[h] = MessageState.GONE;
    this.#index.delete(this.ids[h]!);
    this.uncachePayload(h);
    this.views.delete(h);
    this.releaseIfDone(h);
  }

  /** Puts GONE message `h` (whose handle was not freed) back into the index as READY. */
  reinstate(h: number): void {
    this.states[h] = MessageState.READY;
    this.#index.set(this.ids[h]!, h);
  }

  /** Frees `h` if it is GONE and no longer pinned. */
  releaseIfDone(h: number): void {
    if (this.states[h] !== MessageState.GONE || this.pinned[h] !== 0) return;
    this.ids[h] = -1;
    this.segments[h] = 0;
    this.carried.delete(h);
    this.#dueAts.delete(h);
    this.refSegments.delete(h);
    this.prevOrigins.delete(h);
    this.views.delete(h);
    if (this.#freeCount === this.#free.length) {
      const more = new Int32Array(Math.max(64, this.#free.length * 2));
      more.set(this.#free);
      this.#free = more;
    }
    this.#free[this.#freeCount++] = h;
  }

  /** Calls `fn(handle)` for every live message, in no particular order. */
  forEachLive(fn: (h: number) => void): void {
    this.#index.forEach((_id, h) => fn(h));
  }

  segmentOf(h: number): Segment | null {
    return this.#segmentTable[this.segments[h]!]!;
  }

  setSegment(h: number, segment: Segment): void {
    if (segment !== this.#lastSegment) {
      this.#lastSegmentNumber = this.#segmentNumber(segment);
      this.#lastSegment = segment;
    }
    this.segments[h] = this.#lastSegmentNumber;
  }

  /**
   * Keeps `payload` in memory for message `h` if the cache has room (copied, or for a long one the
   * Buffer itself, which the caller must then not change).
   */
  cachePayload(h: number, payload: Buffer): void {
    if (this.cacheRefs[h] !== 0) this.uncachePayload(h);
    this.cacheRefs[h] = this.#cache.add(payload);
  }

  /** When DELAYED message `h` becomes ready again (Unix epoch ms); 0 if it is not delayed. */
  dueAtOf(h: number): number {
    return this.#dueAts.get(h) ?? 0;
  }

  /** Message `h` is DELAYED until `dueAtMs` (Unix epoch ms); 0 clears it. */
  setDueAt(h: number, dueAtMs: number): void {
    if (dueAtMs === 0) this.#dueAts.delete(h);
    else this.#dueAts.set(h, dueAtMs);
  }

  /** Whether message `h`'s payload is in the cache. */
  isCached(h: number): boolean {
    return this.cacheRefs[h] !== 0;
  }

  uncachePayload(h: number): void {
    const ref = this.cacheRefs[h]!;
    if (ref === 0) return;
    this.cacheRefs[h] = 0;
    this.#cache.release(ref);
  }

  /** Bytes the payload cache holds now. */
  get cachedBytes(): number {
    return this.#cache.heldBytes;
  }

  /** The payload of message `h`: the cached Buffer, or a copy read back from its segment (throws the fs error). */
  payloadOf(h: number): Buffer {
    const ref = this.cacheRefs[h]!;
    const size = this.payloadSizes[h]!;
    if (ref !== 0) return this.#cache.view(ref, size);
    if (size === 0) return Buffer.alloc(0);
    const segment = this.segmentOf(h);
    if (segment === null) throw new Error(`message ${this.ids[h]} has no segment to read its payload from`);
    return segment.readAt(this.payloadPositions[h]!, size);
  }

  /** The Message view of `h`: its delivery's view while it is in flight, else a new one (read-only use). */
  view(h: number): Message {
    return this.views.get(h) ?? new Message(this, h);
  }

  #segmentNumber(segment: Segment): number {
    const known = this.#segmentNumbers.get(segment);
    if (known !== undefined) return known;
    // Closed segments (compacted away) hold no live message's record, so their numbers are free.
    let n = this.#segmentTable.length;
    for (let i = 1; i < this.#segmentTable.length; i++) {
      const s = this.#segmentTable[i];
      if (s === null || !s!.open) {
        if (s) this.#segmentNumbers.delete(s);
        if (s === this.#lastSegment) this.#lastSegment = null;
        this.#segmentTable[i] = null;
        if (n === this.#segmentTable.length) n = i;
      }
    }
    this.#segmentTable[n] = segment;
    this.#segmentNumbers.set(segment, n);
    return n;
  }

  /**
   * Makes room for `count` messages in all (replay's estimate from the log's size), so that
   * replay does not copy the arrays as they fill, until {@link endReserve}. Pages never written
   * cost no resident memory.
   */
  reserve(count: number): void {
    // Headroom past the estimate: the first publishes after replay must not copy every array
    // (at a million messages that copy touches ~60 MB of fresh pages on the way to the first +OK).
    const room = count + Math.max(RESERVE_HEADROOM_MIN, Math.ceil(count / 8));
    if (room > this.#capacity) this.#grow(Math.min(room, MAX_HANDLES));
    this.#index.reserve(count);
  }

  /** Replay is over: the id index may shrink again as messages go. */
  endReserve(): void {
    this.#index.reserve(0);
  }

  #grow(atLeast = 0): void {
    // 1.5x: less slack than doubling at a million messages.
    const cap = Math.max(1024, atLeast, Math.ceil(this.#capacity * 1.5));
    assert.ok(cap <= MAX_HANDLES + 1024, 'too many messages for the store');
    const f64 = (old: Float64Array): Float64Array => {
      const a = new Float64Array(cap);
      a.set(old);
      return a;
    };
    const u32 = (old: Uint32Array): Uint32Array => {
      const a = new Uint32Array(cap);
      a.set(old);
      return a;
    };
    const u8 = (old: Uint8Array): Uint8Array => {
      const a = new Uint8Array(cap);
      a.set(old);
      return a;
    };
    this.ids = f64(this.ids);
    this.topics = u32(this.topics);
    this.segments = u32(this.segments);
    this.payloadPositions = f64(this.payloadPositions);
    this.payloadSizes = u32(this.payloadSizes);
    this.pinned = u32(this.pinned);
    this.dackCounts = u32(this.dackCounts);
    this.deliveries = u32(this.deliveries);
    this.states = u8(this.states);
    this.placements = u8(this.placements);
    this.placeOffsets = f64(this.placeOffsets);
    this.slots = f64(this.slots);
    this.cacheRefs = u32(this.cacheRefs);
    this.#capacity = cap;
  }
}
