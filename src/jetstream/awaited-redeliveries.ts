/**
 * The awaited redeliveries of one topic on this gateway: deliveries NAKed here (a NACK, an ack
 * timeout, a closing consumer) whose redelivery is waited for, so that a NACKed message is the
 * next one handed on.
 *
 * JetStream redelivers NAKed messages first, in the order it processed the NAKs, and no pull of
 * the topic is sent until this gateway's NAKs are answered. Until an awaited redelivery arrives
 * here, what was pulled ahead (the spares, and whatever arrives meanwhile, pulled from behind it)
 * is held back by the topic's puller (topic-puller.ts), and the waiting consumers' pulls bring it
 * first; it is handed on first, then the spares, in arrival order. So a NACK costs its NAK, one
 * pull and no more (before, every spare was given back behind it and pulled again: up to 64 NAKs,
 * record writes and lookups per NACK, issue 15).
 *
 * A redelivery is no longer awaited when it went to another gateway: a message other than it
 * came for a pull sent after its NAK was answered, or such a pull ended unfilled, without it
 * (JetStream hands redeliveries out before anything else); when it is dropped (dead-lettered);
 * when its NAK failed; or {@link AWAIT_REDELIVERY_MS} after its NAK was answered, when the spares
 * are given back behind it in case it still waits in JetStream.
 */

/**
 * How long after its NAK was answered the redelivery of a delivery NAKed here is waited for,
 * holding back the spares, before they are given back behind it (ms).
 */
export const AWAIT_REDELIVERY_MS = 1000;

/**
 * What this gateway knows of a delivery it NAKed: JetStream's delivery count and the delivery
 * record (delivery-record.ts) as it was, which only the gateway holding a message writes. When
 * the message comes back here with the next delivery count, nobody else held it in between, so
 * its record need not be looked up again.
 */
export interface NakedDelivery {
  streamSeq: number;
  deliveredCount: number;
  dackCount: number;
  unseen: number;
  recordStored: boolean;
}

/** A delivery NAKed here whose redelivery is awaited (see the file comment). */
interface AwaitedRedelivery extends NakedDelivery {
  /** Date.now() ms when its NAK was answered; 0 until then. */
  answeredAtMs: number;
  /** The last pull id sent before its NAK was answered: a later pull would bring it first. */
  pullsBefore: number;
  /** It arrived here (it is being admitted). */
  arrived: boolean;
}

export class AwaitedRedeliveries {
  /** By stream sequence, in NAK order. */
  readonly #bySeq = new Map<number, AwaitedRedelivery>();
  /** Called when {@link stop} ends the last one awaited: the spares held back go to the waiters. */
  readonly #onNoneLeft: () => void;

  constructor(onNoneLeft: () => void) {
    this.#onNoneLeft = onNoneLeft;
  }

  /** Redeliveries awaited now. */
  get size(): number {
    return this.#bySeq.size;
  }

  /** Those awaited that have not arrived here yet. */
  get dueCount(): number {
    let due = 0;
    for (const a of this.#bySeq.values()) if (!a.arrived) due++;
    return due;
  }

  /** Whether the redelivery of stream sequence `streamSeq` is awaited. */
  has(streamSeq: number): boolean {
    return this.#bySeq.has(streamSeq);
  }

  /** A NAK of delivery `naked` is out: its redelivery is awaited, last in NAK order. */
  add(naked: NakedDelivery): void {
    this.#bySeq.delete(naked.streamSeq);
    this.#bySeq.set(naked.streamSeq, { ...naked, answeredAtMs: 0, pullsBefore: 0, arrived: false });
  }

  /**
   * The NAK of {@link add} was answered (`ok`; `lastPullId`: the id of the last pull sent), or
   * failed: then it is not awaited ({@link stop}).
   */
  nakAnswered(streamSeq: number, ok: boolean, lastPullId: number): void {
    const awaited = this.#bySeq.get(streamSeq);
    if (awaited !== undefined && awaited.answeredAtMs === 0) {
      if (ok) {
        awaited.answeredAtMs = Date.now();
        awaited.pullsBefore = lastPullId;
      } else this.stop(streamSeq);
    }
  }

  /**
   * What this gateway knows of the delivery it NAKed that `streamSeq`, delivered for the
   * `deliveredCount`th time, is the redelivery of (see {@link NakedDelivery}), or undefined.
   */
  known(streamSeq: number, deliveredCount: number): NakedDelivery | undefined {
    const awaited = this.#bySeq.get(streamSeq);
    return awaited !== undefined && awaited.deliveredCount + 1 === deliveredCount ? awaited : undefined;
  }

  /** Stream sequence `streamSeq` arrived here: returns whether it is an awaited redelivery. */
  markArrived(streamSeq: number): boolean {
    const awaited = this.#bySeq.get(streamSeq);
    if (awaited === undefined) return false;
    awaited.arrived = true;
    return true;
  }

  /** Redelivery `streamSeq` was handed on: no longer awaited (the caller hands the spares on). */
  delete(streamSeq: number): void {
    this.#bySeq.delete(streamSeq);
  }

  /** Redelivery `streamSeq` is no longer awaited: once none is, the spares go to the waiters. */
  stop(streamSeq: number): void {
    if (this.#bySeq.delete(streamSeq) && this.#bySeq.size === 0) this.#onNoneLeft();
  }

  /**
   * A message other than an awaited redelivery came for pull `pullId`, or that pull ended
   * unfilled: the redeliveries awaited whose NAK was answered before it was sent and that have
   * not arrived went elsewhere (JetStream hands redeliveries out first).
   */
  servedAfter(pullId: number): void {
    for (const a of [...this.#bySeq.values()]) {
      if (a.answeredAtMs > 0 && !a.arrived && pullId > a.pullsBefore) this.stop(a.streamSeq);
    }
  }

  /**
   * Redeliveries awaited for {@link AWAIT_REDELIVERY_MS} after their NAK was answered are no
   * longer awaited; returns whether there were any (the caller then gives the spares back).
   */
  expire(nowMs: number): boolean {
    let expired = false;
    for (const a of [...this.#bySeq.values()]) {
      if (a.answeredAtMs > 0 && !a.arrived && nowMs - a.answeredAtMs >= AWAIT_REDELIVERY_MS) {
        this.#bySeq.delete(a.streamSeq);
        expired = true;
      }
    }
    return expired;
  }

  /** Forgets them all (the topic was deleted). */
  clear(): void {
    this.#bySeq.clear();
  }
}
