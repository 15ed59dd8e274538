/**
 * One topic as this gateway sees it: the consumers waiting on it (first come, first served), the
 * pull requests out to its durable JetStream consumer, messages pulled ahead that nobody took yet
 * ("spares"), and the gateway's own counters and DACK bookkeeping for it.
 *
 * Pulls: one pull request of up to {@link PULL_BATCH} messages, waiting at the server, for the
 * consumers waiting that no pull covers yet (at most {@link MAX_PULLS_PER_TOPIC} pulls out), and,
 * while the topic is being consumed, one "no_wait" pull (only what is ready now) that keeps up to
 * {@link PREFETCH} more pulled ahead, so that the next request takes a spare at once instead of
 * waiting for a round trip to the cluster (a plain nats.js consumer keeps a buffer likewise).
 * JetStream hands each stored message to one pull request of one gateway at a time, which is
 * what makes the consumers of every gateway compete. A message is given to whichever local
 * consumer waits longest, not necessarily the one whose request pulled it; one nobody waits for
 * is kept as a spare for {@link SPARE_HOLD_MS} and then NAKed back, all of the topic's spares in
 * arrival order, but not while a delivery of the topic made here before it arrived is in flight
 * (its lease is renewed meanwhile): given back, it would come ahead of that one if that one were
 * NACKed, timed out or returned by a closing consumer.
 *
 * Order after a NAK: JetStream redelivers NAKed messages first, in the order it processed the
 * NAKs, and no pull of the topic is sent until this gateway's NAKs are answered. A delivery NAKed
 * here (a NACK, an ack timeout, a closing consumer) is "awaited": until its redelivery arrives
 * here, what was pulled ahead (the spares, and whatever arrives meanwhile, pulled from behind it)
 * is held back, and the waiting consumers' pulls bring it first; it is handed on first, then the
 * spares, in arrival order. So a NACK costs its NAK, one pull and no more (before, every spare
 * was given back behind it and pulled again: up to 64 NAKs, record writes and lookups per NACK,
 * issue 15). It is no longer awaited when it went to another gateway: a message other than it
 * came for a pull sent after its NAK was answered, or such a pull ended unfilled, without it
 * (JetStream hands redeliveries out before anything else); when it is dropped (dead-lettered);
 * when its NAK failed; or {@link AWAIT_REDELIVERY_MS} after its NAK was answered, when the spares
 * are given back behind it (below) in case it still waits in JetStream.
 *
 * Order after a spare is given back (NAKed, behind anything NAKed before it): every message of
 * the topic that arrived before that NAK was answered, and was not handed on yet (the spares,
 * those being admitted, those arriving while the NAK is unanswered), is "overtaken" and given
 * back too, behind it. An awaited redelivery is never overtaken.
 */
import type { TopicCounters } from '../engine/queue-engine.js';
import type { JetStreamConsumer } from './js-consumer.js';
import type { JsDelivery, JsDeliveryFields } from './js-delivery.js';
import type { TopicSubjects } from './subjects.js';

/** Pull requests one gateway keeps out per topic at most. */
export const MAX_PULLS_PER_TOPIC = 64;

/** Messages one pull request asks for at most (a plain nats.js consumer asks for 64 at a time). */
export const PULL_BATCH = 64;

/** Messages one gateway keeps pulled ahead of its waiting consumers per topic, at most. */
export const PREFETCH = 64;

/** How long after its last request a topic counts as consumed, so that messages are pulled ahead (ms). */
export const PREFETCH_IDLE_MS = 1000;

/** How long a message nobody waits for is kept for the next request (ms). */
export const SPARE_HOLD_MS = 1000;

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

/** A pulled message, admitted (not dead-lettered), not yet given to a consumer. */
export type PulledMessage = Omit<JsDeliveryFields, 'deliveryId'>;

/** What a puller knows of one arrival: its place in the topic's arrival order. */
export type ArrivalTicket = number;

