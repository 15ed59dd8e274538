/**
 * The Fastify routes of the HTTP listener, over HTTP/2 and HTTP/1.1 alike (the hot HTTP/2
 * publish/subscribe paths are in server.ts, their HTTP/1.1 forms in http1.ts):
 * `DELETE /:topic` (SPEC §3), `GET /topics`, `GET /healthz` and `GET /metrics` (SPEC §7), the
 * bearer-token check of `--auth-token`, the 404 handler and the one error handler that answers
 * `{"error":message,"code":...,"statusCode":...}`.
 */
import { retryAfterSeconds } from '../../engine/loading-status.js';
import type { QueueEngine } from '../../engine/queue-engine.js';
import { BrokerError } from '../../errors.js';
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Admission } from '../admission.js';
import { isDashboardAssetPath } from './dashboard.js';
import type { Http2Fastify } from './server.js';

/** Renders the Prometheus exposition for `GET /metrics` (src/server/metrics.ts implements it). */
export interface MetricsSource {
  /** The `content-type` of the exposition, e.g. `text/plain; version=0.0.4; charset=utf-8`. */
  readonly contentType: string;
  /** The whole exposition text, computed at call time. */
  render(): Promise<string>;
}

/** What the routes need besides the engine. */
export interface RouteOptions {
  admission: Admission;
  /** Serves `GET /metrics` when given. */
  metrics: MetricsSource | undefined;
}

/**
 * The `www-authenticate` challenge of a 401 (RFC 6750 §3): `error="invalid_token"` only when a
 * token was sent and was wrong.
 */
export function bearerChallenge(err: BrokerError): string {
  return err.code === 'MQ_ERR_UNAUTHORIZED' ? 'Bearer realm="miniqueue", error="invalid_token"' : 'Bearer realm="miniqueue"';
}

/** The health check (SPEC §8). */
const HEALTH_PATH = '/healthz';

/**
 * The paths left open when `--auth-token` is set: `/healthz`, so load balancers can probe without
 * it, and the dashboard's page and static files, which hold no data (the page sends the token
 * itself on its data requests, see dashboard.ts).
 */
function isUnauthenticatedPath(path: string): boolean {
  return path === HEALTH_PATH || isDashboardAssetPath(path);
}

/**
 * The refusal `--auth-token` gives a request for `url` (query included) with this `authorization`
 * header: MQ_ERR_NOAUTH or MQ_ERR_UNAUTHORIZED, or null when it may go on (authentication off,
 * an open path, the right token). Counts nothing and marks nothing authorized.
 */
export function authRefusal(admission: Admission, url: string, authorization: string | undefined): BrokerError | null {
  if (!admission.authRequired) return null;
  const q = url.indexOf('?');
  if (isUnauthenticatedPath(q < 0 ? url : url.slice(0, q))) return null;
  const verdict = admission.checkBearer(authorization);
  if (verdict === 'ok') return null;
  return new BrokerError(verdict === 'missing' ? 'MQ_ERR_NOAUTH' : 'MQ_ERR_UNAUTHORIZED');
}

/**
 * What an authorized request marks as authorized for the auth deadline: the HTTP/2 session, or
 * the socket of an HTTP/1.1 connection (the one the deadline in http1.ts looks at).
 */
function connectionOf(raw: Http2ServerRequest | IncomingMessage): object {
  return 'stream' in raw && raw.stream !== undefined ? raw.stream.session! : raw.socket;
}

/** The subset of a Fastify reply used here (the reply type is generic over the raw server). */
interface ReplyLike {
  code(statusCode: number): ReplyLike;
  type(contentType: string): ReplyLike;
  header(name: string, value: string): ReplyLike;
  send(payload: unknown): unknown;
}

function send(reply: ReplyLike, err: BrokerError): unknown {
  if (err.statusCode === 401) reply.header('www-authenticate', bearerChallenge(err));
  return reply
    .code(err.statusCode)
    .type('application/json; charset=utf-8')
    .send({ error: err.message, code: err.code, statusCode: err.statusCode });
}

/** `/healthz` while the engine is loading: 503 `{"status":"loading"}` with a Retry-After from its progress. */
function sendLoadingHealth(reply: ReplyLike, engine: QueueEngine): unknown {
  return reply
    .header('retry-after', String(retryAfterSeconds(engine.loadingProgress)))
    .code(503)
    .type('application/json; charset=utf-8')
    .send({ status: 'loading' });
}

