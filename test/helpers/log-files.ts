/**
 * Log files for tests: records written through the real writer, a log read back record by record,
 * segment files listed and scanned, a directory hashed to prove it unchanged.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { LogAppend, LogWriter, type AppendCallback, type FsyncPolicy } from '../../src/log/log-writer.js';
import { RecordType, decodeRecord, type DecodedRecord } from '../../src/log/record.js';
import { SegmentLog } from '../../src/log/segment-log.js';
import { silentLogger } from './loggers.js';

/** Deterministic, non-zero-heavy payload bytes for record `i`. */
export function payloadFor(i: number, sizeBytes: number): Buffer {
  const b = Buffer.alloc(sizeBytes);
  for (let k = 0; k < sizeBytes; k++) b[k] = (i * 31 + k * 7 + 1) & 0xff;
  return b;
}

/** A replayed record with its payload copied out (the visitor's view is valid only during the call). */
export interface Replayed {
  type: RecordType;
  offset: number;
  topic: string;
  messageId: number;
  dueAtMs: number;
  payload: Buffer | null;
  segmentBase: number;
  payloadPosition: number;
}

/** Opens the log in `dir`, collecting every replayed record. */
export function openLog(
  dir: string,
  opts: { repair?: boolean; logger?: Logger } = {},
): { log: SegmentLog; records: Replayed[]; stats: ReturnType<typeof SegmentLog.open>['stats'] } {
  const records: Replayed[] = [];
  const { log, stats } = SegmentLog.open({ dir, repair: opts.repair ?? false, logger: opts.logger ?? silentLogger }, (rec, segment) => {
    records.push({
      type: rec.type,
      offset: rec.offset,
      topic: rec.topic,
      messageId: rec.messageId,
      dueAtMs: rec.dueAtMs,
      // Replay hands out positions, not bytes: read the payload back from the segment file.
      payload:
        rec.type === RecordType.PUBLISH || rec.type === RecordType.RESTORE
          ? segment.readAt(rec.payloadPosition, rec.payloadLength)
          : null,
      segmentBase: segment.baseOffset,
      payloadPosition: rec.payloadPosition,
    });
  });
  return { log, records, stats };
}

/**
 * Appends the record `make` builds with the completion it is given (a named constructor, e.g.
 * `(done) => LogAppend.forAck('q', 7, done)`), and resolves with its error (or null) and the
 * filled-in record.
 */
export function append(writer: LogWriter, make: (done: AppendCallback) => LogAppend): Promise<{ err: Error | null; rec: LogAppend }> {
  return new Promise((resolve) => writer.append(make((err, rec) => resolve({ err, rec }))));
}

/** Appends a PUBLISH of `payload` to `topic` (see {@link append}). */
export function appendPublish(writer: LogWriter, topic: string, payload: Buffer): Promise<{ err: Error | null; rec: LogAppend }> {
  return append(writer, (done) => LogAppend.forPublish(topic, payload, done));
}

/**
 * Writes PUBLISH records with the given payloads into the log in `dir` (opened and closed here),
 * `perBatch` records per tick. Returns the offsets they got.
 */
export async function writePublishes(
  dir: string,
  payloads: Buffer[],
  opts: { segmentBytes?: number; fsync?: FsyncPolicy; perBatch?: number; topic?: string } = {},
): Promise<number[]> {
  const { log } = openLog(dir);
  const writer = new LogWriter(log, {
    fsync: opts.fsync ?? 'never',
    fsyncIntervalMs: 1000,
    segmentBytes: opts.segmentBytes ?? 1 << 20,
    logger: silentLogger,
  });
  const perBatch = opts.perBatch ?? payloads.length;
  const offsets: number[] = [];
  for (let i = 0; i < payloads.length; i += perBatch) {
    const results = await Promise.all(
      payloads.slice(i, i + perBatch).map((p) => appendPublish(writer, opts.topic ?? 'topic', p)),
    );
    for (const r of results) {
      if (r.err !== null) throw r.err;
      offsets.push(r.rec.offset);
    }
  }
  await writer.close();
  return offsets;
}

/** Segment file names in `dir`, sorted. */
export function segmentNames(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith('.log')).sort();
}

/** Every record of one segment file, with its byte position and size. */
export function scanFile(file: string): { position: number; sizeBytes: number; rec: DecodedRecord }[] {
  const data = fs.readFileSync(file);
  const out: { position: number; sizeBytes: number; rec: DecodedRecord }[] = [];
  let position = 0;
  while (position < data.length) {
    const rec = decodeRecord(data, position, data.length, 2 ** 31);
    if (typeof rec === 'string') throw new Error(`scanFile: ${rec} at ${position} of ${file}`);
    out.push({ position, sizeBytes: rec.sizeBytes, rec });
    position += rec.sizeBytes;
  }
  return out;
}

/** name -> sha256 of every file under `dir` (recursive), to prove a directory unchanged. */
export function hashTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        out.set(path.relative(dir, p) + '/', 'dir');
        walk(p);
      } else {
        const data = fs.readFileSync(p);
        out.set(path.relative(dir, p), `${data.length}:${createHash('sha256').update(data).digest('hex')}`);
      }
    }
  };
  walk(dir);
  return out;
}
