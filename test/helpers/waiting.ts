/**
 * Waiting on something observable instead of sleeping (STYLE.md "Tests"): a condition polled until
 * it holds, or one turn of the event loop. A test that must let time pass (an ack timeout, a DACK
 * delay) sleeps on purpose and says so where it does.
 */

/**
 * Resolves once `predicate()` is true (sync or async), polling every `intervalMs`; rejects after
 * `timeoutMs`, with `describe()` (what was awaited, the last state seen) in the message if given.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  intervalMs = 5,
  describe?: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe === undefined ? 'a condition' : describe()}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves after one turn of the event loop's check phase (lets pending I/O run). */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Lets `ms` of wall-clock time pass. Only for tests whose subject is time itself (an ack timeout,
 * a DACK delay, a deadline that must be missed); never to wait for something that has an event.
 */
export function letTimePass(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
