/**
 * The queue commands of RESP (SPEC §4, §7): PUBLISH, RESERVE, ACK / NACK / BACK / DACK, TOUCH,
 * SUBSCRIBE stream mode, TOPICS, DEL / PURGE and STATS, with the per-connection state they share:
 * the consumer, a blocking RESERVE, the stream mode, and the records not yet durable.
 *
 * Every broker call of the RESP side is in this file. Arity and the subscribed / before-AUTH
 * rules are checked once by the command table (command-table.ts) before a method here runs.
 *
 * A blocking `RESERVE topic timeout-ms` holds the connection's later commands back (like Redis
 * BLPOP). In SUBSCRIBE stream mode a delivered payload is pushed behind the replies due so far,
 * and commands are answered while the consumer waits for a message, as on the HTTP/2 subscribe
 * stream.
 */
import type { Broker, SettleKind } from '../../broker/broker.js';
import type { Consumer } from '../../broker/consumer.js';
import type { Message } from '../../broker/message.js';
import { BrokerError } from '../../errors.js';
import { isValidTopicName } from '../../broker/topic-name.js';
import { parseWholeNumber, printable } from './arguments.js';
import type { CommandContext } from './command-table.js';
import { NIL_ARRAY, OK, SplicedReply, encodeArray, encodeError, encodeInteger, splicedBulk, type RespValue } from './encoder.js';
import type { Reply, ReplyQueue } from './reply-queue.js';
import { StreamMode } from './stream-mode.js';

/** Longest RESERVE timeout accepted (ms): about 24 days, the setTimeout limit. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
/** Longest DACK delay accepted, in seconds, inclusive: the same bound as the HTTP/2 stream and the client. */
const MAX_DACK_SECONDS = 999_999_999;

const SETTLE_KINDS: Record<string, SettleKind> = { ACK: 'ACK', NACK: 'NACK', BACK: 'BACK', DACK: 'DACK' };

/** STATS of a topic that does not exist: every count 0. */
const EMPTY_STATS = ['ready', 0, 'inFlight', 0, 'delayed', 0, 'consumers', 0, 'published', 0, 'acked', 0];

/** One connection's queue side: its consumer, blocking RESERVE, stream mode and pending writes. */
export class QueueSession {
  readonly #c: CommandContext;
  readonly #replies: ReplyQueue;
  readonly #broker: Broker;
  /** Most messages this connection may hold reserved at once. */
  readonly #maxReserved: number;
  /** Created by the first RESERVE or SUBSCRIBE; closed (its messages NACKed) with the connection. */
  #consumer: Consumer | null = null;
  #stream: StreamMode | null = null;
  #blocked = false;
  #blockedSlot = -1;
  #blockTimer: NodeJS.Timeout | undefined;
  /** PUBLISH and DEL records of this connection not yet durable (their effect is not applied yet). */
  #pendingWrites = 0;

  /**
   * @param c the connection, told when the pending writes are applied and when a blocking RESERVE ends
   * @param maxReserved most messages the connection may hold reserved at once (SPEC §4: >= 1000)
   */
  constructor(c: CommandContext, replies: ReplyQueue, broker: Broker, maxReserved: number) {
    this.#c = c;
    this.#replies = replies;
    this.#broker = broker;
    this.#maxReserved = maxReserved;
  }

  /** Whether a blocking RESERVE waits (the connection runs no other command meanwhile). */
  get blocked(): boolean {
    return this.#blocked;
  }

  /** Whether the connection is in SUBSCRIBE stream mode (for good: only QUIT leaves it). */
  get subscribed(): boolean {
    return this.#stream !== null;
  }

  /** PUBLISH and DEL records of this connection not yet durable. */
  get pendingWrites(): number {
    return this.#pendingWrites;
  }

  /** Messages this connection holds in flight (for logs). */
  get inFlightCount(): number {
    return this.#consumer?.inFlight.size ?? 0;
  }

