/**
 * The consumers waiting on one topic on this gateway, first come, first served, of two kinds:
 * those waiting for the next message (request), and "once waiters" that want a message only if
 * one is ready now (requestIfReady, RESP `RESERVE topic` without a timeout). A message goes to
 * the once waiter waiting longest, else to the other waiter waiting longest: the others' pulls
 * wait at the server for the next message.
 *
 * The topic's puller (topic-puller.ts) sends a no_wait pull (only what is ready now) for the
 * once waiters that came after the last one was sent. Each once waiter is answered "none" once a
 * no_wait pull sent after it came ended and what it brought was handed on; so no_wait pulls are
 * numbered, and a once waiter remembers the number of the last one sent when it came.
 */
import type { JetStreamConsumer } from './js-consumer.js';
import type { PulledMessage, PullerHost } from './puller-host.js';
import type { TopicPuller } from './topic-puller.js';

/** One once waiter: `after` is the number of no_wait pulls sent when it came. */
interface OnceWaiter {
  onNone: () => void;
  after: number;
}

export class Waiters {
  readonly #host: PullerHost;
  /** Consumers waiting for the next message, in arrival order (a Set removes in O(1)). */
  readonly #plain = new Set<JetStreamConsumer>();
  /** Once waiters, in arrival order. */
  readonly #once = new Map<JetStreamConsumer, OnceWaiter>();
  /** No_wait pulls sent so far (the one out, if any, is the last). */
  #noWaitSeq = 0;
  /** The last no_wait pull that ended. */
  #noWaitEnded = 0;

  constructor(host: PullerHost) {
    this.#host = host;
  }

  /** Consumers waiting for the next message (not the once waiters). */
  get count(): number {
    return this.#plain.size;
  }

  /** Once waiters. */
  get onceCount(): number {
    return this.#once.size;
  }

  /** Whether anyone waits. */
  get any(): boolean {
    return this.#first() !== undefined;
  }

  /** `consumer` waits for the next message. */
  add(consumer: JetStreamConsumer): void {
    this.#plain.add(consumer);
  }

  /** `consumer` waits once: `onNone` when no no_wait pull sent from now on brings it a message. */
  addOnce(consumer: JetStreamConsumer, onNone: () => void): void {
    this.#once.set(consumer, { onNone, after: this.#noWaitSeq });
  }

  /** `consumer` waits no more. */
  remove(consumer: JetStreamConsumer): void {
    this.#plain.delete(consumer);
    this.#once.delete(consumer);
  }

  /**
   * Hands `message` to the consumer waiting longest (a once waiter first), which waits no more;
   * returns false when nobody waits.
   */
  serve(message: PulledMessage): boolean {
    const consumer = this.#first();
    if (consumer === undefined) return false;
    this.#once.delete(consumer);
    this.#plain.delete(consumer);
    consumer.waitingOn = null;
    consumer.deliver(this.#host.newDelivery(message));
    return true;
  }

  /** Whether a once waiter came after the last no_wait pull was sent (no pull covers it yet). */
  get onceUncovered(): boolean {
    let uncovered = false;
    for (const w of this.#once.values()) if (w.after >= this.#noWaitSeq) uncovered = true;
    return uncovered;
  }

  /** A no_wait pull was sent. */
  noWaitSent(): void {
    this.#noWaitSeq++;
  }

  /** The no_wait pull out ended. */
  noWaitEnded(): void {
    this.#noWaitEnded = this.#noWaitSeq;
  }

  /**
   * Answers "none" to the once waiters a no_wait pull sent after them could not serve (all of
   * them when `atCap`: no pull can be sent for them); `puller` is the topic's puller, whose
   * waiter each was. The caller checks that nothing is still coming that could serve them.
   */
  answerNone(atCap: boolean, puller: TopicPuller): void {
    for (const [consumer, w] of [...this.#once]) {
      if (!atCap && w.after >= this.#noWaitEnded) continue;
      // onNone may run the connection's next commands, which may change the once waiters.
      if (this.#once.get(consumer) !== w) continue;
      this.#once.delete(consumer);
      if (consumer.waitingOn === puller) consumer.waitingOn = null;
      w.onNone();
    }
  }

  #first(): JetStreamConsumer | undefined {
    return this.#once.keys().next().value ?? this.#plain.values().next().value;
  }
}
