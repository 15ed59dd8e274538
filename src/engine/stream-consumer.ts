/**
 * The stream consumer: one subscriber that holds one delivery at a time and settles it without
 * naming it (the HTTP/2 `POST /subscribe/:topic` stream, RESP `SUBSCRIBE`; SPEC §3, §4). Written
 * once here, over any {@link QueueEngine}, so both protocols behave alike.
 *
 * States: waiting (a delivery was requested) → holding one delivery → settled, next requested.
 * When `--ack-timeout` takes the held delivery back, the protocol's settles still name no
 * message, so a late "ACK" must never land on a message the client has not seen: the next
 * settle is refused (MQ_ERR_DELIVERY_EXPIRED), and only then is the next message requested.
 * A TOUCH after the expiry is refused too, but does not use up the refusal.
 */
import { BrokerError } from '../errors.js';
import {
  DEAD_LETTER_SUFFIX,
  type ConsumerHandle,
  type Delivery,
  type DoneCallback,
  type QueueEngine,
  type SettleKind,
} from './queue-engine.js';

/** What the protocol adapter is told; called synchronously from inside engine calls. */
export interface StreamHandlers {
  /** The next delivery, now held by this stream: push it to the client. */
  onDelivery(delivery: Delivery): void;
  /**
   * `--ack-timeout` took the held delivery back. `notice` (MQ_ERR_ACK_TIMEOUT) says where it
   * went and that the next settle is refused; the HTTP/2 stream sends it, RESP stays silent.
   */
  onExpired?(delivery: Delivery, notice: BrokerError): void;
  /**
   * The held delivery's topic was deleted. With this handler the stream goes on at once: `notice`
   * (MQ_ERR_TOPIC_DELETED) is for the client (the HTTP/2 stream sends it), the next delivery is
   * requested, and a settle before it arrives is answered with MQ_ERR_TOPIC_DELETED. Without it
   * (RESP), the delivery stays held until the client's next settle, which the engine refuses
   * with MQ_ERR_TOPIC_DELETED, and then the stream goes on.
   */
  onTopicDeleted?(delivery: Delivery, notice: BrokerError): void;
}

export class StreamConsumer {
  readonly #consumer: ConsumerHandle;
  readonly #topic: string;
  readonly #handlers: StreamHandlers;
  #current: Delivery | null = null;
  /** Message id of the delivery the ack timeout took back, until the refused settle; -1: none. */
  #expiredMessageId = -1;
  /** Message id of the held delivery whose topic was deleted, until the next delivery or settle; -1: none. */
  #deletedMessageId = -1;
  #waiting = false;
  /** No more deliveries are requested: the client can no longer settle (input ended, closing). */
  #stopped = false;
  #closed = false;

