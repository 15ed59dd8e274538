/**
 * The topic name a RESP connection published to last, kept as bytes and as its string, so that a
 * producer publishing to one topic has its name converted once rather than once per PUBLISH (a
 * `latin1Slice` call into C++ per command was 1.2% of the PUBLISH -P16 profile).
 */

/** Longest name kept (bytes); a longer one is converted every time. */
const MAX_KEPT_BYTES = 64;

export class LastTopicName {
  readonly #bytes = Buffer.allocUnsafe(MAX_KEPT_BYTES);
  /** Length of the kept name in bytes, -1 when none is kept. */
  #length = -1;
  #name = '';

  /** The latin1 string of `arg` (a topic name argument, a view into a socket chunk). */
  of(arg: Buffer): string {
    const n = arg.length;
    if (n === this.#length) {
      const kept = this.#bytes;
      let i = 0;
      while (i < n && kept[i] === arg[i]) i++;
      if (i === n) return this.#name;
    }
    const name = arg.toString('latin1');
    if (n <= MAX_KEPT_BYTES) {
      arg.copy(this.#bytes, 0);
      this.#length = n;
      this.#name = name;
    }
    return name;
  }
}
