/**
 * Background compaction (SPEC §5, issue #4): keeps disk use near what is still live.
 *
 * Compaction is split in two (issue 12). This file is the mechanism: it knows files, bytes and
 * the order of operations that makes a crash at any moment safe, and nothing about what a record
 * means. The owner of the records (the broker: broker/segment-accounting.ts keeps per segment
 * what replay still needs, broker/evacuate.ts copies it) is the policy, asked through
 * {@link CompactionPolicy}: which segments replay no longer needs, what copying forward would
 * cost for the others, and the copy itself. log/ imports nothing from broker/.
 *
 * Every segment but the active one is a candidate. A pass of the compactor:
 *
 * 1. Deletes every segment the policy calls removable: the policy first writes what replaces them
 *    (CompactionPolicy.retire), then unlink, then fsync the directory;
 *    segments whose removal depends on another removal wait for the next round (after that
 *    fsync), so a power cut can never leave the dependent gone and the dependency back.
 * 2. Picks segments with little still needed (at most `maxLiveRatio` of their bytes, by the
 *    policy's count), asks the policy to copy what keeps them needed forward through the normal
 *    LogWriter (CRC, batching, group commit, fsync policy), between two rolls so that the copies
 *    sit in segments of their own; with `--fsync interval|never` it fdatasyncs those segments
 *    itself. Then it deletes what became removable, as in 1, and goes round again (a removal can
 *    leave another segment needed only for little).
 *
 * Departs from STYLE.md's "*.cleaned + rename": copying live records forward through the single
 * writer never rewrites a file in place, so no half-written file can exist, and a crash at any
 * moment leaves either the old segment (its records superseded by newer copies: on replay the
 * last one wins) or not; both replay to the same state. What the compactor guarantees for that:
 * a source segment is unlinked only after every copy the policy made resolved and was fdatasynced.
 *
 * The work is sliced (the policy appends a few hundred records, waits for them, yields with
 * setImmediate), file operations are asynchronous, and one pass runs at a time, so publishing is
 * never held up for long. One info line is logged per pass that did something.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { FsyncPolicy } from './log-writer.js';
import type { SegmentLog } from './segment-log.js';
import type { Segment } from './segment.js';

/** What copying forward wrote. */
export interface EvacuationResult {
  /** Messages copied (for the broker: RESTORE records written). */
  messages: number;
  /** Bytes of all records written. */
  bytes: number;
  /** Segments the records went to (to fdatasync when the writer does not). */
  segments: Set<Segment>;
}

/**
 * What the compactor asks the owner of the records (the broker). A segment is named by the log's
 * list of segments (oldest first, the active one last) and its index there, because whether a
 * record is still needed can depend on the segments older than it. The answers may change
 * between calls (appends complete, messages are settled); the compactor asks again each round.
 */
export interface CompactionPolicy {
  /**
   * Whether replay needs nothing in `segments[index]` any more, so that deleting its file cannot
   * change what replay rebuilds (never asked for the active segment).
   */
  isRemovable(segments: readonly Segment[], index: number): boolean;
  /**
   * Bytes {@link evacuate} would write to make `segments[index]` removable; null when there is
   * nothing to copy (it is removable already) or copying cannot make it removable.
   */
  copyForwardBytes(segments: readonly Segment[], index: number): number | null;
  /**
   * Copies forward, through the log's writer, whatever keeps `victims` needed, so that each
   * becomes removable. Works in slices and stops between slices once `isStopped()` is true.
   * Resolves when every record it appended is written (per fsync policy); rejects with the first
   * write error after all of them completed.
   */
  evacuate(victims: ReadonlySet<Segment>, isStopped: () => boolean): Promise<EvacuationResult>;
  /**
   * Called with segments the policy called removable, right before they are deleted: writes,
   * through the log's writer, whatever replaces what replay derives from them beyond the state
   * of messages and topics (the broker: its topics' counters, broker/counter-snapshots.ts).
   * Resolves when every record it appended is written (per fsync policy); rejects with the first
   * write error, and then nothing is deleted. Absent: nothing to write.
   */
  retire?(segments: readonly Segment[]): Promise<EvacuationResult>;
}

