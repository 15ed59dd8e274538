/**
 * A subscription: one `POST /subscribe/:topic` stream at a time (SPEC §3), presented as an
 * async iterator of {@link Message}s, re-opened with capped, jittered exponential backoff when
 * the stream or the session drops.
 *
 * Generations: every stream the subscription opens gets a new generation number. Events of an
 * older stream are ignored, and a message remembers the generation it arrived on, so a settle
 * on a message from a dead stream is refused locally (`MQ_ERR_STALE_MESSAGE`) instead of being
 * sent on the new stream, where it would settle a different message.
 */
import http2, { type ClientHttp2Stream } from 'node:http2';
import { backoffDelayMs, resolveBackoff, type BackoffOptions, type ResolvedBackoff } from './backoff.js';
import { asClientError, clientError, MiniqueueError, responseError } from './errors.js';
import { MAX_DACK_SECONDS, Message, type MessageOwner, type SettleCommand } from './message.js';

/** Options of {@link MiniqueueClient.subscribe}. */
export interface SubscribeOptions {
  /**
   * Reconnect policy when the stream or the session drops, or the server answers 5xx
   * (`MQ_ERR_LOADING` while it replays its log, `MQ_ERR_SHUTTING_DOWN`). `false`: no
   * reconnect, the iterator throws the error instead. Default: the client's `reconnect`
   * option, whose default is {@link DEFAULT_BACKOFF}.
   */
  reconnect?: BackoffOptions | false;
  /**
   * Called with errors that do not end the subscription: `{"error":...}` lines from the server
   * (the server's code when the line has one, e.g. `MQ_ERR_TOPIC_DELETED` for a settle refused
   * because the topic was deleted, else `MQ_ERR_STREAM`) and each drop
   * that triggers a reconnect (`MQ_ERR_CONNECTION` or the server's 5xx code). Must not throw.
   */
  onError?: (err: MiniqueueError) => void;
}

/**
 * How a subscription opens its streams; implemented by the client (one shared HTTP/2 session).
 * @internal
 */
export interface StreamOpener {
  /** Opens `POST path` on the shared session; rejects with MQ_ERR_CONNECTION or MQ_ERR_CLOSED. */
  openStream(path: string): Promise<ClientHttp2Stream>;
  /** Tells the client the subscription is finished (to forget it). */
  subscriptionClosed(sub: Subscription): void;
}

/** Longest line accepted from a subscribe stream, in UTF-16 code units (a 1 MiB message is ~1.4 M). */
const MAX_LINE_CHARS = 256 * 1024 * 1024;
/** How long {@link Message.touch} waits for the server's echo of its sync command. */
const TOUCH_REPLY_TIMEOUT_MS = 10_000;

type State = 'idle' | 'connecting' | 'open' | 'backoff' | 'closed' | 'failed';

interface PendingSync {
  token: string;
  resolve: () => void;
  reject: (err: MiniqueueError) => void;
  error: MiniqueueError | null;
  timer: NodeJS.Timeout;
}

interface Waiter {
  resolve: (r: IteratorResult<Message, undefined>) => void;
  reject: (err: unknown) => void;
}

/**
 * Messages of one topic, as an async iterator (`for await (const msg of sub)`).
 *
 * - Nothing is requested from the server until the first `next()`; then the stream opens and
 *   sends `"INIT"`. The server delivers one message at a time and the next one only after the
 *   current one is settled, so settle each message (`ack`, `nack`, `back`, `dack`) before you
 *   wait for the next; a loop that never settles waits forever.
 * - When the stream or session drops, the subscription reconnects with backoff and the
 *   iterator simply continues. The message that was in flight at the drop is put back at the
 *   front by the server and delivered again (to this or another consumer); settling the old
 *   {@link Message} object rejects with `MQ_ERR_STALE_MESSAGE`.
 * - `break` (which calls `return()`), {@link Subscription.close} or closing the client cancel
 *   the stream; the server NACKs the message in flight, and the iterator ends (`done: true`).
 * - The iterator throws a {@link MiniqueueError} for errors that end the subscription: a 4xx
 *   answer to the subscribe request (`MQ_ERR_BAD_TOPIC`, ...), or a drop when reconnecting is
 *   disabled or `maxAttempts` is used up.
 */
