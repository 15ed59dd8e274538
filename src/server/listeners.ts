/**
 * The two protocol listeners over one engine, as both start paths need them (server.ts for the
 * segment log, gateway.ts for NATS JetStream): HTTP/2 (+ HTTP/1.1) on `--port`, RESP on
 * `--redis-port` unless it is -1, sharing one admission budget, the metrics and the dashboard.
 */
import type { Logger } from 'pino';
import type { QueueEngine } from '../engine/queue-engine.js';
import type { Admission } from '../protocols/admission.js';
import { startHttp2Listener, type Http2Listener } from '../protocols/http2/server.js';
import { startRespListener, type RespListener } from '../protocols/resp/server.js';
import type { Config } from './config.js';
import { createDashboardSource } from './dashboard-data.js';
import type { ServerMetrics } from './metrics.js';
import { VERSION } from './version.js';

/** Both listeners, bound; `resp` is null with `--redis-port -1`. */
export interface Listeners {
  http: Http2Listener;
  resp: RespListener | null;
}

/**
 * Names the flags behind a listen error (`portFlag`, `hostFlag` properties), so the one line
 * printed for EADDRINUSE, EACCES or an unknown host says which listener failed.
 */
function withListenerFlags(err: unknown, portFlag: string, hostFlag: string): unknown {
  if (err instanceof Error) Object.assign(err, { portFlag, hostFlag });
  return err;
}

/**
 * Binds both listeners over `engine`. Rejects with the listen error (carrying `portFlag` /
 * `hostFlag`) after closing whatever was bound; logs nothing (the caller logs "listening" once
 * everything it needs before serving, such as the data directory's lock, is taken).
 */
export async function startListeners(
  engine: QueueEngine,
  admission: Admission,
  metrics: ServerMetrics,
  config: Config,
  logger: Logger,
  tls: { key: Buffer; cert: Buffer } | null,
): Promise<Listeners> {
  let http: Http2Listener | null = null;
  try {
    http = await startHttp2Listener({
      engine,
      host: config.host,
      port: config.port,
      tls,
      maxMessageBytes: config.maxMessageBytes,
      logger,
      admission,
      metrics,
      dashboard: createDashboardSource({ engine, admission, metrics, version: VERSION, fsyncPolicy: config.fsync }),
    }).catch((err: unknown): never => {
      throw withListenerFlags(err, '--port', '--host');
    });
    if (config.redisPort === -1) return { http, resp: null };
    const resp = await startRespListener({
      engine,
      host: config.redisHost,
      port: config.redisPort,
      maxMessageBytes: config.maxMessageBytes,
      logger,
      version: VERSION,
      admission,
      maxCommandBytes: config.maxCommandBytes,
      maxInputBytes: config.maxInputBytes,
    }).catch((err: unknown): never => {
      throw withListenerFlags(err, '--redis-port', '--redis-host');
    });
    return { http, resp };
  } catch (err) {
    await http?.close(0);
    throw err;
  }
}

/** Logs one "listening" line per bound listener. */
export function logListening(listeners: Listeners, tls: boolean, logger: Logger): void {
  const { http, resp } = listeners;
  logger.info({ protocol: tls ? 'h2' : 'h2c', address: http.address, port: http.port }, 'listening');
  if (resp !== null) logger.info({ protocol: 'resp', address: resp.address, port: resp.port }, 'listening');
}
