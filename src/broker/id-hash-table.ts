/**
 * Message id -> store handle, as an open-addressing hash table in two typed arrays: the part of
 * the id index (id-index.ts) for ids that do not arrive in increasing order.
 *
 * A JS Map of a million numbers costs about 30 bytes an entry, stops at 2^24 entries, and boxes
 * keys past 2^30; this costs 12 bytes a slot (a Float64 key, an Int32 handle) at a load of at most
 * 3/4, so 16 to 32 bytes an entry, and never allocates per entry. Linear probing with
 * backward-shift deletion: no tombstones, so lookups stay short after many deletes.
 */

/**
 * Keys are stored as id + 1, so that 0 marks an empty slot and a new table needs no fill: pages of
 * a large table that no entry reached cost no resident memory.
 */
const EMPTY = 0;
const MIN_CAPACITY = 16;

/** Ids that share a block of the table: consecutive ids fill one cache line of keys. */
const BLOCK_BITS = 3;
const BLOCK = 1 << BLOCK_BITS;

/**
 * The home slot of `id`. Ids are offsets, mostly consecutive: a block of BLOCK consecutive ids
 * goes to BLOCK consecutive slots (so replay's inserts touch memory in order), and blocks are
 * spread over the table by Fibonacci hashing of the block number (its top bits, `shift` = 32 -
 * log2 of the number of blocks), so ids far apart do not pile up in one run.
 */
function slotOf(id: number, shift: number): number {
  const block = Math.floor(id / BLOCK);
  const mixed = Math.imul((block >>> 0) ^ Math.imul((block / 4294967296) >>> 0, 0x85ebca6b), 0x9e3779b1) >>> 0;
  return ((mixed >>> shift) << BLOCK_BITS) | (id & (BLOCK - 1));
}

export class IdHashTable {
  #keys: Float64Array;
  #values: Int32Array;
  #mask: number;
  /** 32 - log2(capacity / BLOCK), for slotOf. */
  #shift: number;
  #size = 0;
  /** Capacity the table does not shrink below (see {@link reserve}). */
  #floor = MIN_CAPACITY;

  constructor(initialCapacity = MIN_CAPACITY) {
    let cap = MIN_CAPACITY;
    while (cap < initialCapacity) cap *= 2;
    this.#keys = new Float64Array(cap);
    this.#values = new Int32Array(cap);
    this.#mask = cap - 1;
    this.#shift = 32 - Math.log2(cap / BLOCK);
  }

  /** Number of ids in the index. */
  get size(): number {
    return this.#size;
  }

  /** The handle stored for `id`, or -1. */
  get(id: number): number {
    const keys = this.#keys;
    const mask = this.#mask;
    const key = id + 1;
    for (let i = slotOf(id, this.#shift); ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === key) return this.#values[i]!;
      if (k === EMPTY) return -1;
    }
  }

  /** Stores `handle` (>= 0) for `id` (>= 0), replacing any handle stored for it. */
  set(id: number, handle: number): void {
    if ((this.#size + 1) * 4 > this.#keys.length * 3) this.#resize(this.#keys.length * 2);
    const keys = this.#keys;
    const mask = this.#mask;
    const key = id + 1;
    for (let i = slotOf(id, this.#shift); ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === key) {
        this.#values[i] = handle;
        return;
      }
      if (k === EMPTY) {
        keys[i] = key;
        this.#values[i] = handle;
        this.#size++;
        return;
      }
    }
  }

  /** Removes `id`; returns whether it was there. */
  delete(id: number): boolean {
    const keys = this.#keys;
    const values = this.#values;
    const mask = this.#mask;
    const key = id + 1;
    let i = slotOf(id, this.#shift);
    for (; ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === key) break;
      if (k === EMPTY) return false;
    }
    // Backward-shift: move later entries of the probe run into the hole when their home allows.
    let hole = i;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const k = keys[j]!;
      if (k === EMPTY) break;
      const home = slotOf(k - 1, this.#shift);
      // Whether `home` lies cyclically in (hole, j]: then the entry at j must stay.
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      keys[hole] = k;
      values[hole] = values[j]!;
      hole = j;
    }
    keys[hole] = EMPTY;
    this.#size--;
    if (this.#size * 8 < keys.length && keys.length > MIN_CAPACITY * 4 && keys.length > this.#floor) this.#resize(keys.length / 2);
    return true;
  }

  /**
   * Grows the table now to hold `count` ids without a resize, and keeps it at least that large
   * until `reserve(0)` (replay's capacity hint: deletes during replay do not shrink it).
   */
  reserve(count: number): void {
    let cap = MIN_CAPACITY;
    while (count * 4 > cap * 3) cap *= 2;
    this.#floor = cap;
    if (cap > this.#keys.length) this.#resize(cap);
  }

  /** Calls `fn(id, handle)` for every entry, in no particular order. */
  forEach(fn: (id: number, handle: number) => void): void {
    const keys = this.#keys;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== EMPTY) fn(keys[i]! - 1, this.#values[i]!);
  }

  #resize(capacity: number): void {
    const oldKeys = this.#keys;
    const oldValues = this.#values;
    this.#keys = new Float64Array(capacity);
    this.#values = new Int32Array(capacity);
    this.#mask = capacity - 1;
    this.#shift = 32 - Math.log2(capacity / BLOCK);
    this.#size = 0;
    for (let i = 0; i < oldKeys.length; i++) if (oldKeys[i] !== EMPTY) this.set(oldKeys[i]! - 1, oldValues[i]!);
  }
}
