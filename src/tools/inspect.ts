/**
 * `miniqueue inspect --db DIR [--records] [--topic T]` (SPEC §10): what a data directory holds,
 * read-only and without starting the server, like Kafka's kafka-dump-log.
 *
 * The summary lists each segment (records, bytes, how much of it is still live) and each topic
 * (live messages and where they stand at the end of the log). "Live" follows replay
 * (broker.ts): a message is live from its PUBLISH (or a RESTORE written by compaction or dead
 * lettering) until an ACK of it or a DELETE_TOPIC of its topic; its bytes are those of its newest
 * PUBLISH/RESTORE record, in the segment holding that record. A segment's live share is those
 * bytes over its size, the figure compaction judges a segment by (it copies live messages forward
 * out of segments where the share is at most one half, then deletes them).
 */
import path from 'node:path';
import { Placement, RecordType, type DecodedRecord } from '../log/record.js';
import { scanDataDir, type ScanProgress, type ScanResult, type SegmentReport } from './log-scan.js';

/** Where a live message stands after the last record of the log. */
type MessageState = 'ready' | 'inFlight' | 'delayed';

interface LiveMessage {
  segment: SegmentReport;
  sizeBytes: number;
  state: MessageState;
}

/** One topic as the log describes it. */
export interface TopicSummary {
  readonly topic: string;
  /** False when its last creating record was followed by a DELETE_TOPIC. */
  exists: boolean;
  /** Live messages at the end of the log, and how many are ready, in flight or delayed. */
  live: number;
  ready: number;
  inFlight: number;
  delayed: number;
  /** Bytes of the live messages' newest PUBLISH/RESTORE records. */
  liveBytes: number;
  /** Records in the log naming this topic, and the PUBLISH and ACK records among them. */
  records: number;
  publishes: number;
  acks: number;
}

/** A segment with its live figures. */
export interface SegmentSummary extends SegmentReport {
  liveMessages: number;
  liveBytes: number;
}

/** The result of {@link inspectDataDir}. */
export interface InspectSummary {
  readonly scan: ScanResult;
  readonly segments: SegmentSummary[];
  /** Every topic named in the log, sorted by name. */
  readonly topics: TopicSummary[];
}

interface TopicState extends TopicSummary {
  messages: Map<number, LiveMessage>;
}

/**
 * Reads the whole log of `dir` (read-only, see log-scan.ts) and sums it up per segment and topic.
 * Records after a damaged one are counted as a start with `--repair` would see them.
 * @throws DataDirError for a missing `dir`; fs errors unchanged.
 */
export function inspectDataDir(dir: string, onProgress?: (p: ScanProgress) => void, progressIntervalMs?: number): InspectSummary {
  const topics = new Map<string, TopicState>();
  const topicOf = (name: string): TopicState => {
    let t = topics.get(name);
    if (t === undefined) {
      t = { topic: name, exists: false, live: 0, ready: 0, inFlight: 0, delayed: 0, liveBytes: 0, records: 0, publishes: 0, acks: 0, messages: new Map() };
      topics.set(name, t);
    }
    return t;
  };
  const onRecord = (rec: DecodedRecord, segment: SegmentReport): void => {
    const t = topicOf(rec.topic);
    t.records++;
    switch (rec.type) {
      case RecordType.PUBLISH:
        t.exists = true;
        t.publishes++;
        t.messages.set(rec.messageId, { segment, sizeBytes: rec.sizeBytes, state: 'ready' });
        return;
      case RecordType.RESTORE: {
        t.exists = true;
        const state: MessageState =
          rec.placement === Placement.DELAYED ? 'delayed' : rec.placement === Placement.IN_FLIGHT ? 'inFlight' : 'ready';
        t.messages.set(rec.messageId, { segment, sizeBytes: rec.sizeBytes, state });
        return;
      }
      case RecordType.TOPIC:
        t.exists = true;
        return;
      case RecordType.DELETE_TOPIC:
        t.exists = false;
        t.messages.clear();
        return;
      case RecordType.ACK:
        t.acks++;
        t.messages.delete(rec.messageId);
        return;
      default:
        break;
    }
    const msg = t.messages.get(rec.messageId);
    if (msg === undefined) return; // settled before, or its topic was deleted: replay ignores it too
    msg.state = rec.type === RecordType.DELIVER ? 'inFlight' : rec.type === RecordType.DACK ? 'delayed' : 'ready';
  };
  const scan = scanDataDir(dir, { onRecord, onProgress, progressIntervalMs });

  const live = new Map<SegmentReport, { messages: number; bytes: number }>();
  for (const t of topics.values()) {
    for (const msg of t.messages.values()) {
      t.live++;
      t[msg.state]++;
      t.liveBytes += msg.sizeBytes;
      const s = live.get(msg.segment) ?? { messages: 0, bytes: 0 };
      s.messages++;
      s.bytes += msg.sizeBytes;
      live.set(msg.segment, s);
    }
  }
  const segments = scan.segments.map((s) => ({ ...s, liveMessages: live.get(s)?.messages ?? 0, liveBytes: live.get(s)?.bytes ?? 0 }));
  const summaries = [...topics.values()]
    .sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0))
    .map(({ messages: _messages, ...rest }) => rest);
  return { scan, segments, topics: summaries };
}

