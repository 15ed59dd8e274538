/**
 * Message states, and the read-only view of one message that the broker hands to protocols: a
 * delivery's view implements the engine's {@link Delivery}.
 */
import { BrokerError } from '../errors.js';
import type { Delivery } from '../engine/queue-engine.js';
import type { Consumer } from './consumer.js';
import type { MessageStore } from './message-store.js';

export const MessageState = {
  READY: 0,
  IN_FLIGHT: 1,
  DELAYED: 2,
  /** Acked, deleted with its topic, or moved away: no longer live. */
  GONE: 3,
} as const;
export type MessageState = (typeof MessageState)[keyof typeof MessageState];

/**
 * A view of one message in the {@link MessageStore}. `id` is the offset of its PUBLISH record (or
 * dead-letter RESTORE), unique in the whole log. The fields read the store while the message is
 * there; once it is gone (acked, deleted, moved) `state` is GONE and the counts read 0.
 *
 * A delivery's view is kept while the message is in flight (`owner`, `ackToken`), so a consumer's
 * in-flight table and the ack deadlines hold the same object; other views are made on demand
 * (their `deliveryId` and `attempt` are 0).
 */
export class Message implements Delivery {
  readonly id: number;
  readonly topic: string;
  /** Unique per delivery in this process (Delivery.deliveryId); 0 on a view that is no delivery. */
  deliveryId = 0;
  /** 1 on the first delivery in its topic, +1 per redelivery (Delivery.attempt); 0 on other views. */
  attempt = 0;
  /** The consumer it is in flight to, when IN_FLIGHT (set on its delivery's view). */
  owner: Consumer | null = null;
  /**
   * IN_FLIGHT with `--ack-timeout`: the token of its current entry in the broker's AckDeadlines
   * (0: none). A TOUCH or a new delivery gives it a new one, which makes the old entry stale.
   */
  ackToken = 0;
  readonly #store: MessageStore;
  readonly #handle: number;

  constructor(store: MessageStore, handle: number) {
    this.#store = store;
    this.#handle = handle;
    this.id = store.ids[handle]!;
    this.topic = store.topicOf(handle).name;
  }

  /** Delivery.messageId: the same as {@link id}. */
  get messageId(): number {
    return this.id;
  }

  /**
   * The payload bytes: the cached Buffer (do not change it), or a copy read back from its
   * segment. Throws MQ_ERR_NOT_IN_FLIGHT once the message is gone, and the fs error of the read.
   */
  get payload(): Buffer {
    if (!this.#current()) throw new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [this.id]);
    return this.#store.payloadOf(this.#handle);
  }

  /** The store handle (valid while {@link MessageStore.isCurrent}). */
  get handle(): number {
    return this.#handle;
  }

  #current(): boolean {
    return this.#store.ids[this.#handle] === this.id;
  }

  get state(): MessageState {
    return this.#current() ? (this.#store.states[this.#handle] as MessageState) : MessageState.GONE;
  }

  /** Number of DACKs so far (SPEC §2). */
  get dackCount(): number {
    return this.#current() ? this.#store.dackCounts[this.#handle]! : 0;
  }

  /** Deliveries since publish (in this process, or carried by a RESTORE). */
  get deliveries(): number {
    return this.#current() ? this.#store.deliveries[this.#handle]! : 0;
  }

  /** DELAYED: when it becomes ready again (Unix epoch ms). */
  get dueAtMs(): number {
    return this.#current() ? this.#store.dueAtOf(this.#handle) : 0;
  }

  /** Where replay of the log would put it (record.ts Placement). */
  get placement(): number {
    return this.#current() ? this.#store.placements[this.#handle]! : 0;
  }

  /** Offset of the record that placed it last. */
  get placeOffset(): number {
    return this.#current() ? this.#store.placeOffsetOf(this.#handle) : 0;
  }

  /** Whether the payload is kept in memory (else it is read back from its segment). */
  get payloadCached(): boolean {
    return this.#current() && this.#store.isCached(this.#handle);
  }

  /** Bytes of the payload (not of its record). */
  get payloadBytes(): number {
    return this.#current() ? this.#store.payloadSizes[this.#handle]! : 0;
  }
}
