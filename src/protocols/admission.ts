/**
 * What both listeners share about who may talk to the broker (SPEC §7 "Limits", issue 6):
 * the `--max-connections` budget across the HTTP/2 and RESP listeners, the `--auth-token` check,
 * and plain counters of connections and refusals that `src/server/metrics.ts` reads at scrape
 * time (so the protocol code never touches prom-client and pays one increment per event).
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * The two client-facing listeners. An HTTP/2 connection counts from TCP accept (so while its TLS
 * handshake runs, too) until its socket closes.
 */
export type ListenerProtocol = 'http2' | 'resp';

/**
 * Why a connection, request or command was refused, as counted in metrics:
 * - `max_connections`: a connection over `--max-connections` (closed at once);
 * - `unauthorized`: a missing or wrong token (HTTP 401, RESP `-NOAUTH` / `-WRONGPASS`);
 * - `message_too_large`: a publish over `--max-message-bytes` (HTTP 413, RESP `-ERR`/protocol error);
 * - `too_many_arguments`: a RESP command with more than 1024 arguments (protocol error);
 * - `output_limit`: a RESP client whose unsent replies passed the output bound (disconnected);
 * - `input_limit`: a RESP command over `--max-command-bytes`, or the connection holding the most
 *   input when all of them together passed `--max-input-bytes` (protocol error, disconnected);
 * - `cross_protocol`: an HTTP request (`POST`, `Host:`) on the RESP port (disconnected, no reply).
 */
export type RefusalReason = 'max_connections' | 'unauthorized' | 'message_too_large' | 'too_many_arguments' | 'output_limit' | 'input_limit' | 'cross_protocol';

/** Every {@link RefusalReason}, in a fixed order (metrics export each one, zeros included). */
export const REFUSAL_REASONS: readonly RefusalReason[] = [
  'max_connections',
  'unauthorized',
  'message_too_large',
  'too_many_arguments',
  'output_limit',
  'input_limit',
  'cross_protocol',
];

/** The refusals each listener can make (HTTP/2 has no argument lists and no output bound of its own). */
export const REFUSAL_REASONS_BY_PROTOCOL: Readonly<Record<ListenerProtocol, readonly RefusalReason[]>> = {
  http2: ['max_connections', 'unauthorized', 'message_too_large'],
  resp: REFUSAL_REASONS,
};

/** Every {@link ListenerProtocol}. */
export const LISTENER_PROTOCOLS: readonly ListenerProtocol[] = ['http2', 'resp'];

function sha256(value: string | Buffer): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * With `--auth-token`, how long a connection may stay without authenticating (RESP `AUTH`, an
 * HTTP/2 request with the right bearer token) before it is closed, in ms: otherwise anyone who
 * can reach a port could hold every `--max-connections` slot with idle sockets.
 */
export const AUTH_DEADLINE_MS = 10_000;

/** Options of {@link Admission}. */
export interface AdmissionOptions {
  /** Most client connections open at once over both listeners, integer >= 1. */
  maxConnections: number;
  /** The shared secret, or null when authentication is off (the default). */
  authToken: string | null;
}

/**
 * Connection budget, token check and counters, one instance per server. Not thread-safe (there
 * is one thread); every method is O(1) except the token checks (one SHA-256 of the candidate).
 */
export class Admission {
  readonly maxConnections: number;
  /** SHA-256 of the token: comparing digests makes both sides the same length for timingSafeEqual. */
  readonly #tokenDigest: Buffer | null;
  /** Connections open now, per listener. */
  readonly open: Record<ListenerProtocol, number> = { http2: 0, resp: 0 };
  /** Connections admitted since start, per listener. */
  readonly accepted: Record<ListenerProtocol, number> = { http2: 0, resp: 0 };
  /** Refusals since start, per listener and reason. */
  readonly refused: Record<ListenerProtocol, Record<RefusalReason, number>> = {
    http2: zeroRefusals(),
    resp: zeroRefusals(),
  };

  /** {@link AUTH_DEADLINE_MS}; read when a connection opens (tests lower it). */
  authDeadlineMs = AUTH_DEADLINE_MS;
  /** HTTP/2 sessions that have made a request with the right token. */
  readonly #authorizedSessions = new WeakSet<object>();

  constructor(opts: AdmissionOptions) {
    this.maxConnections = opts.maxConnections;
    this.#tokenDigest = opts.authToken === null ? null : sha256(opts.authToken);
  }

  /** True when `--auth-token` is set: HTTP requests need a bearer token, RESP connections AUTH. */
  get authRequired(): boolean {
    return this.#tokenDigest !== null;
  }

  /** Connections open now over both listeners. */
  get openTotal(): number {
    return this.open.http2 + this.open.resp;
  }

  /**
   * Takes one connection from the budget: true (and counted as open until {@link release}) when
   * fewer than `maxConnections` are open, else false and counted as a `max_connections` refusal.
   */
  admit(protocol: ListenerProtocol): boolean {
    if (this.openTotal >= this.maxConnections) {
      this.refused[protocol].max_connections++;
      return false;
    }
    this.open[protocol]++;
    this.accepted[protocol]++;
    return true;
  }

  /** Gives back a connection taken with a successful {@link admit}; call it exactly once. */
  release(protocol: ListenerProtocol): void {
    this.open[protocol]--;
  }

  /** Notes that HTTP/2 `session` made an authorized request (it may then stay open idle). */
  markAuthorized(session: object): void {
    this.#authorizedSessions.add(session);
  }

  /** Whether HTTP/2 `session` has made an authorized request. */
  isAuthorized(session: object): boolean {
    return this.#authorizedSessions.has(session);
  }

  /** Counts one refusal. */
  refuse(protocol: ListenerProtocol, reason: RefusalReason): void {
    this.refused[protocol][reason]++;
  }

  /**
   * Whether `candidate` is the configured token, compared in constant time (SHA-256 of both,
   * then `timingSafeEqual`, so neither the content nor the length leaks through timing).
   * Always false when authentication is off.
   */
  tokenMatches(candidate: string | Buffer): boolean {
    if (this.#tokenDigest === null) return false;
    return timingSafeEqual(sha256(candidate), this.#tokenDigest);
  }

  /**
   * Checks an HTTP `authorization` header: `'ok'` for `Bearer <token>` with the right token (or
   * when authentication is off), `'missing'` when there is no bearer credential at all, `'wrong'`
   * for a bearer token that does not match. The scheme is case-insensitive (RFC 9110 §11.1).
   */
  checkBearer(header: string | undefined): 'ok' | 'missing' | 'wrong' {
    if (this.#tokenDigest === null) return 'ok';
    if (header === undefined) return 'missing';
    const match = /^\s*bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) return 'missing';
    return this.tokenMatches(match[1]!) ? 'ok' : 'wrong';
  }
}

function zeroRefusals(): Record<RefusalReason, number> {
  return { max_connections: 0, unauthorized: 0, message_too_large: 0, too_many_arguments: 0, output_limit: 0, input_limit: 0, cross_protocol: 0 };
}

/**
 * Whether `address` (an IP literal as a listener reports it, or a host name) only accepts
 * connections from this machine: 127.0.0.0/8, ::1, their IPv4-mapped forms, and `localhost`.
 */
export function isLoopbackAddress(address: string): boolean {
  const a = address.toLowerCase();
  if (a === 'localhost' || a === '::1' || a === '0:0:0:0:0:0:0:1') return true;
  const v4 = a.startsWith('::ffff:') ? a.slice(7) : a;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}
