/**
 * One RESP2/3 client connection (SPEC §4): the socket's lifecycle, the parsing loop, reading
 * paused and resumed for backpressure, and the authentication state.
 *
 * Parsed commands go through the command table (command-table.ts: arity, flags, handlers); the
 * queue commands and their per-connection state are in queue-commands.ts, the Redis
 * handshake commands in compat-commands.ts, and replies leave in command order through the
 * reply queue (reply-queue.ts).
 *
 * Reading pauses while the socket's buffer is full, while too many replies wait for earlier
 * ones, and while a command is held back (a blocking RESERVE, or a command waiting for this
 * connection's pending writes) with too much unparsed input behind it, so a client that floods
 * or never reads cannot make the server buffer without bound. Commands already read still run,
 * so the reply queue also bounds the unsent output by `maxOutputBytes`: past it the client is
 * disconnected and its reserved messages are NACKed.
 *
 * With `--auth-token`, every command but AUTH, HELLO and QUIT is answered `-NOAUTH` until the
 * connection has authenticated (as Redis does), and one that has not within
 * `admission.authDeadlineMs` is closed.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { QueueEngine } from '../../engine/queue-engine.js';
import { BrokerError } from '../../errors.js';
import type { Admission } from '../admission.js';
import { COMMANDS, commandName, dispatch, type CommandContext } from './command-table.js';
import { NULL_RESP3, OK } from './encoder.js';
import type { InputBudget } from './input-budget.js';
import { RespParser, RespProtocolError, UNAUTHENTICATED_LIMITS } from './parser.js';
import { QueueSession } from './queue-commands.js';
import { ReplyQueue } from './reply-queue.js';

export interface RespConnectionOptions {
  /** The queues, through the engine seam only (engine/queue-engine.ts). */
  engine: QueueEngine;
  logger: Logger;
  maxMessageBytes: number;
  /** Most arguments in one command (SPEC §7: 1024). */
  maxArrayLength: number;
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
  /** Most payload bytes of one command's arguments (`--max-command-bytes`). */
  maxCommandBytes: number;
  /** Input held across all connections (`--max-input-bytes`); this connection reports to it. */
  inputBudget: InputBudget;
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
/** Unparsed input held while a command blocks, before reading pauses (bytes). */
const MAX_BUFFERED_INPUT_BYTES = 4 * 1024 * 1024;
/** Longest inline (telnet-style) command line, in bytes. */
const MAX_INLINE_BYTES = 64 * 1024;

export class RespConnection implements CommandContext {
  readonly #socket: Socket;
  readonly #parser: RespParser;
  readonly #logger: Logger;
  readonly options: RespConnectionOptions;
  readonly replies: ReplyQueue;
  readonly queue: QueueSession;
  clientName: string | null = null;
  protocolVersion: 2 | 3 = 2;
  #closing = false;
  #closed = false;
  #paused = false;
  /** False until AUTH succeeds, when `--auth-token` is set. */
  #authenticated: boolean;
  /** With `--auth-token`: closes the connection if it has not authenticated in time. */
  #authTimer: NodeJS.Timeout | undefined;
  /**
   * A command that reads what this connection's pending writes will change (RESERVE after
   * PUBLISH in one pipeline), held until they are applied, so a pipeline's results never depend
   * on how TCP split it. A copy: the parser's views do not outlive the next push().
   */
  #heldCommand: Buffer[] | null = null;

