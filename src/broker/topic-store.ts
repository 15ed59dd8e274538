/**
 * The topics and their messages: the topic table, the delete counts that keep a publish from
 * landing in a topic deleted after it was appended, and the operations that add a message or
 * take one out of every index (ack, delete, dead-letter).
 *
 * Payloads: {@link addDurable} is the one place a message enters the payload cache (a publish, a
 * dead letter); MessageStore drops it from the cache when the message is forgotten, and reads an
 * uncached payload back from its segment.
 */
import type { Segment } from '../log/segment.js';
import type { LiveAccounting } from './live-accounting.js';
import { MessageState, type Message } from './message.js';
import type { MessageStore } from './message-store.js';
import { Topic } from './topic.js';

export class TopicStore {
  readonly messages: MessageStore;
  readonly #live: LiveAccounting;
  /** Every topic ever named in this process, existing or not (Topic.exists). */
  readonly byName = new Map<string, Topic>();
  /**
   * Deletes per topic name: a publish remembers the count when it is appended, and is not applied
   * if a delete came in between (see the publish completion in broker.ts).
   */
  readonly #deletes = new Map<string, number>();

  constructor(messages: MessageStore, live: LiveAccounting) {
    this.messages = messages;
    this.#live = live;
  }

  /** The topic named `name`, if it was ever named. */
  get(name: string): Topic | undefined {
    return this.byName.get(name);
  }

  /** The topic named `name`, made (not existing yet) if it was never named. The name must be valid. */
  topic(name: string): Topic {
    let topic = this.byName.get(name);
    if (topic === undefined) {
      topic = new Topic(name, this.messages);
      this.byName.set(name, topic);
    }
    return topic;
  }

  /** How many times `topicName` was deleted so far in this process. */
  deletesOf(topicName: string): number {
    return this.#deletes.get(topicName) ?? 0;
  }

  /** Counts a delete of `topicName` (see {@link deletesOf}). */
  countDelete(topicName: string): void {
    this.#deletes.set(topicName, this.deletesOf(topicName) + 1);
  }

  /**
   * A message of `topic` whose PUBLISH or RESTORE record (`recordBytes` long) is now durable in
   * `segment`, its payload at `payloadPosition`: added READY but not queued (the caller queues
   * it), `payload` kept in the cache while there is room (the store keeps the Buffer: the caller
   * must not change it), and its record pinned for the live accounting. Returns its handle.
   */
  addDurable(id: number, topic: Topic, segment: Segment, payloadPosition: number, payload: Buffer, recordBytes: number): number {
    const store = this.messages;
    const h = store.add(id, topic, payloadPosition, payload.length);
    store.cachePayload(h, payload);
    this.#live.pinOrigin(h, segment, recordBytes);
    return h;
  }

  /** Drops message `h` from every index (acked, deleted). The caller has unlinked it from queues. */
  forget(h: number, topic: Topic): void {
    const view = this.messages.views.get(h);
    if (view !== undefined && view.owner !== null) {
      view.owner.inFlight.delete(view.deliveryId);
      topic.inFlight.delete(h);
    }
    this.endDelivery(h);
    this.messages.forget(h);
  }

  /** The delivery of `h` (if any) is over: its view loses its owner and ack deadline. */
  endDelivery(h: number): void {
    const view = this.messages.views.get(h);
    if (view === undefined) return;
    view.owner = null;
    view.ackToken = 0;
    this.messages.views.delete(h);
  }

  /**
   * Empties a topic (delete): ready, delayed and in-flight messages are gone. Returns their
   * handles, for the live accounting once the delete is durable (they stay allocated until then).
   * The deliveries that were in flight to a consumer are added to `taken`, when given, so that
   * their consumers can be told once the delete is applied.
   */
  clear(topic: Topic, taken?: Message[]): number[] {
    const store = this.messages;
    const gone: number[] = [];
    topic.ready.forEach((h) => gone.push(h));
    if (topic.restoredReady !== null) {
      forEachRestoredReady(store, topic, (h) => gone.push(h));
      topic.restoredReady = null;
    }
    for (const h of gone) this.forget(h, topic);
    topic.ready.clear();
    topic.readyCount = 0;
    for (const h of topic.delayed) {
      this.forget(h, topic);
      gone.push(h);
    }
    topic.delayed.clear();
    for (const h of topic.inFlight) {
      // Its view stays in its consumer's table, GONE, so a later settle answers MQ_ERR_TOPIC_DELETED.
      const view = store.views.get(h);
      if (view !== undefined && view.owner !== null) {
        (view.owner.gone ??= new Map()).set(view.id, view);
        taken?.push(view);
      }
      store.views.delete(h);
      store.forget(h);
      gone.push(h);
    }
    topic.inFlight.clear();
    topic.exists = false;
    topic.resetCounters();
    return gone;
  }
}

/**
 * Calls `fn(h)` once for each handle of `topic.restoredReady` that still holds a ready message
 * placed by a RESTORE. A handle can be listed twice: freed during replay (its message acked,
 * moved or superseded) and reused by a later RESTORE on the same topic. Each handle passed to
 * `fn` gets slot -2, so the list must not be read again (merge and delete drop it after this).
 */
export function forEachRestoredReady(store: MessageStore, topic: Topic, fn: (h: number) => void): void {
  for (const h of topic.restoredReady!) {
    if (!isRestoredReady(store, h, topic)) continue;
    store.slots[h] = -2;
    fn(h);
  }
}

/**
 * Whether handle `h` of a topic's restoredReady list still holds a ready message of `topic` placed
 * by a RESTORE and not queued since (the handle may have been freed and reused).
 */
export function isRestoredReady(store: MessageStore, h: number, topic: Topic): boolean {
  return store.ids[h] !== -1 && store.states[h] === MessageState.READY && store.slots[h] === -1 && store.topics[h] === topic.number;
}
