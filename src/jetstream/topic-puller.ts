/**
 * One topic as this gateway sees it: the consumers waiting on it (first come, first served), the
 * pull requests out to its durable JetStream consumer, messages that arrived when nobody waited
 * any more ("spares"), and the gateway's own counters and DACK bookkeeping for it.
 *
 * Pulls: one JetStream pull request of one message per waiting consumer, at most
 * {@link MAX_PULLS_PER_TOPIC} at a time. JetStream hands each stored message to one pull request
 * of one gateway at a time, which is what makes the consumers of every gateway compete. A
 * message is given to whichever local consumer waits longest, not necessarily the one whose
 * request pulled it: a request cancelled meanwhile (RESERVE timeout) leaves its pull out until
 * it expires, and what it brings goes to the next waiter, or is kept as a spare for
 * {@link SPARE_HOLD_MS} (RESERVE without a timeout takes spares) and then NAKed.
 */
import type { TopicCounters } from '../engine/queue-engine.js';
import type { JetStreamConsumer } from './js-consumer.js';
import type { JsDelivery, JsDeliveryFields } from './js-delivery.js';
import type { TopicSubjects } from './subjects.js';

/** Pull requests one gateway keeps out per topic at most. */
export const MAX_PULLS_PER_TOPIC = 64;

/** How long a message nobody waits for any more is kept for a RESERVE without a timeout (ms). */
export const SPARE_HOLD_MS = 1000;

/** A pulled message, admitted (not dead-lettered), not yet given to a consumer. */
export type PulledMessage = Omit<JsDeliveryFields, 'deliveryId'>;

/** What a puller asks of the engine. */
export interface PullerHost {
  /** Sends one pull request for one message of `puller`'s topic; the engine calls back {@link TopicPuller.pullEnded}. */
  startPull(puller: TopicPuller): void;
  /** A delivery of `message` (a new deliveryId; its ack-timeout deadline set). */
  newDelivery(message: PulledMessage): JsDelivery;
  /** Gives a pulled message nobody took back to JetStream (NAK: the front of its topic). */
  giveBack(message: PulledMessage): void;
}

export class TopicPuller {
  readonly names: TopicSubjects;
  /** This gateway's counters for the topic (since it was first used here, or deleted). */
  counters: TopicCounters = zeroCounters();
  /** Stream subscribers on this gateway (SPEC §7 `consumers`). */
  subscribers = 0;
  /** Whether the durable consumer is known to exist (made by this gateway or found). */
  consumerReady = false;
  /** Ids of this topic's pull requests out, oldest first (the engine keeps it). */
  readonly pullIds = new Set<number>();
  /** Due times (Date.now() ms) of DACKs made through this gateway, for `delayed`. */
  readonly dackDueMs: number[] = [];
  readonly #host: PullerHost;
  /** Waiting consumers in arrival order (a Set keeps insertion order and removes in O(1)). */
  readonly #waiters = new Set<JetStreamConsumer>();
  readonly #spares: { message: PulledMessage; untilMs: number }[] = [];
  #pulls = 0;
  /** Messages pulled and not yet handed on (their dackCount is being looked up): they serve waiters too. */
  #incoming = 0;
  /** NAKs not answered yet: no pull is sent meanwhile (see the engine's #returnToJetStream). */
  #holds = 0;
  /** A take() found no spare: pull one more message to keep as a spare. */
  #wantSpare = false;

  constructor(names: TopicSubjects, host: PullerHost) {
    this.names = names;
    this.#host = host;
  }

  get topic(): string {
    return this.names.topic;
  }

  /** Pull requests out now. */
  get pulls(): number {
    return this.#pulls;
  }

  get waiting(): number {
    return this.#waiters.size;
  }

  /** DACKs through this gateway whose delay has not ended at `nowMs`. */
  delayedCount(nowMs: number): number {
    let n = 0;
    for (const due of this.dackDueMs) if (due > nowMs) n++;
    return n;
  }

