/**
 * The double-acked signals of the jetstream engine (+ACK, -NAK): each is published with a reply
 * subject, and JetStream answers it (an empty message) once it processed the signal. The removal
 * of an acked message from a replicated stream (stream-msg-delete.ts) takes the same path: its
 * answer is judged by its own rule ({@link AnswerJudge}).
 *
 * nats.js's `request()` costs, for every request, a timer, a `Promise.race`, a Map entry keyed by
 * a fresh nuid, and, on success, an `Error` built (with its stack captured) only to reject the
 * already resolved request: 15% of a gateway's CPU while consuming (issue 15). Here one
 * subscription (`<inbox>.*`) takes every answer, a request is a number in one Map, the outcome a
 * plain callback, and one coarse ticker ({@link SWEEP_MS}) fails the requests past their timeout.
 *
 * Outcomes, as with `request()` before:
 * - any answer but a "no responders" status is success (JetStream answers every ack signal);
 * - "no responders" (503: nobody received it, e.g. the consumer's leader is being elected) is
 *   sent again, with a pause doubling from {@link RETRY_FIRST_PAUSE_MS} to {@link RETRY_MAX_PAUSE_MS},
 *   until {@link TRANSIENT_RETRY_MS} has passed; then it fails with that error;
 * - no answer within the timeout fails with a `TimeoutError` (not sent again: it may have been
 *   processed), unless the request is idempotent (a removal: sent again as after a "no responders");
 * - a request with its own {@link AnswerJudge} succeeds, fails, or is sent again as it says;
 * - a closed connection fails at once (in the next tick: an outcome is never synchronous).
 */
