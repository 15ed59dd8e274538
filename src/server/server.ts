/**
 * Wiring: one broker, the HTTP/2 listener and the RESP listener, started and stopped together.
 * Used by main.ts and by the integration tests (which start real servers on ephemeral ports).
 */
import type { Logger } from 'pino';
import { Broker } from '../broker/broker.js';
import type { ReplayStats } from '../log/segment-log.js';
import { Admission } from '../protocols/admission.js';
import { startHttp2Listener, type Http2Listener } from '../protocols/http2/server.js';
import { startRespListener, type RespListener } from '../protocols/resp/server.js';
import type { Config } from './config.js';
import { lockDataDir } from './lock.js';
import { createDashboardSource } from './dashboard-data.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import { VERSION } from './version.js';

export interface RunningServer {
  broker: Broker;
  http: Http2Listener;
  /** null when `--redis-port -1`. */
  resp: RespListener | null;
  replay: ReplayStats;
  /** `--max-connections`, `--auth-token` and the connection and refusal counters of both listeners. */
  admission: Admission;
  /** The registry behind `GET /metrics`. */
  metrics: ServerMetrics;
  /** Graceful stop (SPEC §1): stop accepting, finish in-flight writes, fsync, close. */
  close(): Promise<void>;
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
 * Starts miniqueue, in this order: bind the listeners (so a port in use fails the start before
 * the data directory is touched), take the data directory's lock, log one "listening" line per
 * listener, replay the log. Nothing is logged as listening before every check that can refuse the
 * start has passed (issue 13); the listeners answer MQ_ERR_LOADING until the log has been replayed.
 * Rejects with listen errors (EADDRINUSE), ConfigError (`--db` cannot be created),
 * DataDirLockedError, LogCorruptError, and fs errors; on rejection everything started so far is
 * closed again.
 */
export async function startServer(
  config: Config,
  logger: Logger,
  tls: { key: Buffer; cert: Buffer } | null,
): Promise<RunningServer> {
  const broker = new Broker({
    dir: config.db,
    fsync: config.fsync,
    fsyncIntervalMs: config.fsyncIntervalMs,
    segmentBytes: config.segmentBytes,
    maxMessageBytes: config.maxMessageBytes,
    periodMs: config.periodMs,
    repair: config.repair,
    compaction: { enabled: config.compaction },
    ackTimeoutMs: config.ackTimeoutMs,
    maxDeliveries: config.maxDeliveries,
    logger,
  });
  const admission = new Admission({ maxConnections: config.maxConnections, authToken: config.authToken });
  const metrics = createMetrics({ broker, admission });
  let http: Http2Listener | null = null;
  let unlock: (() => void) | null = null;
  let resp: RespListener | null = null;
  try {
    http = await startHttp2Listener({
      broker,
      host: config.host,
      port: config.port,
      tls,
      maxMessageBytes: config.maxMessageBytes,
      logger,
      admission,
      metrics,
      dashboard: createDashboardSource({ broker, admission, metrics, version: VERSION, fsyncPolicy: config.fsync }),
    }).catch((err: unknown): never => {
      throw withListenerFlags(err, '--port', '--host');
    });
    if (config.redisPort !== -1) {
      resp = await startRespListener({
        broker,
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
    }
    unlock = await lockDataDir(config.db, logger);
    logger.info({ protocol: tls === null ? 'h2c' : 'h2', address: http.address, port: http.port }, 'listening');
    if (resp !== null) logger.info({ protocol: 'resp', address: resp.address, port: resp.port }, 'listening');
    const replay = broker.open();
    broker.writer.onFsync = (durationMs) => metrics.observeFsync(durationMs);
    const httpListener = http;
    const respListener = resp;
    let closing: Promise<void> | null = null;
    return {
      broker,
      http: httpListener,
      resp: respListener,
      replay,
      admission,
      metrics,
      close() {
        closing ??= (async () => {
          const httpClosed = httpListener.close();
          respListener?.server.close();
          await broker.writer.drain();
          await Promise.all([httpClosed, respListener?.close()]);
          await broker.close();
          unlock?.();
        })();
        return closing;
      },
    };
  } catch (err) {
    await Promise.allSettled([http?.close(0), resp?.close()]);
    unlock?.();
    throw err;
  }
}
