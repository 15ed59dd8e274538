/**
 * The spares of one topic on this gateway: messages pulled ahead (or arrived for a request
 * cancelled meanwhile) that no local consumer took yet, in arrival order, so that the next
 * request takes one at once instead of waiting for a round trip to the cluster.
 *
 * A spare is kept for {@link SPARE_HOLD_MS} and then NAKed back, all of the topic's spares in
 * arrival order, but not while a delivery of the topic made here before it arrived is in flight
 * (its lease is renewed meanwhile): given back, it would come ahead of that one if that one were
 * NACKed, timed out or returned by a closing consumer.
 *
 * While a redelivery is awaited (awaited-redeliveries.ts) the spares are held back behind it; an
 * awaited redelivery that arrives while nobody waits becomes the first spare ("the front", behind
 * the redeliveries that came before it), taken before the others.
 */
import type { PulledMessage, PullerHost } from './puller-host.js';

/** How long a message nobody waits for is kept for the next request (ms). */
export const SPARE_HOLD_MS = 1000;

/** One spare; `afterDelivery`: the last deliveryId made when it arrived. */
interface Spare {
  message: PulledMessage;
  untilMs: number;
  afterDelivery: number;
}

export class Spares {
  readonly #host: PullerHost;
  /** In arrival order, but for the front. */
  readonly #list: Spare[] = [];
  /** How many of the first spares are awaited redeliveries (taken before the others). */
  #front = 0;

  constructor(host: PullerHost) {
    this.#host = host;
  }

  /** Spares held now. */
  get count(): number {
    return this.#list.length;
  }

  /** Date.now() ms when the oldest spare arrived, or Infinity when there is none. */
  get oldestArrivedMs(): number {
    const oldest = this.#list[0];
    return oldest === undefined ? Infinity : oldest.untilMs - SPARE_HOLD_MS;
  }

  /**
   * The next spare to hand on, taken off: an awaited redelivery that arrived, else the oldest
   * spare unless `awaiting` (a redelivery is awaited: they wait behind it). Undefined when there
   * is none to hand on.
   */
  next(awaiting: boolean): PulledMessage | undefined {
    if (this.#front > 0) {
      this.#front--;
      return this.#list.shift()?.message;
    }
    return awaiting ? undefined : this.#list.shift()?.message;
  }

  /** The oldest spare, taken off, front or not; undefined when there is none. */
  shift(): PulledMessage | undefined {
    return this.#list.shift()?.message;
  }

  /** Keeps `message`, arrived at `nowMs`, last. */
  push(message: PulledMessage, nowMs: number): void {
    this.#list.push({ message, untilMs: nowMs + SPARE_HOLD_MS, afterDelivery: this.#host.lastDeliveryId });
  }

  /**
   * Keeps `message`, an awaited redelivery arrived at `nowMs` that nobody waits for, first of the
   * spares, behind the redeliveries that came before it; `moreAwaited`: others are still awaited
   * (else the spares are no longer held back behind a front).
   */
  pushFront(message: PulledMessage, nowMs: number, moreAwaited: boolean): void {
    this.#list.splice(this.#front++, 0, { message, untilMs: nowMs + SPARE_HOLD_MS, afterDelivery: this.#host.lastDeliveryId });
    if (!moreAwaited) this.#front = 0;
  }

  /** No redelivery is awaited any more: the spares are one list in arrival order again. */
  endFront(): void {
    this.#front = 0;
  }

  /**
   * Gives back every spare, oldest first, once the oldest has been held past {@link
   * SPARE_HOLD_MS} (`all`: at once). Not while a delivery of this topic made here before the
   * oldest spare arrived is in flight (`oldestInFlightId`, the smallest deliveryId of the topic
   * in flight on this gateway): the spares' leases are renewed then (with `renew`).
   */
  expire(nowMs: number, all: boolean, oldestInFlightId: number, renew: boolean): void {
    const oldest = this.#list[0];
    if (oldest === undefined) return;
    if (all || (oldest.untilMs <= nowMs && oldest.afterDelivery < oldestInFlightId)) {
      this.#front = 0;
      for (const spare of this.#list.splice(0)) this.#host.giveBack(spare.message);
      return;
    }
    if (renew) for (const spare of this.#list) this.#host.renewLease(spare.message);
  }

  /** Forgets them all (the topic was deleted). */
  clear(): void {
    this.#list.length = 0;
    this.#front = 0;
  }
}
