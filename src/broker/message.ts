/**
 * A message and the ready queue of a topic.
 */
import { Placement } from '../log/record.js';
import type { Segment } from '../log/segment.js';

export const MessageState = {
  READY: 0,
  IN_FLIGHT: 1,
  DELAYED: 2,
  /** Acked, deleted with its topic, or moved away: no longer live. */
  GONE: 3,
} as const;
export type MessageState = (typeof MessageState)[keyof typeof MessageState];

/**
 * One live message. `id` is the offset of its PUBLISH record, unique in the whole log (so also
 * in its topic). The payload is kept in memory when it fits the broker's payload cache;
 * otherwise it is read back from `segment` (where its current PUBLISH or RESTORE record is) at
 * `payloadPosition` on delivery.
 */
export class Message {
  state: MessageState = MessageState.READY;
  /** Token of the queue slot that currently holds this message (see MessageQueue). */
  slot = 0;
  /** Number of DACKs so far (SPEC §2). */
  dackCount = 0;
  /** DELAYED: when it becomes ready again (Unix epoch ms). */
  dueAtMs = 0;
  /** Deliveries since publish (in this process). */
  deliveries = 0;
  /** A dead-letter copy: the deliveries it carried over from its original (not redeliveries here); else 0. */
  carriedDeliveries = 0;
  /** The consumer it is in flight to, when IN_FLIGHT. */
  owner: object | null = null;
  /**
   * IN_FLIGHT with `--ack-timeout`: the token of its current entry in the broker's AckDeadlines
   * (0: none). A TOUCH or a new delivery gives it a new one, which makes the old entry stale.
   */
  ackToken = 0;
  /**
   * Where replay of the log would put it, after the last NACK/BACK/DACK/DELIVER/PUBLISH/RESTORE
   * record appended for it (not its state in memory, which differs for messages in flight at a
   * restart and after a failed ACK). Compaction copies it into RESTORE records (record.ts).
   */
  placement: Placement = Placement.BACK;
  /** Offset of that record; for one not written yet, the offset it will get. */
  placeOffset = 0;
  // Live accounting (live-accounting.ts), from durable records only.
  /** Bytes of its current PUBLISH/RESTORE record (in `segment`) while it counts as live; 0 once durably acked or deleted. */
  pinnedBytes = 0;
  /** Segments other than `segment` with its NACK/BACK/DACK/DELIVER records, oldest first; null when none. */
  refSegments: Segment[] | null = null;
  /** Older segments that still hold a PUBLISH/RESTORE of it superseded by a RESTORE; null when none. */
  prevOrigins: Segment[] | null = null;

  constructor(
    readonly id: number,
    readonly topic: string,
    public payload: Buffer | null,
    public segment: Segment | null,
    public payloadPosition: number,
    readonly sizeBytes: number,
  ) {}
}

let nextSlotToken = 1;

/**
 * FIFO of ready messages with push at both ends, O(1) amortized. Removal from the middle (a
 * message acked or moved during replay, a topic delete) is lazy: each push stamps the message
 * with a fresh slot token, and a popped slot whose token no longer matches its message, or
 * whose message is not READY, is skipped. The caller keeps the count of live entries and calls
 * {@link compact} when stale slots pile up.
 */
export class MessageQueue {
  #items: (Message | undefined)[];
  #tokens: Float64Array;
  #head = 0;
  #length = 0;

  constructor(initialCapacity = 16) {
    this.#items = new Array(initialCapacity);
    this.#tokens = new Float64Array(initialCapacity);
  }

  /** Slots in use, stale ones included. */
  get slotCount(): number {
    return this.#length;
  }

  pushBack(msg: Message): void {
    if (this.#length === this.#items.length) this.#grow();
    const i = (this.#head + this.#length) % this.#items.length;
    msg.slot = nextSlotToken++;
    this.#items[i] = msg;
    this.#tokens[i] = msg.slot;
    this.#length++;
  }

  pushFront(msg: Message): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#head = (this.#head - 1 + this.#items.length) % this.#items.length;
    msg.slot = nextSlotToken++;
    this.#items[this.#head] = msg;
    this.#tokens[this.#head] = msg.slot;
    this.#length++;
  }

  /** Removes and returns the first live READY message, or undefined. */
  popFront(): Message | undefined {
    while (this.#length > 0) {
      const i = this.#head;
      const msg = this.#items[i]!;
      const token = this.#tokens[i];
      this.#items[i] = undefined;
      this.#head = (i + 1) % this.#items.length;
      this.#length--;
      if (msg.slot === token && msg.state === 0) return msg;
    }
    return undefined;
  }

  /** Calls `fn` for each live READY message, front to back. */
  forEach(fn: (msg: Message) => void): void {
    const cap = this.#items.length;
    for (let k = 0; k < this.#length; k++) {
      const i = (this.#head + k) % cap;
      const msg = this.#items[i]!;
      if (msg.slot === this.#tokens[i] && msg.state === 0) fn(msg);
    }
  }

  /** Drops stale slots, keeping the order of live ones. */
  compact(): void {
    const live: Message[] = [];
    this.forEach((m) => live.push(m));
    const cap = Math.max(16, live.length * 2);
    this.#items = new Array(cap);
    this.#tokens = new Float64Array(cap);
    this.#head = 0;
    this.#length = 0;
    for (const m of live) {
      this.#items[this.#length] = m;
      this.#tokens[this.#length] = m.slot;
      this.#length++;
    }
  }

  clear(): void {
    this.#items = new Array(16);
    this.#tokens = new Float64Array(16);
    this.#head = 0;
    this.#length = 0;
  }

  #grow(): void {
    const cap = this.#items.length;
    const items: (Message | undefined)[] = new Array(cap * 2);
    const tokens = new Float64Array(cap * 2);
    for (let k = 0; k < this.#length; k++) {
      const i = (this.#head + k) % cap;
      items[k] = this.#items[i];
      tokens[k] = this.#tokens[i]!;
    }
    this.#items = items;
    this.#tokens = tokens;
    this.#head = 0;
  }
}
