/**
 * The RESP command table (SPEC §4, §7): each command's name, arity, handler and flags in one
 * place, and the dispatch that checks them once, in this order:
 *
 * 1. before AUTH (with `--auth-token`) only commands flagged `allowedBeforeAuth` run; any other,
 *    known or not, is answered `-NOAUTH`, as Redis does;
 * 2. in SUBSCRIBE stream mode only commands with a `whileSubscribed` form run, with that form's
 *    arity and handler; any other is answered `MQ_ERR_BUSY_SUBSCRIBED`;
 * 3. an unknown name is answered `MQ_ERR_UNKNOWN_COMMAND`;
 * 4. an argument count outside the arity is answered `MQ_ERR_WRONG_ARITY`;
 * 5. while the log is replayed at start (SPEC §8) only commands flagged `allowedWhileLoading` run;
 *    any other is answered `-LOADING`, as Redis does while it loads (PING included);
 * 6. the handler runs.
 *
 * `readsPendingWrites` is read by the connection before dispatch: such a command waits until the
 * connection's PUBLISH / DEL records are durable (see connection.ts).
 */
import { BrokerError } from '../../errors.js';
import { printable } from './arguments.js';
import * as compat from './compat-commands.js';
import type { RespConnectionOptions } from './connection.js';
import type { QueueSession } from './queue-commands.js';
import type { ReplyQueue } from './reply-queue.js';

/** What a command handler may use of its connection. */
export interface CommandContext {
  /** The connection's replies, in command order. */
  readonly replies: ReplyQueue;
  /** The queue side: consumer, blocking RESERVE, stream mode, pending writes. */
  readonly queue: QueueSession;
  readonly options: RespConnectionOptions;
  /** CLIENT SETNAME / HELLO SETNAME, null until set. */
  clientName: string | null;
  /** Protocol version chosen with HELLO: 2 until then. */
  protocolVersion: 2 | 3;
  /** True once AUTH succeeded, or from the start without `--auth-token`. */
  readonly authenticated: boolean;
  /** Closing or closed: no further command will run. */
  readonly closing: boolean;
  /**
   * Checks `AUTH [user] password` credentials (user null: `default`); when right, the connection
   * is authenticated from now on, when wrong a refusal is counted and logged.
   */
  authenticate(user: Buffer | null, password: Buffer): boolean;
  /** Answers `+OK`, then closes once every reply is written. */
  quit(): void;
  /** The null reply of the connection's protocol: `_` in RESP3, else `nil2` (RESP2's nil). */
  nil(nil2: Buffer): Buffer;
  /** Every PUBLISH / DEL record of the connection is now durable: a held command may run. */
  pendingWritesApplied(): void;
  /** A blocking RESERVE ended: the connection runs the commands it held back. */
  resumeCommands(): void;
}

/**
 * Runs one command. `args[0]` is the command name as sent, `name` its upper-case form; `args`
 * are views into the parser's buffer, valid until the handler returns (copy what is kept).
 */
export type CommandHandler = (c: CommandContext, args: Buffer[], name: string) => void;

/** An arity and a handler. Arity counts the command name, as Redis's does. */
export interface CommandForm {
  /** Fewest arguments, the name included. */
  readonly minArgs: number;
  /** Most arguments, the name included; `Infinity` when any number is taken. */
  readonly maxArgs: number;
  readonly handler: CommandHandler;
}

/** One command of the table. */
export interface CommandSpec extends CommandForm {
  /** Runs before AUTH when `--auth-token` is set. */
  readonly allowedBeforeAuth: boolean;
  /** Runs while the log is replayed (Redis's `loading` flag); the others are answered `-LOADING`. */
  readonly allowedWhileLoading: boolean;
  /** Waits until this connection's pending PUBLISH / DEL records are durable (Redis runs a pipeline in order). */
  readonly readsPendingWrites: boolean;
  /** The form the command takes in SUBSCRIBE stream mode; null: refused there. */
  readonly whileSubscribed: CommandForm | null;
}

type Arity = readonly [min: number, max: number];

interface Declaration {
  arity: Arity;
  handler: CommandHandler;
  allowedBeforeAuth?: true;
  allowedWhileLoading?: true;
  readsPendingWrites?: true;
  whileSubscribed?: { arity: Arity; handler: CommandHandler };
}

/** Any number of arguments. */
const ANY = Infinity;

const SETTLE: Declaration = {
  arity: [3, 3],
  handler: (c, args, name) => c.queue.settleById(name, args),
  whileSubscribed: { arity: [1, 1], handler: (c, args, name) => c.queue.settleStreamed(name, args) },
};

/**
 * The commands. Settles need not wait for pending writes: they name ids that an earlier, already
 * answered RESERVE handed out.
 */
