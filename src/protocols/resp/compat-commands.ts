/**
 * The connection and handshake commands that Redis clients and tools send (SPEC §4): PING, ECHO,
 * QUIT, SELECT, INFO, CLIENT, HELLO, COMMAND, AUTH, and READONLY / READWRITE / RESET, answered as
 * Redis answers them so that redis-cli, ioredis and node-redis connect unchanged.
 *
 * Each is a {@link CommandHandler}; the command table checks arity and the before-AUTH and
 * subscribed rules first. The text of INFO and of CLIENT HELP is built in info.ts.
 */
import { BrokerError } from '../../errors.js';
import { parseWholeNumber, printable } from './arguments.js';
import type { CommandContext } from './command-table.js';
import { EMPTY_ARRAY, NIL_BULK, OK, PONG, encodeArray, encodeBulk, encodeInteger, type RespValue } from './encoder.js';
import { CLIENT_HELP, REDIS_COMPAT_VERSION, buildInfo } from './info.js';

/** `PING [message]`: `+PONG`, or the message back. */
export function ping(c: CommandContext, args: Buffer[]): void {
  c.replies.reply(args.length === 2 ? encodeBulk(args[1]!) : PONG);
}

/** `PING` in SUBSCRIBE stream mode: always `+PONG`, whatever follows. */
export function pingSubscribed(c: CommandContext): void {
  c.replies.reply(PONG);
}

/** `ECHO message`. */
export function echo(c: CommandContext, args: Buffer[]): void {
  c.replies.reply(encodeBulk(args[1]!));
}

/** `QUIT`: `+OK`, then the connection closes once every reply is written. */
export function quit(c: CommandContext): void {
  c.quit();
}

/** `SELECT db`: only database 0 exists. */
export function select(c: CommandContext, args: Buffer[]): void {
  const db = parseWholeNumber(args[1]!);
  if (db === undefined) return c.replies.replyError(new BrokerError('MQ_ERR_NOT_INTEGER'));
  if (db !== 0) return c.replies.replyError(new BrokerError('MQ_ERR_DB_INDEX'));
  c.replies.reply(OK);
}

/** `INFO [section ...]`. */
export function info(c: CommandContext, args: Buffer[]): void {
  c.replies.reply(encodeBulk(buildInfo(c.options, args.slice(1))));
}

/** `COMMAND [COUNT | ...]`: no command documentation; clients only need an answer. */
export function command(c: CommandContext, args: Buffer[]): void {
  c.replies.reply(args.length === 2 && args[1]!.toString('latin1').toUpperCase() === 'COUNT' ? encodeInteger(0) : EMPTY_ARRAY);
}

/** `READONLY`, `READWRITE`, `RESET`: accepted, nothing to do. */
export function ok(c: CommandContext): void {
  c.replies.reply(OK);
}

/** `CLIENT SETNAME name | GETNAME | SETINFO ... | ID | HELP`. */
export function client(c: CommandContext, args: Buffer[]): void {
  const sub = args[1]!.toString('latin1').toUpperCase();
  switch (sub) {
    case 'SETNAME':
      if (args.length !== 3) return c.replies.replyError(new BrokerError('MQ_ERR_WRONG_ARITY', ['client|setname']));
      c.clientName = args[2]!.toString('utf8');
      return c.replies.reply(OK);
    case 'GETNAME':
      return c.replies.reply(c.clientName === null ? c.nil(NIL_BULK) : encodeBulk(c.clientName));
    case 'SETINFO':
      return c.replies.reply(OK);
    case 'ID':
      return c.replies.reply(encodeInteger(c.options.id));
    case 'HELP':
      return c.replies.reply(encodeArray(CLIENT_HELP));
    default:
      return c.replies.replyError(new BrokerError('MQ_ERR_UNKNOWN_SUBCOMMAND', [printable(sub, 32), 'CLIENT']));
  }
}

/**
 * `AUTH password | AUTH username password`. Without `--auth-token`, as Redis without
 * `requirepass`: the default user takes any password given with a user name.
 */
export function auth(c: CommandContext, args: Buffer[]): void {
  if (!c.options.admission.authRequired) {
    if (args.length === 3) return c.replies.reply(OK);
    return c.replies.replyError(new BrokerError('MQ_ERR_AUTH_NOT_CONFIGURED'));
  }
  if (!c.authenticate(args.length === 3 ? args[1]! : null, args[args.length - 1]!)) {
    return c.replies.replyError(new BrokerError('MQ_ERR_UNAUTHORIZED'));
  }
  c.replies.reply(OK);
}

/** A command other than AUTH, HELLO or QUIT before AUTH: counted, and `-NOAUTH`, as in Redis. */
export function refuseUnauthenticated(c: CommandContext): void {
  c.options.admission.refuse('resp', 'unauthorized');
  c.replies.replyError(new BrokerError('MQ_ERR_NOAUTH'));
}

/**
 * `HELLO [protover [AUTH user pass] [SETNAME name]]`. Protocol 2 and 3 are accepted; others get
 * -NOPROTO. Why 3 too, where SPEC §4 says -NOPROTO: node-redis 6 (the current `redis` package)
 * opens every connection with HELLO 3 and gives up on any error, and SPEC §4 also requires that
 * node-redis can connect. Every reply miniqueue sends (simple, error, integer, bulk, array) is
 * the same in RESP3 except null, which becomes `_` on a RESP3 connection, and the HELLO reply
 * itself, which becomes a map.
 */
export function hello(c: CommandContext, args: Buffer[]): void {
  let proto = c.protocolVersion;
  let name: string | null = null;
  let user: Buffer | null = null;
  let password: Buffer | null = null;
  if (args.length >= 2) {
    const ver = parseWholeNumber(args[1]!);
    if (ver !== 2 && ver !== 3) return c.replies.replyError(new BrokerError('MQ_ERR_NOPROTO'));
    proto = ver;
    for (let i = 2; i < args.length; i++) {
      const opt = args[i]!.toString('latin1').toUpperCase();
      if (opt === 'SETNAME' && i + 1 < args.length) name = args[++i]!.toString('utf8');
      else if (opt === 'AUTH') {
        if (i + 2 >= args.length) return c.replies.replyError(new BrokerError('MQ_ERR_SYNTAX', ['HELLO', 'auth']));
        user = args[i + 1]!;
        password = args[i + 2]!;
        i += 2;
      }
    }
  }
  // Like Redis: credentials are checked (when a token is set) before anything changes.
  if (c.options.admission.authRequired) {
    if (password !== null) {
      if (!c.authenticate(user, password)) return c.replies.replyError(new BrokerError('MQ_ERR_UNAUTHORIZED'));
    } else if (!c.authenticated) {
      return refuseUnauthenticated(c);
    }
  }
  if (name !== null) c.clientName = name;
  c.protocolVersion = proto;
  const fields: RespValue[] = [
    'server', 'redis',
    'version', REDIS_COMPAT_VERSION,
    'proto', proto,
    'id', c.options.id,
    'mode', 'standalone',
    'role', 'master',
    'modules', [],
  ];
  const body = encodeArray(fields);
  if (proto === 2) return c.replies.reply(body);
  // Same bytes as the array, with the RESP3 map header `%<pairs>` in place of `*<items>`.
  const header = `*${fields.length}\r\n`;
  c.replies.reply(Buffer.concat([Buffer.from(`%${fields.length / 2}\r\n`), body.subarray(header.length)]));
}