export interface CompactorOptions {
  log: SegmentLog;
  /** What replay still needs, and the copy: the owner of the records answers. */
  policy: CompactionPolicy;
  /** The log's writer: copies are written between two rolls it is asked for, in segments of their own. */
  writer: { rollBeforeNextWrite(): void };
  /** The writer's `--segment-bytes`. */
  segmentBytes: number;
  /** The writer's policy: with anything but `always` the compactor fdatasyncs copied records before deleting their source. */
  fsync: FsyncPolicy;
  logger: Logger;
  /**
   * A segment is copied forward only while the bytes still needed in it are at most this
   * fraction of its size (0..1, default 0.5): disk use then stays under about twice what is live
   * plus the active segment, and copying costs at most as much as it frees.
   */
  maxLiveRatio?: number | undefined;
  /** Bytes copied forward per pass at most (default 16 MiB; at least one segment's worth is always allowed). */
  maxCopyBytesPerRun?: number | undefined;
  /** How often to look for work besides after each roll (ms, default 1000). */
  checkIntervalMs?: number | undefined;
  /** The newest closed segments not copied forward yet (default 1). Unneeded ones are deleted all the same. */
  graceSegments?: number | undefined;
  /**
   * Copying starts once it would free at least this many bytes (default two segments), so that
   * each copy pass moves the live records of several segments together into segments of their
   * own, instead of copying the same long-lived messages again after every roll.
   */
  copyMinGarbageBytes?: number | undefined;
}

/** Counters since start, for metrics (SPEC §7). */
export interface CompactionStats {
  /** Passes that removed or copied something. */
  runs: number;
  segmentsRemoved: number;
  /** Bytes of the segment files removed. */
  bytesReclaimed: number;
  /** Messages copied forward (EvacuationResult.messages). */
  messagesCopied: number;
  /** Bytes of the records copying forward wrote. */
  bytesCopied: number;
  /** Passes cut short by a write, fdatasync, unlink or directory fsync error. */
  failures: number;
}

/** What one pass did. */
export interface CompactionRun {
  segmentsRemoved: number;
  bytesReclaimed: number;
  messagesCopied: number;
  bytesCopied: number;
  durationMs: number;
}

/** Copy-and-delete rounds in one pass at most. */
const MAX_ROUNDS_PER_RUN = 8;
/** Small segments (left by copies) merged into one once there are this many. */
const MERGE_SMALL_SEGMENTS = 8;

/** Ends a pass early once the compactor is stopped (shutdown). */
class Stopped extends Error {
  readonly code = 'MQ_ERR_SHUTTING_DOWN';
}

