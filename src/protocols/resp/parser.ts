/**
 * Incremental RESP2 request parser: the server side of the Redis protocol.
 *
 * A request is either a multibulk (`*<count>\r\n` then `count` times `$<length>\r\n<bytes>\r\n`,
 * what every client library sends) or an inline line (`PING\r\n`, `DACK 5\n`, what telnet and
 * the original miniqueue consumers send), split like Redis's `sdssplitargs`.
 *
 * Chunks from the socket are queued as they are, never concatenated per chunk. A value that is
 * wholly inside one chunk comes out as a `subarray` view of it; only a value that spans chunks
 * (a header line, a bulk, an inline line) is copied, once, into a buffer of exactly its size.
 * The parse state (arguments read so far, the bulk length announced) survives between calls,
 * so a command split across chunks is never scanned again from its start.
 *
 * Every error depends only on the bytes received, never on where the chunks were split: header
 * lines are judged byte by byte from their start, bulks once all their bytes are there, and inline
 * lines at their first control byte, at their LF, or once they are already too long.
 */
import assert from 'node:assert';

const LF = 10;
const CR = 13;
const TAB = 9;
const VT = 11;
const FF = 12;
const SPACE = 32;
const DQUOTE = 34;
const DOLLAR = 36;
const SQUOTE = 39;
const STAR = 42;
const MINUS = 45;
const ZERO = 48;
const NINE = 57;
const BACKSLASH = 92;
const DEL = 127;

/** `#readLength` results that are not a position. */
const NEED_MORE = -1;
const INVALID = -2;

/** Digits allowed in a `*` or `$` header: keeps the value a safe integer (Redis caps at 19). */
const MAX_LENGTH_DIGITS = 15;
/**
 * Bytes copied to judge a header line that spans chunks. A valid header is at most
 * `*` + `-` + 15 digits + CRLF = 19 bytes, and one digit more is already an error, so 32 bytes
 * always decide it.
 */
const HEADER_WINDOW_BYTES = 32;

const EMPTY = Buffer.alloc(0);

/**
 * What was wrong with the input, for code that reacts to the cause (tests, metrics, logs)
 * without matching on text.
 */
export type RespProtocolErrorKind =
  | 'invalid-multibulk-length'
  | 'multibulk-too-long'
  | 'expected-bulk'
  | 'invalid-bulk-length'
  | 'bulk-too-large'
  | 'missing-crlf'
  | 'inline-too-long'
  | 'unbalanced-quotes'
  | 'invalid-inline-character'
  | 'command-too-large'
  | 'unauthenticated-multibulk-length'
  | 'unauthenticated-bulk-length'
  | 'input-limit';

/**
 * Broken framing on a RESP connection. {@link RespParser.next} returns it (it never throws it);
 * the connection answers `-ERR Protocol error: <reason>` once and closes (STYLE.md "Errors").
 * `code` is `MQ_ERR_PROTOCOL` from `src/errors.ts`, whose message text `message` repeats, so the
 * connection can also wrap it as `new BrokerError('MQ_ERR_PROTOCOL', [err.reason])`.
 */
export class RespProtocolError extends Error {
  readonly code = 'MQ_ERR_PROTOCOL' as const;
  /** Machine-readable cause. */
  readonly kind: RespProtocolErrorKind;
  /** One line of text in Redis's words, e.g. `expected '$', got 'x'` or `invalid bulk length`. */
  readonly reason: string;

  constructor(kind: RespProtocolErrorKind, reason: string) {
    super(`Protocol error: ${reason}`);
    this.name = 'RespProtocolError';
    this.kind = kind;
    this.reason = reason;
  }
}

/** Limits of a {@link RespParser}; each is an inclusive maximum. */
export interface RespParserOptions {
  /** Largest bulk argument, in bytes (the server passes `--max-message-bytes`, 1 MiB). */
  maxBulkBytes: number;
  /** Most arguments in one multibulk command (the server uses 1024). */
  maxArrayLength: number;
  /** Longest inline line, in bytes before its LF, a CR included (the server uses 64 KiB). */
  maxInlineBytes: number;
  /**
   * Most payload bytes of all the arguments of one multibulk command together (`--max-command-bytes`).
   * Judged on each `$` header, from the announced length, before the bulk is buffered: so neither
   * a huge announced length nor many large arguments of a command that never ends can make the
   * parser hold more than this. Default: no bound beyond `maxArrayLength * maxBulkBytes`.
   */
  maxCommandBytes?: number;
  /**
   * Stricter limits until {@link RespParser.authenticate} is called (with `--auth-token`), as Redis
   * has for unauthenticated clients since its multibulk-length CVE fix: an unauthenticated client
   * cannot make the server buffer large arguments. Absent: no stricter limits.
   */
  unauthenticated?: { maxArrayLength: number; maxBulkBytes: number };
}

