/**
 * RESP2 reply encoding: the server side of the Redis protocol, outbound.
 *
 * A reply takes one of three forms, all of which the reply queue (reply-queue.ts) copies into
 * the one buffer it writes per run of replies: short replies (`+OK`, `-ERR …`, `:1`) are
 * strings; arrays and bulk strings are built into one `Buffer.allocUnsafe` of their exact size
 * (the size is computed first, then every part is written in place, with no `Buffer.concat` and
 * no `JSON.stringify`, STYLE.md "Hot paths"); a delivery that carries a stored payload is a
 * {@link SplicedReply}, so that payload is copied only once. Numbers are written digit by digit,
 * so no intermediate string is made for a length header inside a Buffer.
 */
import assert from 'node:assert';

/**
 * A reply value, mapped to RESP2 as: `string` or `Buffer` → bulk string (a string is sent as
 * UTF-8), `number` → integer (must be a safe integer), `null` → nil bulk (`$-1`), array → array
 * (nested arrays allowed), `{ simple }` → simple string (`+…`), `{ error }` → error (`-…`, the
 * text starts with its code word, e.g. `ERR bad id`).
 */
export type RespValue =
  | string
  | Buffer
  | number
  | null
  | RespValue[]
  | { simple: string }
  | { error: string };

/*
 * Precomputed replies. They are shared: write them to sockets, never modify them.
 */
/** `+OK\r\n` */
export const OK: Buffer = Buffer.from('+OK\r\n', 'latin1');
/** `+PONG\r\n` */
export const PONG: Buffer = Buffer.from('+PONG\r\n', 'latin1');
/** `$-1\r\n`, the nil bulk string (GET of a missing key, RESERVE with nothing ready). */
export const NIL_BULK: Buffer = Buffer.from('$-1\r\n', 'latin1');
/** `*-1\r\n`, the nil array (BLPOP-style timeouts). */
export const NIL_ARRAY: Buffer = Buffer.from('*-1\r\n', 'latin1');
/** `*0\r\n` */
export const EMPTY_ARRAY: Buffer = Buffer.from('*0\r\n', 'latin1');
/** `_\r\n`, the RESP3 null, sent in place of both RESP2 nils on a connection that chose RESP3 with HELLO. */
export const NULL_RESP3: Buffer = Buffer.from('_\r\n', 'latin1');

const CR = 13;
const LF = 10;
const ZERO = 48;
const PLUS = 43;
const MINUS = 45;
const COLON = 58;
const DOLLAR = 36;
const STAR = 42;

/**
 * `s` with every run of CR/LF replaced by one space: a simple string or error line cannot hold
 * a line break, and a space keeps the words apart (the same rule as `BrokerError.toRespLine`).
 */
function oneLine(s: string): string {
  if (s.indexOf('\r') === -1 && s.indexOf('\n') === -1) return s;
  return s.replace(/[\r\n]+/g, ' ');
}

/**
 * `-<line>\r\n`, with CR/LF in `line` replaced by spaces. `line` starts with the uppercase code
 * word (`ERR unknown command 'x'`, `NOPROTO …`); a BrokerError gives it with `toRespLine()`.
 * Returns a string ready to write.
 */
export function encodeError(line: string): string {
  return `-${oneLine(line)}\r\n`;
}

/** `:<n>\r\n`. `n` must be a safe integer (asserted: anything else is a programmer mistake). */
export function encodeInteger(n: number): string {
  assert(Number.isSafeInteger(n), 'RESP integer must be a safe integer');
  return `:${n}\r\n`;
}

/**
 * A reply made of a latin1 head, a payload and a latin1 tail, kept apart until the reply queue
 * (reply-queue.ts) writes it: the payload (a cached message body, owned by the broker and never modified) is
 * copied once, straight into the connection's output buffer, instead of into a reply Buffer
 * first and the output buffer after. `length` is in bytes (head and tail are latin1).
 */
export class SplicedReply {
  readonly length: number;

  constructor(
    readonly head: string,
    readonly payload: Buffer,
    readonly tail: string,
  ) {
    this.length = head.length + payload.length + tail.length;
  }

  /** Writes the reply into `out` at byte `position` (room for `length` bytes); returns the position after it. */
  writeTo(out: Buffer, position: number): number {
    let p = position + out.write(this.head, position, 'latin1');
    p += this.payload.copy(out, p);
    return p + out.write(this.tail, p, 'latin1');
  }

  /** The reply as one new Buffer, owned by the caller. */
  toBuffer(): Buffer {
    const out = Buffer.allocUnsafe(this.length);
    this.writeTo(out, 0);
    return out;
  }
}

/** A bulk string reply whose payload is copied only when it is written (see {@link SplicedReply}). */
export function splicedBulk(payload: Buffer): SplicedReply {
  return new SplicedReply(`$${payload.length}\r\n`, payload, '\r\n');
}

