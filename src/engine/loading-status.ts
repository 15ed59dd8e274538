/**
 * How far an engine's recovery at start has come (SPEC §8), as the protocols tell clients: the
 * `Retry-After` of an HTTP 503 MQ_ERR_LOADING and RESP INFO's `loading_*` fields (Redis's, which
 * ioredis reads to decide how long to wait). Both protocols take the wait hint from here, so they
 * cannot tell a client different things.
 */

/**
 * The longest wait (s) a client is told, as `Retry-After` or INFO `loading_eta_seconds`: an
 * estimate made early in a recovery can be far off (the first second of a replay runs several
 * times slower than the rest, while the code warms up), and a client told too little only asks
 * once more, while one told too much waits for nothing.
 */
export const MAX_WAIT_HINT_SECONDS = 5;

/** The progress of a recovery that is running (`QueueEngine.loadingProgress`). */
export interface LoadingStatus {
  /** When the recovery began (Unix epoch, ms). */
  readonly startedAtMs: number;
  /** Bytes recovered so far (0 when the engine does not count bytes). */
  readonly loadedBytes: number;
  /** Bytes to recover in all (0 until known). */
  readonly totalBytes: number;
  /** Share recovered so far, 0..100. */
  readonly percent: number;
  /** Whole seconds the recovery is estimated to go on, 1..{@link MAX_WAIT_HINT_SECONDS}. */
  readonly etaSeconds: number;
}

/**
 * The `Retry-After` of a 503 MQ_ERR_LOADING, in whole seconds from 1 to
 * {@link MAX_WAIT_HINT_SECONDS} inclusive, from the recovery's `status` (null: not begun, or
 * the engine gives no progress: 1).
 */
export function retryAfterSeconds(status: LoadingStatus | null): number {
  if (status === null) return 1;
  return Math.min(MAX_WAIT_HINT_SECONDS, Math.max(1, Math.ceil(status.etaSeconds)));
}
