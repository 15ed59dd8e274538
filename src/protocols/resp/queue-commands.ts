/**
 * The queue commands of RESP (SPEC §4, §7): PUBLISH, RESERVE, ACK / NACK / BACK / DACK, TOUCH,
 * SUBSCRIBE stream mode, TOPICS, DEL / PURGE and STATS, with the per-connection state they share:
 * the consumer, a blocking RESERVE, the stream mode, and the records not yet durable.
 *
 * Every engine call of the RESP side is in this file, through the engine seam only
 * (engine/queue-engine.ts): RESERVE and the settles by id over one {@link ConsumerHandle},
 * SUBSCRIBE over a {@link StreamConsumer}, which holds the stream's state machine for both
 * protocols. Arity and the subscribed / before-AUTH rules are checked once by the command table
 * (command-table.ts) before a method here runs.
 *
 * A blocking `RESERVE topic timeout-ms` holds the connection's later commands back (like Redis
 * BLPOP). In SUBSCRIBE stream mode a delivered payload is pushed behind the replies due so far,
 * and commands are answered while the consumer waits for a message, as on the HTTP/2 subscribe
 * stream.
 */
import { dackDelayMs, type ConsumerHandle, type Delivery, type QueueEngine, type SettleKind } from '../../engine/queue-engine.js';
import { StreamConsumer } from '../../engine/stream-consumer.js';
import { assertTopicName, badTopicError, isValidTopicName } from '../../engine/topic-name.js';
import { BrokerError } from '../../errors.js';
import { parseWholeNumber } from './arguments.js';
import type { CommandContext } from './command-table.js';
import { NIL_ARRAY, OK, SplicedReply, encodeArray, encodeError, encodeInteger, splicedBulk, type RespValue } from './encoder.js';
import { LastTopicName } from './last-topic-name.js';
import type { Reply, ReplyQueue } from './reply-queue.js';

/** Longest RESERVE timeout accepted (ms): about 24 days, the setTimeout limit. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

const SETTLE_KINDS: Record<string, SettleKind> = { ACK: 'ACK', NACK: 'NACK', BACK: 'BACK', DACK: 'DACK' };

/** STATS of a topic that does not exist: every count 0. */
const EMPTY_STATS = ['ready', 0, 'inFlight', 0, 'delayed', 0, 'consumers', 0, 'published', 0, 'acked', 0];

/**
 * One connection's queue side: its consumer, blocking RESERVE, stream mode and pending writes.
 * The in-flight limit per consumer (RESERVE) and the DACK bound are the engine's.
 */
export class QueueSession {
  readonly #c: CommandContext;
  readonly #replies: ReplyQueue;
  readonly #engine: QueueEngine;
  /** RESERVE's consumer, opened by the first RESERVE; closed (its messages NACKed) with the connection. */
  #consumer: ConsumerHandle | null = null;
  /** SUBSCRIBE's stream consumer (its own engine consumer); closed with the connection. */
  #stream: StreamConsumer | null = null;
  #blocked = false;
  #blockedSlot = -1;
  #blockTimer: NodeJS.Timeout | undefined;
  /** PUBLISH and DEL records of this connection not yet durable (their effect is not applied yet). */
  #pendingWrites = 0;
  readonly #lastTopic = new LastTopicName();

