/** How a replay in slices is driven and what it reports (SegmentLog.openSliced, SPEC §8). */

export interface ReplaySlicing {
  /** Replay runs about this long (ms) before it yields to the event loop. */
  sliceMs: number;
  /** Called after each slice but the last. */
  onSlice?: (progress: ReplayProgress) => void;
  /** Aborting stops the replay at the next slice boundary. */
  signal?: AbortSignal;
}

/** How far a replay has come (for progress lines, `INFO` and `Retry-After`). */
export interface ReplayProgress {
  /** Records replayed so far. */
  records: number;
  /** Bytes of the log replayed so far. */
  bytes: number;
  /** Bytes of all segment files when the replay began. */
  totalBytes: number;
  /** Segment files opened so far. */
  segments: number;
  /** Since the replay began (ms). */
  elapsedMs: number;
}