  constructor(socket: Socket, opts: RespConnectionOptions) {
    this.#socket = socket;
    this.options = opts;
    this.#logger = opts.logger;
    this.replies = new ReplyQueue(socket, opts.logger, opts.maxOutputBytes, {
      afterFlush: (writeOk) => this.#afterFlush(writeOk),
      overOutputLimit: (unsentBytes) => this.#overOutputLimit(unsentBytes),
    });
    this.queue = new QueueSession(this, this.replies, opts.engine);
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
      maxInlineBytes: MAX_INLINE_BYTES,
      maxCommandBytes: opts.maxCommandBytes,
      ...(this.#authenticated ? {} : { unauthenticated: UNAUTHENTICATED_LIMITS }),
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#maybeResume());
    socket.on('error', (err) => this.#logger.debug({ err }, 'resp socket error'));
    socket.on('close', () => this.#onClose());
  }

  get authenticated(): boolean {
    return this.#authenticated;
  }

  get closing(): boolean {
    return this.#closing || this.#closed;
  }

  /** Closes the connection (server shutdown); in-flight messages are NACKed by the close. */
  destroy(): void {
    this.#socket.destroy();
  }

  // ---- for command handlers (CommandContext) ----------------------------------------------

  authenticate(user: Buffer | null, password: Buffer): boolean {
    // Compare the token even for a wrong user name, so the answer takes the same time. The user
    // must be `default`, the only one, as in a Redis with `requirepass`.
    const tokenOk = this.options.admission.tokenMatches(password);
    const ok = tokenOk && (user === null || user.toString('latin1') === 'default');
    if (ok) {
      this.#authenticated = true;
      this.#parser.authenticate();
    } else {
      this.options.admission.refuse('resp', 'unauthorized');
      this.#logger.debug({ connectionId: this.options.id, remoteAddress: this.#socket.remoteAddress }, 'resp AUTH failed');
    }
    return ok;
  }

  quit(): void {
    this.replies.reply(OK);
    this.#closeAfterReplies();
  }

  nil(nil2: Buffer): Buffer {
    return this.protocolVersion === 3 ? NULL_RESP3 : nil2;
  }

  pendingWritesApplied(): void {
    if (this.#heldCommand === null) return;
    // Not from inside the log writer's callback loop: the held command may append records.
    process.nextTick(() => {
      const args = this.#heldCommand;
      if (args === null || this.queue.pendingWrites > 0 || this.#closed || this.#closing) return;
      this.#heldCommand = null;
      const name = commandName(args[0]!);
      dispatch(this, COMMANDS.get(name), name, args);
      this.resumeCommands();
    });
  }

  resumeCommands(): void {
    this.#process();
    this.#maybeResume();
  }

  // ---- reading ----------------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    this.#parser.push(chunk);
    this.#process();
  }

  /** Whether commands are held back: a blocking RESERVE waits, or a command waits for writes. */
  #holding(): boolean {
    return this.queue.blocked || this.#heldCommand !== null;
  }

  /** Runs parsed commands until more bytes are needed, a command blocks, or replies pile up. */
  #process(): void {
    while (!this.#holding() && !this.#closing) {
      if (this.replies.pendingCount >= MAX_PENDING_REPLIES) {
        this.#pause();
        break;
      }
      const args = this.#parser.next();
      if (args === undefined) break;
      if (args instanceof RespProtocolError) {
        if (args.kind === 'bulk-too-large') this.options.admission.refuse('resp', 'message_too_large');
        else if (args.kind === 'multibulk-too-long') this.options.admission.refuse('resp', 'too_many_arguments');
        else if (args.kind === 'command-too-large') this.options.admission.refuse('resp', 'input_limit');
        else if (args.kind.startsWith('unauthenticated')) this.options.admission.refuse('resp', 'unauthorized');
        this.#protocolError(args.reason);
        break;
      }
      const name = commandName(args[0]!);
      if (name === 'POST' || name === 'HOST:') {
        this.#crossProtocolRequest(name);
        break;
      }
      const spec = COMMANDS.get(name);
      if (spec?.readsPendingWrites === true && this.queue.pendingWrites > 0 && !this.queue.subscribed) {
        this.#heldCommand = args.map((a) => Buffer.from(a));
        break;
      }
      dispatch(this, spec, name, args);
    }
    // Input that arrives while a command is held waits in the parser, up to a bound.
    if (this.#holding() && this.#parser.bufferedBytes > MAX_BUFFERED_INPUT_BYTES) this.#pause();
    this.options.inputBudget.update(this, this.#parser.bufferedBytes);
  }

  /** `--max-input-bytes` is exceeded and this connection holds the most input (InputBudget). */
  cutOffOverInputLimit(heldBytes: number, limitBytes: number): void {
    const err = this.#parser.abort('input-limit', `this connection holds ${heldBytes} bytes of unfinished input while all connections together exceed --max-input-bytes ${limitBytes}`);
    this.options.admission.refuse('resp', 'input_limit');
    this.#logger.warn({ connectionId: this.options.id, remoteAddress: this.#socket.remoteAddress, heldBytes, limitBytes }, 'resp input over --max-input-bytes: cutting off the connection holding the most');
    if (!this.#closing) this.#protocolError(err.reason);
  }

  #pause(): void {
    if (!this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  #maybeResume(): void {
    if (!this.#paused || this.#closed || this.#closing) return;
    if (this.#socket.writableNeedDrain || this.replies.pendingCount >= MAX_PENDING_REPLIES) return;
    if (this.#holding() && this.#parser.bufferedBytes > MAX_BUFFERED_INPUT_BYTES) return;
    this.#paused = false;
    this.#socket.resume();
    this.#process();
  }

  // ---- writing and closing ----------------------------------------------------------------

  #afterFlush(writeOk: boolean): void {
    if (!writeOk) this.#pause();
    // QUIT or a protocol error: close once the last reply is written, even if the client keeps
    // sending (the socket is paused, so it would otherwise stay half-open for ever); the close
    // NACKs whatever this connection held.
    if (this.#closing && this.replies.pendingCount === 0) this.#socket.destroySoon();
    else this.#maybeResume();
  }

  /**
   * The client is not reading (or reads far slower than it asks): disconnect it rather than
   * buffer more. The 'close' that follows NACKs its reserved and in-flight messages.
   */
  #overOutputLimit(unsentBytes: number): void {
    this.#closing = true;
    this.options.admission.refuse('resp', 'output_limit');
    this.#logger.warn(
      {
        connectionId: this.options.id,
        clientName: this.clientName,
        remoteAddress: this.#socket.remoteAddress,
        unsentBytes,
        limitBytes: this.options.maxOutputBytes,
        inFlight: this.queue.inFlightCount,
      },
      'resp client is not reading its replies: unsent output over the limit, disconnecting',
    );
    this.#socket.destroy();
  }

  /**
   * An HTTP request sent to the RESP port (a browser page can make one to a loopback address):
   * its body lines would otherwise run as inline commands. Redis's answer to the same cross
   * protocol scripting: no reply, a warning, and the connection is closed at once.
   */
  #crossProtocolRequest(name: string): void {
    this.options.admission.refuse('resp', 'cross_protocol');
    this.#logger.warn(
      { connectionId: this.options.id, remoteAddress: this.#socket.remoteAddress, command: name },
      'possible cross protocol scripting: an HTTP request (POST or Host:) arrived on the RESP port; connection closed',
    );
    this.#closing = true;
    this.#socket.destroy();
  }

  /** Broken framing is fatal to the connection (STYLE.md "Errors"): one error reply, then close. */
  #protocolError(reason: string): void {
    this.replies.replyError(new BrokerError('MQ_ERR_PROTOCOL', [reason]));
    this.#closeAfterReplies();
  }

  /**
   * No AUTH within `authDeadlineMs` of connecting: `-NOAUTH`, then the connection is closed, so
   * idle unauthenticated connections cannot hold `--max-connections` slots.
   */
  #authDeadline(): void {
    this.#authTimer = undefined;
    if (this.#authenticated || this.#closed || this.#closing) return;
    this.options.admission.refuse('resp', 'unauthorized');
    this.replies.replyError(new BrokerError('MQ_ERR_AUTH_DEADLINE', [this.options.admission.authDeadlineMs / 1000]));
    this.#closeAfterReplies();
  }

  /** Runs no further command; the socket is destroyed once the replies due are written. */
  #closeAfterReplies(): void {
    this.#closing = true;
    this.#socket.pause();
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.options.inputBudget.update(this, 0);
    this.replies.close();
    if (this.#authTimer !== undefined) clearTimeout(this.#authTimer);
    this.queue.close();
  }
}
