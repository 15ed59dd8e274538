/**
 * The miniqueue client: one HTTP/2 session (TLS with ALPN h2, or h2c for `http://` URLs)
 * shared by every call and subscription, opened on first use and opened again on the next
 * call after it dies.
 *
 * Why one session: HTTP/2 multiplexes, so a second TCP/TLS connection would only add a
 * handshake and make the server track another session. Why lazily re-created rather than
 * reconnected eagerly: a client with nothing to do should not dial a server that is down.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';
import type { SecureClientSessionOptions } from 'node:http2';
// A type only (erased from the JS): the client stays free of server code at run time.
import type { TopicStats } from '../engine/queue-engine.js';
import { DEFAULT_BACKOFF, resolveBackoff, type BackoffOptions } from './backoff.js';
import { clientError, MiniqueueError, responseError } from './errors.js';
import { Subscription, type StreamOpener, type SubscribeOptions } from './subscription.js';

export type { TopicStats };

/** Options of {@link MiniqueueClient}. Every field is optional. */
export interface ClientOptions {
  /**
   * Where the server is: `https://host:port` (TLS, the server's default) or `http://host:port`
   * for a server started with `--no-tls` (h2c, prior knowledge). Only the origin is used.
   * Default `https://localhost:8080`.
   */
  url?: string;
  /**
   * Certificate authorities to trust (PEM), instead of Node's default list. For the server's
   * self-signed development certificate, pass the certificate itself
   * (`fs.readFileSync('certs/localhost.pem')`).
   */
  ca?: string | Buffer | Array<string | Buffer>;
  /**
   * Whether to refuse a server certificate that does not verify. Default `true`. Setting it to
   * `false` accepts any certificate (like `curl -k`); only for development.
   */
  rejectUnauthorized?: boolean;
  /** TLS server name (SNI and certificate check); default the URL's host name. */
  servername?: string;
  /** Any other `tls.connect` / `http2.connect` option (client certificate, ciphers, ...). */
  tls?: SecureClientSessionOptions;
  /** How long to wait for the session to connect (TCP + TLS + HTTP/2 SETTINGS), in ms. Default 10000. */
  connectTimeoutMs?: number;
  /**
   * While streams are open, a PING is sent this often, in ms; a session whose PING is still
   * unanswered at the next one is destroyed (so subscriptions notice a half-open connection
   * and reconnect). 0 disables. Default 30000.
   */
  keepAliveMs?: number;
  /** Default reconnect policy of subscriptions, see {@link SubscribeOptions.reconnect}. */
  reconnect?: BackoffOptions | false;
  /**
   * The server's `--auth-token`, sent as `authorization: Bearer <token>` on every request.
   * Without it, a server that requires one answers 401 (`MQ_ERR_NOAUTH`; a wrong token gets
   * `MQ_ERR_UNAUTHORIZED`). Default: none.
   */
  authToken?: string;
}

/** A payload accepted by {@link MiniqueueClient.publish}. Strings are sent as UTF-8. */
export type Payload = Buffer | Uint8Array | string;

interface Response {
  status: number;
  body: Buffer;
}

const DEFAULT_URL = 'https://localhost:8080';
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_KEEPALIVE_MS = 30_000;
/** Largest response body read from a plain route (GET /topics of many topics), in bytes. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/**
 * A connection to one miniqueue server over HTTP/2.
 *
 * ```js
 * const mq = new MiniqueueClient({ url: 'https://localhost:8080', ca: fs.readFileSync('certs/localhost.pem') });
 * await mq.publish('jobs', 'hello');
 * for await (const msg of mq.subscribe('jobs')) { console.log(msg.data.toString()); await msg.ack(); }
 * await mq.close();
 * ```
 *
 * Every method rejects with a {@link MiniqueueError}. Calls are not retried: `publish` is not
 * idempotent (an answer lost in a disconnect leaves it unknown whether the message was stored),
 * so retrying is the caller's decision. Subscriptions do reconnect, see {@link Subscription}.
 *
 * The session does not keep the process alive while no request or subscription stream is open,
 * so a script that forgets {@link MiniqueueClient.close} still exits.
 */
