/**
 * The bound on RESP input held across all connections (`--max-input-bytes`, issue 13 "Memory").
 *
 * Each connection's parser holds the bytes of its unfinished command and, while a blocking
 * `RESERVE` waits, the commands pipelined behind it. `--max-command-bytes` bounds one command and
 * each connection pauses reading past a few MiB, but ten thousand connections that each hold a
 * command that never finishes would still add up to gigabytes. This budget sums what every
 * connection holds; when the sum passes the bound, the connection holding the most is cut off
 * (`-ERR Protocol error: ...`, then closed), as Redis evicts the clients using the most memory
 * under `maxmemory-clients`. Its held bytes are dropped at once.
 */
import assert from 'node:assert';

/** What the budget needs of a connection. */
export interface InputHolder {
  /**
   * Drops the input held, answers a protocol error naming the bound, and closes. Must end with
   * a call to {@link InputBudget.update} with 0 for this holder (directly or from its close).
   */
  cutOffOverInputLimit(heldBytes: number, limitBytes: number): void;
}

/** Default `--max-input-bytes`: 256 MiB across all RESP connections. */
export const DEFAULT_MAX_INPUT_BYTES = 256 * 1024 * 1024;

export class InputBudget {
  readonly maxBytes: number;
  /** Bytes each holder holds; holders holding nothing are not in the map. */
  readonly #held = new Map<InputHolder, number>();
  #totalBytes = 0;
  /** Holders cut off by this budget since start. */
  cutOffs = 0;

  constructor(maxBytes: number) {
    assert(Number.isSafeInteger(maxBytes) && maxBytes > 0, 'maxBytes');
    this.maxBytes = maxBytes;
  }

  /** Bytes held now over every connection. */
  get totalBytes(): number {
    return this.#totalBytes;
  }

  /**
   * Records that `holder` now holds `bytes` (0 when it closed). When the total passes the bound,
   * cuts off the largest holders until it no longer does. O(1) unless over the bound.
   */
  update(holder: InputHolder, bytes: number): void {
    const before = this.#held.get(holder) ?? 0;
    if (bytes === before) return;
    this.#totalBytes += bytes - before;
    if (bytes === 0) this.#held.delete(holder);
    else this.#held.set(holder, bytes);
    while (this.#totalBytes > this.maxBytes) {
      let largest: InputHolder | undefined;
      let largestBytes = 0;
      for (const [h, b] of this.#held) {
        if (b > largestBytes) {
          largest = h;
          largestBytes = b;
        }
      }
      assert(largest !== undefined, 'a positive total has a holder');
      // Forget it first: whatever the holder does, it is no longer counted.
      this.#held.delete(largest);
      this.#totalBytes -= largestBytes;
      this.cutOffs++;
      largest.cutOffOverInputLimit(largestBytes, this.maxBytes);
    }
  }
}
