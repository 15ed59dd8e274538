/**
 * The one error class of the client, {@link MiniqueueError}, and the codes only the client
 * raises. Server codes (`MQ_ERR_BAD_TOPIC`, `MQ_ERR_TOO_LARGE`, ...) are taken verbatim from
 * the JSON error body `{"error","code","statusCode"}` of SPEC §3 and are listed in
 * `src/errors.ts`; this module imports only that table's type, so the client stays free of
 * server code at run time. test/errors.test.ts checks that no code here is also a server code and
 * that every `MQ_ERR_*` literal in src/ is in one of the two tables.
 */
import type { ErrorCode } from '../errors.js';

/**
 * Codes raised by the client itself, never sent by a server. Each is a key of this object and
 * its value says when it is raised.
 */
export const CLIENT_ERRORS = {
  /** The HTTP/2 session could not be opened, or it or a stream died before an answer came. */
  MQ_ERR_CONNECTION: 'the connection to the server failed or was lost',
  /** The client or the subscription was closed before or while the call ran. */
  MQ_ERR_CLOSED: 'the client or subscription is closed',
  /**
   * A settle (`ack`, `nack`, `back`, `dack`, `touch`) on a message whose subscribe stream is
   * gone (closed or reconnected). The server returned that message to the front of the
   * queue when the stream died and delivers it again, so the call can be ignored.
   */
  MQ_ERR_STALE_MESSAGE: 'the message was delivered on a stream that is gone; the server delivers it again',
  /** A second settle on a message that was already acked, nacked, backed or dacked. */
  MQ_ERR_ALREADY_SETTLED: 'the message was already settled',
  /** The server answered with something this client does not understand (status or body). */
  MQ_ERR_BAD_RESPONSE: 'unexpected response from the server',
  /**
   * The server sent an `{"error":"..."}` line on a subscribe stream. Such lines carry no
   * code, so this one stands for all of them; `message` is the server's text.
   */
  MQ_ERR_STREAM: 'the server reported an error on the subscribe stream',
  /** No answer in time (connect, or the reply to `touch`). */
  MQ_ERR_TIMEOUT: 'no answer from the server in time',
} as const;

/** A code raised by the client itself: a key of {@link CLIENT_ERRORS}. */
export type ClientErrorCode = keyof typeof CLIENT_ERRORS;

/**
 * Every code a {@link MiniqueueError} can carry: a server code from `src/errors.ts`
 * (`MQ_ERR_BAD_TOPIC`, `MQ_ERR_TOO_LARGE`, `MQ_ERR_LOADING`, ...), a client code from
 * {@link CLIENT_ERRORS}, or, from a newer or foreign server, any other string it sent.
 * The `string & {}` member keeps editor completion of the known codes.
 */
export type MiniqueueErrorCode = ErrorCode | ClientErrorCode | (string & {});

/**
 * The error every client call rejects with.
 *
 * - `code`: an `MQ_ERR_*` code, see {@link MiniqueueErrorCode}. Match on it, never on `message`.
 * - `statusCode`: the HTTP status of the response that carried the error (400, 404, 409, 413,
 *   503, ...), or `undefined` when no HTTP response was involved (connection failures,
 *   client-side checks, error lines on a subscribe stream).
 * - `cause`: the underlying Node.js error, when there is one.
 */
export class MiniqueueError extends Error {
  /** The `MQ_ERR_*` code. */
  readonly code: MiniqueueErrorCode;
  /** HTTP status of the response that carried the error; undefined when there was none. */
  readonly statusCode: number | undefined;

  /**
   * @param code - the `MQ_ERR_*` code.
   * @param message - human-readable text (the server's `error` field when it sent one).
   * @param statusCode - the HTTP status, or undefined.
   * @param options - `cause`: the underlying error.
   */
  constructor(code: MiniqueueErrorCode, message: string, statusCode?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MiniqueueError';
    this.code = code;
    this.statusCode = statusCode;
  }
}

/** A client-side error with the fixed text of {@link CLIENT_ERRORS}, plus an optional detail. */
export function clientError(code: ClientErrorCode, detail?: string, cause?: unknown): MiniqueueError {
  const text = detail === undefined ? CLIENT_ERRORS[code] : `${CLIENT_ERRORS[code]}: ${detail}`;
  return new MiniqueueError(code, text, undefined, cause === undefined ? undefined : { cause });
}

/**
 * Turns a non-success response into a {@link MiniqueueError}: the server's `code` and `error`
 * from a JSON body, or `MQ_ERR_BAD_RESPONSE` when the body is not one.
 */
export function responseError(statusCode: number, body: Buffer): MiniqueueError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (typeof parsed === 'object' && parsed !== null) {
    const { code, error } = parsed as { code?: unknown; error?: unknown };
    if (typeof code === 'string' && typeof error === 'string') return new MiniqueueError(code, error, statusCode);
  }
  const text = body.toString('utf8', 0, Math.min(body.length, 200));
  return new MiniqueueError('MQ_ERR_BAD_RESPONSE', `${CLIENT_ERRORS.MQ_ERR_BAD_RESPONSE}: status ${statusCode}, body ${JSON.stringify(text)}`, statusCode);
}

/** `err` itself when it is a MiniqueueError, else an MQ_ERR_CONNECTION wrapping it (a dropped stream or session). */
export function asClientError(err: unknown): MiniqueueError {
  if (err instanceof MiniqueueError) return err;
  return clientError('MQ_ERR_CONNECTION', err instanceof Error ? err.message : String(err), err);
}
