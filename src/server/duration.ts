/**
 * Parsers for the human-written quantities on the command line: Go-style durations
 * (`--period 250ms`, `--fsync-interval 1s`) and byte sizes (`--segment-bytes 64MiB`).
 *
 * Both throw a plain `RangeError` with a short description of what was wrong. They know nothing
 * about options; `server/config.ts` wraps the error in a `ConfigError` that names the option.
 */

/** Nanoseconds per unit, as Go's `time.ParseDuration` spells them. µ (U+00B5) and μ (U+03BC) are both micro. */
const NS_PER_UNIT: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['\u00b5s', 1_000n],
  ['\u03bcs', 1_000n],
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

const NS_PER_MS = 1_000_000n;

/** Go rejects durations that overflow an int64 of nanoseconds (about 292 years); so do we. */
const MAX_DURATION_NS = (1n << 63n) - 1n;

/** One `<number><unit>` term: digits, an optional fraction (`1.5`, `.5`, `1.`), then a unit. */
const DURATION_TERM = /(\d*)(?:\.(\d*))?([a-z\u00b5\u03bc]+)/y;

/**
 * Parses a Go-style duration (the syntax of Go's `time.ParseDuration`) into whole milliseconds.
 *
 * Accepted: one or more `<decimal><unit>` terms with no spaces, e.g. `250ms`, `1s`, `2m`, `1h30m`,
 * `1.5s`, `.5s`, `500us`; units `ns`, `us`, `µs`/`μs`, `ms`, `s`, `m`, `h`. A leading `+` is
 * allowed. The bare string `0` (and `+0`) means 0.
 *
 * Rounding: the exact value (fractions are kept to the nanosecond, like Go) is rounded **up** to
 * a whole millisecond, so any positive duration is at least 1 ms (`500us` → 1, `1500us` → 2) and
 * a positive setting can never turn into a busy loop of 0 ms. Zero stays 0.
 *
 * @param text - the duration as typed, e.g. `"1h30m"`. Not trimmed.
 * @returns the duration in milliseconds, an integer ≥ 0 and ≤ about 9.2e12 (292 years).
 * @throws RangeError if `text` is empty, negative, has a number without a unit (other than `0`),
 *   an unknown unit, any other character, or exceeds 2^63-1 ns.
 */
export function parseDurationMs(text: string): number {
  if (text.length === 0) throw new RangeError('empty duration');
  let rest = text;
  if (rest.startsWith('-')) throw new RangeError('negative duration');
  if (rest.startsWith('+')) rest = rest.slice(1);
  if (rest === '0') return 0;
  if (rest.length === 0) throw new RangeError('no number after the sign');

  let totalNs = 0n;
  let index = 0;
  while (index < rest.length) {
    DURATION_TERM.lastIndex = index;
    const match = DURATION_TERM.exec(rest);
    if (match === null) {
      const tail = rest.slice(index);
      throw new RangeError(/^[\d.]+$/.test(tail) ? `missing unit after "${tail}"` : `unexpected "${tail}"`);
    }
    const whole = match[1] ?? '';
    const fraction = match[2] ?? '';
    const unit = match[3] ?? '';
    if (whole === '' && fraction === '') throw new RangeError(`missing number before "${unit}"`);
    const nsPerUnit = NS_PER_UNIT.get(unit);
    if (nsPerUnit === undefined) throw new RangeError(`unknown unit "${unit}"`);
    totalNs += BigInt(whole === '' ? '0' : whole) * nsPerUnit;
    if (fraction !== '') {
      // Go drops the digits finer than a nanosecond; BigInt division truncates the same way.
      totalNs += (BigInt(fraction) * nsPerUnit) / 10n ** BigInt(fraction.length);
    }
    if (totalNs > MAX_DURATION_NS) throw new RangeError('duration too large');
    index = DURATION_TERM.lastIndex;
  }
  return Number((totalNs + NS_PER_MS - 1n) / NS_PER_MS);
}

/**
 * Multipliers for byte sizes, by lower-cased suffix. All of them are powers of 1024: there are no
 * decimal (1000-based) multiples, so `64M`, `64MB` and `64MiB` are the same 67108864 bytes, as in
 * nginx, the JVM's `-Xmx` and Docker's `--memory`.
 */
const BYTES_PER_SUFFIX: ReadonlyMap<string, number> = new Map([
  ['', 1],
  ['b', 1],
  ['k', 1024],
  ['kb', 1024],
  ['kib', 1024],
  ['m', 1024 ** 2],
  ['mb', 1024 ** 2],
  ['mib', 1024 ** 2],
  ['g', 1024 ** 3],
  ['gb', 1024 ** 3],
  ['gib', 1024 ** 3],
  ['t', 1024 ** 4],
  ['tb', 1024 ** 4],
  ['tib', 1024 ** 4],
]);

const BYTE_SIZE = /^(\d+(?:\.\d+)?|\.\d+)(?: ?([a-z]+))?$/i;

/**
 * Parses a byte size: a plain non-negative integer of bytes (`4096`), or a number with a suffix,
 * case-insensitive, optionally after one space: `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`,
 * `G`/`GB`/`GiB`, `T`/`TB`/`TiB`. **Every suffix is binary** (1 K = 1024 bytes). A fraction is
 * allowed with a suffix (`1.5MiB` = 1572864) and the result is rounded down to whole bytes.
 *
 * @param text - the size as typed, e.g. `"64MiB"`. Not trimmed.
 * @returns the size in bytes, an integer in [0, Number.MAX_SAFE_INTEGER].
 * @throws RangeError if `text` is empty, negative, not a number, has an unknown suffix, has a
 *   fraction without a suffix, or is larger than Number.MAX_SAFE_INTEGER bytes.
 */
export function parseByteSize(text: string): number {
  if (text.length === 0) throw new RangeError('empty size');
  if (text.startsWith('-')) throw new RangeError('negative size');
  const match = BYTE_SIZE.exec(text);
  if (match === null) throw new RangeError('not a size');
  const number = match[1] ?? '';
  const suffix = (match[2] ?? '').toLowerCase();
  const multiplier = BYTES_PER_SUFFIX.get(suffix);
  if (multiplier === undefined) throw new RangeError(`unknown suffix "${match[2]}"`);
  if (multiplier === 1 && number.includes('.')) throw new RangeError('a size in bytes must be a whole number');
  const bytes = Math.floor(Number(number) * multiplier);
  if (!Number.isSafeInteger(bytes)) throw new RangeError('size too large');
  return bytes;
}