/** What a puller asks of the engine. */
export interface PullerHost {
  /**
   * Sends one pull request for up to `batch` messages of `puller`'s topic (`noWait`: only those
   * ready now); the engine calls back {@link TopicPuller.messageArrived} for each message and
   * {@link TopicPuller.pullEnded} once. Returns its id (ids grow).
   */
  startPull(puller: TopicPuller, batch: number, noWait: boolean): number;
  /** The deliveryId of the last delivery made (0: none yet). */
  readonly lastDeliveryId: number;
  /** Renews the lease of a pulled message (+WPI). */
  renewLease(message: PulledMessage): void;
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
  /** Spares in arrival order; `afterDelivery`: the last deliveryId made when it arrived. */
  readonly #spares: { message: PulledMessage; untilMs: number; afterDelivery: number }[] = [];
  #pulls = 0;
  /** Messages asked for by the pulls out that have not arrived yet. */
  #asked = 0;
  /** Whether the no_wait pull that keeps messages pulled ahead is out. */
  #prefetching = false;
  /** Date.now() until which the topic counts as consumed (messages are pulled ahead). */
  #consumedUntilMs = 0;
  /** Arrivals so far (each message's {@link ArrivalTicket}). */
  #arrivals = 0;
  /** Arrivals up to this ticket are overtaken by a NAK: given back, not handed on. */
  #overtakenThrough = 0;
  /** The ticket of the next arrival to hand on: arrivals are handed on in arrival order. */
  #nextToHandOn = 1;
  /** Admitted arrivals waiting for an earlier one still being admitted (null: dropped). */
  readonly #admittedEarly = new Map<ArrivalTicket, PulledMessage | null>();
  /** Stream sequences NAKed and not answered yet: their redelivery is not overtaken. */
  readonly #nakedSeqs = new Map<number, number>();
  /** Deliveries NAKed here whose redelivery is awaited, by stream sequence, in NAK order. */
  readonly #awaited = new Map<number, AwaitedRedelivery>();
  /** How many of the first spares are awaited redeliveries (taken before the others). */
  #spareFront = 0;
  /** The id of the last pull sent. */
  #lastPullId = 0;
  /** Messages pulled and not yet handed on (their dackCount is being looked up): they serve waiters too. */
  #incoming = 0;
  /** NAKs not answered yet: no pull is sent meanwhile (see settle-ops.ts returnToJetStream). */
  #holds = 0;
  /** Of those, NAKs of spares given back (see {@link holdPulls}): what arrives meanwhile is overtaken. */
  #givingBack = 0;
  /** A take() found no spare: pull one more message to keep as a spare. */
  #wantSpare = false;
  /**
   * Consumers that want a message only if one is ready now (requestIfReady, RESP `RESERVE topic`
   * without a timeout), in arrival order, each answered "none" once a no_wait pull sent after it
   * came ended and what it brought was handed on: `after` is the {@link #noWaitSeq} when it came.
   */
  readonly #onceWaiters = new Map<JetStreamConsumer, { onNone: () => void; after: number }>();
  /** No_wait pulls sent so far (the one out, if any, is the last). */
  #noWaitSeq = 0;
  /** The last no_wait pull that ended. */
  #noWaitEnded = 0;

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
    this.#consumedUntilMs = Date.now() + PREFETCH_IDLE_MS;
    const spare = this.#nextSpare();
    if (spare !== undefined) {
      consumer.waitingOn = null;
      consumer.deliver(this.#host.newDelivery(spare.message));
      this.pump();
      return;
    }
    this.#waiters.add(consumer);
    this.pump();
  }

  removeWaiter(consumer: JetStreamConsumer): void {
    this.#waiters.delete(consumer);
    this.#onceWaiters.delete(consumer);
  }