/**
 * Limits of a connection that has not authenticated yet, Redis's own: 10 arguments (HELLO 3 AUTH
 * user pass SETNAME name takes 7) and 16 KiB per argument (`--auth-token` is at most 4096 bytes).
 */
export const UNAUTHENTICATED_LIMITS = Object.freeze({ maxArrayLength: 10, maxBulkBytes: 16 * 1024 });

/**
 * Turns the bytes of one RESP connection into commands. Feed every chunk read from the socket to
 * {@link push}, then call {@link next} until it returns `undefined`.
 *
 * Ownership: the argument Buffers that {@link next} returns may be views into the chunks given to
 * {@link push} (or into a buffer the parser assembled). They are only valid until the next
 * `push()`; a caller that keeps a payload longer (a published message, a topic name used as a map
 * key) must copy it (`Buffer.from(arg)` / `arg.toString()`). Keeping a view would also pin the
 * whole chunk it came from in memory. The parser never writes into a chunk it was given.
 */
export class RespParser {
  readonly #maxBulkBytes: number;
  readonly #maxArrayLength: number;
  readonly #maxInlineBytes: number;
  readonly #maxCommandBytes: number;
  /** Stricter limits while unauthenticated, null once authenticated (or when there are none). */
  #unauthenticated: { maxArrayLength: number; maxBulkBytes: number } | null;

  /** The chunk being parsed and the position of the first unparsed byte in it. */
  #buf: Buffer = EMPTY;
  #pos = 0;
  /** Chunks received after `#buf`, not started yet; `#queueHead` is the first live entry. */
  #queue: Buffer[] = [];
  #queueHead = 0;
  #queueBytes = 0;

  /** The multibulk command being assembled, or undefined between commands. */
  #args: Buffer[] | undefined = undefined;
  /** Bulks still to read for `#args`. */
  #argsLeft = 0;
  /** Length announced by the `$` header just read, or -1 when a `$` header comes next. */
  #bulkLen = -1;
  /** Payload bytes held in `#args`, counted in {@link bufferedBytes}. */
  #argsBytes = 0;

  /** Value of the header line `#readLength` parsed last (saves returning a pair). */
  #lineValue = 0;
  /** Where to resume looking for the LF of an inline line that spans chunks (-1: not started). */
  #scanIndex = -1;
  /** Bytes of that inline line already known to hold no LF. */
  #scanBytes = 0;
  /** Holds the first bytes of a header line that spans chunks; reused, never handed out. */
  readonly #window = Buffer.allocUnsafe(HEADER_WINDOW_BYTES);

  #error: RespProtocolError | undefined = undefined;