export class Compactor {
  readonly stats: CompactionStats = { runs: 0, segmentsRemoved: 0, bytesReclaimed: 0, messagesCopied: 0, bytesCopied: 0, failures: 0 };
  readonly #log: SegmentLog;
  readonly #policy: CompactionPolicy;
  readonly #fsync: FsyncPolicy;
  readonly #logger: Logger;
  readonly #maxLiveRatio: number;
  readonly #maxCopyBytesPerRun: number;
  readonly #checkIntervalMs: number;
  readonly #graceSegments: number;
  readonly #copyMinGarbageBytes: number;
  readonly #segmentBytes: number;
  readonly #writer: { rollBeforeNextWrite(): void };
  #running: Promise<CompactionRun | null> | null = null;
  #scheduled = false;
  /** A pass was asked for while one ran: run another when it ends. */
  #again = false;
  #stopped = false;
  #failing = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: CompactorOptions) {
    this.#log = opts.log;
    this.#policy = opts.policy;
    this.#fsync = opts.fsync;
    this.#logger = opts.logger;
    this.#maxLiveRatio = opts.maxLiveRatio ?? 0.5;
    this.#maxCopyBytesPerRun = opts.maxCopyBytesPerRun ?? 16 * 1024 * 1024;
    this.#checkIntervalMs = opts.checkIntervalMs ?? 1000;
    this.#graceSegments = opts.graceSegments ?? 1;
    this.#segmentBytes = opts.segmentBytes;
    this.#copyMinGarbageBytes = opts.copyMinGarbageBytes ?? 2 * opts.segmentBytes;
    this.#writer = opts.writer;
  }

  /** Runs a pass after every roll and every `checkIntervalMs`. */
  start(): void {
    this.#log.onRoll = () => this.schedule();
    this.#timer = setInterval(() => this.schedule(), this.#checkIntervalMs);
    this.#timer.unref();
    this.schedule();
  }

  /** Asks for a pass soon (on a later turn of the event loop); one already waiting covers it. */
  schedule(): void {
    if (this.#stopped || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#running === null) void this.run();
      else this.#again = true;
    });
  }

  /**
   * Runs a pass now, or right after the one in progress. Resolves with what it did, or null when
   * it found nothing to do or was stopped. Never rejects: failures are logged and counted.
   */
  run(): Promise<CompactionRun | null> {
    if (this.#stopped) return Promise.resolve(null);
    const previous = this.#running;
    // Assigned before the body below passes its first await, where the finally reads it.
    let next!: Promise<CompactionRun | null>;
    next = (async () => {
      if (previous !== null) await previous;
      try {
        const result = await this.#pass();
        if (this.#failing) {
          this.#failing = false;
          this.#logger.info('compaction works again');
        }
        return result;
      } catch (err) {
        if (err instanceof Stopped || this.#stopped) return null;
        this.stats.failures++;
        // One line per burst of failures (a full disk fails every pass until space is freed).
        if (!this.#failing) this.#logger.warn({ err }, 'compaction pass failed; retrying on every roll until it works');
        this.#failing = true;
        return null;
      } finally {
        if (this.#running === next) this.#running = null;
        if (this.#again && this.#running === null) {
          this.#again = false;
          this.schedule();
        }
      }
    })();
    this.#running = next;
    return next;
  }

  /** Stops scheduling passes and waits for the one in progress (it stops between slices). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#log.onRoll = undefined;
    if (this.#running !== null) await this.#running;
  }

  async #pass(): Promise<CompactionRun | null> {
    const started = performance.now();
    const run: CompactionRun = { segmentsRemoved: 0, bytesReclaimed: 0, messagesCopied: 0, bytesCopied: 0, durationMs: 0 };
    await this.#removeUnneeded(run);
    // Rounds: freeing some segments can leave others needed only for little (the ACKs they keep
    // for a segment that is gone now are no longer needed), which the next round copies.
    let budgetBytes = this.#maxCopyBytesPerRun;
    for (let round = 0; round < MAX_ROUNDS_PER_RUN; round++) {
      const victims = this.#pickVictims(budgetBytes, round === 0);
      if (victims.size === 0) break;
      // Copies go into a segment of their own: they outlive the records around them.
      if (round === 0 && this.#log.active.sizeBytes > this.#segmentBytes / 8) this.#writer.rollBeforeNextWrite();
      const copied = await this.#policy.evacuate(victims, () => this.#stopped);
      run.messagesCopied += copied.messages;
      run.bytesCopied += copied.bytes;
      this.stats.messagesCopied += copied.messages;
      this.stats.bytesCopied += copied.bytes;
      budgetBytes -= copied.bytes;
      if (this.#fsync !== 'always') {
        for (const segment of copied.segments) if (segment.open) await fdatasync(segment.fd);
      }
      const removedBefore = run.segmentsRemoved;
      await this.#removeUnneeded(run);
      // After what retire() wrote for the removed segments too: it belongs with the copies.
      if (copied.bytes > 0) this.#writer.rollBeforeNextWrite();
      if (run.segmentsRemoved === removedBefore || budgetBytes <= 0) break;
    }
    if (run.segmentsRemoved === 0 && run.messagesCopied === 0 && run.bytesCopied === 0) return null;
    run.durationMs = Math.round(performance.now() - started);
    this.stats.runs++;
    this.#logger.info(
      { ...run, segments: this.#log.segments.length, logBytes: this.#log.sizeBytes },
      'compaction run',
    );
    return run;
  }

  /** Segments (never the active one) the policy calls removable, oldest first. */
  #unneeded(): Segment[] {
    const segments = this.#log.segments;
    const out: Segment[] = [];
    for (let i = 0; i < segments.length - 1; i++) {
      if (this.#policy.isRemovable(segments, i)) out.push(segments[i]!);
    }
    return out;
  }

  /**
   * Deletes unneeded segments in rounds: unlink each, fsync the directory, and look again (a
   * segment pinned by one just deleted is free only once that deletion is durable).
   */
  async #removeUnneeded(run: CompactionRun): Promise<void> {
    for (;;) {
      if (this.#stopped) throw new Stopped();
      const round = this.#unneeded();
      if (round.length === 0) return;
      if (this.#policy.retire !== undefined) {
        // What replaces them must be durable before any of them is gone.
        const written = await this.#policy.retire(round);
        if (this.#fsync !== 'always') {
          for (const segment of written.segments) if (segment.open) await fdatasync(segment.fd);
        }
        if (this.#stopped) throw new Stopped();
      }
      let unlinked = 0;
      try {
        for (const segment of round) {
          if (!segment.open) return; // the log was closed under us (shutdown)
          const bytes = segment.sizeBytes;
          try {
            await fs.promises.unlink(segment.path);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          }
          this.#log.detach(segment);
          unlinked++;
          run.segmentsRemoved++;
          run.bytesReclaimed += bytes;
          this.stats.segmentsRemoved++;
          this.stats.bytesReclaimed += bytes;
        }
      } finally {
        if (unlinked > 0) await fsyncDirectoryAsync(this.#log.dir);
      }
    }
  }

  /**
   * Segments worth copying forward: those the policy can make removable by copying, at most
   * `maxLiveRatio` of their bytes, emptiest first, up to
   * `budgetBytes` in total; when `firstRound`, only once that would free `copyMinGarbageBytes`.
   * Small segments (under a quarter of `segmentBytes`, left by earlier copies) are merged once
   * there are MERGE_SMALL_SEGMENTS of them. The newest `graceSegments` closed segments wait: what
   * is live there right after a roll is mostly about to be acked.
   */
  #pickVictims(budgetBytes: number, firstRound: boolean): Set<Segment> {
    const segments = this.#log.segments;
    const candidates: { segment: Segment; neededBytes: number; ratio: number }[] = [];
    const small: { segment: Segment; neededBytes: number; ratio: number }[] = [];
    let garbageBytes = 0;
    for (let i = 0; i < segments.length - 1 - this.#graceSegments; i++) {
      const s = segments[i]!;
      const neededBytes = this.#policy.copyForwardBytes(segments, i);
      if (neededBytes === null) continue; // removable already, or copying would not free it
      const ratio = neededBytes / Math.max(s.sizeBytes, 1);
      if (ratio <= this.#maxLiveRatio) {
        candidates.push({ segment: s, neededBytes, ratio });
        garbageBytes += s.sizeBytes - neededBytes;
      } else if (s.sizeBytes < this.#segmentBytes / 4) {
        small.push({ segment: s, neededBytes, ratio });
      }
    }
    if (firstRound && garbageBytes < this.#copyMinGarbageBytes) candidates.length = 0;
    candidates.sort((a, b) => a.ratio - b.ratio || a.segment.baseOffset - b.segment.baseOffset);
    if (small.length >= MERGE_SMALL_SEGMENTS) candidates.push(...small); // oldest first
    const victims = new Set<Segment>();
    let bytes = 0;
    for (const c of candidates) {
      if (victims.size > 0 && bytes + c.neededBytes > budgetBytes) break;
      victims.add(c.segment);
      bytes += c.neededBytes;
    }
    if (victims.size < candidates.length) this.schedule(); // more to do: another pass soon
    return victims;
  }
}

function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err === null ? resolve() : reject(err))));
}

/** fsyncDirectory (files.ts) without blocking the event loop. */
async function fsyncDirectoryAsync(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
