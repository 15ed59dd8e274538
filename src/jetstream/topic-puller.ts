/**
 * One topic as this gateway sees it: the pull requests out to its durable JetStream consumer and
 * the hand-on of what they bring to the consumers waiting, in arrival order; and the gateway's
 * own counters and DACK bookkeeping for it. Its parts: the consumers waiting (waiters.ts), the
 * order of arrivals (arrival-order.ts), the spares (spares.ts), the redeliveries awaited after a
 * NAK made here (awaited-redeliveries.ts), and what it asks of the engine (puller-host.ts).
 *
 * Pulls: one pull request of up to {@link PULL_BATCH} messages, waiting at the server, for the
 * consumers waiting that no pull covers yet (at most {@link MAX_PULLS_PER_TOPIC} pulls out), and,
 * while the topic is being consumed, one "no_wait" pull (only what is ready now) that keeps up to
 * {@link PREFETCH} more pulled ahead, so that the next request takes a spare at once instead of
 * waiting for a round trip to the cluster (a plain nats.js consumer keeps a buffer likewise).
 * JetStream hands each stored message to one pull request of one gateway at a time, which is
 * what makes the consumers of every gateway compete. A message is given to whichever local
 * consumer waits longest, not necessarily the one whose request pulled it; one nobody waits for
 * is kept as a spare. No pull is sent while a NAK made here is unanswered.
 */
import type { TopicCounters } from '../engine/queue-engine.js';
import { ArrivalOrder, type ArrivalTicket } from './arrival-order.js';
import { AwaitedRedeliveries, type NakedDelivery } from './awaited-redeliveries.js';
import type { JetStreamConsumer } from './js-consumer.js';
import type { JsDelivery } from './js-delivery.js';
import type { PulledMessage, PullerHost } from './puller-host.js';
import { Spares } from './spares.js';
import type { TopicSubjects } from './subjects.js';
import { Waiters } from './waiters.js';

/** Pull requests one gateway keeps out per topic at most. */
export const MAX_PULLS_PER_TOPIC = 64;

/** Messages one pull request asks for at most (a plain nats.js consumer asks for 64 at a time). */
export const PULL_BATCH = 64;

/** Messages one gateway keeps pulled ahead of its waiting consumers per topic, at most. */
export const PREFETCH = 64;

/** How long after its last request a topic counts as consumed, so that messages are pulled ahead (ms). */
export const PREFETCH_IDLE_MS = 1000;