  /** Asserts that every limit is a positive integer (a caller mistake otherwise). */
  constructor(opts: RespParserOptions) {
    assert(Number.isSafeInteger(opts.maxBulkBytes) && opts.maxBulkBytes > 0, 'maxBulkBytes');
    assert(Number.isSafeInteger(opts.maxArrayLength) && opts.maxArrayLength > 0, 'maxArrayLength');
    assert(Number.isSafeInteger(opts.maxInlineBytes) && opts.maxInlineBytes > 0, 'maxInlineBytes');
    this.#maxBulkBytes = opts.maxBulkBytes;
    this.#maxArrayLength = opts.maxArrayLength;
    this.#maxInlineBytes = opts.maxInlineBytes;
    this.#maxCommandBytes = opts.maxCommandBytes ?? Number.MAX_SAFE_INTEGER;
    assert(Number.isSafeInteger(this.#maxCommandBytes) && this.#maxCommandBytes > 0, 'maxCommandBytes');
    this.#unauthenticated = opts.unauthenticated ?? null;
  }

  /**
   * The connection has authenticated: from the next command on, the ordinary limits apply instead
   * of the `unauthenticated` ones. Commands are parsed one at a time, so a pipeline's AUTH is
   * executed before the command after it is read.
   */
  authenticate(): void {
    this.#unauthenticated = null;
  }

  /**
   * Kills the parser from outside (the server's `--max-input-bytes` budget chose this connection):
   * drops every byte it held and returns the error, which every later {@link next} returns too.
   */
  abort(kind: RespProtocolErrorKind, reason: string): RespProtocolError {
    return this.#error ?? this.#fail(kind, reason);
  }

  /**
   * Bytes held for input that {@link next} has not returned yet: unparsed bytes plus the payloads
   * of a multibulk command still being assembled. The connection stops reading when it is over
   * its budget. 0 after an error (the parser drops its input then).
   */
  get bufferedBytes(): number {
    return this.#buf.length - this.#pos + this.#queueBytes + this.#argsBytes;
  }

  /**
   * Appends a chunk received from the socket. The parser keeps a reference to it, without copying,
   * and never modifies it; the caller must not modify it either. Ignored after an error.
   */
  push(chunk: Buffer): void {
    if (this.#error !== undefined || chunk.length === 0) return;
    if (this.#pos >= this.#buf.length && this.#queueBytes === 0) {
      // Everything before was parsed: the common case, no queue needed.
      this.#buf = chunk;
      this.#pos = 0;
      return;
    }
    this.#queue.push(chunk);
    this.#queueBytes += chunk.length;
  }

  /**
   * Returns the next complete command as its arguments (command name first; at least one
   * argument), `undefined` when more bytes are needed, or a {@link RespProtocolError} when the
   * input is malformed. After an error the parser is dead: every call returns that same error.
   * Empty commands (`*0`, blank inline lines) are skipped, as Redis does; a negative count is an error.
   *
   * The returned Buffers may be views into pushed chunks, valid until the next {@link push}
   * (see the class comment).
   */
  next(): Buffer[] | undefined | RespProtocolError {
    if (this.#error !== undefined) return this.#error;
    let buf = this.#buf;
    let end = buf.length;
    let pos = this.#pos;
    let args = this.#args;

    while (args === undefined) {
      if (pos >= end) {
        if (this.#queueBytes === 0) {
          this.#pos = pos;
          return undefined;
        }
        this.#nextChunk();
        buf = this.#buf;
        end = buf.length;
        pos = 0;
      }
      if (buf[pos] !== STAR) {
        this.#pos = pos;
        const inline = this.#readInline();
        if (inline === undefined || inline instanceof RespProtocolError) return inline;
        if (inline.length > 0) return inline;
        // A blank line (a telnet user pressing Enter): skipped, as Redis does.
        buf = this.#buf;
        end = buf.length;
        pos = this.#pos;
        continue;
      }
      let after = this.#readLength(buf, pos, end);
      if (after === NEED_MORE) {
        this.#pos = pos;
        after = this.#readSpanningLength();
        if (after === NEED_MORE) return undefined;
        buf = this.#buf;
        end = buf.length;
      }
      if (after === INVALID) return this.#fail('invalid-multibulk-length', 'invalid multibulk length');
      pos = after;
      const count = this.#lineValue;
      if (count > this.#maxArrayLength) {
        return this.#fail(
          'multibulk-too-long',
          `multibulk length ${count} exceeds limit ${this.#maxArrayLength}`,
        );
      }
      if (this.#unauthenticated !== null && count > this.#unauthenticated.maxArrayLength) {
        // Redis's words (networking.c) for the same refusal.
        return this.#fail('unauthenticated-multibulk-length', 'unauthenticated multibulk length');
      }
      // SPEC §4 makes a negative array length a protocol error (Redis itself skips it: a client
      // never sends a null array, so one is garbage here). `*0` is an empty command, skipped.
      if (count < 0) return this.#fail('invalid-multibulk-length', 'invalid multibulk length');
      if (count > 0) {
        args = [];
        this.#argsLeft = count;
        this.#bulkLen = -1;
        this.#argsBytes = 0;
      }
    }

    let left = this.#argsLeft;
    let len = this.#bulkLen;
    while (left > 0) {
      if (len < 0) {
        if (pos >= end) {
          if (this.#queueBytes === 0) return this.#wait(args, pos, left, len);
          this.#nextChunk();
          buf = this.#buf;
          end = buf.length;
          pos = 0;
        }
        if (buf[pos] !== DOLLAR) {
          return this.#fail('expected-bulk', `expected '$', got '${describeByte(buf[pos]!)}'`);
        }
        let after = this.#readLength(buf, pos, end);
        if (after === NEED_MORE) {
          this.#pos = pos;
          after = this.#readSpanningLength();
          if (after === NEED_MORE) return this.#wait(args, pos, left, len);
          buf = this.#buf;
          end = buf.length;
        }
        len = this.#lineValue;
        if (after === INVALID || len < 0) return this.#fail('invalid-bulk-length', 'invalid bulk length');
        if (len > this.#maxBulkBytes) {
          // Refused on the header, before the payload is buffered.
          return this.#fail('bulk-too-large', `bulk length ${len} exceeds limit ${this.#maxBulkBytes}`);
        }
        if (this.#unauthenticated !== null && len > this.#unauthenticated.maxBulkBytes) {
          return this.#fail('unauthenticated-bulk-length', 'unauthenticated bulk length');
        }
        if (this.#argsBytes + len > this.#maxCommandBytes) {
          // Refused on the announced length: what the command would hold, not what arrived so
          // far, so the verdict does not depend on how the bytes were split.
          return this.#fail(
            'command-too-large',
            `command arguments of ${this.#argsBytes + len} bytes or more exceed --max-command-bytes ${this.#maxCommandBytes}`,
          );
        }
        pos = after;
      }
      if (end - pos >= len + 2) {
        if (buf[pos + len] !== CR || buf[pos + len + 1] !== LF) {
          return this.#fail('missing-crlf', 'missing CRLF after bulk data');
        }
        args.push(buf.subarray(pos, pos + len));
        pos += len + 2;
      } else {
        // The bulk spans chunks: wait for all of it, then copy it once (no quadratic regrowth).
        if (end - pos + this.#queueBytes < len + 2) return this.#wait(args, pos, left, len);
        this.#pos = pos;
        const bulk = Buffer.allocUnsafe(len + 2);
        this.#copyAhead(bulk);
        this.#skip(len + 2);
        if (bulk[len] !== CR || bulk[len + 1] !== LF) {
          return this.#fail('missing-crlf', 'missing CRLF after bulk data');
        }
        args.push(bulk.subarray(0, len));
        buf = this.#buf;
        end = buf.length;
        pos = this.#pos;
      }
      this.#argsBytes += len;
      len = -1;
      left--;
    }

    this.#args = undefined;
    this.#argsLeft = 0;
    this.#bulkLen = -1;
    this.#argsBytes = 0;
    this.#pos = pos;
    return args;
  }

  /** Saves a half-read multibulk command until more bytes come; returns undefined for next(). */
  #wait(args: Buffer[], pos: number, left: number, len: number): undefined {
    this.#args = args;
    this.#pos = pos;
    this.#argsLeft = left;
    this.#bulkLen = len;
    return undefined;
  }

  /**
   * Parses the `*<n>\r\n` or `$<n>\r\n` line whose type byte is at `pos`. Returns the position
   * after its LF (the value goes to `#lineValue`), NEED_MORE when every byte so far is a valid
   * prefix, or INVALID as soon as one byte is not. Like Redis's string2ll it refuses a sign
   * other than a leading `-`, leading zeros, `-0`, and an empty number; it also demands CRLF.
   */
  #readLength(buf: Buffer, pos: number, end: number): number {
    let i = pos + 1;
    let negative = false;
    if (i < end && buf[i] === MINUS) {
      negative = true;
      i++;
    }
    const first = i;
    let value = 0;
    while (i < end) {
      const c = buf[i]!;
      if (c < ZERO || c > NINE) break;
      if (i - first === MAX_LENGTH_DIGITS) return INVALID;
      value = value * 10 + (c - ZERO);
      i++;
    }
    if (i >= end) return NEED_MORE;
    const digits = i - first;
    if (digits === 0 || buf[i] !== CR) return INVALID;
    if (buf[first] === ZERO && (digits > 1 || negative)) return INVALID;
    if (i + 1 >= end) return NEED_MORE;
    if (buf[i + 1] !== LF) return INVALID;
    this.#lineValue = negative ? -value : value;
    return i + 2;
  }

  /**
   * `#readLength` for a header line that continues past the current chunk: copies its first bytes
   * into a small window and consumes the line if it is complete there. Returns the new `#pos`
   * (in the new `#buf`), NEED_MORE or INVALID.
   */
  #readSpanningLength(): number {
    if (this.#queueBytes === 0) return NEED_MORE;
    const window = this.#window;
    const copied = this.#copyAhead(window);
    const after = this.#readLength(window, 0, copied);
    if (after < 0) return after;
    this.#skip(after);
    return this.#pos;
  }

  /**
   * Reads the inline line starting at `#pos` and splits it. Returns its arguments (empty for a
   * blank line), undefined while its LF has not arrived, or the error. Looks at most
   * `maxInlineBytes + 1` bytes, and stops at the first forbidden byte, so that garbage (a TLS
   * ClientHello, random bytes) fails at once instead of after 64 KiB, whatever the chunking.
   */
  #readInline(): Buffer[] | undefined | RespProtocolError {
    const limit = this.#maxInlineBytes;
    if (this.#scanIndex < 0) {
      const buf = this.#buf;
      const pos = this.#pos;
      const stop = Math.min(buf.length, pos + limit + 1);
      const i = findLineStop(buf, pos, stop);
      if (i !== -1) {
        if (buf[i] !== LF) return this.#failInlineByte(buf[i]!);
        this.#pos = i + 1;
        return this.#split(buf, pos, i);
      }
      if (stop - pos > limit) return this.#fail('inline-too-long', 'too big inline request');
      this.#scanIndex = this.#queueHead;
      this.#scanBytes = buf.length - pos;
    }
    // The line continues in queued chunks. Each byte is looked at once, even when bytes trickle
    // in one at a time: the scan resumes where the previous call stopped.
    const queue = this.#queue;
    let lineBytes = -1;
    while (lineBytes < 0 && this.#scanIndex < queue.length) {
      const chunk = queue[this.#scanIndex]!;
      const stop = Math.min(chunk.length, limit + 1 - this.#scanBytes);
      const i = findLineStop(chunk, 0, stop);
      if (i !== -1) {
        if (chunk[i] !== LF) return this.#failInlineByte(chunk[i]!);
        lineBytes = this.#scanBytes + i;
      } else {
        this.#scanBytes += stop;
        if (this.#scanBytes > limit) return this.#fail('inline-too-long', 'too big inline request');
        this.#scanIndex++;
      }
    }
    if (lineBytes < 0) return undefined;
    this.#scanIndex = -1;
    const line = Buffer.allocUnsafe(lineBytes + 1);
    this.#copyAhead(line);
    this.#skip(lineBytes + 1);
    return this.#split(line, 0, lineBytes);
  }

  #failInlineByte(c: number): RespProtocolError {
    return this.#fail(
      'invalid-inline-character',
      `invalid control character '${describeByte(c)}' in inline request`,
    );
  }

  /** Splits the inline line `buf[start, lf)`; turns a split error into the parser's error. */
  #split(buf: Buffer, start: number, lf: number): Buffer[] | RespProtocolError {
    const end = lf > start && buf[lf - 1] === CR ? lf - 1 : lf;
    const args = splitInline(buf, start, end);
    return args ?? this.#fail('unbalanced-quotes', 'unbalanced quotes in request');
  }

  /** Moves to the first queued chunk; only called when `#buf` is used up and the queue is not empty. */
  #nextChunk(): void {
    const chunk = this.#queue[this.#queueHead]!;
    // Drop the reference so a consumed chunk can be collected while later ones wait.
    this.#queue[this.#queueHead] = EMPTY;
    this.#queueHead++;
    this.#queueBytes -= chunk.length;
    if (this.#queueHead === this.#queue.length) {
      this.#queue.length = 0;
      this.#queueHead = 0;
    }
    this.#buf = chunk;
    this.#pos = 0;
  }