  /** `PUBLISH topic payload`: `+OK` once the record is durable. */
  publish(args: Buffer[]): void {
    const replies = this.#replies;
    const slot = replies.slot();
    try {
      // The payload is a view into the socket's chunk: copy it, the broker keeps it.
      const payload = Buffer.from(args[2]!);
      this.#broker.publish(args[1]!.toString('latin1'), payload, (err) => {
        replies.fillOkOrError(slot, err);
        this.#writeDone();
      });
      this.#pendingWrites++;
    } catch (err) {
      if (err instanceof BrokerError && err.code === 'MQ_ERR_TOO_LARGE') this.#c.options.admission.refuse('resp', 'message_too_large');
      replies.fillError(slot, err);
    }
  }

  /** `RESERVE topic [timeout-ms]`: `[id, payload, dackCount]`, or nil (at once, or after the timeout). */
  reserve(args: Buffer[]): void {
    const timeoutMs = args.length === 3 ? this.#wholeNumber(args[2], MAX_TIMEOUT_MS, 'timeout-ms must be a whole number of milliseconds >= 0') : 0;
    if (timeoutMs === undefined) return;
    const consumer = this.#getConsumer();
    if (consumer.inFlight.size >= this.#maxReserved) {
      return this.#replies.replyError(
        new BrokerError('MQ_ERR_BAD_ARGUMENT', [`this connection already holds ${this.#maxReserved} reserved messages; settle some first`]),
      );
    }
    const topic = args[1]!.toString('latin1');
    try {
      const msg = this.#broker.take(consumer, topic);
      if (msg !== undefined) return this.#replies.reply(this.#encodeReserved(msg));
      if (timeoutMs === 0) return this.#replies.reply(this.#c.nil(NIL_ARRAY));
      this.#blocked = true;
      this.#blockedSlot = this.#replies.slot();
      this.#broker.request(consumer, topic);
      this.#blockTimer = setTimeout(() => this.#unblock(this.#c.nil(NIL_ARRAY)), timeoutMs);
    } catch (err) {
      this.#replies.replyError(err);
    }
  }

  /** `ACK|NACK|BACK topic id`, `DACK topic id seconds`: `+OK` once the settle is durable. */
  settleById(name: string, args: Buffer[]): void {
    const id = this.#messageId(args[2]!);
    if (id === undefined) return;
    const delaySeconds = name === 'DACK' ? this.#wholeNumber(args[3], MAX_DACK_SECONDS, 'DACK seconds must be a whole number from 0 to 999999999') : 0;
    if (delaySeconds === undefined) return;
    if (this.#consumer === null) return this.#replies.replyError(new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [id]));
    this.#settle(this.#consumer, id, name, delaySeconds, args[1]!.toString('latin1'));
  }

  /** `TOUCH topic id`: restarts the `--ack-timeout` timer of a reserved message (SPEC §7). */
  touchById(args: Buffer[]): void {
    const id = this.#messageId(args[2]!);
    if (id === undefined) return;
    if (this.#consumer === null) return this.#replies.replyError(new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [id]));
    this.#touch(this.#consumer, id, args[1]!.toString('latin1'));
  }

  /** `SUBSCRIBE topic`: enters stream mode; payloads are pushed one at a time, each settled (ACK, NACK, BACK, DACK) before the next. */
  subscribe(args: Buffer[]): void {
    const topic = args[1]!.toString('latin1');
    const consumer = this.#getConsumer();
    try {
      this.#broker.attach(consumer, topic);
    } catch (err) {
      return this.#replies.replyError(err);
    }
    this.#stream = new StreamMode(topic);
    this.#waitNext();
  }

  /** Stream mode `ACK|NACK|BACK`, `DACK seconds`: settles the message in flight, then asks for the next. */
  settleStreamed(name: string, args: Buffer[]): void {
    // DACK checks its own argument count: a missing or extra argument gets the usage, not an arity error.
    const delaySeconds =
      name === 'DACK' ? this.#wholeNumber(args.length === 2 ? args[1] : undefined, MAX_DACK_SECONDS, 'DACK needs whole seconds from 0 to 999999999: DACK 5') : 0;
    if (delaySeconds === undefined) return;
    const stream = this.#stream!;
    const msg = stream.takeInFlight();
    if (msg === null) {
      // After an expiry the client gives the expired message up: refuse, then go on with the next.
      const next = stream.hasExpired;
      this.#replies.replyError(stream.refusal(name, true));
      if (next) this.#waitNext();
      return;
    }
    // +OK only once the settle record is durable; the next message is requested at once and
    // its payload, queued behind that +OK, cannot overtake it.
    this.#settle(this.#consumer!, msg.id, name, delaySeconds, undefined);
    this.#waitNext();
  }

  /** Stream mode `TOUCH`: restarts the `--ack-timeout` timer of the message in flight. */
  touchStreamed(): void {
    const stream = this.#stream!;
    const msg = stream.inFlight;
    if (msg === null) return this.#replies.replyError(stream.refusal('TOUCH', false));
    this.#touch(this.#consumer!, msg.id, undefined);
  }

  /** `TOPICS`: every topic name. */
  topics(): void {
    this.#replies.reply(encodeArray(this.#broker.topicNames()));
  }

  /** `DEL|PURGE topic...`: how many of the topics existed, once every delete is durable. */
  del(args: Buffer[]): void {
    const replies = this.#replies;
    const slot = replies.slot();
    let remaining = args.length - 1;
    let deleted = 0;
    let failure: string | null = null;
    for (let i = 1; i < args.length; i++) {
      try {
        this.#broker.deleteTopic(args[i]!.toString('latin1'), (err, existed) => {
          if (err !== null) failure ??= err.toRespLine();
          else if (existed) deleted++;
          if (--remaining === 0) replies.fill(slot, failure !== null ? encodeError(failure) : encodeInteger(deleted));
          this.#writeDone();
        });
        this.#pendingWrites++;
      } catch (err) {
        failure ??= replies.errorLine(err);
        if (--remaining === 0) replies.fill(slot, encodeError(failure));
      }
    }
  }

  /** `STATS topic`: the topic's counts as a flat field/value array (zeros for an unknown topic). */
  stats(args: Buffer[]): void {
    const name = args[1]!.toString('latin1');
    if (!isValidTopicName(name)) return this.#replies.replyError(new BrokerError('MQ_ERR_BAD_TOPIC', [printable(args[1]!, 64)]));
    const stats = this.#broker.topicStats(name);
    if (stats === undefined) return this.#replies.reply(encodeArray(['topic', name, ...EMPTY_STATS]));
    const flat: RespValue[] = [];
    for (const [k, v] of Object.entries(stats)) flat.push(k, v as RespValue);
    this.#replies.reply(encodeArray(flat));
  }

  /** The connection has closed: stops a blocking RESERVE and NACKs every message it held. */
  close(): void {
    if (this.#blockTimer !== undefined) clearTimeout(this.#blockTimer);
    if (this.#consumer !== null) this.#broker.closeConsumer(this.#consumer);
  }

  /** The id argument of a settle or TOUCH, or undefined after answering an error. */
  #messageId(arg: Buffer): number | undefined {
    return this.#wholeNumber(arg, Number.MAX_SAFE_INTEGER, 'the message id must be the decimal id RESERVE returned');
  }

  /** `arg` as a whole number up to `max`, or undefined after answering `MQ_ERR_BAD_ARGUMENT` with `usage`. */
  #wholeNumber(arg: Buffer | undefined, max: number, usage: string): number | undefined {
    const n = arg === undefined ? undefined : parseWholeNumber(arg);
    if (n !== undefined && n <= max) return n;
    this.#replies.replyError(new BrokerError('MQ_ERR_BAD_ARGUMENT', [usage]));
    return undefined;
  }

  /** Settles message `id` (of `topic`, when given): `+OK` in the next slot once the record is durable. */
  #settle(consumer: Consumer, id: number, name: string, delaySeconds: number, topic: string | undefined): void {
    const replies = this.#replies;
    const slot = replies.slot();
    try {
      this.#broker.settle(consumer, id, SETTLE_KINDS[name]!, delaySeconds, (err) => replies.fillOkOrError(slot, err), topic);
    } catch (err) {
      replies.fillError(slot, err);
    }
  }

  #touch(consumer: Consumer, id: number, topic: string | undefined): void {
    try {
      this.#broker.touch(consumer, id, topic);
      this.#replies.reply(OK);
    } catch (err) {
      this.#replies.replyError(err);
    }
  }

  /** A PUBLISH or DEL record of this connection is durable (or failed). */
  #writeDone(): void {
    if (--this.#pendingWrites === 0) this.#c.pendingWritesApplied();
  }

  #getConsumer(): Consumer {
    if (this.#consumer === null) {
      this.#consumer = this.#broker.createConsumer((m) => this.#onDelivery(m));
      this.#consumer.onExpired = (m) => this.#stream?.expired(m);
    }
    return this.#consumer;
  }

  #encodeReserved(msg: Message): SplicedReply {
    const id = String(msg.id);
    const payload = this.#broker.payloadOf(msg);
    return new SplicedReply(`*3\r\n$${id.length}\r\n${id}\r\n$${payload.length}\r\n`, payload, `\r\n:${msg.dackCount}\r\n`);
  }

  #onDelivery(msg: Message): void {
    if (this.#stream !== null) {
      // Stream mode: the payload is a push, queued behind every reply due so far (so after the
      // +OK of the settle that asked for it), not an answer that later commands wait for.
      this.#stream.delivered(msg);
      this.#replies.reply(splicedBulk(this.#broker.payloadOf(msg)));
      return;
    }
    this.#unblock(this.#encodeReserved(msg));
  }

  /** Ends a blocking RESERVE with `reply` and lets the connection run the held-back commands. */
  #unblock(reply: Reply): void {
    if (!this.#blocked) return;
    if (this.#blockTimer !== undefined) clearTimeout(this.#blockTimer);
    this.#blockTimer = undefined;
    if (this.#consumer !== null) this.#broker.cancelRequest(this.#consumer);
    this.#blocked = false;
    this.#replies.fill(this.#blockedSlot, reply);
    this.#c.resumeCommands();
  }

  /** Stream mode: asks for the next message. */
  #waitNext(): void {
    if (this.#c.closing || this.#stream === null) return;
    this.#broker.request(this.#consumer!, this.#stream.topic);
  }
}
