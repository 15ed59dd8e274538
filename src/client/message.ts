/**
 * One delivery handed out by a {@link Subscription} iterator, with its settle methods.
 *
 * The subscribe protocol (SPEC §3) settles "the message in flight on this stream": the command
 * lines carry no id. So a settle is only sent while this message is the one in flight on the
 * stream it arrived on; anything else is refused locally, before a byte is written, so a late
 * `ack()` can never settle a different message.
 */
import { MiniqueueError } from './errors.js';

/** Settle commands of the subscribe stream. */
export type SettleCommand = 'ACK' | 'NACK' | 'BACK' | 'DACK';

/**
 * What a {@link Message} needs from the subscription that delivered it. Implemented inside
 * `subscription.ts`; not part of the public API.
 * @internal
 */
export interface MessageOwner {
  /** Sends `command` for `message`; see {@link Message.ack} for the contract. */
  settle(message: Message, command: SettleCommand, delaySeconds: number): Promise<void>;
  /** Sends TOUCH for `message`; see {@link Message.touch}. */
  touch(message: Message): Promise<void>;
}

/** Largest DACK delay the server accepts (its grammar is 1 to 9 digits), in seconds. */
export const MAX_DACK_SECONDS = 999_999_999;

/**
 * A message received on a subscription.
 *
 * Settle it exactly once with {@link Message.ack}, {@link Message.nack}, {@link Message.back}
 * or {@link Message.dack}; the server delivers the next message on the subscription only after
 * that. Each settle returns a Promise that **resolves when the command line has been handed to
 * the HTTP/2 session** (the stream's write callback ran). The subscribe protocol has no
 * per-command acknowledgement, so a resolved `ack()` proves neither that the server received it
 * nor that it is durable: if the connection drops right after, or the server crashes before
 * the ACK record reaches its log, the message is delivered again (at-least-once; make handlers
 * idempotent). The next delivery on the same stream shows that the server received and applied
 * the settle, but the server may send it before the settle's record is fsynced.
 *
 * Settles reject with a `MiniqueueError`:
 * - `MQ_ERR_ALREADY_SETTLED`: this message was settled before (nothing is sent);
 * - `MQ_ERR_ACK_TIMEOUT`: the server's `--ack-timeout` took it back ({@link Message.expired});
 *   nothing is sent, and the subscription goes on with the next message by itself;
 * - `MQ_ERR_TOPIC_DELETED`: the server said its topic was deleted while it was held; nothing is
 *   sent, and the subscription goes on with the next message;
 * - `MQ_ERR_STALE_MESSAGE`: its stream is gone (the server has put the message back at the
 *   front and delivers it again, possibly to another consumer); nothing is sent;
 * - `MQ_ERR_CLOSED`: the subscription or client was closed (the server NACKs the message);
 * - `MQ_ERR_CONNECTION`: the stream died while the line was being written;
 * - `MQ_ERR_BAD_ARGUMENT`: `dack` with a delay that is not a whole number in [0, 999999999].
 *
 * A settle the server refuses after receiving it (for instance, the topic was deleted while the
 * message was in flight) arrives as an error line; it is passed to the subscription's `onError`
 * option, because the protocol cannot tie it to the call.
 */
export class Message {
  /** The payload. The Buffer is this message's own copy; the caller may keep or change it. */
  readonly data: Buffer;
  /** The id the server gave the message (unique within the server's log); -1 from a server that sends no id. */
  readonly id: number;
  /** How many times the message was DACKed before this delivery (0 when never). */
  readonly dackCount: number;
  /** The topic it was delivered from. */
  readonly topic: string;
  readonly #owner: MessageOwner;
  #settled = false;
  #expired = false;
  #topicDeleted = false;

  /** @internal Created by the subscription; user code never constructs one. */
  constructor(owner: MessageOwner, topic: string, data: Buffer, id: number, dackCount: number) {
    this.#owner = owner;
    this.topic = topic;
    this.data = data;
    this.id = id;
    this.dackCount = dackCount;
  }

  /** True once a settle was called (whether or not it was sent successfully). */
  get settled(): boolean {
    return this.#settled;
  }

  /**
   * True when the server's `--ack-timeout` took this message back before it was settled (it went
   * back to the queue, or to `<topic>.dead`). Settling or touching it then rejects with
   * `MQ_ERR_ACK_TIMEOUT`, and the subscription goes on with the next message by itself.
   */
  get expired(): boolean {
    return this.#expired;
  }

  /** @internal The ack timeout took it back: it counts as settled, and as expired. */
  markExpired(): void {
    this.#settled = true;
    this.#expired = true;
  }

  /**
   * @internal The server said its topic was deleted while it was held (it goes on with the next
   * message at once): it counts as settled, so that its "ACK" can never land on the next message.
   * Returns false when it was settled already.
   */
  markTopicDeleted(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.#topicDeleted = true;
    return true;
  }

  /** @internal Why the server took it back (ack timeout, topic deleted), or null. */
  takenBack(): MiniqueueError | null {
    if (this.#expired) {
      return new MiniqueueError('MQ_ERR_ACK_TIMEOUT', `message ${this.id} was not settled within the server's --ack-timeout and was taken back`);
    }
    return this.#topicDeleted ? new MiniqueueError('MQ_ERR_TOPIC_DELETED', `the topic of message ${this.id} was deleted`) : null;
  }

  /** @internal Marks the message settled; returns false when it already was. */
  markSettled(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    return true;
  }

  /** Done with it: the server never delivers it again. Sends `"ACK"`. See the class docs for when it resolves. */
  ack(): Promise<void> {
    return this.#owner.settle(this, 'ACK', 0);
  }

  /** Return it to the **front** of the queue: it is the next message delivered. Sends `"NACK"`. */
  nack(): Promise<void> {
    return this.#owner.settle(this, 'NACK', 0);
  }

  /** Return it to the **end** of the queue. Sends `"BACK"`. */
  back(): Promise<void> {
    return this.#owner.settle(this, 'BACK', 0);
  }

  /**
   * Hold it for at least `seconds`, then return it to the front with `dackCount` + 1 (the
   * server checks delayed messages every `--period`, 1 s by default). Sends `"DACK <seconds>"`.
   * @param seconds - whole seconds, 0 to 999999999 inclusive; otherwise rejects with
   *   `MQ_ERR_BAD_ARGUMENT` and nothing is sent (the message stays in flight).
   */
  dack(seconds: number): Promise<void> {
    return this.#owner.settle(this, 'DACK', seconds);
  }

  /**
   * Ask the server to restart this message's ack timer (`--ack-timeout`, SPEC §7), as
   * beanstalkd's touch. Sends `"TOUCH"`; the message stays in flight and may still be settled.
   *
   * Unlike the settles, touch waits for the server's verdict: it sends a second, deliberately
   * unknown command right after TOUCH (`"mq.sync.<n>.end"`), which every server answers with an
   * error line that echoes it. If an error line arrives before that echo, it is TOUCH's and
   * touch rejects with it (the line's code, else `MQ_ERR_STREAM`; message = the server's text); otherwise touch
   * resolves. Servers without TOUCH support (before issue #6) answer `unknown command`, so on
   * them touch rejects with `MQ_ERR_STREAM` and the message is unaffected.
   * Also rejects like the settles (`MQ_ERR_ALREADY_SETTLED`, `MQ_ERR_STALE_MESSAGE`,
   * `MQ_ERR_CLOSED`, `MQ_ERR_CONNECTION`), and with `MQ_ERR_TIMEOUT` after 10 s without the echo.
   */
  touch(): Promise<void> {
    return this.#owner.touch(this);
  }
}
