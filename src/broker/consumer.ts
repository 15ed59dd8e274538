/**
 * A consumer: one attached receiver (an HTTP/2 subscribe stream, a RESP connection). It is the
 * engine's {@link ConsumerHandle}: its methods ask the broker, which keeps the state below.
 */
import type { ConsumerHandle, ConsumerHandlers, DoneCallback, SettleKind } from '../engine/queue-engine.js';
import type { Message } from './message.js';
import type { Topic } from './topic.js';

/** What a consumer asks of the broker (the Broker façade makes one, over its dispatcher and settlements). */
export interface ConsumerHost {
  request(consumer: Consumer, topicName: string): void;
  take(consumer: Consumer, topicName: string): Message | undefined;
  cancelRequest(consumer: Consumer): void;
  attach(consumer: Consumer, topicName: string): void;
  settleDelivery(consumer: Consumer, deliveryId: number, kind: SettleKind, delayMs: number, cb: DoneCallback): void;
  touchDelivery(consumer: Consumer, deliveryId: number): void;
  deliveryOf(consumer: Consumer, messageId: number, topicName?: string): Message;
  closeConsumer(consumer: Consumer): void;
}

export class Consumer implements ConsumerHandle {
  /** In-flight deliveries by deliveryId, in delivery order. */
  readonly inFlight = new Map<number, Message>();
  /**
   * Deliveries whose topic was deleted while they were in flight, by message id (rare): a settle
   * naming one answers MQ_ERR_TOPIC_DELETED rather than MQ_ERR_NOT_IN_FLIGHT. Null when empty.
   */
  gone: Map<number, Message> | null = null;
  /** The topic this consumer is waiting on for its next delivery, if any. */
  waitingOn: Topic | null = null;
  /** The topic of a stream subscription (HTTP subscribe, RESP SUBSCRIBE), counted in stats. */
  subscribedTo: Topic | null = null;
  closed = false;
  readonly #host: ConsumerHost;
  readonly #handlers: ConsumerHandlers;

  constructor(host: ConsumerHost, handlers: ConsumerHandlers) {
    this.#host = host;
    this.#handlers = handlers;
  }

  /** Hands `msg`, now in flight to this consumer, to its handler. */
  deliver(msg: Message): void {
    this.#handlers.onDelivery(msg);
  }

  /**
   * `--ack-timeout` took `msg` back from this consumer (it is no longer in `inFlight`, and a
   * settle of it now throws MQ_ERR_NOT_IN_FLIGHT); `deadLettered`: it went to `<topic>.dead`.
   * Called after the broker's state is updated, from the ack ticker (ConsumerHandlers.onExpired).
   */
  expired(msg: Message, deadLettered: boolean): void {
    this.#handlers.onExpired?.(msg, deadLettered);
  }

  /**
   * The topic of `msg`, in flight to this consumer, was deleted (it is no longer in `inFlight`; a
   * settle or touch of it throws MQ_ERR_TOPIC_DELETED). Called once the delete is applied in
   * memory, after its record was appended (ConsumerHandlers.onTopicDeleted).
   */
  topicDeleted(msg: Message): void {
    this.#handlers.onTopicDeleted?.(msg);
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  request(topic: string): void {
    this.#host.request(this, topic);
  }

  take(topic: string): Message | undefined {
    return this.#host.take(this, topic);
  }

  cancel(): void {
    this.#host.cancelRequest(this);
  }

  subscribe(topic: string): void {
    this.#host.attach(this, topic);
  }

  settle(deliveryId: number, kind: SettleKind, delayMs: number, cb: DoneCallback): void {
    this.#host.settleDelivery(this, deliveryId, kind, delayMs, cb);
  }

  touch(deliveryId: number): void {
    this.#host.touchDelivery(this, deliveryId);
  }

  deliveryOf(messageId: number, topic?: string): Message {
    return this.#host.deliveryOf(this, messageId, topic);
  }

  close(): void {
    this.#host.closeConsumer(this);
  }
}
