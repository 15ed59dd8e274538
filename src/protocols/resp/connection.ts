/**
 * One RESP2 client connection (SPEC §4): parsing, command dispatch, ordered replies,
 * backpressure, and the two consumer modes.
 *
 * Replies leave in command order even though PUBLISH and the settles are answered only when
 * their records are durable: each command takes a slot in `#replies`; a slot is filled when its
 * answer is known, and filled slots at the head are written together, corked, on the next tick.
 * A blocking `RESERVE topic timeout-ms` holds later commands back (like Redis BLPOP). In SUBSCRIBE
 * stream mode a delivered payload is pushed behind the replies due so far, and commands are
 * answered while the consumer waits for a message. When the socket's buffer is full, or
 * too many replies are pending, reading pauses until they drain, so a client that floods or never
 * reads cannot make the server buffer without bound. Commands already read still run, though (a
 * pipeline of RESERVEs of large messages, a subscriber that sends ACKs blindly), so the unsent
 * output — replies queued here plus the socket's own buffer — is also bounded by
 * `maxOutputBytes`: past it the client is disconnected and its reserved messages are NACKed.
 *
 * With `--auth-token`, every command but AUTH, HELLO and QUIT is answered `-NOAUTH` until the
 * connection has authenticated (as Redis does).
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Broker, SettleKind } from '../../broker/broker.js';
import type { Consumer } from '../../broker/consumer.js';
import type { Message } from '../../broker/message.js';
import { BrokerError } from '../../errors.js';
import type { Admission } from '../admission.js';
import {
  EMPTY_ARRAY,
  NIL_ARRAY,
  NIL_BULK,
  OK,
  PONG,
  SplicedReply,
  encodeArray,
  encodeBulk,
  encodeError,
  encodeInteger,
  splicedBulk,
  type RespValue,
} from './encoder.js';
import { CLIENT_HELP, buildInfo } from './info.js';
import { RespParser, RespProtocolError } from './parser.js';

export interface RespConnectionOptions {
  broker: Broker;
  logger: Logger;
  maxMessageBytes: number;
  /** Most arguments in one command (SPEC §7: 1024). */
  maxArrayLength: number;
  /** Most messages a connection may hold reserved at once (SPEC §4: at least 1000). */
  maxReserved: number;
  /** Connection id, for CLIENT ID and HELLO. */
  id: number;
  version: string;
  /** Token check and refusal counters shared by both listeners. */
  admission: Admission;
  /**
   * Most unsent output bytes (queued replies plus `socket.writableLength`) before the client is
   * disconnected as one that does not read; see {@link RESP_MAX_OUTPUT_BYTES}.
   */
  maxOutputBytes: number;
}

/**
 * Default bound of a connection's unsent output, in bytes: Redis's hard limit for its pub/sub
 * clients (`client-output-buffer-limit pubsub 32mb`). A client that reads normally never comes
 * near it; one that stopped reading reaches it after at most this much, then is disconnected.
 * The listener raises it to twice `--max-message-bytes` when that is larger, so one delivery of
 * the largest message always fits.
 */
export const RESP_MAX_OUTPUT_BYTES = 32 * 1024 * 1024;

/** Replies waiting for earlier ones before we stop parsing more commands. */
const MAX_PENDING_REPLIES = 4096;
const NULL_RESP3 = Buffer.from('_\r\n');

/** Unparsed input held while a command blocks, before reading pauses (bytes). */
const MAX_BUFFERED_INPUT_BYTES = 4 * 1024 * 1024;
/** Longest RESERVE timeout accepted (ms): about 24 days, the setTimeout limit. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

type Reply = Buffer | string | SplicedReply;

const SETTLE_KINDS: Record<string, SettleKind> = { ACK: 'ACK', NACK: 'NACK', BACK: 'BACK', DACK: 'DACK' };

function parseId(arg: Buffer): number | undefined {
  if (arg.length === 0 || arg.length > 15) return undefined;
  let n = 0;
  for (let i = 0; i < arg.length; i++) {
    const c = arg[i]! - 48;
    if (c < 0 || c > 9) return undefined;
    n = n * 10 + c;
  }
  return n;
}

/**
 * Whether a command reads state that this connection's pending PUBLISH/DEL records will change
 * (so it must wait for them, as Redis runs a pipeline's commands strictly in order).
 * Settles need not wait: they name ids that an earlier, already answered RESERVE handed out.
 */
