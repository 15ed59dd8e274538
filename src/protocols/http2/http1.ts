/**
 * HTTP/1.1 beside HTTP/2 on the HTTP port (SPEC §3, issue 14), as the Go original's listener does:
 * over TLS by ALPN (`h2`, `http/1.1`), with `--no-tls` by the first bytes (h2c-sniffer.ts). Both
 * feed the same Fastify app, so every Fastify route (topics, healthz, metrics, delete, dashboard)
 * answers either version unchanged. This file holds what only HTTP/1.1 needs:
 *
 * - `POST /publish/<topic>` as a Fastify route. HTTP/2 publishes never reach it: server.ts answers
 *   them on the raw `'stream'` event, which HTTP/1.1 requests do not pass through.
 * - `POST /subscribe/<topic>` answered with 505 `MQ_ERR_HTTP2_REQUIRED`: the subscribe stream is
 *   full duplex (commands in while deliveries go out on one request), which HTTP/1.1 clients,
 *   proxies and `fetch` do not reliably do; RESP `SUBSCRIBE` / `RESERVE` are the other way in.
 * - Connection-level rules HTTP/2 applies with GOAWAY: a connection over `--max-connections`
 *   gets one 503 and is closed; with `--auth-token`, a connection without an authorized request
 *   within the auth deadline is closed.
 * - `Expect: 100-continue` (curl sends it with bodies over 1 MiB): a request whose final answer is
 *   known from its headers (a `content-length` over `--max-message-bytes`, a missing or wrong
 *   token) gets that answer at once, without `100 Continue`, so the client never starts sending
 *   a body the server will not read (see {@link expectContinueListener}).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { QueueEngine } from '../../engine/queue-engine.js';
import { badTopicError, isValidTopicName } from '../../engine/topic-name.js';
import { BrokerError } from '../../errors.js';
import type { Admission } from '../admission.js';
import { authRefusal, bearerChallenge } from './routes.js';
import { rawTopicOf, topicFromPath } from './topic-path.js';
import type { Http2Fastify } from './server.js';

/**
 * How long an HTTP/1.1 connection may stay idle between requests, in ms (Node's http default;
 * node:http2's `allowHTTP1` leaves it unset, which would keep idle connections, and their
 * `--max-connections` places, forever).
 */
export const HTTP1_KEEP_ALIVE_TIMEOUT_MS = 5000;

const PUBLISH_PREFIX = '/publish/';
const SUBSCRIBE_PREFIX = '/subscribe/';

/** Lets the HTTP/1.1 publish route take part in the listener's graceful close. */
export interface PublishTracker {
  /** True once the listener is closing: new publishes are refused with MQ_ERR_SHUTTING_DOWN. */
  readonly closing: () => boolean;
  /** A publish was handed to the engine; close() waits for its {@link end}. */
  begin(): void;
  /** The engine answered a publish counted by {@link begin}. */
  end(): void;
}

/**
 * Answers an HTTP/1.1 connection that was over `--max-connections` at accept (the counterpart of
 * HTTP/2's GOAWAY): one `503` with `MQ_ERR_MAX_CONNECTIONS` and `connection: close`, written
 * before the request is read, then the socket is half-closed. Whatever the client sends is read
 * and dropped, so the kernel does not reset the connection before the client has read the answer.
 */
export function refuseHttp1Connection(socket: Socket, body: string): void {
  const head =
    'HTTP/1.1 503 Service Unavailable\r\n' +
    'content-type: application/json; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    'connection: close\r\n\r\n';
  socket.on('error', () => {});
  socket.resume();
  socket.end(head + body);
}

/**
 * With `--auth-token`: destroys `socket` (an HTTP/1.1 connection) unless one of its requests
 * carried the right bearer token within `admission.authDeadlineMs`, counting an `unauthorized`
 * refusal; the HTTP/1.1 form of HTTP/2's closeUnlessAuthorized.
 */
