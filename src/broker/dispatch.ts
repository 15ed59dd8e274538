/**
 * Handing messages to consumers, and taking them back without a settle.
 *
 * Out: a consumer requests (waits) or takes (does not wait); a ready message becomes in flight to
 * it with a new delivery (its Message view, deliveryId, attempt) and a DELIVER record that nobody
 * waits for, so replay knows it was in flight (SPEC §2 "Delivery").
 *
 * Back without a settle ({@link returnToFront}, written once): a consumer that went away, a
 * delivery past `--ack-timeout`, a DACKed message whose time has come. Each goes back to the
 * front of its topic, keeping the order in which the messages were delivered (or due), logged as
 * a NACK nobody waits for, or to its dead-letter topic once it used up `--max-deliveries`.
 */
import { BrokerError } from '../errors.js';
import type { LogWriter } from '../log/log-writer.js';
import { Placement, RecordType } from '../log/record.js';
import { assertTopicName } from '../engine/topic-name.js';
import { BrokerAppend, type PlacementRecordType } from './broker-append.js';
import type { BrokerCore } from './broker-core.js';
import type { Consumer } from './consumer.js';
import { DeadLetters } from './dead-letter.js';
import { Message, MessageState } from './message.js';
import type { Topic } from './topic.js';

export class Dispatcher {
  readonly #core: BrokerCore;
  readonly deadLetters: DeadLetters;
  readonly #maxInFlight: number;

  constructor(core: BrokerCore, maxDeliveries: number, maxInFlightPerConsumer: number) {
    this.#core = core;
    this.#maxInFlight = maxInFlightPerConsumer;
    this.deadLetters = new DeadLetters(core, maxDeliveries, this);
  }

  /** ConsumerHandle.request (engine/queue-engine.ts) of `consumer`. */
  request(consumer: Consumer, topicName: string): void {
    this.#core.assertLoaded();
    assertTopicName(topicName);
    this.#assertRoom(consumer);
    this.cancelRequest(consumer);
    const topic = this.#core.topics.topic(topicName);
    const h = this.popReady(topic);
    if (h >= 0) {
      consumer.deliver(this.#markInFlight(h, topic, consumer));
      return;
    }
    consumer.waitingOn = topic;
    topic.waiters.push(consumer);
  }

  /** ConsumerHandle.take of `consumer`. */
  take(consumer: Consumer, topicName: string): Message | undefined {
    this.#core.assertLoaded();
    assertTopicName(topicName);
    this.#assertRoom(consumer);
    const topic = this.#core.topics.get(topicName);
    if (topic === undefined) return undefined;
    const h = this.popReady(topic);
    if (h < 0) return undefined;
    return this.#markInFlight(h, topic, consumer);
  }

  /** Stops `consumer` waiting for a delivery (RESERVE timeout). */
  cancelRequest(consumer: Consumer): void {
    if (consumer.waitingOn !== null) {
      consumer.waitingOn.removeWaiter(consumer);
      consumer.waitingOn = null;
    }
  }

  /** Marks `consumer` as a stream subscriber of `topicName` (counted in stats). Throws MQ_ERR_BAD_TOPIC. */
  attach(consumer: Consumer, topicName: string): void {
    assertTopicName(topicName);
    const topic = this.#core.topics.topic(topicName);
    if (consumer.subscribedTo !== null) consumer.subscribedTo.consumers--;
    consumer.subscribedTo = topic;
    topic.consumers++;
  }

  #assertRoom(consumer: Consumer): void {
    if (consumer.inFlight.size >= this.#maxInFlight) {
      throw new BrokerError('MQ_ERR_BAD_ARGUMENT', [`this consumer already holds ${this.#maxInFlight} messages in flight; settle some first`]);
    }
  }

  /**
   * The next ready message of `topic` to deliver. One already delivered `--max-deliveries` times
   * (in flight at a restart, or its dead-lettering failed) is dead-lettered instead.
   */
  popReady(topic: Topic): number {
    for (;;) {
      const h = topic.popReady();
      if (h < 0) return h;
      const writer = this.#core.liveWriter;
      if (writer === null || !this.deadLetters.exhausted(h, topic)) return h;
      if (!this.deadLetters.move(writer, h, topic, null)) return h;
    }
  }