/** How long a spare given back is remembered, to tell its return from a NACKed message's fate (ms). */
const GIVEN_BACK_MEMORY_MS = 10_000;

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
  readonly #waiters: Waiters;
  readonly #spares: Spares;
  readonly #order = new ArrivalOrder((message, ticket, nowMs) => this.#handOn(message, ticket, nowMs));
  readonly #awaited = new AwaitedRedeliveries(() => this.#sparesToWaiters());
  /** Spares given back unseen (noteGivenBack), by stream sequence: when, for GIVEN_BACK_MEMORY_MS. */
  readonly #givenBack = new Map<number, number>();
  #pulls = 0;
  /** Messages asked for by the pulls out that have not arrived yet. */
  #asked = 0;
  /** Whether the no_wait pull that keeps messages pulled ahead is out. */
  #prefetching = false;
  /** Date.now() until which the topic counts as consumed (messages are pulled ahead). */
  #consumedUntilMs = 0;
  /** The id of the last pull sent. */
  #lastPullId = 0;
  /** Messages pulled and not yet handed on (their dackCount is being looked up): they serve waiters too. */
  #incoming = 0;
  /** NAKs not answered yet: no pull is sent meanwhile (see settle-ops.ts returnToJetStream). */
  #holds = 0;
  /** A take() found no spare: pull one more message to keep as a spare. */
  #wantSpare = false;

  constructor(names: TopicSubjects, host: PullerHost) {
    this.names = names;
    this.#host = host;
    this.#waiters = new Waiters(host);
    this.#spares = new Spares(host);
  }

  get topic(): string {
    return this.names.topic;
  }

  /** Pull requests out now. */
  get pulls(): number {
    return this.#pulls;
  }

  get waiting(): number {
    return this.#waiters.count;
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
    this.#consumedUntilMs = Date.now() + PREFETCH_IDLE_MS;
    const spare = this.#spares.next(this.#awaited.size > 0);
    if (spare !== undefined) {
      consumer.waitingOn = null;
      consumer.deliver(this.#host.newDelivery(spare));
      this.pump();
      return;
    }
    this.#waiters.add(consumer);
    this.pump();
  }

  removeWaiter(consumer: JetStreamConsumer): void {
    this.#waiters.remove(consumer);
  }

  /**
   * `consumer` wants a message only if one is ready now: a spare (handed on in the next tick, so
   * that the caller's outcome never arrives synchronously), else the next message a no_wait pull
   * sent from now on brings; `onNone` once such a pull ended without one for it.
   */
  addOnceWaiter(consumer: JetStreamConsumer, onNone: () => void): void {
    this.#consumedUntilMs = Date.now() + PREFETCH_IDLE_MS;
    const spare = this.#spares.next(this.#awaited.size > 0);
    if (spare !== undefined) {
      consumer.waitingOn = null;
      const delivery = this.#host.newDelivery(spare);
      consumer.inFlight.set(delivery.deliveryId, delivery);
      process.nextTick(() => {
        if (!consumer.closed) consumer.handlers.onDelivery(delivery);
      });
      this.pump();
      return;
    }
    this.#waiters.addOnce(consumer, onNone);
    this.pump();
  }

  /** Answers "none" to the once waiters a no_wait pull sent after them could not serve. */
  #answerOnceWaiters(): void {
    // While a redelivery is awaited, the spares held back are not "none": the once waiters wait for it.
    if (this.#waiters.onceCount === 0 || this.#prefetching || this.#incoming > 0 || this.#holds > 0 || this.#awaited.size > 0) return;
    this.#waiters.answerNone(this.#pulls >= MAX_PULLS_PER_TOPIC, this);
  }

  /**
   * A spare for `consumer` (now in flight to it; its handler is not called), or undefined; then
   * one message is pulled to be kept as a spare, so that a RESERVE polling without a timeout
   * finds it on a later call.
   */
  takeSpare(consumer: JetStreamConsumer): JsDelivery | undefined {
    this.#consumedUntilMs = Date.now() + PREFETCH_IDLE_MS;
    const spare = this.#spares.next(this.#awaited.size > 0);
    if (spare === undefined) {
      this.#wantSpare = true;
      this.pump();
      return undefined;
    }
    const delivery = this.#host.newDelivery(spare);
    consumer.inFlight.set(delivery.deliveryId, delivery);
    this.pump();
    return delivery;
  }

  /** Spares held now. */
  get spareCount(): number {
    return this.#spares.count;
  }

  /** Date.now() ms when the oldest spare arrived, or Infinity when there is none. */
  get oldestSpareArrivedMs(): number {
    return this.#spares.oldestArrivedMs;
  }

  /**
   * A NAK of a spare given back (of stream sequence `nakedSeq`) is out: pulls wait for its
   * answer, and what arrived so far or arrives meanwhile is overtaken (arrival-order.ts), but
   * for the redelivery of `nakedSeq` and awaited ones. A delivery's NAK is {@link awaitRedelivery}.
   */
  holdPulls(nakedSeq?: number): void {
    this.#holds++;
    this.#order.givingBack(nakedSeq);
  }

  /** The NAK of {@link holdPulls} was answered (or failed). */
  releasePulls(nakedSeq?: number): void {
    this.#holds--;
    this.#order.givenBack(nakedSeq);
    this.pump();
  }

  /**
   * A NAK of delivery `naked` (a NACK, an ack timeout, a closing consumer) is out: pulls wait for
   * its answer ({@link nakAnswered}), and its redelivery is awaited, the spares behind it (see
   * awaited-redeliveries.ts). Nothing pulled is overtaken.
   */
  awaitRedelivery(naked: NakedDelivery): void {
    this.#holds++;
    this.#awaited.add(naked);
  }

  /** The NAK of {@link awaitRedelivery} was answered (`ok`), or failed: then it is not awaited. */
  nakAnswered(streamSeq: number, ok: boolean): void {
    this.#holds--;
    this.#awaited.nakAnswered(streamSeq, ok, this.#lastPullId);
    this.pump();
  }

  /**
   * What this gateway knows of the delivery it NAKed that `streamSeq`, delivered for the
   * `deliveredCount`th time, is the redelivery of (see {@link NakedDelivery}), or undefined.
   */
  knownRedelivery(streamSeq: number, deliveredCount: number): NakedDelivery | undefined {
    return this.#awaited.known(streamSeq, deliveredCount);
  }

  /** No redelivery is awaited any more: the spares held back go to the consumers waiting, in order. */
  #sparesToWaiters(): void {
    this.#spares.endFront();
    while (this.#spares.count > 0 && this.#waiters.any) this.#waiters.serve(this.#spares.shift()!);
  }

  /**
   * Redeliveries awaited for too long after their NAK was answered (awaited-redeliveries.ts) are
   * no longer awaited; if any such, the spares are given back, behind them in case they still
   * wait in JetStream.
   */
  expireAwaited(nowMs: number): void {
    for (const [seq, atMs] of this.#givenBack) {
      if (nowMs - atMs < GIVEN_BACK_MEMORY_MS) break; // in the order they were given back
      this.#givenBack.delete(seq);
    }
    if (!this.#awaited.expire(nowMs)) return;
    this.expireSpares(nowMs, true);
    if (this.#awaited.size === 0) this.pump();
  }

  /**
   * Sends pull requests: for the waiters no pull covers yet (and a wanted spare), batched, up to
   * the cap; and, while the topic is consumed, one no_wait pull to keep up to {@link PREFETCH}
   * messages pulled ahead (sent when less than half of that is held or coming).
   */
  pump(): void {
    if (this.#holds > 0) return;
    let needed = this.#waiters.count + (this.#wantSpare ? 1 : 0) - this.#incoming;
    if (this.#awaited.size > 0) {
      // Only the awaited redeliveries serve a request now, and JetStream hands them out first;
      // while the topic is consumed they are pulled back before a request asks (the consumer
      // that NACKed one is about to ask again).
      const due = this.#awaited.dueCount;
      const requests = this.#waiters.count + this.#waiters.onceCount + (this.#wantSpare ? 1 : 0);
      needed = Date.now() < this.#consumedUntilMs ? due : Math.min(requests, due);
    }
    while (this.#asked < needed && this.#pulls < MAX_PULLS_PER_TOPIC) {
      const batch = Math.min(PULL_BATCH, needed - this.#asked);
      this.#pulls++;
      this.#asked += batch;
      this.#lastPullId = this.#host.startPull(this, batch, false);
    }
    if (this.#prefetching || this.#pulls >= MAX_PULLS_PER_TOPIC) return this.#answerOnceWaiters();
    const onceUncovered = this.#waiters.onceUncovered;
    const ahead = this.#spares.count + this.#incoming + this.#asked - this.#waiters.count - this.#waiters.onceCount;
    if (!onceUncovered && (Date.now() >= this.#consumedUntilMs || ahead > PREFETCH / 2)) return this.#answerOnceWaiters();
    const batch = Math.max(1, PREFETCH - ahead);
    this.#prefetching = true;
    this.#waiters.noWaitSent();
    this.#pulls++;
    this.#asked += batch;
    this.#lastPullId = this.#host.startPull(this, batch, true);
  }

  /**
   * A message of a pull out arrived (of stream sequence `streamSeq`, counted against pull
   * `pullId`): it is being admitted ({@link received} or {@link dropped} accounts for it).
   * Returns its ticket for {@link received}.
   */
  messageArrived(streamSeq: number, pullId = 0): ArrivalTicket {
    this.#asked = Math.max(0, this.#asked - 1);
    // A spare this gateway gave back before a NACK is ahead of the NACKed message among
    // JetStream's redeliveries: its coming back says nothing of where the NACKed one went.
    const givenBack = this.#givenBack.delete(streamSeq);
    if (!this.#awaited.markArrived(streamSeq) && pullId > 0 && !givenBack) this.#awaited.servedAfter(pullId);
    return this.arrivedUnasked(streamSeq);
  }

  /** Spare `streamSeq` is being given back to JetStream unseen, at `nowMs` (Date.now()). */
  noteGivenBack(streamSeq: number, nowMs: number): void {
    this.#givenBack.set(streamSeq, nowMs);
  }

  /** A message arrived after its pull was given up for lost (watchdog): it is admitted all the same. */
  arrivedUnasked(streamSeq: number): ArrivalTicket {
    const awaited = this.#awaited.markArrived(streamSeq);
    this.#incoming++;
    return this.#order.arrive(streamSeq, awaited);
  }

  /**
   * A pull request ended with `unfilled` of the messages it asked for not sent (expired, no more
   * ready, refused, or given up by its watchdog); `prefetch`: it was the no_wait pull;
   * `servedPullId`: its id when JetStream said it served it all it could (a status "no messages"
   * or "request timeout", after its messages). Sends the next ones if anyone still waits.
   */
  pullEnded(unfilled: number, prefetch: boolean, servedPullId = 0): void {
    this.#pulls--;
    if (servedPullId > 0 && unfilled > 0) this.#awaited.servedAfter(servedPullId);
    // Messages are counted against the oldest pull out, as JetStream serves them: a rare
    // mismatch (a pull given up by its watchdog that brings a message after all) is not let
    // drive the count below zero.
    this.#asked = Math.max(0, this.#asked - unfilled);
    if (prefetch) {
      this.#prefetching = false;
      this.#waiters.noWaitEnded();
    }
    // A no_wait pull that found the topic empty: pull ahead again only on the next request.
    if (prefetch && unfilled > 0) this.#consumedUntilMs = 0;
    this.pump();
  }

  /**
   * The message of arrival `ticket` (of stream sequence `streamSeq`) is not to be handed on
   * (dead-lettered, or the engine is closing).
   */
  dropped(ticket: ArrivalTicket, streamSeq: number): void {
    this.#awaited.stop(streamSeq);
    this.#order.admitted(ticket, null, Date.now());
  }

  /**
   * The message of arrival `ticket`, admitted. Handed on in arrival order (arrival-order.ts): a
   * redelivered message is admitted after a lookup (its delivery record), and the messages that
   * arrived after it wait for it, else they would overtake it (a NACKed message would not be next).
   */
  received(message: PulledMessage, ticket: ArrivalTicket, nowMs: number): void {
    this.#order.admitted(ticket, message, nowMs);
  }

  /**
   * An admitted message, in arrival order: given back if a NAK overtook it (arrival-order.ts),
   * else to the consumer waiting longest, else kept as a spare.
   */
  #handOn(message: PulledMessage | null, ticket: ArrivalTicket, nowMs: number): void {
    this.#incoming--;
    if (message === null) {
      this.pump();
      return;
    }
    const awaited = this.#awaited.has(message.streamSeq);
    if (this.#order.overtaken(ticket, message.streamSeq, awaited)) {
      this.#host.giveBack(message);
      this.#answerOnceWaiters();
      return;
    }
    if (!awaited && this.#awaited.size > 0) {
      // Pulled from behind a redelivery still awaited: it waits behind it.
      this.#spares.push(message, nowMs);
      this.pump();
      return;
    }
    if (awaited) {
      this.#awaited.delete(message.streamSeq);
      if (!this.#waiters.any) {
        // Nobody waits now: first of the spares, behind the redeliveries that came before it.
        this.#spares.pushFront(message, nowMs, this.#awaited.size > 0);
        return;
      }
      this.#wantSpare = false;
      this.#waiters.serve(message);
      if (this.#awaited.size === 0) this.#sparesToWaiters();
      this.pump();
      return;
    }
    this.#wantSpare = false;
    if (this.#waiters.serve(message)) this.pump();
    else this.#spares.push(message, nowMs);
  }

  /**
   * Gives back every spare, oldest first, once the oldest has been held past its hold time
   * (spares.ts; `all`: at once). Not while a delivery of this topic made here before the oldest
   * spare arrived is in flight (`oldestInFlightId`, the smallest deliveryId of the topic in
   * flight on this gateway): the spares' leases are renewed then (with `renew`).
   */
  expireSpares(nowMs: number, all = false, oldestInFlightId = Infinity, renew = false): void {
    this.#spares.expire(nowMs, all, oldestInFlightId, renew);
  }

  /** The topic was deleted: spares are gone with it, DACK bookkeeping and counters start over. */
  deleted(): void {
    this.#spares.clear();
    this.#awaited.clear();
    this.#givenBack.clear();
    this.dackDueMs.length = 0;
    this.counters = zeroCounters();
    this.consumerReady = false;
  }
}

function zeroCounters(): TopicCounters {
  return { published: 0, acked: 0, nacked: 0, backed: 0, dacked: 0, redelivered: 0, ackTimeouts: 0, deadLettered: 0 };
}