function readsWrites(name: string): boolean {
  switch (name) {
    case 'RESERVE':
    case 'SUBSCRIBE':
    case 'TOPICS':
    case 'STATS':
    case 'DEL':
    case 'PURGE':
      return true;
    default:
      return false;
  }
}

/** Upper-case command name; the common spellings skip the string conversions. */
function commandName(arg: Buffer): string {
  if (arg.length === 7 && arg[0] === 0x50 && arg.equals(PUBLISH_BYTES)) return 'PUBLISH';
  if (arg.length === 3 && arg[0] === 0x41 && arg[1] === 0x43 && arg[2] === 0x4b) return 'ACK';
  return arg.toString('latin1').toUpperCase();
}
const PUBLISH_BYTES = Buffer.from('PUBLISH');

export class RespConnection {
  readonly #socket: Socket;
  readonly #opts: RespConnectionOptions;
  readonly #broker: Broker;
  readonly #parser: RespParser;
  readonly #logger: Logger;
  /** Pending replies in command order; undefined = not known yet. */
  #replies: (Reply | undefined)[] = [];
  #flushScheduled = false;
  #consumer: Consumer | null = null;
  /** Commands are held back while a blocking RESERVE waits (like Redis BLPOP). */
  #blocked = false;
  #blockedSlot = -1;
  #blockTimer: NodeJS.Timeout | undefined;
  #closing = false;
  #closed = false;
  /** Disconnected for going over `maxOutputBytes`: replies are dropped from then on. */
  #dropped = false;
  #paused = false;
  /** False until AUTH succeeds, when `--auth-token` is set. */
  #authenticated: boolean;
  /** With `--auth-token`: closes the connection if it has not authenticated in time (AUTH_DEADLINE_MS). */
  #authTimer: NodeJS.Timeout | undefined;
  /**
   * Bytes of the filled replies in `#replies` (string replies are counted by their length, which
   * is their byte length for the latin1/ASCII text they hold).
   */
  #queuedBytes = 0;
  #name: string | null = null;
  /** Protocol version chosen with HELLO (2 until then). */
  #proto = 2;
  /** SUBSCRIBE stream mode: the topic, and the message in flight (one at a time). */
  #streamTopic: string | null = null;
  #streamCurrent: Message | null = null;
  /** SUBSCRIBE stream mode: id of the message `--ack-timeout` took back, until the next settle. */
  #streamExpiredId: number | null = null;
  #slotBase = 0;
  /** PUBLISH and DEL records of this connection not yet durable (their effect is not applied yet). */
  #pendingWrites = 0;
  /**
   * A command that reads what those pending writes will change (RESERVE after PUBLISH in one
   * pipeline), held until they are applied, so a pipeline's results never depend on how TCP
   * split it. A copy: the parser's views do not outlive the next push().
   */
  #heldCommand: Buffer[] | null = null;