  /** Message `h` is now in flight to `consumer`; returns its delivery's view. */
  #markInFlight(h: number, topic: Topic, consumer: Consumer): Message {
    const core = this.#core;
    const store = core.store;
    store.states[h] = MessageState.IN_FLIGHT;
    const msg = new Message(store, h);
    msg.owner = consumer;
    msg.deliveryId = core.nextDeliveryId();
    store.views.set(h, msg);
    const carried = store.carried.size === 0 ? 0 : (store.carried.get(h) ?? 0);
    msg.attempt = ++store.deliveries[h]! - carried;
    if (msg.attempt > 1) topic.redelivered++;
    consumer.inFlight.set(msg.deliveryId, msg);
    topic.inFlight.add(h);
    if (core.ackTimeoutMs > 0) core.ackDeadlines.track(msg, performance.now() + core.ackTimeoutMs);
    // Not waited for: if it is lost in a crash the message is simply ready at its old place.
    const writer = core.liveWriter;
    if (writer !== null) this.appendPlacement(writer, RecordType.DELIVER, h, Placement.IN_FLIGHT);
    return msg;
  }

  /**
   * Appends a DELIVER, or a NACK nobody waits for (disconnect, tick), and notes where it puts
   * message `h` in the log (its placement) for compaction.
   */
  appendPlacement(writer: LogWriter, type: PlacementRecordType, h: number, placement: Placement): void {
    const store = this.#core.store;
    store.placements[h] = placement;
    store.placeOffsets[h] = writer.nextAppendOffset;
    writer.append(BrokerAppend.placement(type, store.topicOf(h).name, store.ids[h]!, h, this.#onPlaced));
  }

  /**
   * Completion of DELIVER records and of the NACK records of disconnects and ticks: nobody waits
   * for them. The writer logs a failed write; memory is right already, and replay then keeps the
   * last logged placement.
   */
  readonly #onPlaced = (err: Error | null, rec: BrokerAppend): void => {
    const h = rec.h;
    if (err === null && this.#core.store.isCurrent(h, rec.messageId)) this.#core.live.noteRef(h, rec.segment!);
  };

  /** Hands ready messages to waiting consumers, first come first served. */
  dispatch(topic: Topic): void {
    while (topic.waiters.length > 0 && topic.readyCount > 0) {
      const h = this.popReady(topic);
      if (h < 0) break;
      const consumer = topic.waiters.shift()!;
      consumer.waitingOn = null;
      consumer.deliver(this.#markInFlight(h, topic, consumer));
    }
  }

  /**
   * Puts `h`, taken away in memory by an ACK or a dead-lettering whose record then failed, back
   * at the front of its topic, where replay would find it (the live accounting never let it go:
   * it follows durable records only). Returns its topic, or undefined when the topic has been
   * deleted meanwhile.
   */
  reinstate(h: number): Topic | undefined {
    const store = this.#core.store;
    const topic = store.topicOf(h);
    if (!topic.exists || store.handleOf(store.ids[h]!) >= 0) return undefined;
    store.reinstate(h);
    topic.pushReadyFront(h);
    this.dispatch(topic);
    return topic;
  }

  /**
   * Ends the deliveries `msgs` (oldest first) without a settle: each message still in flight goes
   * back to the front of its topic, in the same order, or to its dead-letter topic when it used
   * up `--max-deliveries`. `timedOut` counts them as ack timeouts. Returns the topics touched: the
   * caller dispatches them, after telling whoever needs to know.
   */
  returnToFront(msgs: readonly Message[], timedOut: boolean): Set<Topic> {
    const core = this.#core;
    const writer = core.liveWriter;
    const touched = new Set<Topic>();
    // Back to front, so that messages of one topic keep their delivery order at the front.
    for (let i = msgs.length - 1; i >= 0; i--) {
      const msg = msgs[i]!;
      if (msg.state !== MessageState.IN_FLIGHT) continue;
      const h = msg.handle;
      const topic = core.store.topicOf(h);
      msg.owner?.inFlight.delete(msg.deliveryId);
      topic.inFlight.delete(h);
      core.topics.endDelivery(h);
      if (timedOut) topic.ackTimeouts++;
      touched.add(topic);
      if (writer !== null && this.deadLetters.exhausted(h, topic) && this.deadLetters.move(writer, h, topic, null)) continue;
      this.#toFront(h, topic, writer);
    }
    return touched;
  }

  /**
   * Message `h`, out of its queues, goes to the front of `topic`, logged as a NACK (to the front,
   * dackCount kept) that nobody waits for, so that replay puts it where it is now: in front of
   * messages NACKed earlier, behind those NACKed later (SPEC §5: every state change).
   */
  #toFront(h: number, topic: Topic, writer: LogWriter | null): void {
    topic.pushReadyFront(h);
    if (writer !== null) this.appendPlacement(writer, RecordType.NACK, h, Placement.FRONT);
  }

  /** See Broker.expireAckTimeouts. */
  expireAckTimeouts(nowMs: number): number {
    const core = this.#core;
    const expired = core.ackDeadlines.expire(nowMs);
    if (expired.length === 0) return 0;
    const owners: (Consumer | null)[] = expired.map((msg) => msg.owner);
    const touched = this.returnToFront(expired, true);
    core.logger.info(
      { count: expired.length, topics: [...touched].map((t) => t.name), ackTimeoutMs: core.ackTimeoutMs },
      'deliveries not settled within --ack-timeout returned to their queues',
    );
    for (let i = 0; i < expired.length; i++) {
      const msg = expired[i]!;
      owners[i]?.expired(msg, msg.state === MessageState.GONE);
    }
    for (const topic of touched) this.dispatch(topic);
    return expired.length;
  }

  /** ConsumerHandle.close of `consumer`: its wait is dropped, its deliveries NACKed to the front in order. */
  closeConsumer(consumer: Consumer): void {
    if (consumer.closed) return;
    consumer.closed = true;
    this.cancelRequest(consumer);
    if (consumer.subscribedTo !== null) {
      consumer.subscribedTo.consumers--;
      consumer.subscribedTo = null;
    }
    const msgs = [...consumer.inFlight.values()];
    consumer.inFlight.clear();
    consumer.gone = null;
    for (const topic of this.returnToFront(msgs, false)) this.dispatch(topic);
  }

  /** See Broker.tick: due DACKed messages back to the front, earliest due first. */
  returnDue(nowMs: number): void {
    const core = this.#core;
    const writer = core.liveWriter;
    const store = core.store;
    for (const topic of core.topics.byName.values()) {
      if (topic.delayed.size === 0) continue;
      let due: number[] | undefined;
      for (const h of topic.delayed) {
        if (store.dueAtOf(h) <= nowMs) (due ??= []).push(h);
      }
      if (due === undefined) continue;
      due.sort((a, b) => store.dueAtOf(b) - store.dueAtOf(a) || store.ids[b]! - store.ids[a]!);
      for (const h of due) {
        topic.delayed.delete(h);
        store.setDueAt(h, 0);
        // Logged as a NACK so that replay keeps it here instead of holding it until the first
        // tick after a restart.
        this.#toFront(h, topic, writer);
      }
      this.dispatch(topic);
    }
  }
}