  /**
   * `consumer` wants a message only if one is ready now: a spare (handed on in the next tick, so
   * that the caller's outcome never arrives synchronously), else the next message a no_wait pull
   * sent from now on brings; `onNone` once such a pull ended without one for it.
   */
  addOnceWaiter(consumer: JetStreamConsumer, onNone: () => void): void {
    this.#consumedUntilMs = Date.now() + PREFETCH_IDLE_MS;
    const spare = this.#nextSpare();
    if (spare !== undefined) {
      consumer.waitingOn = null;
      const delivery = this.#host.newDelivery(spare.message);
      consumer.inFlight.set(delivery.deliveryId, delivery);
      process.nextTick(() => {
        if (!consumer.closed) consumer.handlers.onDelivery(delivery);
      });
      this.pump();
      return;
    }
    this.#onceWaiters.set(consumer, { onNone, after: this.#noWaitSeq });
    this.pump();
  }

  /**
   * The next spare to hand on: an awaited redelivery that arrived, else the oldest spare unless
   * a redelivery is awaited (they wait behind it). Undefined when there is none to hand on.
   */
  #nextSpare(): { message: PulledMessage } | undefined {
    if (this.#spareFront > 0) {
      this.#spareFront--;
      return this.#spares.shift();
    }
    return this.#awaited.size > 0 ? undefined : this.#spares.shift();
  }

  /** Answers "none" to the once-waiters a no_wait pull sent after them could not serve. */
  #answerOnceWaiters(): void {
    // While a redelivery is awaited, the spares held back are not "none": the once-waiters wait for it.
    if (this.#onceWaiters.size === 0 || this.#prefetching || this.#incoming > 0 || this.#holds > 0 || this.#awaited.size > 0) return;
    const atCap = this.#pulls >= MAX_PULLS_PER_TOPIC;
    for (const [consumer, w] of [...this.#onceWaiters]) {
      if (!atCap && w.after >= this.#noWaitEnded) continue;
      // onNone may run the connection's next commands, which may change the once-waiters.
      if (this.#onceWaiters.get(consumer) !== w) continue;
      this.#onceWaiters.delete(consumer);
      if (consumer.waitingOn === this) consumer.waitingOn = null;
      w.onNone();
    }
  }

  /**
   * A spare for `consumer` (now in flight to it; its handler is not called), or undefined; then
   * one message is pulled to be kept as a spare, so that a RESERVE polling without a timeout
   * finds it on a later call.
   */
  takeSpare(consumer: JetStreamConsumer): JsDelivery | undefined {
    this.#consumedUntilMs = Date.now() + PREFETCH_IDLE_MS;
    const spare = this.#nextSpare();
    if (spare === undefined) {
      this.#wantSpare = true;
      this.pump();
      return undefined;
    }
    const delivery = this.#host.newDelivery(spare.message);
    consumer.inFlight.set(delivery.deliveryId, delivery);
    this.pump();
    return delivery;
  }

  /** Spares held now. */
  get spareCount(): number {
    return this.#spares.length;
  }

  /** Date.now() ms when the oldest spare arrived, or Infinity when there is none. */
  get oldestSpareArrivedMs(): number {
    const oldest = this.#spares[0];
    return oldest === undefined ? Infinity : oldest.untilMs - SPARE_HOLD_MS;
  }

  /**
   * A NAK of a spare given back (of stream sequence `nakedSeq`) is out: pulls wait for its
   * answer, and what arrived so far or arrives meanwhile is overtaken (see the file comment), but
   * for the redelivery of `nakedSeq` and awaited ones. A delivery's NAK is {@link awaitRedelivery}.
   */
  holdPulls(nakedSeq?: number): void {
    this.#holds++;
    this.#givingBack++;
    this.#overtakenThrough = this.#arrivals;
    if (nakedSeq !== undefined) this.#nakedSeqs.set(nakedSeq, (this.#nakedSeqs.get(nakedSeq) ?? 0) + 1);
  }

  /** The NAK of {@link holdPulls} was answered (or failed). */
  releasePulls(nakedSeq?: number): void {
    this.#holds--;
    this.#givingBack--;
    if (nakedSeq !== undefined) {
      const n = (this.#nakedSeqs.get(nakedSeq) ?? 1) - 1;
      if (n > 0) this.#nakedSeqs.set(nakedSeq, n);
      else this.#nakedSeqs.delete(nakedSeq);
    }
    this.pump();
  }

  /**
   * A NAK of delivery `naked` (a NACK, an ack timeout, a closing consumer) is out: pulls wait for
   * its answer ({@link nakAnswered}), and its redelivery is awaited, the spares behind it (see
   * the file comment). Nothing pulled is overtaken.
   */
  awaitRedelivery(naked: NakedDelivery): void {
    this.#holds++;
    this.#awaited.delete(naked.streamSeq);
    this.#awaited.set(naked.streamSeq, { ...naked, answeredAtMs: 0, pullsBefore: 0, arrived: false });
  }

  /** The NAK of {@link awaitRedelivery} was answered (`ok`), or failed: then it is not awaited. */
  nakAnswered(streamSeq: number, ok: boolean): void {
    this.#holds--;
    const awaited = this.#awaited.get(streamSeq);
    if (awaited !== undefined && awaited.answeredAtMs === 0) {
      if (ok) {
        awaited.answeredAtMs = Date.now();
        awaited.pullsBefore = this.#lastPullId;
      } else this.#stopAwaiting(streamSeq);
    }
    this.pump();
  }

  /**
   * What this gateway knows of the delivery it NAKed that `streamSeq`, delivered for the
   * `deliveredCount`th time, is the redelivery of (see {@link NakedDelivery}), or undefined.
   */
  knownRedelivery(streamSeq: number, deliveredCount: number): NakedDelivery | undefined {
    const awaited = this.#awaited.get(streamSeq);
    return awaited !== undefined && awaited.deliveredCount + 1 === deliveredCount ? awaited : undefined;
  }

  /** Redelivery `streamSeq` is no longer awaited: once none is, the spares go to the waiters. */
  #stopAwaiting(streamSeq: number): void {
    if (this.#awaited.delete(streamSeq) && this.#awaited.size === 0) this.#sparesToWaiters();
  }

  /** No redelivery is awaited any more: the spares held back go to the consumers waiting, in order. */
  #sparesToWaiters(): void {
    this.#spareFront = 0;
    while (this.#spares.length > 0) {
      const consumer: JetStreamConsumer | undefined = this.#onceWaiters.keys().next().value ?? this.#waiters.values().next().value;
      if (consumer === undefined) return;
      const spare = this.#spares.shift()!;
      this.#onceWaiters.delete(consumer);
      this.#waiters.delete(consumer);
      consumer.waitingOn = null;
      consumer.deliver(this.#host.newDelivery(spare.message));
    }
  }

  /**
   * A message other than an awaited redelivery came for pull `pullId`, or that pull ended
   * unfilled: the redeliveries awaited whose NAK was answered before it was sent and that have
   * not arrived went elsewhere (JetStream hands redeliveries out first).
   */
  #servedAfter(pullId: number): void {
    for (const a of [...this.#awaited.values()]) {
      if (a.answeredAtMs > 0 && !a.arrived && pullId > a.pullsBefore) this.#stopAwaiting(a.streamSeq);
    }
  }

  /**
   * Redeliveries awaited for {@link AWAIT_REDELIVERY_MS} after their NAK was answered are no
   * longer awaited; if any such, the spares are given back, behind them in case they still wait
   * in JetStream.
   */
  expireAwaited(nowMs: number): void {
    let expired = false;
    for (const a of [...this.#awaited.values()]) {
      if (a.answeredAtMs > 0 && !a.arrived && nowMs - a.answeredAtMs >= AWAIT_REDELIVERY_MS) {
        this.#awaited.delete(a.streamSeq);
        expired = true;
      }
    }
    if (!expired) return;
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
    let needed = this.#waiters.size + (this.#wantSpare ? 1 : 0) - this.#incoming;
    if (this.#awaited.size > 0) {
      // Only the awaited redeliveries serve a request now, and JetStream hands them out first;
      // while the topic is consumed they are pulled back before a request asks (the consumer
      // that NACKed one is about to ask again).
      let due = 0;
      for (const a of this.#awaited.values()) if (!a.arrived) due++;
      const requests = this.#waiters.size + this.#onceWaiters.size + (this.#wantSpare ? 1 : 0);
      needed = Date.now() < this.#consumedUntilMs ? due : Math.min(requests, due);
    }
    while (this.#asked < needed && this.#pulls < MAX_PULLS_PER_TOPIC) {
      const batch = Math.min(PULL_BATCH, needed - this.#asked);
      this.#pulls++;
      this.#asked += batch;
      this.#lastPullId = this.#host.startPull(this, batch, false);
    }
    if (this.#prefetching || this.#pulls >= MAX_PULLS_PER_TOPIC) return this.#answerOnceWaiters();
    let onceUncovered = false;
    for (const w of this.#onceWaiters.values()) if (w.after >= this.#noWaitSeq) onceUncovered = true;
    const ahead = this.#spares.length + this.#incoming + this.#asked - this.#waiters.size - this.#onceWaiters.size;
    if (!onceUncovered && (Date.now() >= this.#consumedUntilMs || ahead > PREFETCH / 2)) return this.#answerOnceWaiters();
    const batch = Math.max(1, PREFETCH - ahead);
    this.#prefetching = true;
    this.#noWaitSeq++;
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
    const awaited = this.#awaited.get(streamSeq);
    if (awaited !== undefined) awaited.arrived = true;
    else if (pullId > 0) this.#servedAfter(pullId);
    return this.arrivedUnasked(streamSeq);
  }

  /** A message arrived after its pull was given up for lost (watchdog): it is admitted all the same. */
  arrivedUnasked(streamSeq: number): ArrivalTicket {
    const awaited = this.#awaited.get(streamSeq);
    if (awaited !== undefined) awaited.arrived = true;
    this.#incoming++;
    const ticket = ++this.#arrivals;
    if (this.#givingBack > 0 && !this.#nakedSeqs.has(streamSeq) && awaited === undefined) this.#overtakenThrough = ticket;
    return ticket;
  }

  /**
   * A pull request ended with `unfilled` of the messages it asked for not sent (expired, no more
   * ready, refused, or given up by its watchdog); `prefetch`: it was the no_wait pull;
   * `servedPullId`: its id when JetStream said it served it all it could (a status "no messages"
   * or "request timeout", after its messages). Sends the next ones if anyone still waits.
   */
  pullEnded(unfilled: number, prefetch: boolean, servedPullId = 0): void {
    this.#pulls--;
    if (servedPullId > 0 && unfilled > 0) this.#servedAfter(servedPullId);
    // Messages are counted against the oldest pull out, as JetStream serves them: a rare
    // mismatch (a pull given up by its watchdog that brings a message after all) is not let
    // drive the count below zero.
    this.#asked = Math.max(0, this.#asked - unfilled);
    if (prefetch) {
      this.#prefetching = false;
      this.#noWaitEnded = this.#noWaitSeq;
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
    this.#stopAwaiting(streamSeq);
    this.#admitted(ticket, null, Date.now());
  }

  /**
   * The message of arrival `ticket`, admitted. Handed on in arrival order: a redelivered message
   * is admitted after a lookup (its delivery record), and the messages that arrived after it
   * wait for it, else they would overtake it (a NACKed message would not be next).
   */
  received(message: PulledMessage, ticket: ArrivalTicket, nowMs: number): void {
    this.#admitted(ticket, message, nowMs);
  }

  #admitted(ticket: ArrivalTicket, message: PulledMessage | null, nowMs: number): void {
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

  /**
   * An admitted message, in arrival order: given back if a NAK overtook it (see the file
   * comment), else to the consumer waiting longest, else kept as a spare.
   */
  #handOn(message: PulledMessage | null, ticket: ArrivalTicket, nowMs: number): void {
    this.#incoming--;
    if (message === null) {
      this.pump();
      return;
    }
    const awaited = this.#awaited.get(message.streamSeq);
    if (ticket <= this.#overtakenThrough && !this.#nakedSeqs.has(message.streamSeq) && awaited === undefined) {
      this.#host.giveBack(message);
      this.#answerOnceWaiters();
      return;
    }
    if (awaited === undefined && this.#awaited.size > 0) {
      // Pulled from behind a redelivery still awaited: it waits behind it.
      this.#spares.push({ message, untilMs: nowMs + SPARE_HOLD_MS, afterDelivery: this.#host.lastDeliveryId });
      this.pump();
      return;
    }
    if (awaited !== undefined) {
      this.#awaited.delete(message.streamSeq);
      const consumer: JetStreamConsumer | undefined = this.#onceWaiters.keys().next().value ?? this.#waiters.values().next().value;
      if (consumer === undefined) {
        // Nobody waits now: first of the spares, behind the redeliveries that came before it.
        this.#spares.splice(this.#spareFront++, 0, { message, untilMs: nowMs + SPARE_HOLD_MS, afterDelivery: this.#host.lastDeliveryId });
        if (this.#awaited.size === 0) this.#spareFront = 0;
        return;
      }
      this.#wantSpare = false;
      this.#onceWaiters.delete(consumer);
      this.#waiters.delete(consumer);
      consumer.waitingOn = null;
      consumer.deliver(this.#host.newDelivery(message));
      if (this.#awaited.size === 0) this.#sparesToWaiters();
      this.pump();
      return;
    }
    this.#wantSpare = false;
    for (const consumer of this.#onceWaiters.keys()) {
      // First: the other waiters' pulls wait at the server for the next message.
      this.#onceWaiters.delete(consumer);
      consumer.waitingOn = null;
      consumer.deliver(this.#host.newDelivery(message));
      this.pump();
      return;
    }
    for (const consumer of this.#waiters) {
      this.#waiters.delete(consumer);
      consumer.waitingOn = null;
      consumer.deliver(this.#host.newDelivery(message));
      this.pump();
      return;
    }
    this.#spares.push({ message, untilMs: nowMs + SPARE_HOLD_MS, afterDelivery: this.#host.lastDeliveryId });
  }

  /**
   * Gives back every spare, oldest first, once the oldest has been held past {@link
   * SPARE_HOLD_MS} (`all`: at once). Not while a delivery of this topic made here before the
   * oldest spare arrived is in flight (`oldestInFlightId`, the smallest deliveryId of the topic
   * in flight on this gateway): the spares' leases are renewed then (with `renew`).
   */
  expireSpares(nowMs: number, all = false, oldestInFlightId = Infinity, renew = false): void {
    const oldest = this.#spares[0];
    if (oldest === undefined) return;
    if (all || (oldest.untilMs <= nowMs && oldest.afterDelivery < oldestInFlightId)) {
      this.#spareFront = 0;
      for (const spare of this.#spares.splice(0)) this.#host.giveBack(spare.message);
      return;
    }
    if (renew) for (const spare of this.#spares) this.#host.renewLease(spare.message);
  }

  /** The topic was deleted: spares are gone with it, DACK bookkeeping and counters start over. */
  deleted(): void {
    this.#spares.length = 0;
    this.#spareFront = 0;
    this.#awaited.clear();
    this.dackDueMs.length = 0;
    this.counters = zeroCounters();
    this.consumerReady = false;
  }
}

function zeroCounters(): TopicCounters {
  return { published: 0, acked: 0, nacked: 0, backed: 0, dacked: 0, redelivered: 0, ackTimeouts: 0, deadLettered: 0 };
}