  constructor(socket: Socket, opts: RespConnectionOptions) {
    this.#socket = socket;
    this.#opts = opts;
    this.#broker = opts.broker;
    this.#logger = opts.logger;
    this.#authenticated = !opts.admission.authRequired;
    if (!this.#authenticated) {
      this.#authTimer = setTimeout(() => this.#authDeadline(), opts.admission.authDeadlineMs);
      this.#authTimer.unref();
    }
    this.#parser = new RespParser({
      // Never below 4 KiB, so a small --max-message-bytes does not refuse topic names (255
      // bytes) or the client names and versions libraries send while connecting.
      maxBulkBytes: Math.max(opts.maxMessageBytes, 4096),
      maxArrayLength: opts.maxArrayLength,
      maxInlineBytes: 64 * 1024,
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#maybeResume());
    socket.on('error', (err) => this.#logger.debug({ err }, 'resp socket error'));
    socket.on('close', () => this.#onClose());
  }

  #onData(chunk: Buffer): void {
    this.#parser.push(chunk);
    this.#process();
  }

  /** Runs parsed commands until more bytes are needed, a command blocks, or replies pile up. */
  #process(): void {
    while (!this.#blocked && !this.#closing && this.#heldCommand === null) {
      if (this.#replies.length >= MAX_PENDING_REPLIES) {
        this.#pause();
        break;
      }
      const args = this.#parser.next();
      if (args === undefined) break;
      if (args instanceof RespProtocolError) {
        if (args.kind === 'bulk-too-large') this.#opts.admission.refuse('resp', 'message_too_large');
        else if (args.kind === 'multibulk-too-long') this.#opts.admission.refuse('resp', 'too_many_arguments');
        this.#protocolError(args.reason);
        break;
      }
      const name = commandName(args[0]!);
      if (this.#pendingWrites > 0 && this.#streamTopic === null && readsWrites(name)) {
        this.#heldCommand = args.map((a) => Buffer.from(a));
        break;
      }
      this.#execute(name, args);
    }
    // Input that arrives while a command blocks waits in the parser, up to a bound.
    if ((this.#blocked || this.#heldCommand !== null) && this.#parser.bufferedBytes > MAX_BUFFERED_INPUT_BYTES) this.#pause();
  }

  #pause(): void {
    if (!this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  #maybeResume(): void {
    if (!this.#paused || this.#closed || this.#closing) return;
    if (this.#socket.writableNeedDrain || this.#replies.length >= MAX_PENDING_REPLIES) return;
    if ((this.#blocked || this.#heldCommand !== null) && this.#parser.bufferedBytes > MAX_BUFFERED_INPUT_BYTES) return;
    this.#paused = false;
    this.#socket.resume();
    this.#process();
  }

  // ---- replies -------------------------------------------------------------------------

  /** Takes the next reply slot; returns its absolute index. */
  #slot(): number {
    this.#replies.push(undefined);
    return this.#slotBase + this.#replies.length - 1;
  }

  #fill(slot: number, reply: Reply): void {
    if (this.#dropped) return;
    this.#replies[slot - this.#slotBase] = reply;
    this.#queuedBytes += reply.length;
    if (this.#queuedBytes + this.#socket.writableLength > this.#opts.maxOutputBytes) {
      this.#dropOverOutputLimit();
      return;
    }
    if (slot === this.#slotBase && !this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(() => this.#flush());
    }
  }

  /** Answers a command at once. */
  #reply(reply: Reply): void {
    this.#fill(this.#slot(), reply);
  }

  #replyError(err: unknown): void {
    this.#reply(encodeError(this.#errorLine(err)));
  }

  #errorLine(err: unknown): string {
    if (err instanceof BrokerError) return err.toRespLine();
    this.#logger.error({ err }, 'unexpected error in a RESP command');
    return `ERR ${err instanceof Error ? err.message : String(err)}`;
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#closed || this.#dropped) return;
    let n = 0;
    while (n < this.#replies.length && this.#replies[n] !== undefined) n++;
    if (n === 0) return;
    const socket = this.#socket;
    let ok: boolean;
    if (n === 1) {
      const first = this.#replies[0]!;
      this.#queuedBytes -= first.length;
      ok = socket.write(first instanceof SplicedReply ? first.toBuffer() : first);
    } else {
      // One buffer for the whole run of replies: a socket write per reply, even corked, costs a
      // writev entry each and showed as the top item of the PUBLISH -P16 profile.
      let total = 0;
      for (let i = 0; i < n; i++) {
        const r = this.#replies[i]!;
        total += typeof r === 'string' ? Buffer.byteLength(r) : r.length; // SplicedReply: bytes
      }
      const out = Buffer.allocUnsafe(total);
      let p = 0;
      for (let i = 0; i < n; i++) {
        const r = this.#replies[i]!;
        if (typeof r === 'string') p += out.write(r, p);
        else if (r instanceof SplicedReply) p = r.writeTo(out, p);
        else p += r.copy(out, p);
      }
      for (let i = 0; i < n; i++) this.#queuedBytes -= this.#replies[i]!.length;
      ok = socket.write(out);
    }
    this.#replies = n === this.#replies.length ? [] : this.#replies.slice(n);
    this.#slotBase += n;
    if (!ok) this.#pause();
    // QUIT or a protocol error: close once the last reply is written, even if the client keeps
    // sending (the socket is paused, so it would otherwise stay half-open for ever); the close
    // NACKs whatever this connection held.
    if (this.#closing && this.#replies.length === 0) socket.destroySoon();
    else this.#maybeResume();
  }

  /**
   * The client is not reading (or reads far slower than it asks): disconnect it rather than
   * buffer more. The 'close' that follows NACKs its reserved and in-flight messages.
   */
  #dropOverOutputLimit(): void {
    const unsentBytes = this.#queuedBytes + this.#socket.writableLength;
    this.#dropped = true;
    this.#closing = true;
    this.#replies = [];
    this.#queuedBytes = 0;
    this.#opts.admission.refuse('resp', 'output_limit');
    this.#logger.warn(
      {
        connectionId: this.#opts.id,
        clientName: this.#name,
        remoteAddress: this.#socket.remoteAddress,
        unsentBytes,
        limitBytes: this.#opts.maxOutputBytes,
        inFlight: this.#consumer?.inFlight.size ?? 0,
      },
      'resp client is not reading its replies: unsent output over the limit, disconnecting',
    );
    this.#socket.destroy();
  }

  #protocolError(reason: string): void {
    this.#reply(encodeError(new BrokerError('MQ_ERR_PROTOCOL', [reason]).toRespLine()));
    this.#closing = true;
    this.#socket.pause();
  }

  // ---- commands ------------------------------------------------------------------------

  #execute(name: string, args: Buffer[]): void {
    if (!this.#authenticated) return this.#executeUnauthenticated(name, args);
    if (this.#streamTopic !== null) return this.#executeSubscribed(name, args);
    switch (name) {
      case 'PUBLISH':
        return this.#publish(args);
      case 'RESERVE':
        return this.#reserve(args);
      case 'ACK':
      case 'NACK':
      case 'BACK':
      case 'DACK':
        return this.#settleById(name, args);
      case 'TOUCH':
        return this.#touchById(args);
      case 'SUBSCRIBE':
        return this.#subscribe(args);
      case 'TOPICS':
        if (!this.#arity(args, 1, 1)) return;
        return this.#reply(encodeArray(this.#broker.topicNames()));
      case 'DEL':
      case 'PURGE':
        return this.#del(args);
      case 'STATS':
        return this.#stats(args);
      default:
        return this.#handshake(name, args);
    }
  }

  #arity(args: Buffer[], min: number, max: number): boolean {
    if (args.length >= min && args.length <= max) return true;
    this.#reply(encodeError(new BrokerError('MQ_ERR_WRONG_ARITY', [args[0]!.toString('latin1').toLowerCase()]).toRespLine()));
    return false;
  }

  /** A PUBLISH or DEL record of this connection is durable (or failed): run a held command after the last. */
  #writeDone(): void {
    this.#pendingWrites--;
    if (this.#pendingWrites > 0 || this.#heldCommand === null) return;
    // Not from inside the log writer's callback loop: the held command may append records.
    process.nextTick(() => {
      const args = this.#heldCommand;
      if (args === null || this.#pendingWrites > 0 || this.#closed || this.#closing) return;
      this.#heldCommand = null;
      this.#execute(commandName(args[0]!), args);
      this.#process();
      this.#maybeResume();
    });
  }

  #publish(args: Buffer[]): void {
    if (!this.#arity(args, 3, 3)) return;
    const slot = this.#slot();
    try {
      // The payload is a view into the socket's chunk: copy it, the broker keeps it.
      const payload = Buffer.from(args[2]!);
      this.#broker.publish(args[1]!.toString('latin1'), payload, (err) => {
        this.#fill(slot, err === null ? OK : encodeError(err.toRespLine()));
        this.#writeDone();
      });
      this.#pendingWrites++;
    } catch (err) {
      if (err instanceof BrokerError && err.code === 'MQ_ERR_TOO_LARGE') this.#opts.admission.refuse('resp', 'message_too_large');
      this.#fill(slot, encodeError(this.#errorLine(err)));
    }
  }

  #getConsumer(): Consumer {
    if (this.#consumer === null) {
      this.#consumer = this.#broker.createConsumer((m) => this.#onDelivery(m));
      this.#consumer.onExpired = (m) => this.#onExpired(m);
    }
    return this.#consumer;
  }