  /** Copies bytes from `#pos` on, across queued chunks, into `target` without consuming them. */
  #copyAhead(target: Buffer): number {
    let copied = this.#buf.copy(target, 0, this.#pos);
    const queue = this.#queue;
    for (let i = this.#queueHead; i < queue.length && copied < target.length; i++) {
      copied += queue[i]!.copy(target, copied);
    }
    return copied;
  }

  /** Consumes `byteCount` bytes from `#pos` on, moving into queued chunks as needed. */
  #skip(byteCount: number): void {
    let remaining = byteCount;
    for (;;) {
      const rest = this.#buf.length - this.#pos;
      if (remaining <= rest) {
        this.#pos += remaining;
        return;
      }
      remaining -= rest;
      assert(this.#queueBytes > 0, 'skip past the received bytes');
      this.#nextChunk();
    }
  }

  /** Kills the parser: keeps the error for every later call and drops the input it held. */
  #fail(kind: RespProtocolErrorKind, reason: string): RespProtocolError {
    const error = new RespProtocolError(kind, reason);
    this.#error = error;
    this.#buf = EMPTY;
    this.#pos = 0;
    this.#queue = [];
    this.#queueHead = 0;
    this.#queueBytes = 0;
    this.#args = undefined;
    this.#argsBytes = 0;
    return error;
  }
}