export class Subscription implements AsyncIterableIterator<Message> {
  /** The topic this subscription consumes. */
  readonly topic: string;
  readonly #opener: StreamOpener;
  readonly #backoff: ResolvedBackoff | null;
  readonly #onError: (err: MiniqueueError) => void;
  readonly #owner: MessageOwner;
  /** Message → generation of the stream it arrived on. */
  readonly #generationOf = new WeakMap<Message, number>();
  #state: State = 'idle';
  #generation = 0;
  #stream: ClientHttp2Stream | null = null;
  /** The delivery in flight on the current stream and not yet settled, if any. */
  #current: Message | null = null;
  /** Deliveries not yet taken by `next()` (at most one, as the server sends one at a time). */
  #ready: Message[] = [];
  #waiters: Waiter[] = [];
  #fatal: MiniqueueError | null = null;
  #attempt = 0;
  #reconnects = 0;
  #timer: NodeJS.Timeout | null = null;
  #lineParts: string[] = [];
  #lineChars = 0;
  #pendingSyncs: PendingSync[] = [];
  /**
   * Id of an expired message whose delivery this subscription resumed with a `"NACK"` of its own
   * (see #onAckTimeout): the server's refusal of that NACK is expected and not reported.
   */
  #resumedAfter: number | null = null;
  /** An expired message left the server waiting for a settle; sent (as `"NACK"`) at the next `next()`. */
  #resumePending = false;
  #syncSeq = 0;
  #closedPromise: Promise<void> | null = null;

