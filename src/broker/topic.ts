/**
 * Per-topic state: ready queue, delayed set, in-flight set, waiting consumers, counters.
 */
import type { Segment } from '../log/segment.js';
import { Message, MessageQueue, MessageState } from './message.js';
import type { Consumer } from './consumer.js';

export class Topic {
  readonly name: string;
  /** True from the first publish until a delete (SPEC §2: created by the first publish). */
  exists = false;
  readonly ready = new MessageQueue();
  readyCount = 0;
  readonly delayed = new Set<Message>();
  readonly inFlight = new Set<Message>();
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
  /** The "name too long for a dead-letter topic" warning was logged (once per topic). */
  deadLetterNameWarned = false;
  /** The segment with the newest durable PUBLISH/RESTORE/TOPIC record of this topic since its last delete (live accounting). */
  markSegment: Segment | null = null;
  /**
   * During replay only: ready messages placed by RESTORE records, not yet in `ready` (their slot
   * is -1); merged into it by rank when replay ends.
   */
  restoredReady: Message[] | null = null;

  constructor(name: string) {
    this.name = name;
  }

  pushReadyBack(msg: Message): void {
    msg.state = MessageState.READY;
    this.ready.pushBack(msg);
    this.readyCount++;
  }

  pushReadyFront(msg: Message): void {
    msg.state = MessageState.READY;
    this.ready.pushFront(msg);
    this.readyCount++;
  }

  /** Pops the next ready message, or undefined. */
  popReady(): Message | undefined {
    const msg = this.ready.popFront();
    if (msg !== undefined) this.readyCount--;
    return msg;
  }

  /**
   * Marks a READY message as taken out of the queue some other way (replay of an ack, nack,
   * back or dack). Its slot goes stale and is skipped later.
   */
  unlinkReady(msg: Message): void {
    this.readyCount--;
    if (this.ready.slotCount > 1024 && this.ready.slotCount > 4 * this.readyCount) {
      msg.state = MessageState.GONE; // Exclude it from the compaction below; caller sets the real state.
      this.ready.compact();
    }
  }

  /** Zeroes every counter (the topic was deleted; a new one of the same name starts from zero). */
  resetCounters(): void {
    this.published = this.acked = this.nacked = this.backed = this.dacked = 0;
    this.redelivered = this.ackTimeouts = this.deadLettered = 0;
  }

  /** Removes waiting `consumer`, if it is waiting here. */
  removeWaiter(consumer: Consumer): void {
    const i = this.waiters.indexOf(consumer);
    if (i >= 0) this.waiters.splice(i, 1);
  }
}