/** Space, tab, CR, VT and FF separate inline arguments (C's isspace, LF ends the line). */
function isSeparator(c: number): boolean {
  return c === SPACE || c === TAB || c === CR || c === VT || c === FF;
}

/**
 * Index of the first LF or forbidden byte in `buf[from, to)`, or -1. Control bytes other than
 * separators never occur in a typed command (escapes inside double quotes can still produce
 * them); refusing them turns binary garbage into a protocol error, as SPEC §4 wants, instead of
 * a stream of unknown commands. Bytes >= 0x80 are allowed: UTF-8 text is fine.
 */
function findLineStop(buf: Buffer, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    if (c < SPACE ? c !== TAB && c !== CR && c !== VT && c !== FF : c === DEL) return i;
  }
  return -1;
}

function hexValue(c: number): number {
  if (c >= ZERO && c <= NINE) return c - ZERO;
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}

/**
 * Splits one inline line `buf[start, end)` (no line terminator) into arguments the way Redis's
 * sdssplitargs does: separators between arguments, "double quotes" with \n \r \t \b \a \xHH and
 * \<any> escapes, 'single quotes' with only \' escaped, quotes allowed mid-argument (`a"b c"` is
 * `ab c`), and a closing quote must be followed by a separator or the end of the line.
 * Unquoted arguments are views into `buf`; quoted ones are decoded into one buffer per line.
 * Returns undefined for unbalanced quotes. The caller has already refused control bytes.
 */