/** Registers the routes on `fastify`. */
export function registerRoutes(fastify: Http2Fastify, engine: QueueEngine, opts: RouteOptions): void {
  const { admission } = opts;
  // Bodies are opaque bytes; no route here reads one, but a body must never fail parsing.
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  fastify.setErrorHandler((error, _request, reply) => {
    if (error instanceof BrokerError) return send(reply, error);
    const e = error as { statusCode?: number; code?: string; message: string };
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      admission.refuse('http2', 'message_too_large');
      // Over the body limit (`--max-message-bytes`), so over the engine's, which may be lower.
      return send(reply, new BrokerError('MQ_ERR_TOO_LARGE', [`more than ${fastify.initialConfig.bodyLimit}`, engine.maxMessageBytes]));
    }
    // An error without a BrokerError's mapping: MQ_ERR_INTERNAL of src/errors.ts, with its own message.
    const status = e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
    return reply.code(status).send({ error: e.message, code: e.code ?? ('MQ_ERR_INTERNAL' satisfies BrokerError['code']), statusCode: status });
  });

  fastify.setNotFoundHandler((request, reply) => {
    send(reply, new BrokerError('MQ_ERR_NOT_FOUND', [`${request.method} ${request.url}`]));
  });

  // Registered before the loading check: an unauthenticated client learns nothing, not even that.
  fastify.addHook('onRequest', async (request) => {
    if (!admission.authRequired) return;
    const q = request.url.indexOf('?');
    if (isUnauthenticatedPath(q < 0 ? request.url : request.url.slice(0, q))) return;
    const verdict = admission.checkBearer(request.headers.authorization);
    if (verdict === 'ok') {
      // request.raw is an http.IncomingMessage for HTTP/1.1 requests, whatever Fastify's type says.
      admission.markAuthorized(connectionOf(request.raw as Http2ServerRequest | IncomingMessage));
      return;
    }
    admission.refuse('http2', 'unauthorized');
    throw new BrokerError(verdict === 'missing' ? 'MQ_ERR_NOAUTH' : 'MQ_ERR_UNAUTHORIZED');
  });

  // While the engine recovers (the log is replayed, SPEC §8): every route answers 503
  // MQ_ERR_LOADING, /healthz `{"status":"loading"}`, both with a Retry-After from the replay's
  // progress. The dashboard page loads during a replay too, and says so (its data route answers 503).
  fastify.addHook('onRequest', async (request, reply) => {
    if (!engine.loading || isDashboardAssetPath(request.url)) return;
    const q = request.url.indexOf('?');
    if ((q < 0 ? request.url : request.url.slice(0, q)) === HEALTH_PATH) return sendLoadingHealth(reply, engine);
    reply.header('retry-after', String(retryAfterSeconds(engine.loadingProgress)));
    return send(reply, new BrokerError('MQ_ERR_LOADING'));
  });

  // 503 naming the storage failure while writes fail, 200 again once they work (SPEC §8).
  fastify.get('/healthz', async (_request, reply) => {
    const { loading, storageFailure: failure } = await engine.health();
    // Not reached while loading (the hook above answers first); an engine may say so all the same.
    if (loading) return sendLoadingHealth(reply, engine);
    if (failure === null) return { status: 'ok' };
    const err = new BrokerError('MQ_ERR_STORAGE', [failure.message], { cause: failure });
    return reply
      .code(err.statusCode)
      .type('application/json; charset=utf-8')
      .send({ status: 'storage failing', error: err.message, code: err.code, statusCode: err.statusCode });
  });

  fastify.get('/topics', async () => engine.topicNames().map((name) => engine.topicStats(name)));

  const metrics = opts.metrics;
  if (metrics !== undefined) {
    fastify.get('/metrics', async (_request, reply) => {
      const text = await metrics.render();
      return reply.code(200).type(metrics.contentType).send(text);
    });
  }

  fastify.delete<{ Params: { topic: string } }>('/:topic', (request, reply) => {
    const { topic } = request.params;
    engine.deleteTopic(topic, (err, existed) => {
      if (err !== null) return send(reply, err);
      reply.code(200).send({ topic, deleted: existed });
    });
    return reply;
  });
}
