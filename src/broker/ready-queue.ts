/**
 * The ready queue of one topic: a ring of message handles with push at both ends, O(1) amortized,
 * 12 bytes a slot (an Int32 handle and a Float64 token). Its capacity is a power of two (positions
 * wrap with a mask).
 *
 * Removal from the middle (a message acked or moved during replay, a topic delete) is lazy: each
 * push stamps the message with a fresh token (MessageStore.slots), and a popped slot whose token
 * no longer matches its message, or whose message is not READY, is skipped. A freed handle reused
 * by a new message gets a new token too, so old slots never match it. The caller keeps the count
 * of live entries and calls {@link compact} when stale slots pile up.
 */
import { MessageState } from './message.js';
import type { MessageStore } from './message-store.js';

const MIN_CAPACITY = 16;

export class ReadyQueue {
  readonly #store: MessageStore;
  #handles: Int32Array;
  #tokens: Float64Array;
  #head = 0;
  #length = 0;

  constructor(store: MessageStore) {
    this.#store = store;
    this.#handles = new Int32Array(MIN_CAPACITY);
    this.#tokens = new Float64Array(MIN_CAPACITY);
  }

  /** Slots in use, stale ones included. */
  get slotCount(): number {
    return this.#length;
  }

  pushBack(h: number): void {
    if (this.#length === this.#handles.length) this.#grow(this.#handles.length * 2);
    const i = (this.#head + this.#length) & (this.#handles.length - 1);
    const token = this.#store.nextSlotToken++;
    this.#store.slots[h] = token;
    this.#handles[i] = h;
    this.#tokens[i] = token;
    this.#length++;
  }

  pushFront(h: number): void {
    if (this.#length === this.#handles.length) this.#grow(this.#handles.length * 2);
    this.#head = (this.#head - 1) & (this.#handles.length - 1);
    const token = this.#store.nextSlotToken++;
    this.#store.slots[h] = token;
    this.#handles[this.#head] = h;
    this.#tokens[this.#head] = token;
    this.#length++;
  }

  #isLive(i: number): boolean {
    const h = this.#handles[i]!;
    return this.#store.slots[h] === this.#tokens[i] && this.#store.states[h] === MessageState.READY;
  }

  /** Removes and returns the handle of the first live READY message, or -1. */
  popFront(): number {
    while (this.#length > 0) {
      const i = this.#head;
      const live = this.#isLive(i);
      this.#head = (i + 1) & (this.#handles.length - 1);
      this.#length--;
      if (live) return this.#handles[i]!;
    }
    return -1;
  }

  /** Calls `fn` for each live READY message, front to back. */
  forEach(fn: (h: number) => void): void {
    const mask = this.#handles.length - 1;
    for (let k = 0; k < this.#length; k++) {
      const i = (this.#head + k) & mask;
      if (this.#isLive(i)) fn(this.#handles[i]!);
    }
  }

  /** Drops stale slots, keeping the order of live ones; the ring shrinks to twice their number. */
  compact(): void {
    const mask = this.#handles.length - 1;
    let n = 0;
    for (let k = 0; k < this.#length; k++) {
      const from = (this.#head + k) & mask;
      if (!this.#isLive(from)) continue;
      const to = (this.#head + n) & mask; // never ahead of `from`: entries only move towards the head
      this.#handles[to] = this.#handles[from]!;
      this.#tokens[to] = this.#tokens[from]!;
      n++;
    }
    this.#length = n;
    let capacity = MIN_CAPACITY;
    while (capacity < n * 2) capacity *= 2;
    this.#grow(capacity);
  }

  clear(): void {
    this.#handles = new Int32Array(MIN_CAPACITY);
    this.#tokens = new Float64Array(MIN_CAPACITY);
    this.#head = 0;
    this.#length = 0;
  }

  /** Moves the entries into new arrays of `capacity` (a power of two >= length) slots, head at 0. */
  #grow(capacity: number): void {
    const cap = this.#handles.length;
    const handles = new Int32Array(capacity);
    const tokens = new Float64Array(capacity);
    // The ring in two spans: head to the end of the arrays, then the start of the arrays.
    const first = Math.min(this.#length, cap - this.#head);
    handles.set(this.#handles.subarray(this.#head, this.#head + first));
    tokens.set(this.#tokens.subarray(this.#head, this.#head + first));
    handles.set(this.#handles.subarray(0, this.#length - first), first);
    tokens.set(this.#tokens.subarray(0, this.#length - first), first);
    this.#handles = handles;
    this.#tokens = tokens;
    this.#head = 0;
  }
}