function splitInline(buf: Buffer, start: number, end: number): Buffer[] | undefined {
  const args: Buffer[] = [];
  let out: Buffer | undefined;
  let outPos = 0;
  let p = start;
  for (;;) {
    while (p < end && isSeparator(buf[p]!)) p++;
    if (p >= end) return args;
    const tokenStart = p;
    while (p < end) {
      const c = buf[p]!;
      if (isSeparator(c) || c === DQUOTE || c === SQUOTE) break;
      p++;
    }
    if (p >= end || isSeparator(buf[p]!)) {
      args.push(buf.subarray(tokenStart, p));
      continue;
    }

    // A quote: decode the whole argument. Decoded bytes never outnumber source bytes, so one
    // buffer the size of the line's rest holds every quoted argument of the line.
    if (out === undefined) out = Buffer.allocUnsafe(end - tokenStart);
    const outStart = outPos;
    outPos += buf.copy(out, outPos, tokenStart, p);
    let inDouble = false;
    let inSingle = false;
    for (;;) {
      if (p >= end) {
        if (inDouble || inSingle) return undefined;
        break;
      }
      const c = buf[p]!;
      if (inDouble) {
        if (c === BACKSLASH && p + 3 < end && buf[p + 1] === 120 /* x */) {
          const high = hexValue(buf[p + 2]!);
          const low = hexValue(buf[p + 3]!);
          if (high >= 0 && low >= 0) {
            out[outPos++] = high * 16 + low;
            p += 4;
            continue;
          }
        }
        if (c === BACKSLASH && p + 1 < end) {
          const e = buf[p + 1]!;
          out[outPos++] = e === 110 ? LF : e === 114 ? CR : e === 116 ? TAB : e === 98 ? 8 : e === 97 ? 7 : e;
          p += 2;
        } else if (c === DQUOTE) {
          if (p + 1 < end && !isSeparator(buf[p + 1]!)) return undefined;
          p++;
          break;
        } else {
          out[outPos++] = c;
          p++;
        }
      } else if (inSingle) {
        if (c === BACKSLASH && p + 1 < end && buf[p + 1] === SQUOTE) {
          out[outPos++] = SQUOTE;
          p += 2;
        } else if (c === SQUOTE) {
          if (p + 1 < end && !isSeparator(buf[p + 1]!)) return undefined;
          p++;
          break;
        } else {
          out[outPos++] = c;
          p++;
        }
      } else if (isSeparator(c)) {
        break;
      } else if (c === DQUOTE) {
        inDouble = true;
        p++;
      } else if (c === SQUOTE) {
        inSingle = true;
        p++;
      } else {
        out[outPos++] = c;
        p++;
      }
    }
    args.push(out.subarray(outStart, outPos));
  }
}

/** A byte as Redis would show it in "expected '$', got 'x'", escaped when not printable. */
function describeByte(c: number): string {
  if (c >= SPACE && c < DEL) return String.fromCharCode(c);
  return `\\x${c.toString(16).padStart(2, '0')}`;
}
