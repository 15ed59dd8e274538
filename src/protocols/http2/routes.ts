/**
 * The Fastify routes of the HTTP/2 listener (the hot publish/subscribe paths are in server.ts):
 * `DELETE /:topic` (SPEC §3), `GET /topics` and `GET /healthz` (SPEC §7), the 404 handler and
 * the one error handler that answers `{"error":message,"code":...,"statusCode":...}`.
 */
import type { Broker } from '../../broker/broker.js';
import { BrokerError } from '../../errors.js';
import type { Http2Fastify } from './server.js';

/** The subset of a Fastify reply used here (the reply type is generic over the raw server). */
interface ReplyLike {
  code(statusCode: number): ReplyLike;
  type(contentType: string): ReplyLike;
  send(payload: unknown): unknown;
}

function send(reply: ReplyLike, err: BrokerError): unknown {
  return reply
    .code(err.statusCode)
    .type('application/json; charset=utf-8')
    .send({ error: err.message, code: err.code, statusCode: err.statusCode });
}

/** Registers the routes on `fastify`. */
export function registerRoutes(fastify: Http2Fastify, broker: Broker): void {
  // Bodies are opaque bytes; no route here reads one, but a body must never fail parsing.
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  fastify.setErrorHandler((error, _request, reply) => {
    if (error instanceof BrokerError) return send(reply, error);
    const e = error as { statusCode?: number; code?: string; message: string };
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return send(reply, new BrokerError('MQ_ERR_TOO_LARGE', ['more than the limit', 'of']));
    }
    const status = e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
    return reply.code(status).send({ error: e.message, code: e.code ?? 'MQ_ERR_INTERNAL', statusCode: status });
  });

  fastify.setNotFoundHandler((request, reply) => {
    send(reply, new BrokerError('MQ_ERR_NOT_FOUND', [`${request.method} ${request.url}`]));
  });

  fastify.addHook('onRequest', async () => {
    if (broker.loading) throw new BrokerError('MQ_ERR_LOADING');
  });

  fastify.get('/healthz', async () => ({ status: 'ok' }));

  fastify.get('/topics', async () => broker.topicNames().map((name) => broker.topicStats(name)));

  fastify.delete<{ Params: { topic: string } }>('/:topic', (request, reply) => {
    const { topic } = request.params;
    broker.deleteTopic(topic, (err, existed) => {
      if (err !== null) return send(reply, err);
      reply.code(200).send({ topic, deleted: existed });
    });
    return reply;
  });
}
