/**
 * Reconnect delays for subscriptions: capped exponential backoff with "full jitter" (AWS
 * Architecture Blog, "Exponential Backoff And Jitter"), so that many subscribers cut off by
 * the same server restart do not all come back in the same millisecond.
 */

/** How a subscription waits between reconnect attempts. All fields are optional. */
export interface BackoffOptions {
  /** Upper bound of the first delay, in ms. Default 100. */
  initialDelayMs?: number;
  /** Largest delay, in ms (the cap of the exponential). Default 5000. */
  maxDelayMs?: number;
  /** Growth factor per failed attempt. Default 2. */
  factor?: number;
  /**
   * Consecutive failed attempts after which the subscription gives up and its iterator throws
   * the last `MQ_ERR_CONNECTION` (or server) error. Default `Infinity` (retry forever).
   */
  maxAttempts?: number;
}

/** {@link BackoffOptions} with every field filled in. */
export type ResolvedBackoff = Required<BackoffOptions>;

/** Defaults of {@link BackoffOptions}. */
export const DEFAULT_BACKOFF: Readonly<ResolvedBackoff> = Object.freeze({
  initialDelayMs: 100,
  maxDelayMs: 5000,
  factor: 2,
  maxAttempts: Infinity,
});

/**
 * Fills in defaults and checks ranges.
 * @throws RangeError when a delay is negative, `factor` < 1 or `maxAttempts` < 1.
 */
export function resolveBackoff(opts: BackoffOptions = {}): ResolvedBackoff {
  const r = { ...DEFAULT_BACKOFF, ...opts };
  if (!(r.initialDelayMs >= 0) || !(r.maxDelayMs >= 0)) throw new RangeError('backoff delays must be >= 0 ms');
  if (!(r.factor >= 1)) throw new RangeError('backoff factor must be >= 1');
  if (!(r.maxAttempts >= 1)) throw new RangeError('backoff maxAttempts must be >= 1');
  return r;
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry after a drop):
 * a uniformly random whole number of ms in [0, min(maxDelayMs, initialDelayMs * factor^attempt)],
 * both bounds inclusive. `random` is injectable for tests and returns a value in [0, 1).
 */
export function backoffDelayMs(attempt: number, opts: ResolvedBackoff, random: () => number = Math.random): number {
  const ceilingMs = Math.min(opts.maxDelayMs, opts.initialDelayMs * opts.factor ** attempt);
  return Math.floor(random() * (ceilingMs + 1));
}
