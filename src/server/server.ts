/**
 * Wiring: one broker, the HTTP/2 listener and the RESP listener, started and stopped together.
 * Used by main.ts and by the integration tests (which start real servers on ephemeral ports).
 */
import type { Logger } from 'pino';
import { Broker } from '../broker/broker.js';
import type { QueueEngine } from '../engine/queue-engine.js';
import type { ReplayStats } from '../log/segment-log.js';
import { Admission } from '../protocols/admission.js';
import type { Http2Listener } from '../protocols/http2/server.js';
import type { RespListener } from '../protocols/resp/server.js';
import type { Config } from './config.js';
import { lockDataDir } from './lock.js';
import { logListening, startListeners } from './listeners.js';
import { createMetrics, type ServerMetrics } from './metrics.js';

/** A server whose listeners answer while its log may still be replayed (see {@link startListening}). */
export interface StartingServer {
  broker: Broker;
  http: Http2Listener;
  /** null when `--redis-port -1`. */
  resp: RespListener | null;
  /**
   * Settles when the replay has ended: resolves with its statistics once the broker is open;
   * rejects with LogCorruptError or an fs error (the listeners are closed and the lock released by
   * then), or with an AbortError when {@link close} was called during the replay.
   */
  ready: Promise<ReplayStats>;
  /** `--max-connections`, `--auth-token` and the connection and refusal counters of both listeners. */
  admission: Admission;
  /** The registry behind `GET /metrics`. */
  metrics: ServerMetrics;
  /**
   * Graceful stop (SPEC §1): stop accepting, finish in-flight writes, fsync, close. During the
   * replay it stops the replay at its next slice first.
   */
  close(): Promise<void>;
}

/** A server whose log has been replayed. */
export interface RunningServer extends StartingServer {
  replay: ReplayStats;
}

/**
 * Starts miniqueue and resolves once its log has been replayed: {@link startListening}, then its
 * `ready`. Rejects as both do; on rejection everything started so far is closed again.
 */
export async function startServer(
  config: Config,
  logger: Logger,
  tls: { key: Buffer; cert: Buffer } | null,
): Promise<RunningServer> {
  const server = await startListening(config, logger, tls);
  const replay = await server.ready;
  return { ...server, replay };
}

/**
 * Starts miniqueue, in this order: bind the listeners (so a port in use fails the start before
 * the data directory is touched), take the data directory's lock, log one "listening" line per
 * listener, then replay the log in slices (Broker.openSliced) in the background: resolves right
 * after the "listening" lines, and `ready` settles when the replay has ended. Nothing is logged as
 * listening before every check that can refuse the start has passed (issue 13); the listeners
 * answer MQ_ERR_LOADING until the log has been replayed (SPEC §8).
 * Rejects with listen errors (EADDRINUSE), ConfigError (`--db` cannot be created) and
 * DataDirLockedError; on rejection everything started so far is closed again.
 */
export async function startListening(
  config: Config,
  logger: Logger,
  tls: { key: Buffer; cert: Buffer } | null,
): Promise<StartingServer> {
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
  // The broker is handed to the listeners, metrics and dashboard as the QueueEngine: they use
  // nothing else of it. This file alone knows the segment log (its lock, replay, writer hook).
  const engine: QueueEngine = broker;
  const metrics = createMetrics({ engine, admission });
  const { http, resp } = await startListeners(engine, admission, metrics, config, logger, tls);
  let unlock: () => void;
  try {
    unlock = await lockDataDir(config.db, logger);
  } catch (err) {
    await Promise.allSettled([http.close(0), resp?.close()]);
    throw err;
  }
  logListening({ http, resp }, tls !== null, logger);
  const httpListener = http;
  const respListener = resp;
  const releaseLock = unlock;
  /** Closes what is open while the broker never opened (a failed or stopped replay); once. */
  let unopenedClosed: Promise<void> | null = null;
  const closeUnopened = (): Promise<void> =>
    (unopenedClosed ??= (async () => {
      await Promise.allSettled([httpListener.close(0), respListener?.close(), broker.close()]);
      releaseLock();
    })());
  const stopReplay = new AbortController();
  // The first slice runs after the caller has had the "listening" lines and this object.
  const ready = new Promise<void>((resolve) => setImmediate(resolve))
    .then(() => broker.openSliced({ signal: stopReplay.signal }))
    .then(
      (stats) => {
        broker.writer.onFsync = (durationMs) => metrics.observeFsync(durationMs);
        return stats;
      },
      async (err: unknown): Promise<never> => {
        // A damaged log or an I/O error ends the start: nothing is left listening on a broker
        // that will never open, and the lock is free again before the caller hears of it.
        await closeUnopened();
        throw err;
      },
    );
  // Whoever awaits `ready` sees a failure; this keeps it from being an unhandled rejection meanwhile.
  ready.catch(() => {});
  let closing: Promise<void> | null = null;
  return {
    broker,
    http: httpListener,
    resp: respListener,
    ready,
    admission,
    metrics,
    close() {
      closing ??= (async () => {
        if (broker.loading) {
          stopReplay.abort();
          const replayed = await ready.then(
            () => true,
            () => false,
          );
          if (!replayed) return closeUnopened();
        }
        const httpClosed = httpListener.close();
        respListener?.server.close();
        await broker.writer.drain();
        await Promise.all([httpClosed, respListener?.close()]);
        await broker.close();
        releaseLock();
      })();
      return closing;
    },
  };
}
