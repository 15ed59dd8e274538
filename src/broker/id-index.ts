/**
 * Message id -> store handle (MessageStore's index of live messages).
 *
 * Ids are log offsets: a message published now, or replayed in log order, has a larger id than
 * every id before it. Those go to a sorted run, two typed arrays (Float64 id, Int32 handle: 12
 * bytes an entry) that only ever append; a lookup interpolates its position (ids are nearly
 * dense, so the first guess is mostly the answer) and falls back to binary search. A delete marks
 * its entry dead; dead entries are dropped once they are half of the run. The few ids that come
 * out of order (replay of a RESTORE whose message is no longer in the run) go to a hash table.
 *
 * Against a hash table of every id: replay's inserts are appends (no probing over a table twice
 * the size of the live set), and an entry costs 12 to 18 bytes instead of 16 to 32.
 */
import { IdHashTable } from './id-hash-table.js';

const DEAD = -1;
const MIN_CAPACITY = 16;

export class IdIndex {
  /** The run: ids ascending in [#start, #length); a deleted entry keeps its id, handle DEAD. */
  #ids = new Float64Array(MIN_CAPACITY);
  #handles = new Int32Array(MIN_CAPACITY);
  /** Entries before #start are all dead. */
  #start = 0;
  #length = 0;
  /** Live entries in the run. */
  #live = 0;
  /**
   * The largest id ever appended to the run (-1: none). Only an id above it is appended, so an id
   * is in one place only: in the run (appended while above it) or in the table (set while not).
   */
  #highId = -1;
  /** Capacity the run does not shrink below (see {@link reserve}). */
  #floor = MIN_CAPACITY;
  /** Ids set while not above #highId. */
  readonly #table = new IdHashTable();

  /** Number of ids in the index. */
  get size(): number {
    return this.#live + this.#table.size;
  }

  /** The handle stored for `id`, or -1. */
  get(id: number): number {
    if (id > this.#highId) return -1;
    const i = this.#find(id);
    if (i >= 0) return this.#handles[i]!;
    return this.#table.size === 0 ? -1 : this.#table.get(id);
  }

  /** Stores `handle` (>= 0) for `id` (>= 0), replacing any handle stored for it. */
  set(id: number, handle: number): void {
    if (id > this.#highId) {
      if (this.#length === this.#ids.length) this.#resize(this.#capacityFor(this.#live + 1));
      this.#ids[this.#length] = id;
      this.#handles[this.#length++] = handle;
      this.#live++;
      this.#highId = id;
      return;
    }
    const i = this.#find(id);
    if (i >= 0) {
      this.#handles[i] = handle;
      return;
    }
    this.#table.set(id, handle);
  }

  /** Removes `id`; returns whether it was there. */
  delete(id: number): boolean {
    if (id > this.#highId) return false;
    const i = this.#find(id);
    if (i < 0) return this.#table.size !== 0 && this.#table.delete(id);
    this.#handles[i] = DEAD;
    this.#live--;
    if (i === this.#start) {
      let s = i + 1;
      while (s < this.#length && this.#handles[s] === DEAD) s++;
      this.#start = s;
    }
    const dead = this.#length - this.#live;
    if (dead > MIN_CAPACITY && dead * 2 > this.#length) this.#resize(this.#capacityFor(this.#live));
    return true;
  }

  /**
   * Makes room for `count` ids in all (replay's estimate), and keeps the run at least that large
   * until `reserve(0)`. Pages never written cost no resident memory.
   */
  reserve(count: number): void {
    this.#floor = Math.max(MIN_CAPACITY, count);
    if (this.#floor > this.#ids.length) this.#resize(this.#floor);
  }

  /** Calls `fn(id, handle)` for every entry, in no particular order. */
  forEach(fn: (id: number, handle: number) => void): void {
    for (let i = this.#start; i < this.#length; i++) if (this.#handles[i] !== DEAD) fn(this.#ids[i]!, this.#handles[i]!);
    this.#table.forEach(fn);
  }

  /** The run position of live `id`, or -1. */
  #find(id: number): number {
    const ids = this.#ids;
    let lo = this.#start;
    let hi = this.#length - 1;
    if (lo > hi) return -1;
    const loId = ids[lo]!;
    const hiId = ids[hi]!;
    if (id < loId || id > hiId) return -1;
    // First guess by interpolation: exact when the ids in between are consecutive.
    if (hiId > loId) {
      const guess = lo + Math.floor(((id - loId) / (hiId - loId)) * (hi - lo));
      const g = ids[guess]!;
      if (g === id) return this.#handles[guess] === DEAD ? -1 : guess;
      if (g < id) lo = guess + 1;
      else hi = guess - 1;
    }
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const m = ids[mid]!;
      if (m === id) return this.#handles[mid] === DEAD ? -1 : mid;
      if (m < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** A run capacity for `count` entries: half as much again (at least the floor). */
  #capacityFor(count: number): number {
    return Math.max(MIN_CAPACITY, this.#floor, count + (count >>> 1));
  }

  /**
   * Moves the live entries, in order, to positions from 0 of arrays of `capacity` (> #live)
   * entries: the same arrays when they already have that capacity, new ones otherwise.
   */
  #resize(capacity: number): void {
    const inPlace = capacity === this.#ids.length;
    const ids = inPlace ? this.#ids : new Float64Array(capacity);
    const handles = inPlace ? this.#handles : new Int32Array(capacity);
    let n = 0;
    if (this.#live === this.#length - this.#start) {
      // No dead entry in between (replay, or acks in publish order): move the span at once.
      if (inPlace) {
        ids.copyWithin(0, this.#start, this.#length);
        handles.copyWithin(0, this.#start, this.#length);
      } else {
        ids.set(this.#ids.subarray(this.#start, this.#length));
        handles.set(this.#handles.subarray(this.#start, this.#length));
      }
      n = this.#live;
    } else {
      // Entries only move towards 0 (n <= i), so moving within the same arrays is safe.
      for (let i = this.#start; i < this.#length; i++) {
        const h = this.#handles[i]!;
        if (h === DEAD) continue;
        ids[n] = this.#ids[i]!;
        handles[n++] = h;
      }
    }
    this.#ids = ids;
    this.#handles = handles;
    this.#start = 0;
    this.#length = n;
  }
}