/**
 * A bulk string reply: `$<length>\r\n<payload>\r\n`, or {@link NIL_BULK} for null. A string
 * payload is encoded as UTF-8 and its length counted in bytes. Returns a new Buffer of exactly
 * that size, which the caller owns (the payload is copied, so it may be reused afterwards),
 * except for null, which returns the shared NIL_BULK.
 */
export function encodeBulk(payload: Buffer | string | null): Buffer {
  if (payload === null) return NIL_BULK;
  const payloadBytes = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  const out = Buffer.allocUnsafe(bulkLength(payloadBytes));
  const end = writeBulk(out, 0, payload, payloadBytes);
  assert(end === out.length);
  return out;
}

/**
 * An array reply: `*<count>\r\n` then each item encoded as {@link RespValue} says. Returns a new
 * Buffer of exactly the encoded size, owned by the caller; payloads are copied into it.
 */
export function encodeArray(items: readonly RespValue[]): Buffer {
  return encodeValue(items as RespValue[]);
}

/** Any {@link RespValue} as one new Buffer of exactly its encoded size, owned by the caller. */
export function encodeValue(value: RespValue): Buffer {
  const out = Buffer.allocUnsafe(encodedLength(value));
  const end = writeValue(out, 0, value);
  assert(end === out.length);
  return out;
}

/** Bytes that {@link writeValue} writes for `value`. */
export function encodedLength(value: RespValue): number {
  if (typeof value === 'string') return bulkLength(Buffer.byteLength(value));
  if (typeof value === 'number') {
    assert(Number.isSafeInteger(value), 'RESP integer must be a safe integer');
    return 3 + decimalLength(value);
  }
  if (value === null) return NIL_BULK.length;
  if (Buffer.isBuffer(value)) return bulkLength(value.length);
  if (Array.isArray(value)) {
    let total = 3 + decimalLength(value.length);
    for (let i = 0; i < value.length; i++) total += encodedLength(value[i]!);
    return total;
  }
  const line = 'simple' in value ? value.simple : value.error;
  return 3 + Buffer.byteLength(oneLine(line));
}

/**
 * Writes `value` into `target` at byte `position` and returns the position after it. `target`
 * must have {@link encodedLength} bytes free there (asserted by the callers in this file; writing
 * past the end would silently truncate).
 */
export function writeValue(target: Buffer, position: number, value: RespValue): number {
  if (typeof value === 'string') return writeBulk(target, position, value, Buffer.byteLength(value));
  if (typeof value === 'number') {
    target[position] = COLON;
    return writeCrlf(target, writeDecimal(target, position + 1, value));
  }
  if (value === null) return position + NIL_BULK.copy(target, position);
  if (Buffer.isBuffer(value)) return writeBulk(target, position, value, value.length);
  if (Array.isArray(value)) {
    target[position] = STAR;
    let pos = writeCrlf(target, writeDecimal(target, position + 1, value.length));
    for (let i = 0; i < value.length; i++) pos = writeValue(target, pos, value[i]!);
    return pos;
  }
  const simple = 'simple' in value;
  target[position] = simple ? PLUS : MINUS;
  const line = oneLine(simple ? value.simple : value.error);
  return writeCrlf(target, position + 1 + target.write(line, position + 1, 'utf8'));
}

/**
 * Writes `$<byteLength>\r\n` into `target` at `position` and returns the position after it,
 * where the payload goes (then CRLF).
 */
export function writeBulkHeader(target: Buffer, position: number, byteLength: number): number {
  target[position] = DOLLAR;
  return writeCrlf(target, writeDecimal(target, position + 1, byteLength));
}

/** Size in bytes of a whole bulk reply whose payload is `payloadBytes` long. */
function bulkLength(payloadBytes: number): number {
  return 1 + decimalLength(payloadBytes) + 2 + payloadBytes + 2;
}

function writeBulk(target: Buffer, position: number, payload: Buffer | string, payloadBytes: number): number {
  const pos = writeBulkHeader(target, position, payloadBytes);
  const written = typeof payload === 'string' ? target.write(payload, pos, 'utf8') : payload.copy(target, pos);
  assert(written === payloadBytes);
  return writeCrlf(target, pos + payloadBytes);
}

function writeCrlf(target: Buffer, position: number): number {
  target[position] = CR;
  target[position + 1] = LF;
  return position + 2;
}

/** Number of characters of `n` in decimal, with its sign; `n` is a safe integer. */
function decimalLength(n: number): number {
  let length = n < 0 ? 2 : 1;
  let rest = Math.abs(n);
  while (rest >= 10) {
    rest = Math.floor(rest / 10);
    length++;
  }
  return length;
}

/** Writes the safe integer `n` in decimal at `position` and returns the position after it. */
function writeDecimal(target: Buffer, position: number, n: number): number {
  let pos = position;
  if (n < 0) target[pos++] = MINUS;
  let rest = Math.abs(n);
  const end = position + decimalLength(n);
  let i = end;
  do {
    target[--i] = ZERO + (rest % 10);
    rest = Math.floor(rest / 10);
  } while (i > pos);
  return end;
}
