/**
 * Every error code of the server, in one table (STYLE.md "Errors").
 *
 * Each code maps to an HTTP status (plain routes answer `{ statusCode, code, error, message }`)
 * and to a RESP error prefix (`-<PREFIX> <message>`). Messages are fixed text with `%s` holes
 * filled by {@link BrokerError}'s constructor. Never reuse a retired code.
 *
 * A few codes never reach a client (they stop the start, or name an internal failure): their
 * entries say so, and still give both mappings so every code has one shape. The client package
 * (`src/client/errors.ts`) takes server codes from here as a type only and keeps its own table for
 * the codes only it raises; test/errors.test.ts checks that the two tables do not overlap, that
 * no `MQ_ERR_*` literal in src/ is missing from them, and that the README lists every code here.
 */
export const ERRORS = {
  MQ_ERR_BAD_TOPIC: {
    statusCode: 400,
    respPrefix: 'ERR',
    message: "invalid topic name '%s': use 1-255 bytes of A-Z a-z 0-9 . _ - :",
  },
  MQ_ERR_BAD_COMMAND: { statusCode: 400, respPrefix: 'ERR', message: 'invalid command: %s' },
  MQ_ERR_BAD_ARGUMENT: { statusCode: 400, respPrefix: 'ERR', message: 'invalid argument: %s' },
  MQ_ERR_NOT_IN_FLIGHT: {
    statusCode: 409,
    respPrefix: 'ERR',
    message: 'no message %s is in flight on this consumer',
  },
  MQ_ERR_ACK_TIMEOUT: {
    statusCode: 409,
    respPrefix: 'ERR',
    message: 'message %s was not settled within --ack-timeout and %s',
  },
  MQ_ERR_DELIVERY_EXPIRED: {
    // A stream consumer's settle or TOUCH after --ack-timeout took its message back
    // (engine/stream-consumer.ts); the client library matches the text up to "in flight".
    statusCode: 409,
    respPrefix: 'ERR',
    message: '%s: message %s is no longer in flight: it was not settled within --ack-timeout',
  },
  MQ_ERR_TOPIC_DELETED: {
    statusCode: 409,
    respPrefix: 'ERR',
    message: "topic '%s' was deleted while the message was in flight",
  },
  MQ_ERR_TOO_LARGE: {
    statusCode: 413,
    respPrefix: 'ERR',
    message: 'message of %s bytes exceeds --max-message-bytes %s',
  },
  MQ_ERR_NOT_FOUND: { statusCode: 404, respPrefix: 'ERR', message: 'route not found: %s' },
  MQ_ERR_STORAGE: {
    statusCode: 503,
    respPrefix: 'ERR',
    message: 'storage failure, the write was not made durable: %s',
  },
  MQ_ERR_SHUTTING_DOWN: {
    statusCode: 503,
    respPrefix: 'ERR',
    message: 'server is shutting down',
  },
  MQ_ERR_LOADING: {
    statusCode: 503,
    respPrefix: 'LOADING',
    message: 'miniqueue is replaying its log, try again shortly',
  },
  MQ_ERR_PROTOCOL: { statusCode: 400, respPrefix: 'ERR', message: 'Protocol error: %s' },
  MQ_ERR_UNKNOWN_COMMAND: {
    statusCode: 400,
    respPrefix: 'ERR',
    message: "unknown command '%s', with args beginning with: %s",
  },
  MQ_ERR_WRONG_ARITY: {
    statusCode: 400,
    respPrefix: 'ERR',
    message: "wrong number of arguments for '%s' command",
  },
  MQ_ERR_NOPROTO: {
    statusCode: 400,
    respPrefix: 'NOPROTO',
    message: 'sorry, this protocol version is not supported',
  },
  MQ_ERR_BUSY_SUBSCRIBED: {
    // The first hole lists the commands the RESP command table allows while subscribed
    // (resp/command-table.ts derives it from the table, so the two cannot drift apart).
    statusCode: 409,
    respPrefix: 'ERR',
    message: "only %s are allowed while subscribed, got '%s'",
  },
  MQ_ERR_NOAUTH: {
    // Redis's reply to a command sent before AUTH; HTTP requests without `Authorization: Bearer`.
    statusCode: 401,
    respPrefix: 'NOAUTH',
    message: 'Authentication required.',
  },
  MQ_ERR_UNAUTHORIZED: {
    // Redis's reply to a wrong AUTH password, word for word, so client libraries recognise it.
    statusCode: 401,
    respPrefix: 'WRONGPASS',
    message: 'invalid username-password pair or user is disabled.',
  },
  MQ_ERR_MAX_CONNECTIONS: {
    statusCode: 503,
    respPrefix: 'ERR',
    message: 'max number of clients reached',
  },
  MQ_ERR_HTTP2_REQUIRED: {
    // An HTTP/1.1 request for the full-duplex subscribe stream (505 HTTP Version Not Supported).
    statusCode: 505,
    respPrefix: 'ERR',
    message: "POST /subscribe/%s is a full-duplex stream that needs HTTP/2: use an HTTP/2 client (curl --http2, node:http2, miniqueue/client) or RESP SUBSCRIBE / RESERVE",
  },
  MQ_ERR_AUTH_DEADLINE: {
    // RESP only: a connection that did not authenticate in time is told so, then closed.
    statusCode: 401,
    respPrefix: 'NOAUTH',
    message: 'Authentication required within %s s of connecting; closing',
  },
  // The Redis-compatibility commands' errors, in Redis's words, so client libraries recognise them.
  MQ_ERR_NOT_INTEGER: { statusCode: 400, respPrefix: 'ERR', message: 'value is not an integer or out of range' },
  MQ_ERR_DB_INDEX: { statusCode: 400, respPrefix: 'ERR', message: 'DB index is out of range' },
  MQ_ERR_UNKNOWN_SUBCOMMAND: { statusCode: 400, respPrefix: 'ERR', message: "unknown subcommand '%s'. Try %s HELP." },
  MQ_ERR_SYNTAX: { statusCode: 400, respPrefix: 'ERR', message: "Syntax error in %s option '%s'" },
  MQ_ERR_AUTH_NOT_CONFIGURED: {
    statusCode: 400,
    respPrefix: 'ERR',
    message: 'AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
  },
  MQ_ERR_INTERNAL: {
    // An error that is not a BrokerError reached a protocol: a bug or an unforeseen failure. RESP
    // answers it with this entry (resp/reply-queue.ts); the HTTP error handler (http2/routes.ts)
    // sends this code with the error's own message, and the status of a Fastify 4xx error, else 500.
    statusCode: 500,
    respPrefix: 'ERR',
    message: '%s',
  },
  MQ_ERR_CONFIG: {
    // Never sent to a client: a bad option stops the start with `miniqueue: <message>` on stderr
    // and exit status 2 (server/config-error.ts). The message is one line naming the option and
    // the value given, composed by the option parser, hence the single hole.
    statusCode: 400,
    respPrefix: 'ERR',
    message: '%s',
  },
  MQ_ERR_DB_LOCKED: {
    // Never sent to a client: another live process holds `--db` (server/lock.ts); exit status 2.
    statusCode: 503,
    respPrefix: 'ERR',
    message: 'data directory %s is in use by %s (--db); stop it first, or remove %s if no miniqueue is running there',
  },
  MQ_ERR_LOG_CORRUPT: {
    // Never sent to a client: a damaged record before the tail stops the start (log/segment-log.ts,
    // SPEC §5); exit status 1.
    statusCode: 500,
    respPrefix: 'ERR',
    message:
      'damaged record in %s at byte position %s (%s); start with --repair to move the damaged bytes into <db>/damaged/ and keep every intact record',
  },
} as const;

/** One of the codes in {@link ERRORS}. */
export type ErrorCode = keyof typeof ERRORS;

/**
 * The base error of miniqueue. `code` is an `MQ_ERR_*` key of {@link ERRORS}; `statusCode` and
 * `respPrefix` come from that table. `args` fill the `%s` holes of the message in order.
 */
export class BrokerError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly respPrefix: string;

  constructor(code: ErrorCode, args: readonly (string | number)[] = [], options?: { cause?: unknown }) {
    const entry = ERRORS[code];
    let i = 0;
    const message = entry.message.replace(/%s/g, () => String(args[i++] ?? ''));
    super(message, options);
    this.name = 'BrokerError';
    this.code = code;
    this.statusCode = entry.statusCode;
    this.respPrefix = entry.respPrefix;
  }

  /** The RESP error line for this error, without the leading `-` and trailing CRLF. */
  toRespLine(): string {
    return `${this.respPrefix} ${this.message.replace(/[\r\n]+/g, ' ')}`;
  }
}
