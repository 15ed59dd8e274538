/**
 * Per-topic state: ready queue, delayed set, in-flight set, waiting consumers, counters.
 */
import type { Segment } from '../log/segment.js';
import type { Consumer } from './consumer.js';
import { MessageState } from './message.js';
import type { MessageStore } from './message-store.js';
import { ReadyQueue } from './ready-queue.js';

/** Messages are handles into the broker's MessageStore (message-store.ts). */
export class Topic {
  readonly name: string;
  /** The topic's number in the store (MessageStore.registerTopic). */
  readonly number: number;
  readonly #store: MessageStore;
  /** True from the first publish until a delete (SPEC §2: created by the first publish). */
  exists = false;
  readonly ready: ReadyQueue;
  readyCount = 0;
  /** Handles of DELAYED messages. */
  readonly delayed = new Set<number>();
  /** Handles of IN_FLIGHT messages. */
  readonly inFlight = new Set<number>();
  /** Consumers waiting for a message from this topic, in arrival order. */
  readonly waiters: Consumer[] = [];
  /** Consumers attached to this topic (stream subscriptions), for stats. */
  consumers = 0;
  published = 0;
  /** Messages that left the topic through an ACK record: acked by a consumer, or the original of a dead letter. */
  acked = 0;
  // Counters of this process's life (not rebuilt by replay), for metrics (SPEC §7).
  /** Explicit NACK settles. */
  nacked = 0;
  /** Explicit BACK settles. */
  backed = 0;
  /** Explicit DACK settles. */
  dacked = 0;
  /** Deliveries of a message that had been delivered before (after NACK, BACK, DACK, a disconnect, an ack timeout or a restart). */
  redelivered = 0;
  /** Deliveries not settled within `--ack-timeout` and returned to the front. */
  ackTimeouts = 0;
  /** Messages moved to `<topic>.dead` by `--max-deliveries` (also counted by replay). */
  deadLettered = 0;
  /**
   * The counters as replay of the log up to the last completed record would rebuild them, in the
   * log as it was before any compaction: changed only when a record completes, in log order
   * (published, acked and deadLettered change earlier, or not at all when a delete overtook the
   * record). Compaction writes them into COUNTERS records (counter-snapshots.ts).
   */
  loggedPublished = 0;
  /** See {@link loggedPublished}. */
  loggedAcked = 0;
  /** See {@link loggedPublished}. */
  loggedDeadLettered = 0;
  /** The "name too long for a dead-letter topic" warning was logged (once per topic). */
  deadLetterNameWarned = false;
  /** The segment with the newest durable PUBLISH/RESTORE/TOPIC record of this topic since its last delete (live accounting). */
  markSegment: Segment | null = null;
  /**
   * During replay only: ready messages placed by RESTORE records, not yet in `ready` (their slot
   * is -1); merged into it by rank when replay ends.
   */
  restoredReady: number[] | null = null;

  constructor(name: string, store: MessageStore) {
    this.name = name;
    this.#store = store;
    this.ready = new ReadyQueue(store);
    this.number = store.registerTopic(this);
  }

  pushReadyBack(h: number): void {
    this.#store.states[h] = MessageState.READY;
    this.ready.pushBack(h);
    this.readyCount++;
  }

  pushReadyFront(h: number): void {
    this.#store.states[h] = MessageState.READY;
    this.ready.pushFront(h);
    this.readyCount++;
  }

  /** Pops the handle of the next ready message, or -1. */
  popReady(): number {
    const h = this.ready.popFront();
    if (h >= 0) this.readyCount--;
    return h;
  }

  /**
   * Marks a READY message as taken out of the queue some other way (replay of an ack, nack,
   * back or dack). Its slot goes stale and is skipped later.
   */
  unlinkReady(h: number): void {
    this.readyCount--;
    if (this.ready.slotCount > 1024 && this.ready.slotCount > 4 * this.readyCount) {
      this.#store.states[h] = MessageState.GONE; // Exclude it from the compaction below; caller sets the real state.
      this.ready.compact();
    }
  }

  /** Zeroes every counter (the topic was deleted; a new one of the same name starts from zero). */
  resetCounters(): void {
    this.published = this.acked = this.nacked = this.backed = this.dacked = 0;
    this.redelivered = this.ackTimeouts = this.deadLettered = 0;
  }

  /** A DELETE_TOPIC of this topic completed: replay starts counting from zero after it. */
  resetLoggedCounters(): void {
    this.loggedPublished = this.loggedAcked = this.loggedDeadLettered = 0;
  }

  /** Replay is over: what it counted is what the log holds. */
  adoptReplayedCounters(): void {
    this.loggedPublished = this.published;
    this.loggedAcked = this.acked;
    this.loggedDeadLettered = this.deadLettered;
  }

  /** Removes waiting `consumer`, if it is waiting here. */
  removeWaiter(consumer: Consumer): void {
    const i = this.waiters.indexOf(consumer);
    if (i >= 0) this.waiters.splice(i, 1);
  }
}
