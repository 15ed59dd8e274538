/**
 * The ordered reply queue of one RESP connection (SPEC §4): replies leave in command order even
 * though PUBLISH and the settles are answered only when their records are durable.
 *
 * Each command takes a slot; a slot is filled when its answer is known, possibly out of order.
 * The filled slots at the head are written on the next tick as one buffer per run (a socket write
 * per reply, even corked, costs a writev entry each and was the top item of the PUBLISH -P16
 * profile). A {@link SplicedReply}'s payload is copied once, straight into that buffer.
 *
 * The unsent output (filled replies queued here plus the socket's own buffer) is bounded by
 * `maxOutputBytes`: commands already read keep running while reading is paused (a pipeline of
 * RESERVEs of large messages, a subscriber that sends ACKs blindly), so past the bound the
 * client is taken for one that does not read, and the queue drops everything and says so.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { BrokerError } from '../../errors.js';
import { OK, SplicedReply, encodeError } from './encoder.js';

/**
 * One encoded reply: a string (short replies; latin1/ASCII, so its length is its byte length),
 * a Buffer, or a {@link SplicedReply}. The queue only reads it; shared constants are fine.
 */
export type Reply = Buffer | string | SplicedReply;

/** What the connection does when the queue has written or given up. */
export interface ReplyQueueHooks {
  /** A run of replies was written; `writeOk` is what `socket.write` returned (false: buffer full). */
  afterFlush(writeOk: boolean): void;
  /**
   * The unsent output went over `maxOutputBytes`: every queued reply is dropped and nothing more
   * will be written. `unsentBytes` is what was unsent at that moment.
   */
  overOutputLimit(unsentBytes: number): void;
}

export class ReplyQueue {
  readonly #socket: Socket;
  readonly #logger: Logger;
  readonly #maxOutputBytes: number;
  readonly #hooks: ReplyQueueHooks;
  /** Pending replies in command order; undefined = not known yet. Index 0 is slot `#slotBase`. */
  #replies: (Reply | undefined)[] = [];
  #slotBase = 0;
  /** Bytes of the filled replies in `#replies` (a string counts its length, see {@link Reply}). */
  #queuedBytes = 0;
  #flushScheduled = false;
  /** Over the output limit: replies are dropped from then on. */
  #dropped = false;
  /** The socket has closed: nothing more is written. */
  #closed = false;
  readonly #flushOnTick = (): void => this.#flush();

  /**
   * @param maxOutputBytes most unsent output (queued replies plus `socket.writableLength`) in bytes
   * @param logger receives the unexpected (non-{@link BrokerError}) errors given to `*Error`
   */
  constructor(socket: Socket, logger: Logger, maxOutputBytes: number, hooks: ReplyQueueHooks) {
    this.#socket = socket;
    this.#logger = logger;
    this.#maxOutputBytes = maxOutputBytes;
    this.#hooks = hooks;
  }

  /** Slots taken and not yet written (filled or not). */
  get pendingCount(): number {
    return this.#replies.length;
  }

  /** Takes the next reply slot; returns its absolute number, for {@link fill}. */
  slot(): number {
    this.#replies.push(undefined);
    return this.#slotBase + this.#replies.length - 1;
  }

  /** Fills `slot` (from {@link slot}, filled once); a no-op after the output limit was hit. */
  fill(slot: number, reply: Reply): void {
    if (this.#dropped) return;
    this.#replies[slot - this.#slotBase] = reply;
    this.#queuedBytes += reply.length;
    if (this.#queuedBytes + this.#socket.writableLength > this.#maxOutputBytes) {
      this.#dropOverOutputLimit();
      return;
    }
    if (slot === this.#slotBase && !this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(this.#flushOnTick);
    }
  }

  /** Fills `slot` with the error reply of `err` (see {@link errorLine}). */
  fillError(slot: number, err: unknown): void {
    this.fill(slot, encodeError(this.errorLine(err)));
  }

  /** Fills `slot` with `+OK`, or with the error reply of `err` when there is one (a broker callback's outcome). */
  fillOkOrError(slot: number, err: BrokerError | null): void {
    if (err === null) this.fill(slot, OK);
    else this.fillError(slot, err);
  }

  /** Answers a command at once: takes a slot and fills it. */
  reply(reply: Reply): void {
    this.fill(this.slot(), reply);
  }

  /** Answers a command at once with the error reply of `err`. */
  replyError(err: unknown): void {
    this.reply(encodeError(this.errorLine(err)));
  }

  /**
   * The RESP error line of `err`: a {@link BrokerError}'s own line, else `MQ_ERR_INTERNAL` with
   * its message (logged at error level: it is a bug or an unforeseen failure).
   */
  errorLine(err: unknown): string {
    if (err instanceof BrokerError) return err.toRespLine();
    this.#logger.error({ err }, 'unexpected error in a RESP command');
    return new BrokerError('MQ_ERR_INTERNAL', [err instanceof Error ? err.message : String(err)]).toRespLine();
  }

  /** The socket has closed: nothing is written from now on. */
  close(): void {
    this.#closed = true;
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#closed || this.#dropped) return;
    const replies = this.#replies;
    let n = 0;
    while (n < replies.length && replies[n] !== undefined) n++;
    if (n === 0) return;
    let ok: boolean;
    if (n === 1) {
      const first = replies[0]!;
      this.#queuedBytes -= first.length;
      ok = this.#socket.write(first instanceof SplicedReply ? first.toBuffer() : first);
    } else {
      let total = 0;
      for (let i = 0; i < n; i++) {
        const r = replies[i]!;
        total += typeof r === 'string' ? Buffer.byteLength(r) : r.length; // SplicedReply: bytes
      }
      const out = Buffer.allocUnsafe(total);
      let p = 0;
      for (let i = 0; i < n; i++) {
        const r = replies[i]!;
        if (typeof r === 'string') p += out.write(r, p);
        else if (r instanceof SplicedReply) p = r.writeTo(out, p);
        else p += r.copy(out, p);
      }
      for (let i = 0; i < n; i++) this.#queuedBytes -= replies[i]!.length;
      ok = this.#socket.write(out);
    }
    this.#replies = n === replies.length ? [] : replies.slice(n);
    this.#slotBase += n;
    this.#hooks.afterFlush(ok);
  }

  #dropOverOutputLimit(): void {
    const unsentBytes = this.#queuedBytes + this.#socket.writableLength;
    this.#dropped = true;
    this.#replies = [];
    this.#queuedBytes = 0;
    this.#hooks.overOutputLimit(unsentBytes);
  }
}