import { nuid, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';

/**
 * How long a signal is sent again while nobody received it (no responders: a leader election, a
 * node gone) before it fails (ms).
 */
export const TRANSIENT_RETRY_MS = 10_000;

/** The first and the longest pause between two sends of a signal nobody received (ms); it doubles. */
export const RETRY_FIRST_PAUSE_MS = 50;
export const RETRY_MAX_PAUSE_MS = 1000;

/** How often requests past their timeout are looked for (ms): a timeout fires up to this late. */
export const SWEEP_MS = 50;

/** The outcome of one signal: null once JetStream answered it. */
export type AckCallback = (err: Error | null) => void;

/**
 * How an answer is taken: null for success, else the error and whether it is transient (the
 * request is then sent again, as after a "no responders", until the retry time is over).
 */
export type AnswerJudge = (msg: Msg, subject: string) => AnswerFailure | null;

/** A failed answer (see {@link AnswerJudge}). */
export interface AnswerFailure {
  error: Error;
  transient: boolean;
}

/** Whether an answer is a "no responders" status (nobody received the request). */
export function isNoResponders(msg: Msg): boolean {
  return msg.data.length === 0 && msg.headers?.code === 503;
}

/** The judge of an ack signal: any answer but "no responders" is success. */
function judgeSignal(msg: Msg, subject: string): AnswerFailure | null {
  return isNoResponders(msg) ? { error: noRespondersError(subject), transient: true } : null;
}

/** One signal waiting for its answer. */
interface AckOut {
  subject: string;
  body: Uint8Array;
  cb: AckCallback;
  judge: AnswerJudge;
  /** Whether a send that timed out is sent again (it may have been processed: harmless twice). */
  idempotent: boolean;
  /** Date.now() ms when this send times out. */
  timeoutAtMs: number;
  /** Date.now() ms after which a signal nobody received is not sent again. */
  retryUntilMs: number;
  /** The pause before the next send after a "no responders". */
  pauseMs: number;
}

/** The error of a signal that got no answer in time (named as nats.js names its timeouts). */
function timeoutError(subject: string): Error {
  const err = new Error('timeout');
  err.name = 'TimeoutError';
  Object.assign(err, { subject });
  return err;
}

/** The error of a signal nobody received (as nats.js's NoRespondersError: name and text). */
function noRespondersError(subject: string): Error {
  const err = new Error(`no responders: '${subject}'`);
  err.name = 'NoResponders';
  Object.assign(err, { subject, status: 503 });
  return err;
}

export class AckRequests {
  readonly #nc: NatsConnection;
  readonly #timeoutMs: number;
  readonly #retryMs: number;
  /** `<inbox>.`: an answer's subject is this and the request's number. */
  readonly #prefix: string;
  readonly #sub: Subscription;
  /** Signals waiting for an answer, by number. */
  readonly #out = new Map<number, AckOut>();
  /** Signals waiting to be sent again after a "no responders". */
  #retrying = 0;
  #seq = 0;
  readonly #sweeper: NodeJS.Timeout;
  /** Resolved (and dropped) whenever nothing is waiting any more. */
  #idleWaiters: (() => void)[] = [];

  /**
   * Subscribes to the answers on `nc`.
   * @param timeoutMs how long one send waits for its answer (ms)
   * @param retryMs how long a signal nobody received is sent again (ms; tests shorten it)
   */
  constructor(nc: NatsConnection, timeoutMs: number, retryMs = TRANSIENT_RETRY_MS) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    this.#retryMs = retryMs;
    this.#prefix = `_INBOX_MQ.${nuid.next()}.`;
    this.#sub = nc.subscribe(`${this.#prefix}*`, { callback: (_err, msg) => this.#onAnswer(msg) });
    this.#sweeper = setInterval(() => this.#sweep(Date.now()), SWEEP_MS);
    this.#sweeper.unref();
  }

  /** Signals sent and not answered yet (retries waiting included). */
  get pending(): number {
    return this.#out.size + this.#retrying;
  }

  /**
   * Publishes `body` to `subject` (an ack subject); `cb` once JetStream answered it or it failed.
   * nats.js writes what was published at the end of the current I/O callback (a microtask).
   */
  send(subject: string, body: Uint8Array, cb: AckCallback): void {
    const nowMs = Date.now();
    this.#send({ subject, body, cb, judge: judgeSignal, idempotent: false, timeoutAtMs: 0, retryUntilMs: nowMs + this.#retryMs, pauseMs: RETRY_FIRST_PAUSE_MS }, nowMs);
  }

  /**
   * Publishes `body` to `subject` (a JetStream API call) with `judge` for its answer; `cb` with the
   * outcome. An idempotent request (one that does no harm twice) is sent again after a timeout
   * as after a transient failure, until the retry time is over.
   */
  call(subject: string, body: Uint8Array, judge: AnswerJudge, idempotent: boolean, cb: AckCallback): void {
    const nowMs = Date.now();
    this.#send({ subject, body, cb, judge, idempotent, timeoutAtMs: 0, retryUntilMs: nowMs + this.#retryMs, pauseMs: RETRY_FIRST_PAUSE_MS }, nowMs);
  }

  /** {@link send} as a promise. */
  request(subject: string, body: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.send(subject, body, (err) => (err === null ? resolve() : reject(err))));
  }

  /** Resolves once no signal waits for an answer (at once if none does). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops the ticker and the subscription (the connection is closed): what still waits fails. */
  close(): void {
    clearInterval(this.#sweeper);
    if (!this.#nc.isClosed()) this.#sub.unsubscribe();
    const left = [...this.#out.values()];
    this.#out.clear();
    for (const out of left) this.#done(out, new Error(`the connection to NATS was closed before JetStream answered on ${out.subject}`));
  }

  #send(out: AckOut, nowMs: number): void {
    const id = ++this.#seq;
    out.timeoutAtMs = nowMs + Math.max(100, Math.min(this.#timeoutMs, out.retryUntilMs - nowMs));
    try {
      this.#nc.publish(out.subject, out.body, { reply: `${this.#prefix}${id}` });
    } catch (err) {
      // A closed connection (or a subject nats.js refuses): failed, never synchronously.
      this.#retrying++;
      process.nextTick(() => {
        this.#retrying--;
        this.#done(out, err instanceof Error ? err : new Error(String(err)));
      });
      return;
    }
    this.#out.set(id, out);
  }

  #onAnswer(msg: Msg): void {
    const id = Number(msg.subject.slice(this.#prefix.length));
    const out = this.#out.get(id);
    if (out === undefined) return; // timed out before
    this.#out.delete(id);
    const failure = out.judge(msg, out.subject);
    if (failure === null) return this.#done(out, null);
    if (!failure.transient) return this.#done(out, failure.error);
    this.#again(out, failure.error, Date.now());
  }

  /** Sends `out` again after its pause, or fails it with `err` once its retry time is over. */
  #again(out: AckOut, err: Error, nowMs: number): void {
    if (this.#nc.isClosed() || nowMs + out.pauseMs >= out.retryUntilMs) return this.#done(out, err);
    this.#retrying++;
    setTimeout(() => {
      this.#retrying--;
      out.pauseMs = Math.min(RETRY_MAX_PAUSE_MS, out.pauseMs * 2);
      this.#send(out, Date.now());
    }, out.pauseMs);
  }

  /** Fails the signals whose send waited past its timeout. */
  #sweep(nowMs: number): void {
    if (this.#out.size === 0) return;
    for (const [id, out] of this.#out) {
      if (out.timeoutAtMs > nowMs) continue;
      this.#out.delete(id);
      if (out.idempotent) this.#again(out, timeoutError(out.subject), nowMs);
      else this.#done(out, timeoutError(out.subject));
    }
  }

  #done(out: AckOut, err: Error | null): void {
    out.cb(err);
    if (this.#idleWaiters.length > 0 && this.pending === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}