  /** Opens the engine consumer; nothing is delivered before {@link start}. */
  constructor(engine: QueueEngine, topic: string, handlers: StreamHandlers) {
    this.#topic = topic;
    this.#handlers = handlers;
    this.#consumer = engine.openConsumer({
      onDelivery: (d) => this.#onDelivery(d),
      onExpired: (d, deadLettered) => this.#onExpired(d, deadLettered),
      onTopicDeleted: (d) => this.#onTopicDeleted(d),
    });
  }

  /** Subscribes to the topic and requests the first delivery. Throws MQ_ERR_BAD_TOPIC, MQ_ERR_LOADING. */
  start(): void {
    this.#consumer.subscribe(this.#topic);
    this.#requestNext();
  }

  /** The delivery this stream holds, or null. */
  get current(): Delivery | null {
    return this.#current;
  }

  /** A delivery was requested and has not arrived yet. */
  get waiting(): boolean {
    return this.#waiting;
  }

  /**
   * Settles the held delivery and requests the next one at once (the settle's record is written
   * meanwhile). `cb` is called exactly once: synchronously, before anything else is delivered,
   * with a refusal or bad input — MQ_ERR_BAD_COMMAND (nothing held), MQ_ERR_DELIVERY_EXPIRED
   * (the ack timeout took it; the next delivery is requested after this refusal),
   * MQ_ERR_BAD_ARGUMENT (delay), MQ_ERR_TOPIC_DELETED and whatever else the engine's settle
   * throws — or later with the durable outcome (null, MQ_ERR_STORAGE, MQ_ERR_SHUTTING_DOWN).
   */
  settle(kind: SettleKind, delayMs: number, cb: DoneCallback): void {
    const delivery = this.#current;
    if (delivery === null && this.#deletedMessageId >= 0) {
      // The client was told; the next delivery is already requested.
      this.#deletedMessageId = -1;
      cb(new BrokerError('MQ_ERR_TOPIC_DELETED', [this.#topic]));
      return;
    }
    if (delivery === null) {
      if (this.#expiredMessageId < 0) {
        cb(new BrokerError('MQ_ERR_BAD_COMMAND', [`${kind}: no message is in flight on this subscription`]));
        return;
      }
      cb(new BrokerError('MQ_ERR_DELIVERY_EXPIRED', [kind, this.#expiredMessageId]));
      // The client has given up the expired message: go on with the next one.
      this.#expiredMessageId = -1;
      this.#requestNext();
      return;
    }
    try {
      this.#consumer.settle(delivery.deliveryId, kind, delayMs, cb);
    } catch (err) {
      if (!(err instanceof BrokerError)) throw err;
      cb(err);
      // A bad delay changed nothing: the delivery is still held. Anything else ends it (its
      // topic was deleted, the engine is shutting down): go on as after a settle.
      if (err.code === 'MQ_ERR_BAD_ARGUMENT') return;
      this.#current = null;
      this.#requestNext();
      return;
    }
    this.#current = null;
    this.#requestNext();
  }

  /**
   * Restarts the `--ack-timeout` timer of the held delivery (TOUCH). Throws MQ_ERR_BAD_COMMAND
   * (nothing held), MQ_ERR_DELIVERY_EXPIRED (the refusal is not used up), and the engine's errors.
   */
  touch(): void {
    const delivery = this.#current;
    if (delivery === null && this.#deletedMessageId >= 0) throw new BrokerError('MQ_ERR_TOPIC_DELETED', [this.#topic]);
    if (delivery === null) {
      if (this.#expiredMessageId >= 0) throw new BrokerError('MQ_ERR_DELIVERY_EXPIRED', ['TOUCH', this.#expiredMessageId]);
      throw new BrokerError('MQ_ERR_BAD_COMMAND', ['TOUCH: no message is in flight on this subscription']);
    }
    this.#consumer.touch(delivery.deliveryId);
  }

  /**
   * No settle can come any more (the client ended its side, or is quitting): nothing further is
   * requested. A request already waiting may still deliver; {@link close} NACKs what is held.
   */
  endInput(): void {
    this.#stopped = true;
  }

  /** The stream went away: the held delivery is NACKed (to the front) and nothing more is requested. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopped = true;
    this.#consumer.close();
  }

  #requestNext(): void {
    if (this.#stopped) return;
    this.#waiting = true;
    this.#consumer.request(this.#topic);
  }

  #onDelivery(delivery: Delivery): void {
    this.#waiting = false;
    this.#current = delivery;
    this.#deletedMessageId = -1;
    this.#handlers.onDelivery(delivery);
  }

  #onTopicDeleted(delivery: Delivery): void {
    const handler = this.#handlers.onTopicDeleted;
    if (this.#current !== delivery || handler === undefined) return;
    this.#current = null;
    this.#deletedMessageId = delivery.messageId;
    handler(delivery, new BrokerError('MQ_ERR_TOPIC_DELETED', [delivery.topic]));
    this.#requestNext();
  }

  #onExpired(delivery: Delivery, deadLettered: boolean): void {
    if (this.#current !== delivery) return;
    this.#current = null;
    this.#expiredMessageId = delivery.messageId;
    const where = deadLettered ? `was moved to ${delivery.topic}${DEAD_LETTER_SUFFIX}` : 'went back to the queue';
    const notice = new BrokerError('MQ_ERR_ACK_TIMEOUT', [delivery.messageId, `${where}; the next settle is refused, then delivery goes on`]);
    this.#handlers.onExpired?.(delivery, notice);
  }
}
