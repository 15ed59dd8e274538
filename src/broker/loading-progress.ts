/**
 * How far the replay at start has come (SPEC §8, issue 13): a progress line about once a second
 * for a long replay, and the estimates that `INFO` (`loading_*` fields, as Redis) and the
 * `Retry-After` of a 503 MQ_ERR_LOADING give clients (engine/loading-status.ts).
 */
import type { Logger } from 'pino';
import { MAX_WAIT_HINT_SECONDS, type LoadingStatus } from '../engine/loading-status.js';
import type { ReplayProgress } from '../log/segment-log.js';

/** Replay runs this long (ms) before it lets the event loop serve sockets (Broker.openSliced). */
export const REPLAY_SLICE_MS = 10;
/** Time between two progress lines of one replay (ms). */
export const PROGRESS_LINE_INTERVAL_MS = 1000;

/** The progress of one replay, updated after each slice. */
export class LoadingProgress implements LoadingStatus {
  /** When the replay began (Unix epoch, ms). */
  readonly startedAtMs = Date.now();
  readonly #logger: Logger;
  readonly #liveMessages: () => number;
  readonly #lineIntervalMs: number;
  #last: ReplayProgress | null = null;
  /** Replay time (ms since it began) at which the next progress line is due. */
  #nextLineAtMs: number;

  /**
   * @param liveMessages - the messages replayed so far that are still live (for the progress line).
   * @param lineIntervalMs - time between progress lines (ms).
   */
  constructor(logger: Logger, liveMessages: () => number, lineIntervalMs = PROGRESS_LINE_INTERVAL_MS) {
    this.#logger = logger;
    this.#liveMessages = liveMessages;
    this.#lineIntervalMs = lineIntervalMs;
    this.#nextLineAtMs = lineIntervalMs;
  }

  /** Takes the progress after a slice; logs a progress line when one is due. */
  update(progress: ReplayProgress): void {
    this.#last = progress;
    if (progress.elapsedMs < this.#nextLineAtMs) return;
    this.#nextLineAtMs = progress.elapsedMs + this.#lineIntervalMs;
    this.#logger.info(
      {
        records: progress.records,
        bytes: progress.bytes,
        totalBytes: progress.totalBytes,
        percent: this.percent,
        messages: this.#liveMessages(),
        segments: progress.segments,
        elapsedMs: Math.round(progress.elapsedMs),
      },
      'replaying the log',
    );
  }

  /** The progress after the last slice; null before the first slice has ended. */
  get current(): ReplayProgress | null {
    return this.#last;
  }

  /** Bytes replayed so far. */
  get loadedBytes(): number {
    return this.#last?.bytes ?? 0;
  }

  /** Bytes of the whole log (0 until the first slice has ended). */
  get totalBytes(): number {
    return this.#last?.totalBytes ?? 0;
  }

  /** Share of the log's bytes replayed so far, 0..100, one decimal. */
  get percent(): number {
    const p = this.#last;
    if (p === null || p.totalBytes === 0) return 0;
    return Math.min(100, Math.floor((p.bytes / p.totalBytes) * 1000) / 10);
  }

  /**
   * Whole seconds the replay is estimated to go on (the bytes left at the speed so far), at least
   * 1 and at most {@link MAX_WAIT_HINT_SECONDS}.
   */
  get etaSeconds(): number {
    const p = this.#last;
    if (p === null || p.bytes === 0) return 1;
    const leftBytes = Math.max(0, p.totalBytes - p.bytes);
    const seconds = Math.ceil(((leftBytes / p.bytes) * p.elapsedMs) / 1000);
    return Math.min(MAX_WAIT_HINT_SECONDS, Math.max(1, seconds));
  }
}
