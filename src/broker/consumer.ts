/**
 * A consumer: one attached receiver (an HTTP/2 subscribe stream, a RESP connection).
 */
import type { Message } from './message.js';
import type { Topic } from './topic.js';

/**
 * Called when the broker hands `msg` to the consumer. The message is in flight to it until
 * settled. Called synchronously from inside broker calls (publish completion, settle, request).
 */
export type DeliveryHandler = (msg: Message) => void;

export class Consumer {
  /** In-flight messages by id, in delivery order. */
  readonly inFlight = new Map<number, Message>();
  /** The topic this consumer is waiting on for its next delivery, if any. */
  waitingOn: Topic | null = null;
  /** The topic of a stream subscription (HTTP subscribe, RESP SUBSCRIBE), counted in stats. */
  subscribedTo: Topic | null = null;
  closed = false;
  readonly onDelivery: DeliveryHandler;
  /**
   * Called when `--ack-timeout` took `msg` back from this consumer (it is no longer in
   * `inFlight`, and a settle of it now throws MQ_ERR_NOT_IN_FLIGHT). Called after the broker's
   * state is updated, from the ack ticker.
   */
  onExpired: ((msg: Message) => void) | null = null;

  constructor(onDelivery: DeliveryHandler) {
    this.onDelivery = onDelivery;
  }
}