/**
 * The summary as text: a header, the segment table, the topic table (only `topic` when given)
 * and, when the log is damaged, what a start would do about it. Ends with a newline.
 */
export function formatInspect(summary: InspectSummary, topic?: string): string {
  const { scan } = summary;
  const out: string[] = [];
  const liveTotal = summary.segments.reduce((a, s) => a + s.liveBytes, 0);
  out.push(`data directory  ${scan.dir}`);
  out.push(
    `server          ${scan.lockOwnerPid === null ? 'not running (no live LOCK owner)' : `running (pid ${scan.lockOwnerPid} holds LOCK): figures are a snapshot; it writes on meanwhile`}`,
  );
  out.push(
    `log             ${scan.segments.length} segment${scan.segments.length === 1 ? '' : 's'}, ${scan.records} records, ` +
      `${scan.bytes} bytes (${humanBytes(scan.bytes)}), live ${liveTotal} bytes (${percent(liveTotal, scan.bytes)})`,
  );
  if (scan.otherEntries.length > 0) out.push(`other entries   ${scan.otherEntries.join(', ')}`);
  out.push('');
  out.push(
    table(
      ['segment', 'records', 'bytes', 'live msgs', 'live bytes', 'live share', 'offsets', 'status'],
      summary.segments.map((s) => [
        path.basename(s.file),
        String(s.records),
        String(s.sizeBytes),
        String(s.liveMessages),
        String(s.liveBytes),
        percent(s.liveBytes, s.sizeBytes),
        s.records === 0 ? '-' : `${s.firstOffset}..${s.lastOffset}`,
        segmentStatus(s),
      ]),
      [false, true, true, true, true, true, false, false],
    ),
  );
  const topics = topic === undefined ? summary.topics : summary.topics.filter((t) => t.topic === topic);
  out.push('');
  if (topics.length === 0) {
    out.push(topic === undefined ? 'no topics in the log' : `no records of topic ${JSON.stringify(topic)} in the log`);
  } else {
    out.push(
      table(
        ['topic', 'exists', 'live', 'ready', 'in flight', 'delayed', 'live bytes', 'records', 'publishes', 'acks'],
        topics.map((t) => [
          t.topic,
          t.exists ? 'yes' : 'deleted',
          String(t.live),
          String(t.ready),
          String(t.inFlight),
          String(t.delayed),
          String(t.liveBytes),
          String(t.records),
          String(t.publishes),
          String(t.acks),
        ]),
        [false, false, true, true, true, true, true, true, true, true],
      ),
    );
    out.push('("in flight" = delivered and not settled when the log ends; a restart makes them ready again, at the front.)');
  }
  if (scan.firstDamage !== null) {
    out.push('');
    out.push(`damage: ${describeDamage(scan.firstDamage)}`);
  }
  return `${out.join('\n')}\n`;
}

/** One line saying what is wrong at a damaged segment and what the next start does about it. */
export function describeDamage(s: SegmentReport): string {
  const d = s.damage;
  if (d === null) return `${s.file}: no damage`;
  const where = `${s.file} at byte position ${d.position} (${d.reason}; ${d.bytesAfter} bytes from there to the end of the file)`;
  switch (d.kind) {
    case 'torn-tail':
      return `torn record at the end of the log in ${where}: a write cut off by a crash; the next start cuts it away, keeps it in <db>/damaged/ and logs it`;
    case 'writing':
      return `record still being written at the end of the log in ${where}: the server holding the LOCK is appending it`;
    case 'damage':
      return `damaged record in ${where}: the next start stops here; start with --repair to move the damaged bytes into <db>/damaged/ and keep every intact record`;
  }
}