  /** @param c the connection, told when the pending writes are applied and when a blocking RESERVE ends */
  constructor(c: CommandContext, replies: ReplyQueue, engine: QueueEngine) {
    this.#c = c;
    this.#replies = replies;
    this.#engine = engine;
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
    const streamed = this.#stream !== null && this.#stream.current !== null ? 1 : 0;
    return (this.#consumer?.inFlightCount ?? 0) + streamed;
  }

  /** `PUBLISH topic payload`: `+OK` once the record is durable. */
  publish(args: Buffer[]): void {
    const replies = this.#replies;
    const slot = replies.slot();
    try {
      // The payload is a view into the socket's chunk: copy it, the engine keeps it.
      const payload = Buffer.from(args[2]!);
      this.#engine.publish(this.#lastTopic.of(args[1]!), payload, (err) => {
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
    const topic = args[1]!.toString('latin1');
    try {
      // take and request refuse past the engine's MAX_IN_FLIGHT_PER_CONSUMER (MQ_ERR_BAD_ARGUMENT).
      if (timeoutMs === 0 && consumer.requestIfReady !== undefined) {
        // An engine that must ask its store whether a message is ready (jetstream): the answer
        // holds the connection's later commands back, as a blocking RESERVE does.
        this.#block();
        return consumer.requestIfReady(topic, () => this.#unblock(this.#c.nil(NIL_ARRAY)));
      }
      const delivery = consumer.take(topic);
      if (delivery !== undefined) return this.#replies.reply(encodeReserved(delivery));
      if (timeoutMs === 0) return this.#replies.reply(this.#c.nil(NIL_ARRAY));
      this.#block();
      consumer.request(topic);
      this.#blockTimer = setTimeout(() => this.#unblock(this.#c.nil(NIL_ARRAY)), timeoutMs);
    } catch (err) {
      if (!this.#blocked) return this.#replies.replyError(err);
      // Refused before it waited: the command loop, still running this command, carries on.
      this.#blocked = false;
      this.#replies.fillError(this.#blockedSlot, err);
    }
  }

  /**
   * `ACK|NACK|BACK topic id`, `DACK topic id seconds`: `+OK` once the settle is durable. The
   * arguments are checked in order, topic first, so a bad name gets MQ_ERR_BAD_TOPIC as on
   * every other command.
   */
  settleById(name: string, args: Buffer[]): void {
    const topic = this.#topicName(args[1]!);
    if (topic === undefined) return;
    const id = this.#messageId(args[2]!);
    if (id === undefined) return;
    const delayMs = name === 'DACK' ? this.#dackDelayMs(args[3]) : 0;
    if (delayMs === undefined) return;
    const consumer = this.#consumer;
    if (consumer === null) return this.#replies.replyError(new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [id]));
    const replies = this.#replies;
    const slot = replies.slot();
    try {
      const deliveryId = consumer.deliveryOf(id, topic).deliveryId;
      consumer.settle(deliveryId, SETTLE_KINDS[name]!, delayMs, (err) => replies.fillOkOrError(slot, err));
    } catch (err) {
      replies.fillError(slot, err);
    }
  }

  /** `TOUCH topic id`: restarts the `--ack-timeout` timer of a reserved message (SPEC §7). */
  touchById(args: Buffer[]): void {
    const topic = this.#topicName(args[1]!);
    if (topic === undefined) return;
    const id = this.#messageId(args[2]!);
    if (id === undefined) return;
    const consumer = this.#consumer;
    if (consumer === null) return this.#replies.replyError(new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [id]));
    try {
      consumer.touch(consumer.deliveryOf(id, topic).deliveryId);
      this.#replies.reply(OK);
    } catch (err) {
      this.#replies.replyError(err);
    }
  }

  /**
   * `SUBSCRIBE topic`: enters stream mode; payloads are pushed one at a time, each settled (ACK,
   * NACK, BACK, DACK) before the next. Messages RESERVEd before stay in flight on this connection
   * (they are not the stream's: a stream settle never names them) until it closes.
   */
  subscribe(args: Buffer[]): void {
    const topic = args[1]!.toString('latin1');
    // Stream mode: each payload is a push, queued behind every reply due so far (so after the +OK
    // of the settle that asked for it), not an answer that later commands wait for. An ack-timeout
    // expiry is silent on RESP: the next settle is refused, naming the message.
    const stream = new StreamConsumer(this.#engine, topic, { onDelivery: (d) => this.#replies.reply(splicedBulk(d.payload)) });
    this.#stream = stream;
    try {
      stream.start();
    } catch (err) {
      this.#stream = null;
      stream.close();
      this.#replies.replyError(err);
    }
  }

  /** Stream mode `ACK|NACK|BACK`, `DACK seconds`: settles the message in flight, then asks for the next. */
  settleStreamed(name: string, args: Buffer[]): void {
    // DACK checks its own argument count: a missing or extra argument gets the usage, not an arity error.
    const delayMs = name === 'DACK' ? this.#dackDelayMs(args.length === 2 ? args[1] : undefined) : 0;
    if (delayMs === undefined) return;
    // +OK only once the settle record is durable; the stream requests the next message at once
    // and its payload, pushed behind this slot, cannot overtake the answer. A refusal (nothing
    // held, or the ack timeout took it: then the next message follows the refusal) fills the
    // slot before anything is pushed.
    const replies = this.#replies;
    const slot = replies.slot();
    this.#stream!.settle(SETTLE_KINDS[name]!, delayMs, (err) => replies.fillOkOrError(slot, err));
  }

  /** Stream mode `TOUCH`: restarts the `--ack-timeout` timer of the message in flight. */
  touchStreamed(): void {
    try {
      this.#stream!.touch();
      this.#replies.reply(OK);
    } catch (err) {
      this.#replies.replyError(err);
    }
  }

  /** `TOPICS`: every topic name. */
  topics(): void {
    this.#replies.reply(encodeArray(this.#engine.topicNames()));
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
        this.#engine.deleteTopic(args[i]!.toString('latin1'), (err, existed) => {
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
    try {
      assertTopicName(name);
    } catch (err) {
      return this.#replies.replyError(err);
    }
    const stats = this.#engine.topicStats(name);
    if (stats === undefined) return this.#replies.reply(encodeArray(['topic', name, ...EMPTY_STATS]));
    const flat: RespValue[] = [];
    for (const [k, v] of Object.entries(stats)) flat.push(k, v as RespValue);
    this.#replies.reply(encodeArray(flat));
  }

  /** The connection has closed: stops a blocking RESERVE and NACKs every message it held. */
  close(): void {
    if (this.#blockTimer !== undefined) clearTimeout(this.#blockTimer);
    // The stream's delivery is newer than any reserved one (RESERVE is refused once subscribed):
    // NACKed first, it goes to the front, and the reserved ones in front of it, in delivery order
    // (unless a consumer waiting on its topic takes it in between: each close dispatches).
    this.#stream?.close();
    this.#consumer?.close();
  }

  /** The topic argument of a settle or TOUCH, or undefined after answering MQ_ERR_BAD_TOPIC. */
  #topicName(arg: Buffer): string | undefined {
    const topic = arg.toString('latin1');
    if (isValidTopicName(topic)) return topic;
    this.#replies.replyError(badTopicError(topic));
    return undefined;
  }

  /** The engine's DACK delay (ms) of a seconds argument, or undefined after answering its MQ_ERR_BAD_ARGUMENT. */
  #dackDelayMs(arg: Buffer | undefined): number | undefined {
    try {
      return dackDelayMs(arg === undefined ? undefined : parseWholeNumber(arg));
    } catch (err) {
      this.#replies.replyError(err);
      return undefined;
    }
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

  /** A PUBLISH or DEL record of this connection is durable (or failed). */
  #writeDone(): void {
    if (--this.#pendingWrites === 0) this.#c.pendingWritesApplied();
  }

  #getConsumer(): ConsumerHandle {
    // A blocking RESERVE's delivery ends the block; RESP tells nothing of an ack-timeout expiry
    // (the late settle is answered MQ_ERR_NOT_IN_FLIGHT).
    this.#consumer ??= this.#engine.openConsumer({ onDelivery: (d) => this.#unblock(encodeReserved(d)) });
    return this.#consumer;
  }

  /** Starts a blocking RESERVE: its reply's slot is taken now, later commands are held back. */
  #block(): void {
    this.#blocked = true;
    this.#blockedSlot = this.#replies.slot();
  }

  /** Ends a blocking RESERVE with `reply` and lets the connection run the held-back commands. */
  #unblock(reply: Reply): void {
    if (!this.#blocked) return;
    if (this.#blockTimer !== undefined) clearTimeout(this.#blockTimer);
    this.#blockTimer = undefined;
    this.#consumer?.cancel();
    this.#blocked = false;
    this.#replies.fill(this.#blockedSlot, reply);
    this.#c.resumeCommands();
  }
}

/**
 * The RESERVE reply `[id, payload, dackCount]`, spliced: the payload (the engine's Buffer, or a
 * copy read back from storage) is copied once, into the connection's output buffer.
 */
function encodeReserved(d: Delivery): SplicedReply {
  const id = String(d.messageId);
  const payload = d.payload;
  return new SplicedReply(`*3\r\n$${id.length}\r\n${id}\r\n$${payload.length}\r\n`, payload, `\r\n:${d.dackCount}\r\n`);
}