const DECLARATIONS: Readonly<Record<string, Declaration>> = {
  PUBLISH: { arity: [3, 3], handler: (c, args) => c.queue.publish(args) },
  RESERVE: { arity: [2, 3], handler: (c, args) => c.queue.reserve(args), readsPendingWrites: true },
  ACK: SETTLE,
  NACK: SETTLE,
  BACK: SETTLE,
  DACK: {
    ...SETTLE,
    arity: [4, 4],
    // Stream-mode DACK checks its own argument count, to answer with its usage.
    whileSubscribed: { arity: [1, ANY], handler: (c, args, name) => c.queue.settleStreamed(name, args) },
  },
  TOUCH: {
    arity: [3, 3],
    handler: (c, args) => c.queue.touchById(args),
    whileSubscribed: { arity: [1, 1], handler: (c) => c.queue.touchStreamed() },
  },
  SUBSCRIBE: { arity: [2, 2], handler: (c, args) => c.queue.subscribe(args), readsPendingWrites: true },
  TOPICS: { arity: [1, 1], handler: (c) => c.queue.topics(), readsPendingWrites: true },
  DEL: { arity: [2, ANY], handler: (c, args) => c.queue.del(args), readsPendingWrites: true },
  PURGE: { arity: [2, ANY], handler: (c, args) => c.queue.del(args), readsPendingWrites: true },
  STATS: { arity: [2, 2], handler: (c, args) => c.queue.stats(args), readsPendingWrites: true },

  // While loading, the connection commands work (client libraries connect, and ioredis polls INFO
  // until loading:0); PING is answered -LOADING, as Redis does, so a health check sees it.
  PING: { arity: [1, 2], handler: compat.ping, whileSubscribed: { arity: [1, ANY], handler: compat.pingSubscribed } },
  ECHO: { arity: [2, 2], handler: compat.echo, allowedWhileLoading: true },
  QUIT: {
    arity: [1, ANY],
    handler: compat.quit,
    allowedBeforeAuth: true,
    allowedWhileLoading: true,
    whileSubscribed: { arity: [1, ANY], handler: compat.quit },
  },
  SELECT: { arity: [2, 2], handler: compat.select, allowedWhileLoading: true },
  INFO: { arity: [1, ANY], handler: compat.info, allowedWhileLoading: true },
  CLIENT: { arity: [2, ANY], handler: compat.client, allowedWhileLoading: true },
  HELLO: { arity: [1, ANY], handler: compat.hello, allowedBeforeAuth: true, allowedWhileLoading: true },
  COMMAND: { arity: [1, ANY], handler: compat.command, allowedWhileLoading: true },
  AUTH: { arity: [2, 3], handler: compat.auth, allowedBeforeAuth: true, allowedWhileLoading: true },
  READONLY: { arity: [1, ANY], handler: compat.ok, allowedWhileLoading: true },
  READWRITE: { arity: [1, ANY], handler: compat.ok, allowedWhileLoading: true },
  RESET: { arity: [1, ANY], handler: compat.ok, allowedWhileLoading: true },
};

function form(arity: Arity, handler: CommandHandler): CommandForm {
  return { minArgs: arity[0], maxArgs: arity[1], handler };
}

/** Every command by upper-case name. Each entry has every field, so dispatch sees one object shape. */
export const COMMANDS: ReadonlyMap<string, CommandSpec> = new Map(
  Object.entries(DECLARATIONS).map(([name, d]): [string, CommandSpec] => [
    name,
    {
      ...form(d.arity, d.handler),
      allowedBeforeAuth: d.allowedBeforeAuth === true,
      allowedWhileLoading: d.allowedWhileLoading === true,
      readsPendingWrites: d.readsPendingWrites === true,
      whileSubscribed: d.whileSubscribed === undefined ? null : form(d.whileSubscribed.arity, d.whileSubscribed.handler),
    },
  ]),
);

/**
 * The commands a subscribed connection may send (those with a `whileSubscribed` form), in table
 * order, as MQ_ERR_BUSY_SUBSCRIBED lists them: `ACK, NACK, ... and QUIT`.
 */
export const ALLOWED_WHILE_SUBSCRIBED: string = listed([...COMMANDS].filter(([, spec]) => spec.whileSubscribed !== null).map(([name]) => name));

/** `a, b and c`. */
function listed(names: readonly string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]!}`;
}

/** Upper-case command name (a {@link COMMANDS} key when known); the hot spellings skip the string conversions. */
export function commandName(arg: Buffer): string {
  // Byte by byte: Buffer.equals is a call into C++ (1.5% of the PUBLISH -P16 profile).
  if (arg.length === 7 && arg[0] === 0x50 && arg[1] === 0x55 && arg[2] === 0x42 && arg[3] === 0x4c && arg[4] === 0x49 && arg[5] === 0x53 && arg[6] === 0x48) return 'PUBLISH';
  if (arg.length === 3 && arg[0] === 0x41 && arg[1] === 0x43 && arg[2] === 0x4b) return 'ACK';
  return arg.toString('latin1').toUpperCase();
}

/** Checks the command's flags and arity against the connection's state, then runs it (see the top). */
export function dispatch(c: CommandContext, spec: CommandSpec | undefined, name: string, args: Buffer[]): void {
  if (!c.authenticated && (spec === undefined || !spec.allowedBeforeAuth)) return compat.refuseUnauthenticated(c);
  let run: CommandForm | null | undefined = spec;
  if (c.queue.subscribed) {
    run = spec === undefined ? null : spec.whileSubscribed;
    if (run === null) return c.replies.replyError(new BrokerError('MQ_ERR_BUSY_SUBSCRIBED', [ALLOWED_WHILE_SUBSCRIBED, name.slice(0, 32)]));
  }
  if (run === undefined) return unknownCommand(c, args);
  if (args.length < run.minArgs || args.length > run.maxArgs) {
    return c.replies.replyError(new BrokerError('MQ_ERR_WRONG_ARITY', [name.toLowerCase()]));
  }
  // `run` is `spec` or one of its forms, so `spec` is set here.
  if (!spec!.allowedWhileLoading && c.options.engine.loading) return c.replies.replyError(new BrokerError('MQ_ERR_LOADING'));
  run.handler(c, args, name);
}

/** Redis's unknown-command error, quoting the name and up to three arguments (printable ASCII only). */
function unknownCommand(c: CommandContext, args: Buffer[]): void {
  const shown = args
    .slice(1, 4)
    .map((a) => `'${printable(a, 32)}'`)
    .join(' ');
  c.replies.replyError(new BrokerError('MQ_ERR_UNKNOWN_COMMAND', [printable(args[0]!, 64), shown]));
}
