/**
 * The arrival order of one topic's pulled messages on this gateway, which is the order they are
 * handed on in. Each message that arrives gets a ticket; a redelivered message is admitted after
 * a lookup (its delivery record), and the messages that arrived after it wait for it, else they
 * would overtake it (a NACKed message would not be next). So an admitted message is handed on
 * only once every earlier arrival was admitted or dropped.
 *
 * Order after a spare is given back (NAKed, behind anything NAKed before it): every message of
 * the topic that arrived before that NAK was answered, and was not handed on yet (the spares,
 * those being admitted, those arriving while the NAK is unanswered), is "overtaken" and given
 * back too, behind it; but for the redelivery of a message being given back. An awaited
 * redelivery (awaited-redeliveries.ts) is never overtaken.
 */
import type { PulledMessage } from './puller-host.js';

/** What a puller knows of one arrival: its place in the topic's arrival order. */
export type ArrivalTicket = number;

/** Hands on one admitted message (`null`: dropped), called in arrival order. */
export type HandOn = (message: PulledMessage | null, ticket: ArrivalTicket, nowMs: number) => void;

export class ArrivalOrder {
  readonly #handOn: HandOn;
  /** Arrivals so far (each message's {@link ArrivalTicket}). */
  #arrivals = 0;
  /** Arrivals up to this ticket are overtaken by a NAK: given back, not handed on. */
  #overtakenThrough = 0;
  /** The ticket of the next arrival to hand on. */
  #nextToHandOn = 1;
  /** Admitted arrivals waiting for an earlier one still being admitted (null: dropped). */
  readonly #admittedEarly = new Map<ArrivalTicket, PulledMessage | null>();
  /** Stream sequences given back and not answered yet: their redelivery is not overtaken. */
  readonly #nakedSeqs = new Map<number, number>();
  /** NAKs of spares given back not answered yet: what arrives meanwhile is overtaken. */
  #givingBack = 0;

  constructor(handOn: HandOn) {
    this.#handOn = handOn;
  }

  /**
   * A message of stream sequence `streamSeq` arrived (`awaited`: it is an awaited redelivery).
   * Returns its ticket.
   */
  arrive(streamSeq: number, awaited: boolean): ArrivalTicket {
    const ticket = ++this.#arrivals;
    if (this.#givingBack > 0 && !this.#nakedSeqs.has(streamSeq) && !awaited) this.#overtakenThrough = ticket;
    return ticket;
  }

  /**
   * Whether the message of arrival `ticket` (of stream sequence `streamSeq`; `awaited`: an
   * awaited redelivery) was overtaken by a NAK: it is given back, not handed on.
   */
  overtaken(ticket: ArrivalTicket, streamSeq: number, awaited: boolean): boolean {
    return ticket <= this.#overtakenThrough && !this.#nakedSeqs.has(streamSeq) && !awaited;
  }

  /**
   * A NAK of a spare given back (of stream sequence `nakedSeq`) is out: what arrived so far or
   * arrives until it is answered is overtaken, but for the redelivery of `nakedSeq`.
   */
  givingBack(nakedSeq?: number): void {
    this.#givingBack++;
    this.#overtakenThrough = this.#arrivals;
    if (nakedSeq !== undefined) this.#nakedSeqs.set(nakedSeq, (this.#nakedSeqs.get(nakedSeq) ?? 0) + 1);
  }

  /** The NAK of {@link givingBack} was answered (or failed). */
  givenBack(nakedSeq?: number): void {
    this.#givingBack--;
    if (nakedSeq !== undefined) {
      const n = (this.#nakedSeqs.get(nakedSeq) ?? 1) - 1;
      if (n > 0) this.#nakedSeqs.set(nakedSeq, n);
      else this.#nakedSeqs.delete(nakedSeq);
    }
  }

  /**
   * The message of arrival `ticket` was admitted (`null`: dropped): handed on now with those
   * admitted early behind it, in arrival order, or kept until the earlier ones are.
   */
  admitted(ticket: ArrivalTicket, message: PulledMessage | null, nowMs: number): void {
    if (ticket !== this.#nextToHandOn) {
      this.#admittedEarly.set(ticket, message);
      return;
    }
    this.#nextToHandOn++;
    this.#handOn(message, ticket, nowMs);
    for (let next = this.#admittedEarly.get(this.#nextToHandOn); next !== undefined; next = this.#admittedEarly.get(this.#nextToHandOn)) {
      this.#admittedEarly.delete(this.#nextToHandOn);
      this.#handOn(next, this.#nextToHandOn++, nowMs);
    }
  }
}