export function closeHttp1UnlessAuthorized(socket: Socket, admission: Admission): void {
  const timer = setTimeout(() => {
    if (socket.destroyed || admission.isAuthorized(socket)) return;
    admission.refuse('http2', 'unauthorized');
    socket.destroy();
  }, admission.authDeadlineMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** A request handler of node:http or of node:http2's compatibility API (Fastify's serves both). */
export type CompatHandler = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void;

/**
 * The `'checkContinue'` listener of the HTTP servers (node:http, and node:http2's, which gets
 * HTTP/1.1 requests over TLS and compatibility-API HTTP/2 requests): a request with `Expect:
 * 100-continue` that would be refused before its body is read (a `content-length` over
 * `maxMessageBytes()`, the engine's limit now: 413 MQ_ERR_TOO_LARGE; with `--auth-token`, no or a wrong token: 401) is
 * answered that at once, counted as a refusal, and, over HTTP/1.1, with `connection: close`, as
 * its unread body cannot be skipped. Every other request gets `100 Continue` and goes to
 * `handler` (node's behaviour without this listener).
 *
 * Why: answering 100 first made curl start a 2 MB upload that the server then refused and
 * stopped reading; about 1 run in 24 the connection was reset before curl read the 413, and curl
 * reported status 100.
 */
export function expectContinueListener(handler: CompatHandler, maxMessageBytes: () => number, admission: Admission): CompatHandler {
  return (req, res) => {
    let refusal = authRefusal(admission, req.url ?? '/', req.headers.authorization);
    if (refusal !== null) {
      admission.refuse('http2', 'unauthorized');
    } else {
      const declared = Number(req.headers['content-length']);
      const limit = maxMessageBytes();
      if (declared > limit) {
        admission.refuse('http2', 'message_too_large');
        refusal = new BrokerError('MQ_ERR_TOO_LARGE', [declared, limit]);
      }
    }
    if (refusal === null) {
      res.writeContinue();
      handler(req, res);
      return;
    }
    const body = JSON.stringify({ error: refusal.message, code: refusal.code, statusCode: refusal.statusCode });
    const headers: Record<string, string | number> = {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    };
    if (refusal.statusCode === 401) headers['www-authenticate'] = bearerChallenge(refusal);
    // A connection header is not allowed in HTTP/2 (RFC 9113 §8.2.2), where the stream ends alone.
    if (req.httpVersionMajor === 1) headers.connection = 'close';
    res.writeHead(refusal.statusCode, headers);
    res.end(body);
  };
}

/** Registers the HTTP/1.1 publish and subscribe routes (see the file comment). */
export function registerHttp1Routes(fastify: Http2Fastify, engine: QueueEngine, publishes: PublishTracker): void {
  fastify.post(`${PUBLISH_PREFIX}*`, (request, reply) => {
    const topic = topicFromPath(request.url, PUBLISH_PREFIX.length);
    if (publishes.closing()) throw new BrokerError('MQ_ERR_SHUTTING_DOWN');
    if (topic === undefined || !isValidTopicName(topic)) throw badTopicError(topic ?? rawTopicOf(request.url, PUBLISH_PREFIX.length));
    // The '*' content-type parser hands over a Buffer; no body at all leaves it undefined.
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    publishes.begin();
    try {
      engine.publish(topic, body, (err) => {
        publishes.end();
        if (err !== null) return reply.send(err);
        reply.code(201).send();
      });
    } catch (err) {
      publishes.end();
      throw err;
    }
    return reply;
  });

  fastify.post(`${SUBSCRIBE_PREFIX}*`, {
    // An onRequest hook answers before Fastify waits for the request body, which a subscriber
    // keeps open. The body is never read, so the connection cannot be reused: close it.
    onRequest: async (request, reply) => {
      reply.header('connection', 'close');
      const topic = topicFromPath(request.url, SUBSCRIBE_PREFIX.length) ?? request.url;
      throw new BrokerError('MQ_ERR_HTTP2_REQUIRED', [String(topic).slice(0, 64)]);
    },
    handler: async () => {
      throw new BrokerError('MQ_ERR_HTTP2_REQUIRED', ['']);
    },
  });
}