function segmentStatus(s: SegmentReport): string {
  if (s.vanished) return 'deleted by compaction while being read';
  const d = s.damage;
  if (d === null) return 'ok';
  if (d.kind === 'writing') return `being written at ${d.position}`;
  return `${d.kind === 'torn-tail' ? 'TORN TAIL' : 'DAMAGED'} at ${d.position} (${d.reason})`;
}

// ---------------------------------------------------------------------------------------------
// Record dump (--records)

/**
 * `inspect --records`: writes one line per record (or per record of `topic`) through `write`, in
 * log order, under a heading per segment, and a `BAD` line where a segment's records stop
 * decoding. Returns the scan, whose `firstDamage` says whether the log is damaged.
 */
export function dumpRecords(
  dir: string,
  write: (text: string) => void,
  opts: { topic?: string; onProgress?: (p: ScanProgress) => void; progressIntervalMs?: number } = {},
): ScanResult {
  let lines: string[] = [];
  const flush = (): void => {
    if (lines.length === 0) return;
    write(`${lines.join('\n')}\n`);
    lines = [];
  };
  const push = (line: string): void => {
    lines.push(line);
    if (lines.length >= 1024) flush();
  };
  let current: SegmentReport | null = null;
  const heading = (s: SegmentReport): void => {
    if (current === s) return;
    current = s;
    push(`== ${path.basename(s.file)}`);
    push(RECORD_HEADER);
  };
  const scan = scanDataDir(dir, {
    onRecord: (rec, segment, position) => {
      if (opts.topic !== undefined && rec.topic !== opts.topic) return;
      heading(segment);
      push(recordLine(rec, position));
    },
    onSegment: (s) => {
      if (s.damage === null && !s.vanished) return;
      heading(s);
      if (s.vanished) push(`${pad('-', 12)} deleted by compaction before it could be read`);
      else push(`${pad(String(s.damage!.position), 12)} ${'-'.padStart(12)} ${'-'.padEnd(13)}${'-'.padStart(12)} ${'-'.padStart(8)}  BAD  ${describeDamage(s)}`);
    },
    onProgress: opts.onProgress,
    progressIntervalMs: opts.progressIntervalMs,
  });
  flush();
  return scan;
}

const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RecordType).map(([name, value]) => [value, name]));
const PLACEMENT_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Placement).map(([name, value]) => [value, name]));

const RECORD_HEADER = `${pad('position', 12)} ${'offset'.padStart(12)} ${'type'.padEnd(13)}${'id'.padStart(12)} ${'size'.padStart(8)}  crc  topic  detail`;

function recordLine(rec: DecodedRecord, position: number): string {
  let detail = '';
  switch (rec.type) {
    case RecordType.PUBLISH:
      detail = `payload ${rec.payloadLength} B`;
      break;
    case RecordType.DACK:
      detail = `due ${isoTime(rec.dueAtMs)}`;
      break;
    case RecordType.RESTORE:
      detail =
        `${PLACEMENT_NAMES[rec.placement] ?? rec.placement} placeOffset=${rec.placeOffset} dackCount=${rec.dackCount} ` +
        `deliveries=${rec.deliveries}${rec.placement === Placement.DELAYED ? ` due ${isoTime(rec.dueAtMs)}` : ''} payload ${rec.payloadLength} B`;
      break;
    case RecordType.COUNTERS:
      detail = `published=${rec.published} acked=${rec.acked} deadLettered=${rec.deadLettered}`;
      break;
    default:
      break;
  }
  // Every record reaching here passed its CRC check (scanSegment stops at the first that fails).
  return `${pad(String(position), 12)} ${String(rec.offset).padStart(12)} ${(TYPE_NAMES[rec.type] ?? String(rec.type)).padEnd(13)}${String(rec.messageId).padStart(12)} ${String(rec.sizeBytes).padStart(8)}  ok   ${rec.topic}${detail === '' ? '' : `  ${detail}`}`;
}

function isoTime(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

function pad(text: string, width: number): string {
  return text.padStart(width);
}

// ---------------------------------------------------------------------------------------------

/** Columns padded to their widest cell; `right[i]` right-aligns column i. */
function table(header: string[], rows: string[][], right: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function percent(part: number, whole: number): string {
  return whole === 0 ? '-' : `${((100 * part) / whole).toFixed(1)}%`;
}

/** 1536 -> "1.5 KiB". */
export function humanBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