  /** @internal Created by {@link MiniqueueClient.subscribe}. */
  constructor(opener: StreamOpener, topic: string, backoff: BackoffOptions | false, onError?: (err: MiniqueueError) => void) {
    this.#opener = opener;
    this.topic = topic;
    this.#backoff = backoff === false ? null : resolveBackoff(backoff);
    this.#onError = onError ?? (() => {});
    this.#owner = {
      settle: (message, command, delaySeconds) => this.#settle(message, command, delaySeconds),
      touch: (message) => this.#touch(message),
    };
  }

  /** True while a subscribe stream is open and answered 200. */
  get connected(): boolean {
    return this.#state === 'open';
  }

  /** How many times the subscription re-opened its stream after a drop. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** The subscription is its own iterator, so it can be consumed by one `for await` loop. */
  [Symbol.asyncIterator](): this {
    return this;
  }

  /**
   * The next message. Opens the stream on the first call. Resolves `{ done: true }` once the
   * subscription is closed; rejects with the {@link MiniqueueError} that ended it otherwise.
   */
  next(): Promise<IteratorResult<Message, undefined>> {
    if (this.#fatal !== null) return Promise.reject(this.#fatal);
    if (this.#state === 'closed') return Promise.resolve({ done: true, value: undefined });
    let ready = this.#ready.shift();
    // A delivery that expired while it waited here is of no use any more: skip it.
    while (ready !== undefined && ready.expired) ready = this.#ready.shift();
    if (ready !== undefined) return Promise.resolve({ done: false, value: ready });
    if (this.#state === 'idle') this.#open();
    const result = new Promise<IteratorResult<Message, undefined>>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    this.#resume();
    return result;
  }

  /** Called by `break` in `for await`: closes the subscription (see {@link Subscription.close}). */
  async return(): Promise<IteratorResult<Message, undefined>> {
    await this.close();
    return { done: true, value: undefined };
  }

  /**
   * Cancels the stream (RST_STREAM CANCEL): the server NACKs the message in flight, which goes
   * back to the front of the queue. Pending `next()` calls resolve `{ done: true }`; settles
   * and touches of messages from this subscription reject with `MQ_ERR_CLOSED`. Resolves when
   * the stream is closed on this side; idempotent.
   */
  close(): Promise<void> {
    if (this.#closedPromise !== null) return this.#closedPromise;
    const stream = this.#state === 'failed' ? null : this.#stream;
    this.#finish('closed', clientError('MQ_ERR_CLOSED'));
    for (const w of this.#waiters.splice(0)) w.resolve({ done: true, value: undefined });
    this.#closedPromise = new Promise<void>((resolve) => {
      if (stream === null || stream.closed || stream.destroyed) return resolve();
      stream.once('close', () => resolve());
      stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    return this.#closedPromise;
  }

  /** Leaves the running states: forgets the stream and in-flight state, stops timers. */
  #finish(state: 'closed' | 'failed', reason: MiniqueueError): void {
    if (this.#state === 'closed' || this.#state === 'failed') return;
    this.#state = state;
    this.#generation++;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#dropStreamState(reason);
    if (state === 'failed' && this.#stream !== null && !this.#stream.destroyed) this.#stream.close(http2.constants.NGHTTP2_CANCEL);
    this.#stream = null;
    this.#opener.subscriptionClosed(this);
  }

  /** Forgets what belonged to the current stream: undelivered messages, the current one, touches. */
  #dropStreamState(reason: MiniqueueError): void {
    this.#current = null;
    this.#resumedAfter = null;
    this.#resumePending = false;
    this.#ready.length = 0;
    this.#lineParts = [];
    this.#lineChars = 0;
    for (const p of this.#pendingSyncs.splice(0)) {
      clearTimeout(p.timer);
      p.reject(reason);
    }
  }

  #open(): void {
    const generation = ++this.#generation;
    this.#state = 'connecting';
    this.#opener.openStream(`/subscribe/${encodeURIComponent(this.topic)}`).then(
      (stream) => this.#attach(generation, stream),
      (err: unknown) => this.#onDrop(generation, asClientError(err)),
    );
  }

  #attach(generation: number, stream: ClientHttp2Stream): void {
    if (generation !== this.#generation) {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      return;
    }
    this.#stream = stream;
    let status = 0;
    const errorBody: Buffer[] = [];
    let streamError: Error | null = null;
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
      if (status === 200 && generation === this.#generation) {
        this.#state = 'open';
        this.#attempt = 0;
      }
    });
    stream.on('data', (chunk: Buffer) => {
      if (generation !== this.#generation) return;
      if (status === 200) this.#onData(chunk.toString('utf8'));
      else if (errorBody.length < 64) errorBody.push(chunk);
    });
    stream.on('error', (err) => (streamError = err));
    stream.on('close', () => {
      if (generation !== this.#generation) return;
      if (status !== 0 && status !== 200) {
        const err = responseError(status, Buffer.concat(errorBody));
        if (status >= 400 && status < 500) return this.#fail(err);
        return this.#onDrop(generation, err);
      }
      const detail = streamError !== null ? streamError.message : `stream closed (code ${stream.rstCode ?? 'none'})`;
      this.#onDrop(generation, clientError('MQ_ERR_CONNECTION', detail, streamError ?? undefined));
    });
    stream.write('"INIT"\n');
  }

  /** The stream of `generation` is gone (or could not be opened): reconnect or give up. */
  #onDrop(generation: number, err: MiniqueueError): void {
    if (generation !== this.#generation || this.#state === 'closed' || this.#state === 'failed') return;
    this.#stream = null;
    this.#generation++;
    this.#dropStreamState(clientError('MQ_ERR_STALE_MESSAGE', err.message));
    if (err.code === 'MQ_ERR_CLOSED') return void this.close();
    if (this.#backoff === null || this.#attempt >= this.#backoff.maxAttempts) return this.#fail(err);
    this.#onError(err);
    const delayMs = backoffDelayMs(this.#attempt++, this.#backoff);
    this.#state = 'backoff';
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#reconnects++;
      this.#open();
    }, delayMs);
  }

  /** Ends the subscription with `err`: pending and later `next()` calls reject with it. */
  #fail(err: MiniqueueError): void {
    if (this.#state === 'closed' || this.#state === 'failed') return;
    this.#fatal = err;
    this.#finish('failed', err);
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }

  #onData(chunk: string): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf('\n', start);
      if (nl < 0) break;
      const piece = chunk.slice(start, nl);
      const line = this.#lineParts.length === 0 ? piece : this.#lineParts.join('') + piece;
      this.#lineParts = [];
      this.#lineChars = 0;
      start = nl + 1;
      if (line.trim() !== '') this.#onLine(line);
      if (this.#state === 'closed' || this.#state === 'failed') return;
    }
    if (start < chunk.length) {
      this.#lineParts.push(chunk.slice(start));
      this.#lineChars += chunk.length - start;
      if (this.#lineChars > MAX_LINE_CHARS) {
        this.#fail(clientError('MQ_ERR_BAD_RESPONSE', `subscribe line longer than ${MAX_LINE_CHARS} characters`));
      }
    }
  }

  #onLine(line: string): void {
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      obj = undefined;
    }
    if (typeof obj !== 'object' || obj === null) {
      this.#onError(clientError('MQ_ERR_BAD_RESPONSE', `subscribe line is not a JSON object: ${line.slice(0, 100)}`));
      return;
    }
    const { msg, id, dackCount, error, code } = obj as Record<string, unknown>;
    if (typeof msg === 'string') {
      const message = new Message(
        this.#owner,
        this.topic,
        Buffer.from(msg, 'base64'),
        typeof id === 'number' ? id : -1,
        typeof dackCount === 'number' ? dackCount : 0,
      );
      this.#generationOf.set(message, this.#generation);
      this.#current = message;
      const waiter = this.#waiters.shift();
      if (waiter !== undefined) waiter.resolve({ done: false, value: message });
      else this.#ready.push(message);
      return;
    }
    if (typeof error === 'string') {
      if (code === 'MQ_ERR_ACK_TIMEOUT' && typeof id === 'number') this.#onAckTimeout(id);
      else if (code === 'MQ_ERR_TOPIC_DELETED' && this.#current?.id === id && this.#current!.markTopicDeleted()) this.#current = null;
      this.#onErrorLine(new MiniqueueError(typeof code === 'string' ? code : 'MQ_ERR_STREAM', error));
    }
    // Other objects (fields a newer server may add) are ignored.
  }

  /**
   * The server's `--ack-timeout` took message `id` back. The server then waits for one settle
   * (refused) before it delivers again, so that a late `"ACK"` cannot land on another message. If
   * `id` is still unsettled here, the subscription sends that settle itself (`"NACK"`), but only
   * when user code asks for the next message (#resume from `next()`): a handler still busy with
   * the expired message must not have further deliveries pile up, and time out, unseen. Settling
   * or touching the expired message rejects locally with MQ_ERR_ACK_TIMEOUT.
   */
  #onAckTimeout(id: number): void {
    const message = this.#current;
    if (message === null || message.id !== id || message.settled || this.#stream === null) return;
    message.markExpired();
    this.#current = null;
    this.#resumedAfter = id;
    this.#resumePending = true;
    if (this.#waiters.length > 0) this.#resume();
  }

  /** Sends the settle the server waits for after an expiry (see #onAckTimeout), if one is due. */
  #resume(): void {
    if (!this.#resumePending || this.#stream === null || this.#state !== 'open') return;
    this.#resumePending = false;
    this.#send(this.#stream, '"NACK"\n').catch(() => {});
  }

  /** Routes an error line to the touch waiting for it, or to `onError`. */
  #onErrorLine(err: MiniqueueError): void {
    if (this.#resumedAfter !== null && err.message.startsWith(`NACK: message ${this.#resumedAfter} is no longer in flight`)) {
      this.#resumedAfter = null;
      return;
    }
    const sync = this.#pendingSyncs[0];
    if (sync !== undefined) {
      if (err.message.includes(sync.token)) {
        this.#pendingSyncs.shift();
        clearTimeout(sync.timer);
        if (sync.error === null) sync.resolve();
        else sync.reject(sync.error);
        return;
      }
      if (sync.error === null) {
        sync.error = err;
        return;
      }
    }
    this.#onError(err);
  }

  /** Checks that `message` may be sent a command now; returns the error to reject with, or null. */
  #check(message: Message): MiniqueueError | null {
    if (this.#state === 'closed') return clientError('MQ_ERR_CLOSED');
    if (this.#fatal !== null) return this.#fatal;
    const taken = message.takenBack();
    if (taken !== null) return taken;
    if (message.settled) return clientError('MQ_ERR_ALREADY_SETTLED', `message ${message.id}`);
    if (this.#generationOf.get(message) !== this.#generation || this.#stream === null || this.#current !== message) {
      return clientError('MQ_ERR_STALE_MESSAGE', `message ${message.id}`);
    }
    return null;
  }

  #settle(message: Message, command: SettleCommand, delaySeconds: number): Promise<void> {
    if (command === 'DACK' && !(Number.isInteger(delaySeconds) && delaySeconds >= 0 && delaySeconds <= MAX_DACK_SECONDS)) {
      return Promise.reject(
        new MiniqueueError('MQ_ERR_BAD_ARGUMENT', `dack needs whole seconds in [0, ${MAX_DACK_SECONDS}], got ${String(delaySeconds)}`),
      );
    }
    const refused = this.#check(message);
    if (refused !== null) return Promise.reject(refused);
    message.markSettled();
    this.#current = null;
    return this.#send(this.#stream!, command === 'DACK' ? `"DACK ${delaySeconds}"\n` : `"${command}"\n`);
  }

  #touch(message: Message): Promise<void> {
    const refused = this.#check(message);
    if (refused !== null) return Promise.reject(refused);
    const token = `mq.sync.${++this.#syncSeq}.end`;
    const stream = this.#stream!;
    return new Promise<void>((resolve, reject) => {
      const sync: PendingSync = {
        token,
        resolve,
        reject,
        error: null,
        timer: setTimeout(() => {
          const i = this.#pendingSyncs.indexOf(sync);
          if (i >= 0) this.#pendingSyncs.splice(i, 1);
          reject(clientError('MQ_ERR_TIMEOUT', `no answer to TOUCH within ${TOUCH_REPLY_TIMEOUT_MS} ms`));
        }, TOUCH_REPLY_TIMEOUT_MS),
      };
      this.#pendingSyncs.push(sync);
      this.#send(stream, `"TOUCH"\n"${token}"\n`).catch((err: MiniqueueError) => {
        const i = this.#pendingSyncs.indexOf(sync);
        if (i >= 0) this.#pendingSyncs.splice(i, 1);
        clearTimeout(sync.timer);
        reject(err);
      });
    });
  }

  /** Writes `line`; resolves when the HTTP/2 layer took it, rejects MQ_ERR_CONNECTION otherwise. */
  #send(stream: ClientHttp2Stream, line: string): Promise<void> {
    return new Promise((resolve, reject) => {
      stream.write(line, (err) => {
        if (err === null || err === undefined) resolve();
        else reject(clientError('MQ_ERR_CONNECTION', err.message, err));
      });
    });
  }
}
