/**
 * The seam between a topic's puller (topic-puller.ts, with its spares and waiters) and the
 * engine: what a pulled message is, and what the puller asks of the engine (send pulls, make
 * deliveries, give messages back, renew their leases).
 */
import type { JsDelivery, JsDeliveryFields } from './js-delivery.js';
import type { TopicPuller } from './topic-puller.js';

/** A pulled message, admitted (not dead-lettered), not yet given to a consumer. */
export type PulledMessage = Omit<JsDeliveryFields, 'deliveryId'>;

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
