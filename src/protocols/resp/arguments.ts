/**
 * Reading RESP command arguments: numbers straight from the bytes (no `toString` to parse one,
 * STYLE.md "Avoid"), and safe excerpts of client bytes for error messages.
 */

/** Most digits of a whole-number argument: 15 keeps every accepted value a safe integer. */
const MAX_DIGITS = 15;

/**
 * The value of `arg` as a whole number written in decimal (1 to 15 ASCII digits, no sign, leading
 * zeros allowed), or undefined for anything else. Ids, timeouts, seconds, DB and protocol numbers.
 */
export function parseWholeNumber(arg: Buffer): number | undefined {
  if (arg.length === 0 || arg.length > MAX_DIGITS) return undefined;
  let n = 0;
  for (let i = 0; i < arg.length; i++) {
    const c = arg[i]! - 48;
    if (c < 0 || c > 9) return undefined;
    n = n * 10 + c;
  }
  return n;
}

/**
 * The first `maxChars` characters of `text` (or of `arg` read as latin1) with every character
 * outside printable ASCII shown as `?`, so that an error line quoting client bytes stays one
 * readable line.
 */
export function printable(text: Buffer | string, maxChars: number): string {
  const s = typeof text === 'string' ? text.slice(0, maxChars) : text.toString('latin1', 0, Math.min(text.length, maxChars));
  return s.replace(/[^\x20-\x7e]/g, '?');
}