  /** Remembers a DACK due at `dueMs`, dropping the ones that are past. */
  addDack(dueMs: number, nowMs: number): void {
    if (this.dackDueMs.length >= 1024) {
      const live = this.dackDueMs.filter((due) => due > nowMs);
      this.dackDueMs.length = 0;
      this.dackDueMs.push(...live);
    }
    this.dackDueMs.push(dueMs);
  }

  /** `consumer` waits for the next message: a spare at once, otherwise a pull is sent. */
  addWaiter(consumer: JetStreamConsumer): void {
    const spare = this.#spares.shift();
    if (spare !== undefined) {
      consumer.waitingOn = null;
      consumer.deliver(this.#host.newDelivery(spare.message));
      return;
    }
    this.#waiters.add(consumer);
    this.pump();
  }

  removeWaiter(consumer: JetStreamConsumer): void {
    this.#waiters.delete(consumer);
  }

  /**
   * A spare for `consumer` (now in flight to it; its handler is not called), or undefined; then
   * one message is pulled to be kept as a spare, so that a RESERVE polling without a timeout
   * finds it on a later call.
   */
  takeSpare(consumer: JetStreamConsumer): JsDelivery | undefined {
    const spare = this.#spares.shift();
    if (spare === undefined) {
      this.#wantSpare = true;
      this.pump();
      return undefined;
    }
    const delivery = this.#host.newDelivery(spare.message);
    consumer.inFlight.set(delivery.deliveryId, delivery);
    return delivery;
  }

  /** A NAK of this topic is out: pulls wait for its answer. */
  holdPulls(): void {
    this.#holds++;
  }

  releasePulls(): void {
    this.#holds--;
    this.pump();
  }

  /** Sends pull requests until there is one per waiter (and one for a wanted spare), up to the cap. */
  pump(): void {
    if (this.#holds > 0) return;
    const wanted = Math.min(MAX_PULLS_PER_TOPIC, this.#waiters.size + (this.#wantSpare ? 1 : 0) - this.#incoming);
    while (this.#pulls < wanted) {
      this.#pulls++;
      this.#host.startPull(this);
    }
  }

  /**
   * A pull request ended (`withMessage`: it brought one, which {@link received} or {@link
   * dropped} will account for); sends the next ones if anyone still waits.
   */
  pullEnded(withMessage: boolean): void {
    this.#pulls--;
    if (withMessage) this.#incoming++;
    this.pump();
  }

  /** A message arrived after its pull was given up for lost (watchdog): it is admitted all the same. */
  arrivedUnasked(): void {
    this.#incoming++;
  }

  /** A message its pull brought was not handed on (dead-lettered, or the engine is closing). */
  dropped(): void {
    this.#incoming--;
    this.pump();
  }

  /** A pulled message: to the consumer waiting longest, else kept as a spare. */
  received(message: PulledMessage, nowMs: number): void {
    this.#incoming--;
    this.#wantSpare = false;
    for (const consumer of this.#waiters) {
      this.#waiters.delete(consumer);
      consumer.waitingOn = null;
      consumer.deliver(this.#host.newDelivery(message));
      return;
    }
    this.#spares.push({ message, untilMs: nowMs + SPARE_HOLD_MS });
  }

  /** Gives back the spares held past {@link SPARE_HOLD_MS} (all of them with `all`). */
  expireSpares(nowMs: number, all = false): void {
    while (this.#spares.length > 0 && (all || this.#spares[0]!.untilMs <= nowMs)) this.#host.giveBack(this.#spares.shift()!.message);
  }

  /** The topic was deleted: spares are gone with it, DACK bookkeeping and counters start over. */
  deleted(): void {
    this.#spares.length = 0;
    this.dackDueMs.length = 0;
    this.counters = zeroCounters();
    this.consumerReady = false;
  }
}

function zeroCounters(): TopicCounters {
  return { published: 0, acked: 0, nacked: 0, backed: 0, dacked: 0, redelivered: 0, ackTimeouts: 0, deadLettered: 0 };
}
