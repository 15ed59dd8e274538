/**
 * The bounded payload cache (issue 11 items 3 and 4): payloads of recent messages kept in memory
 * so that a delivery need not read them back from their segment.
 *
 * Small payloads are copied into slabs, large Buffers shared by many of them, filled front to
 * back; a slab is freed once every payload in it is gone. A cached message therefore costs the
 * garbage collector nothing: no Buffer object and no Map entry of its own, only its bytes in a
 * slab and a 32-bit reference in the message store. (The previous cache kept one Buffer per
 * message in a Map: at a million cached messages that was a tenth of the broker's CPU time in Map
 * inserts, and most of its garbage-collection time.) Payloads of at least
 * {@link PayloadCache.dedicatedMinBytes} are kept as the Buffer given, uncopied, one per entry.
 *
 * A reference packs the slab number (1 .. {@link MAX_SLABS}) and the byte position in the slab:
 * `number * slabBytes + position`, below 2^32; 0 means "not cached". The bound counts whole
 * slabs (and each kept Buffer plus {@link CACHE_ENTRY_OVERHEAD_BYTES}); when the next payload does
 * not fit, it is not cached, and is read back from its segment when delivered.
 */

/** What one payload kept as its own Buffer costs beyond its bytes (the Buffer object), counted against the bound. */
export const CACHE_ENTRY_OVERHEAD_BYTES = 128;

/** Most slabs (and kept Buffers) alive at once: their numbers fit the 12 top bits of a reference. */
export const MAX_SLABS = 4095;

/** Largest slab: 1 MiB (with MAX_SLABS, references stay below 2^32). */
const MAX_SLAB_BYTES = 1 << 20;
const MIN_SLAB_BYTES = 64;

export class PayloadCache {
  /** Bytes of every slab, a power of two: 1 MiB, or less under a bound below 8 MiB. */
  readonly slabBytes: number;
  /** Payloads at least this long are kept as given, not copied into a slab. */
  readonly dedicatedMinBytes: number;
  readonly #limitBytes: number;
  /** Bytes held: whole slabs, and kept Buffers with their overhead. */
  #heldBytes = 0;
  /** By number; index 0 is unused (reference 0 means "not cached"). */
  readonly #slabs: (Buffer | undefined)[] = [undefined];
  /** Payloads cached in each slab. */
  readonly #live: number[] = [0];
  /** Whether each number holds a slab (true) or one kept Buffer (false). */
  readonly #isSlab: boolean[] = [false];
  readonly #freeNumbers: number[] = [];
  /** Number of the slab being filled; 0 when none. */
  #current = 0;
  /** Bytes of the current slab in use. */
  #fill = 0;

  /** @param limitBytes - most bytes the cache may hold (0: cache nothing). */
  constructor(limitBytes: number) {
    this.#limitBytes = limitBytes;
    let slab = MAX_SLAB_BYTES;
    while (slab > MIN_SLAB_BYTES && slab * 8 > limitBytes) slab /= 2;
    this.slabBytes = slab;
    this.dedicatedMinBytes = slab / 4;
  }

  /** Bytes the cache holds now (at most the bound). */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /**
   * Keeps `payload` (copied into a slab, or, if long, the Buffer itself: the caller must then
   * not change it). Returns its reference, or 0 when the bound leaves no room (or it is empty).
   */
  add(payload: Buffer): number {
    const length = payload.length;
    if (length === 0) return 0;
    if (length >= this.dedicatedMinBytes) {
      const cost = length + CACHE_ENTRY_OVERHEAD_BYTES;
      if (this.#heldBytes + cost > this.#limitBytes) return 0;
      const n = this.#takeNumber();
      if (n === 0) return 0;
      this.#slabs[n] = payload;
      this.#isSlab[n] = false;
      this.#live[n] = 1;
      this.#heldBytes += cost;
      return n * this.slabBytes;
    }
    if (this.#current === 0 || this.#fill + length > this.slabBytes) {
      if (!this.#openSlab()) return 0;
    }
    const n = this.#current;
    const position = this.#fill;
    payload.copy(this.#slabs[n]!, position);
    this.#fill = position + length;
    this.#live[n]!++;
    return n * this.slabBytes + position;
  }

  /** The cached bytes of reference `ref` (from {@link add}), `length` long: a view, not a copy. */
  view(ref: number, length: number): Buffer {
    const n = Math.floor(ref / this.slabBytes);
    const position = ref - n * this.slabBytes;
    return this.#slabs[n]!.subarray(position, position + length);
  }

  /**
   * The payload of reference `ref` left the cache; its slab is freed once it is empty and no
   * longer being filled. Slab bytes are never written twice: a view handed out earlier (a reply
   * still queued on a socket) keeps its bytes, and the slab, alive until it is dropped.
   */
  release(ref: number): void {
    const n = Math.floor(ref / this.slabBytes);
    if (--this.#live[n]! > 0 || n === this.#current) return;
    this.#free(n);
  }

  #openSlab(): boolean {
    const previous = this.#current;
    if (previous !== 0 && this.#live[previous] === 0) this.#free(previous);
    this.#current = 0;
    if (this.#heldBytes + this.slabBytes > this.#limitBytes) return false;
    const n = this.#takeNumber();
    if (n === 0) return false;
    this.#slabs[n] = Buffer.allocUnsafeSlow(this.slabBytes);
    this.#isSlab[n] = true;
    this.#live[n] = 0;
    this.#heldBytes += this.slabBytes;
    this.#current = n;
    this.#fill = 0;
    return true;
  }

  #free(n: number): void {
    this.#heldBytes -= this.#isSlab[n] ? this.slabBytes : this.#slabs[n]!.length + CACHE_ENTRY_OVERHEAD_BYTES;
    this.#slabs[n] = undefined;
    this.#freeNumbers.push(n);
  }

  #takeNumber(): number {
    if (this.#freeNumbers.length > 0) return this.#freeNumbers.pop()!;
    if (this.#slabs.length > MAX_SLABS) return 0;
    this.#slabs.push(undefined);
    this.#live.push(0);
    this.#isSlab.push(false);
    return this.#slabs.length - 1;
  }
}
