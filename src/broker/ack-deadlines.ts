/**
 * Deadlines of deliveries under `--ack-timeout` (SPEC §7 "Ack timeout"): one FIFO checked by one
 * coarse ticker, instead of a timer per message.
 *
 * Every deadline is `now + timeout` on a monotonic clock with one fixed timeout, so deadlines are
 * pushed in non-decreasing order and the expired ones are always at the head. A TOUCH or a new
 * delivery pushes a new entry with a new token (Message.ackToken); the old entry, and the entry of
 * a message settled meanwhile, is stale and skipped when it reaches the head. Stale entries are
 * dropped in one pass whenever they outnumber live ones 3 to 1 (past 1024 entries), so memory
 * stays proportional to the deliveries in flight, not to the delivery rate.
 */
import { MessageState } from './message.js';

/** What a deadline is kept for: a delivery's Message view. */
export interface Deadlined {
  ackToken: number;
  readonly state: number;
}

export class AckDeadlines<M extends Deadlined = Deadlined> {
  #msgs: (M | undefined)[] = new Array(64);
  #tokens = new Float64Array(64);
  #deadlines = new Float64Array(64);
  #head = 0;
  #length = 0;
  #nextToken = 1;
  /** Entry count past which the next push first drops stale entries. */
  #compactAt = 1024;

  /** Entries, stale ones included (tests). */
  get size(): number {
    return this.#length;
  }

  /** (Re)starts `msg`'s deadline at `deadlineMs` (monotonic ms, never less than any earlier one). */
  track(msg: M, deadlineMs: number): void {
    if (this.#length >= this.#compactAt) this.#compact();
    if (this.#length === this.#msgs.length) this.#grow();
    const i = (this.#head + this.#length) % this.#msgs.length;
    msg.ackToken = this.#nextToken++;
    this.#msgs[i] = msg;
    this.#tokens[i] = msg.ackToken;
    this.#deadlines[i] = deadlineMs;
    this.#length++;
  }

  /**
   * Removes and returns, in deadline order, the messages still in flight under the entry whose
   * deadline is at or before `nowMs`; their ackToken is cleared.
   */
  expire(nowMs: number): M[] {
    const out: M[] = [];
    while (this.#length > 0 && this.#deadlines[this.#head]! <= nowMs) {
      const i = this.#head;
      const msg = this.#msgs[i]!;
      const live = msg.ackToken === this.#tokens[i] && msg.state === MessageState.IN_FLIGHT;
      this.#msgs[i] = undefined;
      this.#head = (i + 1) % this.#msgs.length;
      this.#length--;
      if (live) {
        msg.ackToken = 0;
        out.push(msg);
      }
    }
    return out;
  }

  #isLive(k: number): boolean {
    const i = (this.#head + k) % this.#msgs.length;
    const msg = this.#msgs[i]!;
    return msg.ackToken === this.#tokens[i] && msg.state === MessageState.IN_FLIGHT;
  }

  /** Drops stale entries, keeping the order of live ones. */
  #compact(): void {
    const cap = this.#msgs.length;
    let n = 0;
    for (let k = 0; k < this.#length; k++) {
      if (!this.#isLive(k)) continue;
      const from = (this.#head + k) % cap;
      const to = (this.#head + n) % cap; // never ahead of `from`: entries only move towards the head
      this.#msgs[to] = this.#msgs[from];
      this.#tokens[to] = this.#tokens[from]!;
      this.#deadlines[to] = this.#deadlines[from]!;
      n++;
    }
    for (let k = n; k < this.#length; k++) this.#msgs[(this.#head + k) % cap] = undefined;
    this.#length = n;
    this.#compactAt = Math.max(1024, 4 * n);
  }

  #grow(): void {
    const cap = this.#msgs.length;
    const msgs: (M | undefined)[] = new Array(cap * 2);
    const tokens = new Float64Array(cap * 2);
    const deadlines = new Float64Array(cap * 2);
    for (let k = 0; k < this.#length; k++) {
      const i = (this.#head + k) % cap;
      msgs[k] = this.#msgs[i];
      tokens[k] = this.#tokens[i]!;
      deadlines[k] = this.#deadlines[i]!;
    }
    this.#msgs = msgs;
    this.#tokens = tokens;
    this.#deadlines = deadlines;
    this.#head = 0;
  }
}
