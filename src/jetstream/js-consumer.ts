/**
 * A consumer of the jetstream engine (the engine seam's {@link ConsumerHandle}): one attached
 * receiver on this gateway. It keeps what is in flight to it; pulling, settling and timers are
 * the engine's (jetstream-engine.ts), which it reaches through {@link JsConsumerHost}.
 *
 * Unlike the embedded engine, nothing is known to be ready without asking the cluster, so a
 * delivery always arrives after {@link request} has returned, {@link take} finds one only
 * when the gateway already holds one for this topic (see take), and {@link requestIfReady} asks
 * the cluster once without waiting (RESP `RESERVE topic` without a timeout).
 */
import { BrokerError } from '../errors.js';
import {
  MAX_DACK_DELAY_MS,
  MAX_IN_FLIGHT_PER_CONSUMER,
  type ConsumerHandle,
  type ConsumerHandlers,
  type DoneCallback,
  type SettleKind,
} from '../engine/queue-engine.js';
import { assertTopicName } from '../engine/topic-name.js';
import { JsDelivery } from './js-delivery.js';
import type { TopicPuller } from './topic-puller.js';

/** What a consumer asks of the engine. */
export interface JsConsumerHost {
  /** Throws MQ_ERR_LOADING or MQ_ERR_SHUTTING_DOWN unless the engine serves. */
  assertServing(): void;
  /** The puller of a valid topic name (made on first use). */
  puller(topic: string): TopicPuller;
  settle(consumer: JetStreamConsumer, delivery: JsDelivery, kind: SettleKind, delayMs: number, cb: DoneCallback): void;
  touch(delivery: JsDelivery): void;
  /** NACKs what a closing consumer held (in delivery order) and forgets the consumer. */
  released(consumer: JetStreamConsumer, held: JsDelivery[]): void;
}

export class JetStreamConsumer implements ConsumerHandle {
  /** Deliveries in flight to this consumer, by deliveryId, in delivery order. */
  readonly inFlight = new Map<number, JsDelivery>();
  /** Deliveries whose topic was deleted while in flight, by deliveryId, until settled. */
  readonly gone = new Map<number, JsDelivery>();
  /** The topic this consumer waits on for its next delivery, if any. */
  waitingOn: TopicPuller | null = null;
  /** The topic of its stream subscription (counted in stats), if any. */
  subscribedTo: TopicPuller | null = null;
  closed = false;
  readonly handlers: ConsumerHandlers;
  readonly #host: JsConsumerHost;

  constructor(host: JsConsumerHost, handlers: ConsumerHandlers) {
    this.#host = host;
    this.handlers = handlers;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  request(topic: string): void {
    this.#checkRequest(topic);
    this.cancel();
    const puller = this.#host.puller(topic);
    this.waitingOn = puller;
    puller.addWaiter(this);
  }

  /**
   * Takes a message of `topic` the gateway already holds unclaimed (one that arrived for a
   * request cancelled meanwhile), or undefined: a JetStream engine cannot know synchronously
   * whether the cluster has one ready. Throws as {@link request}.
   */
  take(topic: string): JsDelivery | undefined {
    this.#checkRequest(topic);
    return this.#host.puller(topic).takeSpare(this);
  }

  /**
   * Asks JetStream once, without waiting, whether `topic` has a message ready (a no-wait pull):
   * delivered through onDelivery, or `onNone` (see the seam). A message the gateway already holds
   * unclaimed is taken at once and handed on in the next tick. Throws as {@link request}.
   */
  requestIfReady(topic: string, onNone: () => void): void {
    this.#checkRequest(topic);
    this.cancel();
    const puller = this.#host.puller(topic);
    this.waitingOn = puller;
    puller.addOnceWaiter(this, onNone);
  }

  cancel(): void {
    if (this.waitingOn === null) return;
    const puller = this.waitingOn;
    this.waitingOn = null;
    puller.removeWaiter(this);
  }

  subscribe(topic: string): void {
    assertTopicName(topic);
    this.#host.assertServing();
    if (this.subscribedTo !== null) this.subscribedTo.subscribers--;
    this.subscribedTo = this.#host.puller(topic);
    this.subscribedTo.subscribers++;
  }

  settle(deliveryId: number, kind: SettleKind, delayMs: number, cb: DoneCallback): void {
    this.#host.assertServing();
    const delivery = this.#inFlight(deliveryId, true);
    if (kind === 'DACK' && !(Number.isSafeInteger(delayMs) && delayMs >= 0 && delayMs <= MAX_DACK_DELAY_MS)) {
      throw new BrokerError('MQ_ERR_BAD_ARGUMENT', [`DACK delay must be an integer from 0 to ${MAX_DACK_DELAY_MS} ms, got ${delayMs}`]);
    }
    this.inFlight.delete(deliveryId);
    this.#host.settle(this, delivery, kind, delayMs, cb);
  }

  touch(deliveryId: number): void {
    this.#host.assertServing();
    this.#host.touch(this.#inFlight(deliveryId, false));
  }

  deliveryOf(messageId: number, topic?: string): JsDelivery {
    for (const d of this.inFlight.values()) if (d.messageId === messageId && (topic === undefined || d.topic === topic)) return d;
    for (const d of this.gone.values()) if (d.messageId === messageId && (topic === undefined || d.topic === topic)) return d;
    throw new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [messageId]);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancel();
    if (this.subscribedTo !== null) {
      this.subscribedTo.subscribers--;
      this.subscribedTo = null;
    }
    const held = [...this.inFlight.values()];
    this.inFlight.clear();
    this.gone.clear();
    this.#host.released(this, held);
  }

  /**
   * Hands a pulled message to this consumer: it is now in flight to it. Called by its topic's
   * puller, which has taken this consumer off its waiters.
   */
  deliver(delivery: JsDelivery): void {
    this.inFlight.set(delivery.deliveryId, delivery);
    this.handlers.onDelivery(delivery);
  }

  /**
   * The delivery `deliveryId` in flight here. Throws MQ_ERR_TOPIC_DELETED (a settle, `end`, ends
   * the deleted delivery) or MQ_ERR_NOT_IN_FLIGHT.
   */
  #inFlight(deliveryId: number, end: boolean): JsDelivery {
    const delivery = this.inFlight.get(deliveryId);
    if (delivery !== undefined) return delivery;
    const gone = this.gone.get(deliveryId);
    if (gone !== undefined) {
      if (end) this.gone.delete(deliveryId);
      throw new BrokerError('MQ_ERR_TOPIC_DELETED', [gone.topic]);
    }
    throw new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [deliveryId]);
  }

  #checkRequest(topic: string): void {
    assertTopicName(topic);
    this.#host.assertServing();
    if (this.closed) throw new BrokerError('MQ_ERR_BAD_COMMAND', ['the consumer is closed']);
    if (this.inFlight.size >= MAX_IN_FLIGHT_PER_CONSUMER) {
      throw new BrokerError('MQ_ERR_BAD_ARGUMENT', [`a consumer may hold at most ${MAX_IN_FLIGHT_PER_CONSUMER} messages in flight`]);
    }
  }
}
