/**
 * Wiring for `--engine jetstream` (issue 15): the HTTP/2 and RESP listeners over a
 * JetStreamEngine, started and stopped together. The process keeps nothing on disk but its
 * certificates: no `--db`, no lock, no log. The listeners are bound first (a port in use fails
 * the start), log their "listening" lines, and answer MQ_ERR_LOADING while the engine connects
 * to the cluster and sets its streams up in the background (`ready`); once an attempt failed
 * (NATS unreachable), MQ_ERR_STORAGE naming NATS instead, until it connects.
 */
import type { Logger } from 'pino';
import { JetStreamEngine } from '../jetstream/jetstream-engine.js';
import { Admission } from '../protocols/admission.js';
import type { Http2Listener } from '../protocols/http2/server.js';
import type { RespListener } from '../protocols/resp/server.js';
import type { Config } from './config.js';
import { logListening, startListeners } from './listeners.js';
import { createMetrics, type ServerMetrics } from './metrics.js';

/** A gateway whose listeners answer while its engine may still be connecting. */
export interface StartingGateway {
  engine: JetStreamEngine;
  http: Http2Listener;
  /** null when `--redis-port -1`. */
  resp: RespListener | null;
  /**
   * Resolves once the engine is connected and its streams are set up; rejects with a BrokerError
   * MQ_ERR_CONFIG (the stream exists and is not miniqueue's) or MQ_ERR_SHUTTING_DOWN (closed first).
   */
  ready: Promise<void>;
  admission: Admission;
  metrics: ServerMetrics;
  /** Graceful stop: stop accepting, NAK what consumers hold, wait for answers pending, disconnect. */
  close(): Promise<void>;
}

/** Starts a gateway (see the file comment). Rejects with listen errors (EADDRINUSE). */
export async function startGateway(config: Config, logger: Logger, tls: { key: Buffer; cert: Buffer } | null): Promise<StartingGateway> {
  const engine = new JetStreamEngine({
    servers: [...config.natsServers],
    ...(config.natsUser === null ? {} : { user: config.natsUser }),
    ...(config.natsPassword === null ? {} : { password: config.natsPassword }),
    ...(config.natsToken === null ? {} : { token: config.natsToken }),
    stream: config.natsStream,
    replicas: config.natsReplicas,
    maxMessageBytes: config.maxMessageBytes,
    ackTimeoutMs: config.ackTimeoutMs,
    maxDeliveries: config.maxDeliveries,
    leaseMs: config.natsLeaseMs,
    logger,
  });
  const admission = new Admission({ maxConnections: config.maxConnections, authToken: config.authToken });
  const metrics = createMetrics({ engine, admission });
  const { http, resp } = await startListeners(engine, admission, metrics, config, logger, tls);
  logListening({ http, resp }, tls !== null, logger);
  const httpListener = http;
  const respListener = resp;
  const ready = new Promise<void>((resolve) => setImmediate(resolve)).then(() => engine.open());
  ready.catch(() => {});
  let closing: Promise<void> | null = null;
  return {
    engine,
    http: httpListener,
    resp: respListener,
    ready,
    admission,
    metrics,
    close() {
      closing ??= (async () => {
        const httpClosed = httpListener.close();
        respListener?.server.close();
        await Promise.all([httpClosed, respListener?.close()]);
        await engine.close();
      })();
      return closing;
    },
  };
}