  #encodeReserved(msg: Message): SplicedReply {
    const id = String(msg.id);
    const payload = this.#broker.payloadOf(msg);
    return new SplicedReply(`*3\r\n$${id.length}\r\n${id}\r\n$${payload.length}\r\n`, payload, `\r\n:${msg.dackCount}\r\n`);
  }

  #reserve(args: Buffer[]): void {
    if (!this.#arity(args, 2, 3)) return;
    let timeoutMs = 0;
    if (args.length === 3) {
      const t = parseId(args[2]!);
      if (t === undefined || t > MAX_TIMEOUT_MS) {
        return this.#replyError(new BrokerError('MQ_ERR_BAD_ARGUMENT', ['timeout-ms must be a whole number of milliseconds >= 0']));
      }
      timeoutMs = t;
    }
    const consumer = this.#getConsumer();
    if (consumer.inFlight.size >= this.#opts.maxReserved) {
      return this.#replyError(
        new BrokerError('MQ_ERR_BAD_ARGUMENT', [`this connection already holds ${this.#opts.maxReserved} reserved messages; settle some first`]),
      );
    }
    const topic = args[1]!.toString('latin1');
    try {
      const msg = this.#broker.take(consumer, topic);
      if (msg !== undefined) return this.#reply(this.#encodeReserved(msg));
      if (timeoutMs === 0) return this.#reply(this.#nil(NIL_ARRAY));
      this.#blocked = true;
      this.#blockedSlot = this.#slot();
      this.#broker.request(consumer, topic);
      this.#blockTimer = setTimeout(() => this.#unblock(this.#nil(NIL_ARRAY)), timeoutMs);
    } catch (err) {
      this.#replyError(err);
    }
  }

  /** Ends a blocking RESERVE with `reply` and runs the held-back commands. */
  #unblock(reply: Reply): void {
    if (!this.#blocked) return;
    if (this.#blockTimer !== undefined) clearTimeout(this.#blockTimer);
    this.#blockTimer = undefined;
    if (this.#consumer !== null) this.#broker.cancelRequest(this.#consumer);
    this.#blocked = false;
    this.#fill(this.#blockedSlot, reply);
    this.#process();
    this.#maybeResume();
  }

  #onDelivery(msg: Message): void {
    if (this.#streamTopic !== null) {
      // Stream mode: the payload is a push, queued behind every reply due so far (so after the
      // +OK of the settle that asked for it), not an answer that later commands wait for.
      this.#streamCurrent = msg;
      this.#reply(splicedBulk(this.#broker.payloadOf(msg)));
      return;
    }
    this.#unblock(this.#encodeReserved(msg));
  }

  /**
   * `--ack-timeout` took `msg` back. RESERVE mode needs nothing (its settles name the id and now
   * get MQ_ERR_NOT_IN_FLIGHT); in SUBSCRIBE mode the next settle is refused and only then is the
   * next message pushed, so that a late ACK cannot land on a message the client has not seen.
   */
  #onExpired(msg: Message): void {
    if (this.#streamCurrent !== msg) return;
    this.#streamCurrent = null;
    this.#streamExpiredId = msg.id;
  }

  /** `TOUCH topic id`: restarts the `--ack-timeout` timer of a reserved message (SPEC §7). */
  #touchById(args: Buffer[]): void {
    if (!this.#arity(args, 3, 3)) return;
    const id = parseId(args[2]!);
    if (id === undefined) {
      return this.#replyError(new BrokerError('MQ_ERR_BAD_ARGUMENT', ['the message id must be the decimal id RESERVE returned']));
    }
    if (this.#consumer === null) return this.#replyError(new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [id]));
    try {
      this.#broker.touch(this.#consumer, id, args[1]!.toString('latin1'));
      this.#reply(OK);
    } catch (err) {
      this.#replyError(err);
    }
  }

  #settleById(kind: string, args: Buffer[]): void {
    const isDack = kind === 'DACK';
    if (!this.#arity(args, isDack ? 4 : 3, isDack ? 4 : 3)) return;
    const id = parseId(args[2]!);
    if (id === undefined) {
      return this.#replyError(new BrokerError('MQ_ERR_BAD_ARGUMENT', ['the message id must be the decimal id RESERVE returned']));
    }
    let delaySeconds = 0;
    if (isDack) {
      const d = parseId(args[3]!);
      if (d === undefined || d > 1e9) {
        return this.#replyError(new BrokerError('MQ_ERR_BAD_ARGUMENT', ['DACK seconds must be a whole number >= 0']));
      }
      delaySeconds = d;
    }
    if (this.#consumer === null) {
      return this.#replyError(new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [id]));
    }
    const slot = this.#slot();
    try {
      this.#broker.settle(
        this.#consumer,
        id,
        SETTLE_KINDS[kind]!,
        delaySeconds,
        (err) => this.#fill(slot, err === null ? OK : encodeError(err.toRespLine())),
        args[1]!.toString('latin1'),
      );
    } catch (err) {
      this.#fill(slot, encodeError(this.#errorLine(err)));
    }
  }

  #subscribe(args: Buffer[]): void {
    if (!this.#arity(args, 2, 2)) return;
    const topic = args[1]!.toString('latin1');
    const consumer = this.#getConsumer();
    try {
      this.#broker.attach(consumer, topic);
    } catch (err) {
      return this.#replyError(err);
    }
    this.#streamTopic = topic;
    this.#waitNext();
  }

  /**
   * Stream mode: asks for the next message. Commands keep being answered meanwhile (PING, QUIT,
   * and an -ERR for a settle with nothing in flight), as on the HTTP/2 subscribe stream.
   */
  #waitNext(): void {
    if (this.#closed || this.#closing || this.#streamTopic === null) return;
    this.#broker.request(this.#consumer!, this.#streamTopic);
  }

  #executeSubscribed(name: string, args: Buffer[]): void {
    if (name === 'PING') return this.#reply(PONG);
    if (name === 'QUIT') return this.#quit();
    if (name === 'TOUCH') return this.#touchSubscribed(args);
    const kind = SETTLE_KINDS[name];
    if (kind === undefined) {
      return this.#replyError(new BrokerError('MQ_ERR_BUSY_SUBSCRIBED', [name.slice(0, 32)]));
    }
    let delaySeconds = 0;
    if (kind === 'DACK') {
      const d = args.length === 2 ? parseId(args[1]!) : undefined;
      if (d === undefined || d > 1e9) {
        return this.#replyError(new BrokerError('MQ_ERR_BAD_ARGUMENT', ['DACK needs whole seconds >= 0: DACK 5']));
      }
      delaySeconds = d;
    } else if (args.length !== 1) {
      return this.#replyError(new BrokerError('MQ_ERR_WRONG_ARITY', [name.toLowerCase()]));
    }
    const msg = this.#streamCurrent;
    if (msg === null) {
      const expired = this.#streamExpiredId;
      if (expired === null) {
        return this.#replyError(new BrokerError('MQ_ERR_BAD_COMMAND', [`${name}: no message is in flight on this connection`]));
      }
      // The client gives up the expired message: refuse the settle, then go on with the next one.
      this.#streamExpiredId = null;
      this.#replyError(new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [`${expired} (not settled within --ack-timeout)`]));
      this.#waitNext();
      return;
    }
    this.#streamCurrent = null;
    const slot = this.#slot();
    try {
      // +OK only once the settle record is durable; the next message is requested at once and
      // its payload, queued behind that +OK, cannot overtake it.
      this.#broker.settle(this.#consumer!, msg.id, kind, delaySeconds, (err) => {
        this.#fill(slot, err === null ? OK : encodeError(err.toRespLine()));
      });
    } catch (err) {
      this.#fill(slot, encodeError(this.#errorLine(err)));
    }
    this.#waitNext();
  }

  /** SUBSCRIBE mode `TOUCH`: restarts the `--ack-timeout` timer of the message in flight. */
  #touchSubscribed(args: Buffer[]): void {
    if (args.length !== 1) return this.#replyError(new BrokerError('MQ_ERR_WRONG_ARITY', ['touch']));
    const msg = this.#streamCurrent;
    if (msg === null) {
      const expired = this.#streamExpiredId;
      if (expired !== null) return this.#replyError(new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [`${expired} (not settled within --ack-timeout)`]));
      return this.#replyError(new BrokerError('MQ_ERR_BAD_COMMAND', ['TOUCH: no message is in flight on this connection']));
    }
    try {
      this.#broker.touch(this.#consumer!, msg.id);
      this.#reply(OK);
    } catch (err) {
      this.#replyError(err);
    }
  }

  #del(args: Buffer[]): void {
    if (args.length < 2) {
      this.#arity(args, 2, 2);
      return;
    }
    const slot = this.#slot();
    let remaining = args.length - 1;
    let deleted = 0;
    let failure: string | null = null;
    for (let i = 1; i < args.length; i++) {
      try {
        this.#broker.deleteTopic(args[i]!.toString('latin1'), (err, existed) => {
          if (err !== null) failure ??= err.toRespLine();
          else if (existed) deleted++;
          if (--remaining === 0) this.#fill(slot, failure !== null ? encodeError(failure) : encodeInteger(deleted));
          this.#writeDone();
        });
        this.#pendingWrites++;
      } catch (err) {
        failure ??= this.#errorLine(err);
        if (--remaining === 0) this.#fill(slot, encodeError(failure));
      }
    }
  }

  #stats(args: Buffer[]): void {
    if (!this.#arity(args, 2, 2)) return;
    const name = args[1]!.toString('latin1');
    const stats = this.#broker.topicStats(name);
    if (stats === undefined) {
      return this.#reply(
        encodeArray(['topic', name, 'ready', 0, 'inFlight', 0, 'delayed', 0, 'consumers', 0, 'published', 0, 'acked', 0]),
      );
    }
    const flat: RespValue[] = [];
    for (const [k, v] of Object.entries(stats)) flat.push(k, v as RespValue);
    this.#reply(encodeArray(flat));
  }

  #quit(): void {
    this.#reply(OK);
    this.#closing = true;
    this.#socket.pause();
  }

  /** Connection and handshake commands that real clients send (SPEC §4). */
  #handshake(name: string, args: Buffer[]): void {
    switch (name) {
      case 'PING':
        if (!this.#arity(args, 1, 2)) return;
        return this.#reply(args.length === 2 ? encodeBulk(Buffer.from(args[1]!)) : PONG);
      case 'ECHO':
        if (!this.#arity(args, 2, 2)) return;
        return this.#reply(encodeBulk(Buffer.from(args[1]!)));
      case 'QUIT':
        return this.#quit();
      case 'SELECT': {
        if (!this.#arity(args, 2, 2)) return;
        const db = parseId(args[1]!);
        if (db === undefined) return this.#reply(encodeError('ERR value is not an integer or out of range'));
        return this.#reply(db === 0 ? OK : encodeError('ERR DB index is out of range'));
      }
      case 'INFO':
        return this.#reply(encodeBulk(buildInfo(this.#opts, args.slice(1))));
      case 'CLIENT':
        return this.#client(args);
      case 'HELLO':
        return this.#hello(args);
      case 'COMMAND':
        return this.#reply(args.length === 2 && args[1]!.toString('latin1').toUpperCase() === 'COUNT' ? encodeInteger(0) : EMPTY_ARRAY);
      case 'AUTH':
        return this.#auth(args);
      case 'READONLY':
      case 'READWRITE':
      case 'RESET':
        return this.#reply(OK);
      default: {
        const shown = args
          .slice(1, 4)
          .map((a) => `'${a.toString('latin1', 0, Math.min(a.length, 32)).replace(/[^\x20-\x7e]/g, '?')}'`)
          .join(' ');
        const cmd = args[0]!.toString('latin1', 0, Math.min(args[0]!.length, 64)).replace(/[^\x20-\x7e]/g, '?');
        return this.#reply(encodeError(new BrokerError('MQ_ERR_UNKNOWN_COMMAND', [cmd, shown]).toRespLine()));
      }
    }
  }

  /**
   * Before AUTH (with `--auth-token`): AUTH, HELLO and QUIT work, everything else is answered
   * `-NOAUTH Authentication required.`, as Redis does (PING too).
   */
  #executeUnauthenticated(name: string, args: Buffer[]): void {
    switch (name) {
      case 'AUTH':
        return this.#auth(args);
      case 'HELLO':
        return this.#hello(args);
      case 'QUIT':
        return this.#quit();
      default:
        this.#opts.admission.refuse('resp', 'unauthorized');
        return this.#replyError(new BrokerError('MQ_ERR_NOAUTH'));
    }
  }

  /**
   * Whether `AUTH [username] password` credentials are right: the user must be `default` (the
   * only user, as in a Redis with `requirepass`) and the password the token. Counts a refusal
   * when they are not.
   */
  #credentialsMatch(user: Buffer | null, password: Buffer): boolean {
    // Compare the token even for a wrong user name, so the answer takes the same time.
    const tokenOk = this.#opts.admission.tokenMatches(password);
    const ok = tokenOk && (user === null || user.toString('latin1') === 'default');
    if (!ok) {
      this.#opts.admission.refuse('resp', 'unauthorized');
      this.#logger.debug({ connectionId: this.#opts.id, remoteAddress: this.#socket.remoteAddress }, 'resp AUTH failed');
    }
    return ok;
  }

  /** AUTH password | AUTH username password. */
  #auth(args: Buffer[]): void {
    if (!this.#arity(args, 2, 3)) return;
    if (!this.#opts.admission.authRequired) {
      // Redis without requirepass: the default user takes any password given with a user name.
      if (args.length === 3) return this.#reply(OK);
      return this.#reply(encodeError('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?'));
    }
    const ok = this.#credentialsMatch(args.length === 3 ? args[1]! : null, args[args.length - 1]!);
    if (!ok) return this.#replyError(new BrokerError('MQ_ERR_UNAUTHORIZED'));
    this.#authenticated = true;
    this.#reply(OK);
  }

  #client(args: Buffer[]): void {
    if (args.length < 2) {
      this.#arity(args, 2, 2);
      return;
    }
    const sub = args[1]!.toString('latin1').toUpperCase();
    switch (sub) {
      case 'SETNAME':
        if (args.length !== 3) return this.#replyError(new BrokerError('MQ_ERR_WRONG_ARITY', ['client|setname']));
        this.#name = args[2]!.toString('utf8');
        return this.#reply(OK);
      case 'GETNAME':
        return this.#reply(this.#name === null ? this.#nil(NIL_BULK) : encodeBulk(this.#name));
      case 'SETINFO':
        return this.#reply(OK);
      case 'ID':
        return this.#reply(encodeInteger(this.#opts.id));
      case 'HELP':
        return this.#reply(encodeArray(CLIENT_HELP));
      default:
        return this.#reply(encodeError(`ERR unknown subcommand '${sub.slice(0, 32).replace(/[^\x20-\x7e]/g, '?')}'. Try CLIENT HELP.`));
    }
  }

  /**
   * HELLO [protover [AUTH user pass] [SETNAME name]]. Protocol 2 and 3 are accepted; others get
   * -NOPROTO. Why 3 too, where SPEC §4 says -NOPROTO: node-redis 6 (the current `redis` package)
   * opens every connection with HELLO 3 and gives up on any error, and SPEC §4 also requires that
   * node-redis can connect. Every reply miniqueue sends (simple, error, integer, bulk, array) is
   * the same in RESP3 except null, which becomes `_` on a RESP3 connection, and the HELLO reply
   * itself, which becomes a map.
   */
  #hello(args: Buffer[]): void {
    let proto = this.#proto;
    let name: string | null = null;
    let credentials: { user: Buffer; password: Buffer } | null = null;
    if (args.length >= 2) {
      const ver = parseId(args[1]!);
      if (ver !== 2 && ver !== 3) {
        return this.#reply(encodeError(new BrokerError('MQ_ERR_NOPROTO').toRespLine()));
      }
      proto = ver;
      for (let i = 2; i < args.length; i++) {
        const opt = args[i]!.toString('latin1').toUpperCase();
        if (opt === 'SETNAME' && i + 1 < args.length) name = args[++i]!.toString('utf8');
        else if (opt === 'AUTH') {
          if (i + 2 >= args.length) return this.#reply(encodeError("ERR Syntax error in HELLO option 'auth'"));
          credentials = { user: args[i + 1]!, password: args[i + 2]! };
          i += 2;
        }
      }
    }
    // Like Redis: credentials are checked (when a token is set) before anything changes.
    if (this.#opts.admission.authRequired) {
      if (credentials !== null) {
        if (!this.#credentialsMatch(credentials.user, credentials.password)) {
          return this.#replyError(new BrokerError('MQ_ERR_UNAUTHORIZED'));
        }
        this.#authenticated = true;
      } else if (!this.#authenticated) {
        this.#opts.admission.refuse('resp', 'unauthorized');
        return this.#replyError(new BrokerError('MQ_ERR_NOAUTH'));
      }
    }
    if (name !== null) this.#name = name;
    this.#proto = proto;
    const fields: RespValue[] = [
      'server', 'redis',
      'version', '7.0.0',
      'proto', proto,
      'id', this.#opts.id,
      'mode', 'standalone',
      'role', 'master',
      'modules', [],
    ];
    if (proto === 2) return this.#reply(encodeArray(fields));
    const body = encodeArray(fields);
    // Same bytes as the array, with the RESP3 map header `%<pairs>` in place of `*<items>`.
    const header = `*${fields.length}\r\n`;
    this.#reply(Buffer.concat([Buffer.from(`%${fields.length / 2}\r\n`), body.subarray(header.length)]));
  }

  /** The null reply of this connection's protocol: `_` in RESP3, else the RESP2 null `nil2`. */
  #nil(nil2: Buffer): Buffer {
    return this.#proto === 3 ? NULL_RESP3 : nil2;
  }

  /**
   * No AUTH within `authDeadlineMs` of connecting: `-NOAUTH`, then the connection is closed, so
   * idle unauthenticated connections cannot hold `--max-connections` slots.
   */
  #authDeadline(): void {
    this.#authTimer = undefined;
    if (this.#authenticated || this.#closed || this.#closing) return;
    this.#opts.admission.refuse('resp', 'unauthorized');
    this.#reply(encodeError(`NOAUTH Authentication required within ${this.#opts.admission.authDeadlineMs / 1000} s of connecting; closing`));
    this.#closing = true;
    this.#socket.pause();
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#authTimer !== undefined) clearTimeout(this.#authTimer);
    if (this.#blockTimer !== undefined) clearTimeout(this.#blockTimer);
    if (this.#consumer !== null) this.#broker.closeConsumer(this.#consumer);
  }

  /** Closes the connection (server shutdown); in-flight messages are NACKed by the close. */
  destroy(): void {
    this.#socket.destroy();
  }
}
