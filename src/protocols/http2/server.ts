/**
 * The HTTP/2 listener (SPEC §3): Fastify with `http2: true`, TLS (ALPN h2) or h2c, and HTTP/1.1 on
 * the same port (ALPN `http/1.1` over TLS, the first bytes with `--no-tls`; see http1.ts).
 *
 * The two hot routes, `POST /publish/:topic` and `POST /subscribe/:topic`, are answered on the
 * raw `'stream'` event of the node:http2 server that we create through Fastify's
 * `serverFactory`; every other request goes through Fastify's compatibility handler. Why:
 * FINDINGS.md measured Fastify's per-request work at about the cost of the whole bare server
 * (11-18k vs 26-29k req/s here), and the publish target is >= 0.7x bare; and Fastify reads a
 * whole POST body before any handler runs, which a full-duplex subscribe cannot allow.
 */
import http from 'node:http';
import http2, { type Http2Session, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { retryAfterSeconds } from '../../engine/loading-status.js';
import type { QueueEngine } from '../../engine/queue-engine.js';
import { badTopicError, isValidTopicName } from '../../engine/topic-name.js';
import { BrokerError } from '../../errors.js';
import type { Admission } from '../admission.js';
import { closeUnlessAuthorized, refuseSession } from './session-refusal.js';
import { SubscribeStream } from './subscribe-stream.js';
import { bearerChallenge, registerRoutes, type MetricsSource } from './routes.js';
import { sniffProtocol } from './h2c-sniffer.js';
import {
  HTTP1_KEEP_ALIVE_TIMEOUT_MS,
  closeHttp1UnlessAuthorized,
  expectContinueListener,
  refuseHttp1Connection,
  registerHttp1Routes,
  type CompatHandler,
} from './http1.js';
import { rawTopicOf, topicFromPath } from './topic-path.js';
import { registerDashboard, type DashboardSource } from './dashboard.js';
import { lazySchemaController } from './lazy-schema-compilers.js';

export interface Http2ListenerOptions {
  /** The queues (the only part of the server the listener talks to). */
  engine: QueueEngine;
  host: string;
  port: number;
  /** PEM key and certificate; null serves h2c (cleartext, prior knowledge). */
  tls: { key: Buffer; cert: Buffer } | null;
  maxMessageBytes: number;
  logger: Logger;
  /** Connection budget, token check and refusal counters shared with the RESP listener. */
  admission: Admission;
  /** Serves `GET /metrics` when given; without it that route answers 404. */
  metrics?: MetricsSource;
  /** Serves `GET /dashboard` and its data when given; without it those routes answer 404. */
  dashboard?: DashboardSource;
  /**
   * How long from TCP accept to a finished TLS handshake (TLS) or to the first bytes that tell
   * HTTP/2 from HTTP/1.1 (`--no-tls`), in ms. Default {@link TLS_HANDSHAKE_TIMEOUT_MS}.
   */
  tlsHandshakeTimeoutMs?: number;
}

/**
 * SETTINGS_MAX_CONCURRENT_STREAMS we advertise (Node's default is unlimited). Each open publish
 * stream may buffer up to `--max-message-bytes` of body, so this bounds what one connection can
 * make the server hold; Go's HTTP/2 server (the original's) allows 250, nginx 128. Every
 * subscription is a stream too, so one client session holds at most this many at once.
 */
export const MAX_CONCURRENT_STREAMS = 256;

/**
 * How long a connection over `--max-connections` may stay open at all, from TCP accept, in ms:
 * time to finish the TLS handshake and read the GOAWAY. Refused connections are not counted as
 * open, so without this bound a client that never finishes its handshake could pile them up.
 */
const REFUSED_CONNECTION_MAX_MS = 3000;
/**
 * How long a TLS client may take from TCP accept to a finished handshake before its socket is
 * destroyed, in ms. Node's default is 120 s; a connection holds a `--max-connections` slot from
 * accept, so a client that opens connections and never sends a ClientHello (slowloris) would hold
 * them that long. 10 s leaves ample time for a handshake over a slow link.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** The answer to a publish, shared by every stream (node:http2 copies what it sends). */
const HEADERS_201: http2.OutgoingHttpHeaders = Object.freeze({ ':status': 201 });
const END_STREAM: http2.ServerStreamResponseOptions = Object.freeze({ endStream: true });

/** Fastify over node:http2 (TLS or h2c; the secure server's type is a superset). */
export type Http2Fastify = FastifyInstance<http2.Http2Server, http2.Http2ServerRequest, http2.Http2ServerResponse>;

export interface Http2Listener {
  fastify: Http2Fastify;
  port: number;
  address: string;
  /** Stops accepting, lets in-flight publishes finish (up to `graceMs`), then closes every session and connection. */
  close(graceMs?: number): Promise<void>;
}

/** Serialises an error as the JSON body of SPEC §3: `{"error":message,"code":...,"statusCode":...}`. */
export function errorBody(err: BrokerError): string {
  return JSON.stringify({ error: err.message, code: err.code, statusCode: err.statusCode });
}

/** `chunk` itself when it owns its whole ArrayBuffer, else a copy of its bytes. */
function ownedCopy(chunk: Buffer): Buffer {
  return chunk.byteOffset === 0 && chunk.length === chunk.buffer.byteLength ? chunk : Buffer.from(chunk);
}

/** `retryAfterSeconds`: sent as `Retry-After` (a 503 MQ_ERR_LOADING). */
function respondError(stream: ServerHttp2Stream, err: BrokerError, retryAfterSeconds?: number): void {
  if (stream.destroyed || stream.closed) return;
  if (!stream.headersSent) {
    const headers: http2.OutgoingHttpHeaders = { ':status': err.statusCode, 'content-type': 'application/json; charset=utf-8' };
    if (err.statusCode === 401) headers['www-authenticate'] = bearerChallenge(err);
    if (retryAfterSeconds !== undefined) headers['retry-after'] = String(retryAfterSeconds);
    stream.respond(headers);
  }
  stream.end(errorBody(err));
}

function toBrokerError(err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  return new BrokerError('MQ_ERR_STORAGE', [err instanceof Error ? err.message : String(err)], { cause: err });
}

/** The local and remote address and port of a connected socket (or the TLS socket over it). */
interface SocketAddresses {
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}

/**
 * Names a TCP connection by its 4-tuple, or returns undefined when the socket no longer knows
 * its peer (reset before we looked).
 *
 * Why the 4-tuple: the admission decision is made on the raw socket of the server's
 * 'connection' event, and the 'session' event hands us `session.socket`, which for TLS is the
 * TLSSocket wrapping that raw socket and for h2c is a Proxy of it; Node has no public API that
 * leads from either back to the raw socket (TLSSocket's `_parent` is internal). The 4-tuple is
 * public (TLSSocket forwards getpeername/getsockname to the socket it wraps), the same on both
 * objects, and unique among the TCP connections open at one moment, which is all we need: the
 * entry lives exactly as long as the raw socket. Unlike remoteAddress:remotePort alone, it also
 * stays unique on a listener bound to several local addresses (0.0.0.0, ::).
 */
function connectionKey(socket: SocketAddresses): string | undefined {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (localAddress === undefined || localPort === undefined || remoteAddress === undefined || remotePort === undefined) return undefined;
  return `${localAddress}|${localPort}|${remoteAddress}|${remotePort}`;
}

/** One accepted TCP connection of the HTTP/2 listener. */
interface TcpConnection {
  /** Whether it took a place in the `--max-connections` budget (released when the socket closes). */
  readonly admitted: boolean;
}

/**
 * Starts the HTTP/2 listener and resolves once it is listening. Rejects with the listen error
 * (EADDRINUSE, EACCES).
 */
export async function startHttp2Listener(opts: Http2ListenerOptions): Promise<Http2Listener> {
  const { engine, logger, maxMessageBytes, admission } = opts;
  const sessions = new Set<Http2Session>();
  /**
   * Every accepted TCP connection, by {@link connectionKey} (those whose peer was unknown at
   * accept are only in `sockets`). A connection counts toward `--max-connections` from accept, so
   * one still in its TLS handshake (or that never finishes it) holds a place.
   */
  const connections = new Map<string, TcpConnection>();
  const sockets = new Set<Socket>();
  let inFlightPublishes = 0;
  let closing = false;
  let idleResolve: (() => void) | null = null;

  const onStreamError = (err: Error): void => logger.debug({ err }, 'http2 stream error');

  function publishDone(): void {
    inFlightPublishes--;
    if (inFlightPublishes === 0 && idleResolve !== null) idleResolve();
  }

  /**
   * Takes an HTTP/1.1 connection (ALPN `http/1.1` or none, or sniffed on h2c): false after
   * answering it 503 when it was over `--max-connections` at accept; else true, with the
   * `--auth-token` deadline armed.
   */
  function acceptHttp1(socket: Socket): boolean {
    const key = connectionKey(socket);
    const conn = key === undefined ? undefined : connections.get(key);
    if (conn === undefined || !conn.admitted) {
      refuseHttp1Connection(socket, errorBody(new BrokerError('MQ_ERR_MAX_CONNECTIONS')));
      return false;
    }
    if (admission.authRequired) closeHttp1UnlessAuthorized(socket, admission);
    return true;
  }
  /** HTTP/1.1 connections of an h2c listener (over TLS, node:http2's allowHTTP1 serves them). */
  let h2cHttp1Server: http.Server | null = null;

  function handlePublish(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, topic: string): void {
    // The engine's limit: `--max-message-bytes`, or lower (the jetstream engine fits max_payload).
    const limit = engine.maxMessageBytes;
    const declared = Number(headers['content-length']);
    if (declared > limit) {
      admission.refuse('http2', 'message_too_large');
      respondError(stream, new BrokerError('MQ_ERR_TOO_LARGE', [declared, limit]));
      stream.close(http2.constants.NGHTTP2_NO_ERROR);
      return;
    }
    let first: Buffer | null = null;
    let chunks: Buffer[] | null = null;
    let total = 0;
    let refused = false;
    stream.on('data', (chunk: Buffer) => {
      if (refused) return;
      total += chunk.length;
      if (total > limit) {
        refused = true;
        admission.refuse('http2', 'message_too_large');
        respondError(stream, new BrokerError('MQ_ERR_TOO_LARGE', [`more than ${limit}`, limit]));
        stream.close(http2.constants.NGHTTP2_NO_ERROR);
        return;
      }
      if (first === null) first = chunk;
      else (chunks ??= [first]).push(chunk);
    });
    stream.on('end', () => {
      if (refused) return;
      // A body shorter or longer than its content-length never gets here: nghttp2 resets such a
      // stream with PROTOCOL_ERROR (RFC 9113 §8.1.1), so a cut-off upload is never published.
      if (stream.destroyed) return;
      // A single DATA chunk is a view into node:http2's read buffer of the whole socket read
      // (up to 64 KiB of other streams' frames): the engine keeps the body, so copy it rather
      // than pin that buffer for as long as the message lives in the payload cache.
      const body = chunks !== null ? Buffer.concat(chunks, total) : first === null ? Buffer.alloc(0) : ownedCopy(first);
      inFlightPublishes++;
      try {
        engine.publish(topic, body, (err) => {
          publishDone();
          if (err !== null) return respondError(stream, err);
          if (!stream.destroyed && !stream.closed) stream.respond(HEADERS_201, END_STREAM);
        });
      } catch (err) {
        publishDone();
        respondError(stream, toBrokerError(err));
      }
    });
  }

  /** The raw fast path; returns false to hand the stream to Fastify. */
  function onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean {
    if (headers[':method'] !== 'POST') return false;
    const path = headers[':path'] ?? '';
    const isPublish = path.startsWith('/publish/');
    if (!isPublish && !path.startsWith('/subscribe/')) return false;
    stream.on('error', onStreamError);
    if (admission.authRequired) {
      const verdict = admission.checkBearer(headers.authorization);
      if (verdict !== 'ok') {
        admission.refuse('http2', 'unauthorized');
        respondError(stream, new BrokerError(verdict === 'missing' ? 'MQ_ERR_NOAUTH' : 'MQ_ERR_UNAUTHORIZED'));
        return true;
      }
      admission.markAuthorized(stream.session!);
    }
    const prefixLength = isPublish ? 9 : 11;
    const topic = topicFromPath(path, prefixLength);
    if (closing) {
      respondError(stream, new BrokerError('MQ_ERR_SHUTTING_DOWN'));
      return true;
    }
    if (engine.loading) {
      respondError(stream, new BrokerError('MQ_ERR_LOADING'), retryAfterSeconds(engine.loadingProgress));
      return true;
    }
    if (topic === undefined || !isValidTopicName(topic)) {
      // The error RESP gives for the same name; an undecodable one is shown as sent.
      respondError(stream, badTopicError(topic ?? rawTopicOf(path, prefixLength)));
      return true;
    }
    if (isPublish) handlePublish(stream, headers, topic);
    else new SubscribeStream(stream, topic, engine, logger);
    return true;
  }

  const fastify: Http2Fastify = Fastify({
    http2: true,
    logger: false,
    bodyLimit: maxMessageBytes,
    // A topic name is up to 255 bytes, up to 765 characters percent-encoded (`DELETE /:topic`);
    // find-my-way's default of 100 answered longer names 414.
    routerOptions: { maxParamLength: 1024 },
    schemaController: lazySchemaController,
    serverFactory: (handler) => {
      const settings = { maxConcurrentStreams: MAX_CONCURRENT_STREAMS };
      const firstBytesTimeoutMs = opts.tlsHandshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS;
      const server = opts.tls === null
        ? http2.createServer({ settings }, handler)
        : http2.createSecureServer(
          {
            settings,
            key: opts.tls.key,
            cert: opts.tls.cert,
            allowHTTP1: true,
            handshakeTimeout: firstBytesTimeoutMs,
          },
          handler,
        );
      // `Expect: 100-continue`: refuse what the headers already refuse before asking for the body.
      const onCheckContinue = expectContinueListener(handler as unknown as CompatHandler, () => engine.maxMessageBytes, admission);
      server.on('checkContinue', onCheckContinue);
      if (opts.tls === null) {
        // h2c: node:http2's own 'connection' listener starts a session at once; run it only for
        // connections that open with the HTTP/2 preface and give the others to an HTTP/1.1 server
        // with the same handler.
        const h2cConnection = server.listeners('connection') as ((socket: Socket) => void)[];
        server.removeAllListeners('connection');
        // Fastify's handler serves HTTP/1.1 requests too (its documented allowHTTP1 fallback).
        const http1Server = http.createServer(handler as unknown as http.RequestListener);
        http1Server.keepAliveTimeout = HTTP1_KEEP_ALIVE_TIMEOUT_MS;
        http1Server.on('checkContinue', onCheckContinue);
        // Node checks headersTimeout/requestTimeout (60 s / 300 s) from a timer it starts on
        // 'listening'; this server never listens itself (its sockets come from `server`).
        http1Server.emit('listening');
        h2cHttp1Server = http1Server;
        server.on('connection', (socket: Socket) => {
          sniffProtocol(socket, {
            timeoutMs: firstBytesTimeoutMs,
            onProtocol: (s, protocol) => {
              if (protocol === 'h2c') {
                for (const listener of h2cConnection) listener.call(server, s);
              } else if (acceptHttp1(s)) {
                http1Server.emit('connection', s);
                s.resume();
              }
            },
          });
        });
      } else {
        (server as http2.Http2SecureServer & { keepAliveTimeout?: number }).keepAliveTimeout = HTTP1_KEEP_ALIVE_TIMEOUT_MS;
        // ALPN `http/1.1` (or none): node:http2 serves HTTP/1.1 from this event; refuse or arm
        // the auth deadline first, as the 'session' listener below does for HTTP/2.
        const secure = server.listeners('secureConnection') as ((socket: TLSSocket) => void)[];
        server.removeAllListeners('secureConnection');
        server.on('secureConnection', (socket: TLSSocket) => {
          if (socket.alpnProtocol !== 'h2' && !acceptHttp1(socket)) return;
          for (const listener of secure) listener.call(server, socket);
        });
      }
      // The compatibility layer (which Fastify uses) listens on 'stream'; route the hot paths
      // before it, using only the public EventEmitter API.
      const compat = server.listeners('stream') as ((...args: unknown[]) => void)[];
      server.removeAllListeners('stream');
      server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
        if (onStream(stream, headers)) return;
        for (const listener of compat) listener.call(server, stream, headers, flags, rawHeaders);
      });
      // Prepended: for h2c, node:http2's own 'connection' listener creates the session (and emits
      // 'session') synchronously, so the admission decision must be made before it runs.
      server.prependListener('connection', (socket: Socket) => {
        // Reading the addresses now also caches the peer name, so it is known after a reset too.
        const key = connectionKey(socket);
        const conn: TcpConnection = { admitted: admission.admit('http2') };
        sockets.add(socket);
        if (key !== undefined) connections.set(key, conn);
        const refusedTimer = conn.admitted ? null : setTimeout(() => socket.destroy(), REFUSED_CONNECTION_MAX_MS).unref();
        // 'close' is emitted once per socket, also after a TLS handshake timeout or a destroy(),
        // so the place is given back exactly once.
        socket.once('close', () => {
          sockets.delete(socket);
          if (key !== undefined && connections.get(key) === conn) connections.delete(key);
          if (refusedTimer !== null) clearTimeout(refusedTimer);
          if (conn.admitted) admission.release('http2');
        });
      });
      server.on('session', (session: Http2Session) => {
        session.on('error', (err) => logger.debug({ err }, 'http2 session error'));
        // Refused sessions are tracked too, so close() does not wait for their grace period.
        sessions.add(session);
        session.on('close', () => sessions.delete(session));
        const key = connectionKey(session.socket);
        const conn = key === undefined ? undefined : connections.get(key);
        // Not found only if the socket is already gone (its peer unknown): refusing costs nothing then.
        if (conn === undefined || !conn.admitted) refuseSession(session);
        else if (admission.authRequired) closeUnlessAuthorized(session, admission);
      });
      return server as never;
    },
  });
  registerRoutes(fastify, engine, { admission, metrics: opts.metrics });
  registerHttp1Routes(fastify, engine, {
    closing: () => closing,
    begin: () => void inFlightPublishes++,
    end: publishDone,
  });
  if (opts.dashboard !== undefined) registerDashboard(fastify, opts.dashboard);
  await fastify.listen({ host: opts.host, port: opts.port });
  // The "listening" line is logged by the caller once the whole start has succeeded (issue 13).
  const address = fastify.server.address() as AddressInfo;

  return {
    fastify,
    port: address.port,
    address: address.address,
    async close(graceMs = 3000): Promise<void> {
      closing = true;
      const closed = fastify.close();
      if (inFlightPublishes > 0) {
        await new Promise<void>((resolve) => {
          idleResolve = resolve;
          setTimeout(resolve, graceMs).unref();
        });
      }
      for (const session of sessions) session.destroy();
      // Connections that never became a session (still in, or stuck in, the TLS handshake), and
      // HTTP/1.1 connections.
      for (const socket of sockets) socket.destroy();
      h2cHttp1Server?.close();
      await closed;
    },
  };
}