export class MiniqueueClient {
  readonly #origin: string;
  readonly #connectOptions: SecureClientSessionOptions;
  readonly #connectTimeoutMs: number;
  readonly #keepAliveMs: number;
  readonly #reconnect: BackoffOptions | false;
  /** Headers sent with every request (the bearer token). */
  readonly #baseHeaders: OutgoingHttpHeaders;
  readonly #subscriptions = new Set<Subscription>();
  readonly #opener: StreamOpener;
  #session: ClientHttp2Session | null = null;
  #connecting: Promise<ClientHttp2Session> | null = null;
  /** Streams open per session (requests and subscriptions); a session with none is unref'd. */
  readonly #openStreams = new WeakMap<ClientHttp2Session, number>();
  #closed = false;
  #closing: Promise<void> | null = null;

  /**
   * Creates the client; no connection is made until the first call.
   * @throws MiniqueueError `MQ_ERR_BAD_ARGUMENT` when `url` is not an `http:` or `https:` URL or
   *   a number option is negative, and RangeError for a bad `reconnect` policy.
   */
  constructor(options: ClientOptions = {}) {
    let url: URL;
    try {
      url = new URL(options.url ?? DEFAULT_URL);
    } catch (err) {
      throw new MiniqueueError('MQ_ERR_BAD_ARGUMENT', `invalid url ${JSON.stringify(options.url)}`, undefined, { cause: err });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new MiniqueueError('MQ_ERR_BAD_ARGUMENT', `url must start with https:// or http://, got ${JSON.stringify(options.url)}`);
    }
    this.#origin = url.origin;
    this.#connectOptions = {
      ...options.tls,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      ...(options.rejectUnauthorized !== undefined ? { rejectUnauthorized: options.rejectUnauthorized } : {}),
      ...(options.servername !== undefined ? { servername: options.servername } : {}),
    };
    this.#connectTimeoutMs = checkMs('connectTimeoutMs', options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    this.#keepAliveMs = checkMs('keepAliveMs', options.keepAliveMs ?? DEFAULT_KEEPALIVE_MS);
    this.#reconnect = options.reconnect === false ? false : resolveBackoff(options.reconnect ?? DEFAULT_BACKOFF);
    this.#baseHeaders = options.authToken !== undefined ? { authorization: `Bearer ${options.authToken}` } : {};
    this.#opener = {
      openStream: (path) => this.#openStream(path),
      subscriptionClosed: (sub) => this.#subscriptions.delete(sub),
    };
  }

  /** The server origin this client talks to, e.g. `https://localhost:8080`. */
  get url(): string {
    return this.#origin;
  }

  /** True after {@link MiniqueueClient.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Publishes one message (`POST /publish/:topic`) and resolves when the server answered
   * `201 Created`, i.e. once the message is in the server's log (fdatasynced with the server's
   * default `--fsync always`).
   * @param topic - 1-255 bytes of `A-Z a-z 0-9 . _ - :`; created by the first publish.
   * @param payload - the bytes; a string is sent as UTF-8. Not copied: do not change it until
   *   the Promise settles.
   * @throws MiniqueueError `MQ_ERR_BAD_TOPIC` (400), `MQ_ERR_TOO_LARGE` (413, over the server's
   *   `--max-message-bytes`), `MQ_ERR_STORAGE` / `MQ_ERR_SHUTTING_DOWN` / `MQ_ERR_LOADING`
   *   (503), `MQ_ERR_CONNECTION`, `MQ_ERR_TIMEOUT` (connect), `MQ_ERR_CLOSED`.
   */
  async publish(topic: string, payload: Payload): Promise<void> {
    const body = toBuffer(payload);
    const res = await this.#request('POST', `/publish/${encodeURIComponent(topic)}`, body);
    if (res.status !== 201) throw responseError(res.status, res.body);
  }

  /**
   * Subscribes to `topic` as one competing consumer. Nothing is sent until the first `next()`
   * of the returned iterator. See {@link Subscription} for delivery, reconnect and close
   * semantics and {@link Message} for settling.
   * @throws MiniqueueError `MQ_ERR_CLOSED` when the client is closed (thrown synchronously).
   */
  subscribe(topic: string, options: SubscribeOptions = {}): Subscription {
    if (this.#closed) throw clientError('MQ_ERR_CLOSED');
    const reconnect = options.reconnect === undefined ? this.#reconnect : options.reconnect;
    const sub = new Subscription(this.#opener, topic, reconnect, options.onError);
    this.#subscriptions.add(sub);
    return sub;
  }

  /**
   * Deletes a topic and all its messages (`DELETE /:topic`); its subscribers stay attached and
   * wait for new messages.
   * @returns true when the topic existed, false when there was nothing to delete.
   * @throws MiniqueueError `MQ_ERR_BAD_TOPIC` (400; also for `''`, checked locally), `MQ_ERR_STORAGE`
   *   (503), `MQ_ERR_CONNECTION`, `MQ_ERR_CLOSED`, `MQ_ERR_BAD_RESPONSE`.
   */
  async deleteTopic(topic: string): Promise<boolean> {
    // DELETE / would be a different route (404), so the one name the path cannot carry is refused here.
    if (topic === '') throw new MiniqueueError('MQ_ERR_BAD_TOPIC', 'invalid topic name \'\': use 1-255 bytes of A-Z a-z 0-9 . _ - :');
    const res = await this.#request('DELETE', `/${encodeURIComponent(topic)}`);
    if (res.status !== 200) throw responseError(res.status, res.body);
    const parsed = parseJson(res) as { deleted?: unknown } | null;
    if (parsed === null || typeof parsed.deleted !== 'boolean') throw badResponse(res, 'expected {"topic","deleted"}');
    return parsed.deleted;
  }

  /**
   * Per-topic figures of every existing topic (`GET /topics`), in the server's order.
   * @throws MiniqueueError `MQ_ERR_LOADING` (503), `MQ_ERR_CONNECTION`, `MQ_ERR_CLOSED`,
   *   `MQ_ERR_BAD_RESPONSE`.
   */
  async topics(): Promise<TopicStats[]> {
    const res = await this.#request('GET', '/topics');
    if (res.status !== 200) throw responseError(res.status, res.body);
    const parsed = parseJson(res);
    if (!Array.isArray(parsed)) throw badResponse(res, 'expected a JSON array');
    return parsed as TopicStats[];
  }

  /**
   * Closes every subscription (their streams are cancelled, so the server NACKs their
   * in-flight messages, and their iterators end), lets requests already sent finish, then
   * closes the session. Later calls reject with `MQ_ERR_CLOSED`. Idempotent; resolves when the
   * session is closed.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      await Promise.all([...this.#subscriptions].map((s) => s.close()));
      const session = this.#session ?? (await this.#connecting?.catch(() => null)) ?? null;
      if (session === null || session.closed || session.destroyed) return;
      // An unref'd session would let the process exit before its GOAWAY is written and the
      // close callback runs, leaving this Promise unsettled.
      session.ref();
      await new Promise<void>((resolve) => session.close(() => resolve()));
    })();
    return this.#closing;
  }

  /** The current session, connecting one when there is none (or it died). */
  #connect(): Promise<ClientHttp2Session> {
    if (this.#closed) return Promise.reject(clientError('MQ_ERR_CLOSED'));
    const current = this.#session;
    if (current !== null && !current.closed && !current.destroyed) return Promise.resolve(current);
    this.#connecting ??= this.#newSession().finally(() => (this.#connecting = null));
    return this.#connecting;
  }

  #newSession(): Promise<ClientHttp2Session> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(this.#origin, this.#connectOptions);
      let settled = false;
      const fail = (err: MiniqueueError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        session.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(clientError('MQ_ERR_TIMEOUT', `could not connect to ${this.#origin} within ${this.#connectTimeoutMs} ms`)),
        this.#connectTimeoutMs,
      );
      // Errors after connecting also reach the streams, which report them; this keeps an
      // 'error' without listeners from crashing the process.
      session.on('error', (err: NodeJS.ErrnoException) => fail(connectError(this.#origin, err)));
      session.once('close', () => {
        fail(clientError('MQ_ERR_CONNECTION', `session to ${this.#origin} closed before it connected`));
        if (this.#session === session) this.#session = null;
      });
      // After GOAWAY the session takes no new streams; the next call opens a new one.
      session.once('goaway', () => {
        if (this.#session === session) this.#session = null;
      });
      session.once('connect', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.#closed) {
          session.destroy();
          reject(clientError('MQ_ERR_CLOSED'));
          return;
        }
        this.#session = session;
        session.unref();
        this.#startKeepAlive(session);
        resolve(session);
      });
    });
  }

  /** Pings `session` every keepAliveMs while streams are open; destroys it when a ping goes unanswered. */
  #startKeepAlive(session: ClientHttp2Session): void {
    if (this.#keepAliveMs === 0) return;
    let outstanding = false;
    const interval = setInterval(() => {
      if (session.destroyed || session.closed) return clearInterval(interval);
      if ((this.#openStreams.get(session) ?? 0) === 0) return;
      if (outstanding) {
        session.destroy(new Error(`no PING answer within ${this.#keepAliveMs} ms`));
        return;
      }
      outstanding = true;
      try {
        session.ping((err) => {
          outstanding = false;
          if (err !== null && !session.destroyed) session.destroy(err);
        });
      } catch {
        outstanding = false; // the session is closing; its 'close' stops this timer
      }
    }, this.#keepAliveMs);
    interval.unref();
    session.once('close', () => clearInterval(interval));
  }

  /** Opens a stream on the shared session; keeps the session ref'd while any stream is open. */
  async #openStream(path: string, method = 'POST', endStream = false, extra: OutgoingHttpHeaders = {}): Promise<ClientHttp2Stream> {
    const session = await this.#connect();
    let stream: ClientHttp2Stream;
    try {
      stream = session.request({ ':method': method, ':path': path, ...this.#baseHeaders, ...extra }, { endStream });
    } catch (err) {
      // The session went away between connect and request (GOAWAY, destroyed).
      if (this.#session === session) this.#session = null;
      throw clientError('MQ_ERR_CONNECTION', err instanceof Error ? err.message : String(err), err);
    }
    const open = (this.#openStreams.get(session) ?? 0) + 1;
    this.#openStreams.set(session, open);
    if (open === 1) session.ref();
    stream.once('close', () => {
      const left = this.#openStreams.get(session)! - 1;
      this.#openStreams.set(session, left);
      if (left === 0 && !session.destroyed) session.unref();
    });
    return stream;
  }

  /** One request on a plain route; resolves with status and the whole body. */
  async #request(method: string, path: string, body?: Buffer): Promise<Response> {
    const headers: OutgoingHttpHeaders = body === undefined ? {} : { 'content-length': body.length, 'content-type': 'application/octet-stream' };
    const stream = await this.#openStream(path, method, body === undefined, headers);
    return new Promise((resolve, reject) => {
      let status = 0;
      let ended = false;
      let size = 0;
      let streamError: Error | null = null;
      const chunks: Buffer[] = [];
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_RESPONSE_BYTES) chunks.push(chunk);
        else stream.close(http2.constants.NGHTTP2_CANCEL);
      });
      stream.on('end', () => (ended = true));
      stream.on('error', (err) => (streamError = err));
      stream.on('close', () => {
        if (size > MAX_RESPONSE_BYTES) {
          return reject(clientError('MQ_ERR_BAD_RESPONSE', `response body larger than ${MAX_RESPONSE_BYTES} bytes`));
        }
        // A server refusing a body early (413) answers and then resets the stream with
        // NO_ERROR while the body is still being sent; its answer is complete all the same.
        if (status !== 0 && (ended || stream.rstCode === http2.constants.NGHTTP2_NO_ERROR)) {
          return resolve({ status, body: Buffer.concat(chunks) });
        }
        const detail = streamError !== null ? (streamError as Error).message : `stream closed before the answer (code ${stream.rstCode ?? 'none'})`;
        reject(clientError('MQ_ERR_CONNECTION', `${method} ${path}: ${detail}`, streamError ?? undefined));
      });
      if (body !== undefined) stream.end(body);
    });
  }
}

function toBuffer(payload: Payload): Buffer {
  if (Buffer.isBuffer(payload)) return payload;
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  throw new MiniqueueError('MQ_ERR_BAD_ARGUMENT', 'payload must be a Buffer, Uint8Array or string');
}

function checkMs(name: string, value: number): number {
  if (!(Number.isFinite(value) && value >= 0)) {
    throw new MiniqueueError('MQ_ERR_BAD_ARGUMENT', `${name} must be a number of ms >= 0, got ${String(value)}`);
  }
  return value;
}

function parseJson(res: Response): unknown {
  try {
    return JSON.parse(res.body.toString('utf8')) as unknown;
  } catch {
    return null;
  }
}

function badResponse(res: Response, expected: string): MiniqueueError {
  return new MiniqueueError(
    'MQ_ERR_BAD_RESPONSE',
    `unexpected response from the server: ${expected}, got ${JSON.stringify(res.body.toString('utf8', 0, Math.min(res.body.length, 200)))}`,
    res.status,
  );
}

/** TLS verification failures get a hint; everything else is a plain connection error. */
function connectError(origin: string, err: NodeJS.ErrnoException): MiniqueueError {
  const code = err.code ?? '';
  const tlsHint = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)
    ? ' (for a self-signed certificate pass its PEM as `ca`, or `rejectUnauthorized: false` in development)'
    : '';
  return clientError('MQ_ERR_CONNECTION', `${origin}: ${err.message}${tlsHint}`, err);
}
