/**
 * A resumable scan of one segment file during replay: reads it in chunks, decodes record after
 * record and hands each to a visitor, and can stop after a budget of records and go on later
 * exactly where it stopped. Replay at start runs scans in slices of a few milliseconds, so that
 * the listeners answer (503 MQ_ERR_LOADING, `-LOADING`) while a long log is read (issue 13).
 */
import fs from 'node:fs';
import { decodeRecordInto, type CorruptReason, type DecodedRecord } from './record.js';
import type { Segment } from './segment.js';

/** Records larger than this are taken as a damaged length field (bytes). */
export const MAX_RECORD_BYTES = 2 ** 31;

/** Bytes read per call while replaying a segment; a larger record gets a buffer of its own size. */
export const REPLAY_CHUNK_BYTES = 8 * 1024 * 1024;

/** Why a scan stopped before the end of its file. */
export type ScanBadReason = CorruptReason | 'offset-not-increasing';

/**
 * The scan of one segment from `startPosition`, in steps ({@link step}). Stops at the first record
 * that does not decode, or whose offset does not increase past the `lastOffset` it started from;
 * then {@link bad} says why and {@link position} where. `rec` is reused for every record; the
 * visitor sees `rec.payloadPosition` as a position in the file.
 */
export class SegmentScan {
  readonly #segment: Segment;
  readonly #rec: DecodedRecord;
  readonly #visit: (rec: DecodedRecord) => void;
  /** The file's size; smaller once a read finds the file shorter than its size said. */
  #fileSize: number;
  #chunk: Buffer;
  /** File position of chunk[0]. */
  #chunkStart: number;
  /** Bytes of chunk filled. */
  #chunkEnd = 0;
  /** File position of the next record (after the scan: of the bad record, or the end). */
  position: number;
  /** Offset of the last record visited (or the one the scan started after). */
  lastOffset: number;
  /** Set when the scan ended at a record that is not valid; undefined while running or when the whole file is valid. */
  bad: ScanBadReason | undefined = undefined;
  /** True once the scan has ended (at the end of the file or at a bad record). */
  done = false;

  constructor(
    segment: Segment,
    sizeBytes: number,
    lastOffset: number,
    rec: DecodedRecord,
    visit: (rec: DecodedRecord) => void,
    startPosition = 0,
  ) {
    this.#segment = segment;
    this.#rec = rec;
    this.#visit = visit;
    this.#fileSize = sizeBytes;
    this.lastOffset = lastOffset;
    this.position = startPosition;
    this.#chunkStart = startPosition;
    this.#chunk = Buffer.allocUnsafe(Math.min(REPLAY_CHUNK_BYTES, Math.max(sizeBytes - startPosition, 1)));
  }

  /**
   * Visits up to `maxRecords` more records (Infinity: to the end), reading at most one more chunk
   * of the file. Returns {@link done}. Throws fs errors unchanged (EIO).
   */
  step(maxRecords: number): boolean {
    if (this.done) return true;
    const segment = this.#segment;
    const rec = this.#rec;
    const visit = this.#visit;
    let visited = 0;
    for (;;) {
      const chunk = this.#chunk;
      const chunkStart = this.#chunkStart;
      const chunkEnd = this.#chunkEnd;
      let lastOffset = this.lastOffset;
      let position = this.position;
      let p = position - chunkStart;
      try {
        while (p < chunkEnd) {
          if (visited >= maxRecords) return false;
          const bad = decodeRecordInto(chunk, p, chunkEnd, MAX_RECORD_BYTES, rec);
          if (bad !== undefined) {
            const wholeFileRead = chunkStart + chunkEnd >= this.#fileSize;
            const needMore = (bad === 'truncated-header' || bad === 'truncated-body') && !wholeFileRead;
            if (needMore) break;
            return this.#end(bad);
          }
          if (rec.offset <= lastOffset || rec.offset < segment.baseOffset) return this.#end('offset-not-increasing');
          lastOffset = rec.offset;
          segment.lastOffset = rec.offset;
          rec.payloadPosition += chunkStart;
          visit(rec);
          visited++;
          position += rec.sizeBytes;
          p += rec.sizeBytes;
        }
      } finally {
        this.lastOffset = lastOffset;
        this.position = position;
      }
      if (position >= this.#fileSize) return this.#end(undefined);
      this.#refill();
      // One read per step, so that a slice stays short however large the records are.
      if (maxRecords !== Infinity) return false;
    }
  }

  #end(bad: ScanBadReason | undefined): true {
    this.bad = bad;
    this.done = true;
    // The chunk may be 8 MiB or a record's size: let it go now, not when the scan object does.
    this.#chunk = Buffer.alloc(0);
    this.#chunkEnd = 0;
    return true;
  }

  /** Moves the partial record at {@link position} to the front and reads on; grows for a record larger than a chunk. */
  #refill(): void {
    const position = this.position;
    let chunk = this.#chunk;
    const leftover = this.#chunkStart + this.#chunkEnd - position;
    let need = REPLAY_CHUNK_BYTES;
    if (leftover >= 4) {
      const recordBytes = chunk.readUInt32LE(position - this.#chunkStart) + 4;
      if (recordBytes <= MAX_RECORD_BYTES) need = Math.max(need, recordBytes);
    }
    need = Math.min(need, this.#fileSize - position);
    const next = need > chunk.length ? Buffer.allocUnsafe(need) : chunk;
    chunk.copy(next, 0, position - this.#chunkStart, this.#chunkEnd);
    chunk = next;
    let chunkEnd = leftover;
    while (chunkEnd < need) {
      const n = fs.readSync(this.#segment.fd, chunk, chunkEnd, need - chunkEnd, position + chunkEnd);
      if (n === 0) break;
      chunkEnd += n;
    }
    // The file turned out shorter than its size said: what we have is all there is.
    if (chunkEnd < need) this.#fileSize = position + chunkEnd;
    this.#chunk = chunk;
    this.#chunkStart = position;
    this.#chunkEnd = chunkEnd;
  }
}

/**
 * Reads `segment` from `startPosition` (0: the start) in chunks and calls `visit` for each valid record, in order.
 * Stops at the first record that does not decode, or whose offset does not increase past
 * `lastOffset`, and returns its position and reason (bad undefined when the whole file is valid).
 * `rec` is reused for every record.
 */
export function scanSegment(
  segment: Segment,
  sizeBytes: number,
  lastOffset: number,
  rec: DecodedRecord,
  visit: (rec: DecodedRecord) => void,
  startPosition = 0,
): { position: number; bad: ScanBadReason | undefined; lastOffset: number } {
  const scan = new SegmentScan(segment, sizeBytes, lastOffset, rec, visit, startPosition);
  scan.step(Infinity);
  return { position: scan.position, bad: scan.bad, lastOffset: scan.lastOffset };
}
