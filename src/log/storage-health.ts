/**
 * The storage part of `GET /healthz` (SPEC §8, issue 13): while the log writer answers writes
 * with a storage failure (disk full, EIO, a read-only remount), the health check says so, and it
 * says so only as long as the failure lasts, also when no client writes meanwhile.
 */
import type { LogWriter } from './log-writer.js';

/** Shortest time between two probes of a failing storage, in ms: a busy health checker must not hammer a failing disk. */
export const STORAGE_PROBE_MIN_INTERVAL_MS = 1000;

export class StorageHealth {
  readonly #minProbeIntervalMs: number;
  #lastProbeAtMs = Number.NEGATIVE_INFINITY;
  #probing: Promise<Error | null> | null = null;

  constructor(minProbeIntervalMs = STORAGE_PROBE_MIN_INTERVAL_MS) {
    this.#minProbeIntervalMs = minProbeIntervalMs;
  }

  /**
   * Resolves with null when the storage takes writes, else with the storage error (an fs error
   * with `code`, e.g. ENOSPC). While `writer` reports a failure, a probe write
   * ({@link LogWriter.probe}) decides, at most once per `minProbeIntervalMs`; between probes the
   * last failure is reported. Concurrent calls share one probe. Never rejects.
   */
  check(writer: LogWriter): Promise<Error | null> {
    if (writer.storageFailure === null) return Promise.resolve(null);
    if (this.#probing !== null) return this.#probing;
    const now = performance.now();
    if (now - this.#lastProbeAtMs < this.#minProbeIntervalMs) return Promise.resolve(writer.storageFailure);
    this.#lastProbeAtMs = now;
    // The probe may call back synchronously (writes are synchronous): clear #probing after the fact.
    const probing = new Promise<Error | null>((resolve) => writer.probe(resolve));
    this.#probing = probing;
    void probing.then(() => {
      if (this.#probing === probing) this.#probing = null;
    });
    return probing;
  }
}
