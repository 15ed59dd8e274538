/**
 * `GET /metrics` (issue 6, SPEC §7) against a real in-process server: the text parses as
 * Prometheus exposition format 0.0.4 (checked line by line with a small parser below, not with
 * prom-client itself), and the values move as messages flow over both protocols: per-topic
 * gauges and counters, log size and segments, the fsync histogram, connections and refusals,
 * and the topic label cap.
 */
import assert from 'node:assert/strict';
import type http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import type { RunningServer } from '../../src/server/server.js';
import { OTHER_TOPICS_LABEL, TOPIC_LABELS_MAX } from '../../src/server/metrics.js';
import { h2connect, h2request, isErrorReply, removeDir, type Reply, RespConnections, startInProcess, tempDir } from '../helpers/index.js';

// ---- a strict reader of the Prometheus text format (version 0.0.4) -------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  help: string | undefined;
  type: string | undefined;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, where: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  // prom-client writes NaN as `Nan` (nodejs_eventloop_lag_* before the first sample); Prometheus
  // reads values with Go's strconv.ParseFloat, which takes NaN and Inf in any case.
  if (/^nan$/i.test(text)) return NaN;
  assert.match(text, /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `${where}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

/** Parses `{a="x",b="y\"z"}` starting at `pos` (the `{`); returns the labels and the index after `}`. */
function parseLabels(line: string, pos: number, where: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = pos + 1;
  for (;;) {
    if (line[i] === '}') return { labels, end: i + 1 };
    const eq = line.indexOf('=', i);
    assert.ok(eq > i, `${where}: label without '='`);
    const name = line.slice(i, eq);
    assert.match(name, LABEL_NAME, `${where}: bad label name ${JSON.stringify(name)}`);
    assert.equal(line[eq + 1], '"', `${where}: label value must be quoted`);
    let value = '';
    let j = eq + 2;
    for (;;) {
      const c = line[j];
      assert.ok(c !== undefined, `${where}: unterminated label value`);
      if (c === '\\') {
        const n = line[j + 1];
        assert.ok(n === '\\' || n === '"' || n === 'n', `${where}: bad escape \\${n}`);
        value += n === 'n' ? '\n' : n;
        j += 2;
        continue;
      }
      if (c === '"') break;
      value += c;
      j++;
    }
    assert.ok(!(name in labels), `${where}: label ${name} repeated`);
    labels[name] = value;
    i = j + 1;
    if (line[i] === ',') i++;
    else assert.equal(line[i], '}', `${where}: expected ',' or '}' after a label`);
  }
}

/** The family a sample name belongs to, given the families declared so far. */
function familyOf(sampleName: string, families: Map<string, Family>): Family | undefined {
  const exact = families.get(sampleName);
  if (exact !== undefined) return exact;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sampleName.endsWith(suffix)) continue;
    const f = families.get(sampleName.slice(0, -suffix.length));
    if (f !== undefined && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

/**
 * Parses an exposition, asserting the grammar: every line is blank, `# HELP name text`,
 * `# TYPE name type`, another comment, or `name[{labels}] value [timestamp]`; HELP and TYPE come
 * at most once per family and before its samples; every sample belongs to a declared family;
 * no series appears twice; histogram buckets are cumulative and end with le="+Inf" = _count.
 */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seenSeries = new Set<string>();
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, index) => {
    const where = `line ${index + 1} ${JSON.stringify(line.slice(0, 80))}`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (m === null) return; // an ordinary comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      assert.match(name, METRIC_NAME, `${where}: bad metric name`);
      let family = families.get(name);
      if (family === undefined) {
        family = { name, help: undefined, type: undefined, samples: [] };
        families.set(name, family);
      }
      assert.equal(family.samples.length, 0, `${where}: ${kind} after samples of ${name}`);
      if (kind === 'HELP') {
        assert.equal(family.help, undefined, `${where}: second HELP for ${name}`);
        family.help = rest;
      } else {
        assert.equal(family.type, undefined, `${where}: second TYPE for ${name}`);
        assert.ok(TYPES.has(rest), `${where}: unknown type ${rest}`);
        family.type = rest;
      }
      return;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    assert.ok(nameMatch !== null, `${where}: a sample must start with a metric name`);
    const name = nameMatch[0];
    let pos = name.length;
    let labels: Record<string, string> = {};
    if (line[pos] === '{') ({ labels, end: pos } = parseLabels(line, pos, where));
    assert.equal(line[pos], ' ', `${where}: expected one space before the value`);
    const parts = line.slice(pos + 1).split(' ');
    assert.ok(parts.length === 1 || parts.length === 2, `${where}: value [timestamp] expected`);
    const value = parseValue(parts[0]!, where);
    if (parts.length === 2) assert.match(parts[1]!, /^-?\d+$/, `${where}: bad timestamp`);
    const family = familyOf(name, families);
    assert.ok(family !== undefined, `${where}: sample of an undeclared family`);
    assert.ok(family.type !== undefined && family.help !== undefined, `${where}: ${family.name} has no TYPE or HELP`);
    const series = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    assert.ok(!seenSeries.has(series), `${where}: series repeated`);
    seenSeries.add(series);
    if (family.type === 'counter') assert.ok(value >= 0, `${where}: negative counter`);
    family.samples.push({ name, labels, value });
  });
  for (const family of families.values()) {
    if (family.type !== 'histogram') continue;
    const groups = new Map<string, Sample[]>();
    for (const s of family.samples) {
      const { le, ...rest } = s.labels;
      const key = JSON.stringify(Object.entries(rest).sort());
      if (s.name.endsWith('_bucket')) assert.ok(le !== undefined, `${family.name}: bucket without le`);
      const g = groups.get(key) ?? [];
      g.push(s);
      groups.set(key, g);
    }
    for (const g of groups.values()) {
      const buckets = g.filter((s) => s.name.endsWith('_bucket'));
      const count = g.find((s) => s.name.endsWith('_count'));
      assert.ok(buckets.length > 0 && count !== undefined && g.some((s) => s.name.endsWith('_sum')), `${family.name}: _bucket, _sum and _count`);
      let previous = -Infinity;
      let last = 0;
      for (const b of buckets) {
        const le = parseValue(b.labels['le']!, family.name);
        assert.ok(le > previous, `${family.name}: le values increase`);
        assert.ok(b.value >= last, `${family.name}: buckets are cumulative`);
        previous = le;
        last = b.value;
      }
      assert.equal(previous, Infinity, `${family.name}: the last bucket is le="+Inf"`);
      assert.equal(last, count.value, `${family.name}: le="+Inf" equals _count`);
    }
  }
  return families;
}

// ---- the server -----------------------------------------------------------------------------

let dir: string;
let server: RunningServer;
let session: http2.ClientHttp2Session;
const resp = new RespConnections(() => server.resp!.port);
const connect = resp.connect;

before(async () => {
  dir = tempDir('mq-metrics-');
  // --fsync always (the default), so the fsync histogram gets observations.
  server = await startInProcess(dir, ['--max-message-bytes', '1000']);
  session = h2connect(server.http.port);
});

after(async () => {
  session.close();
  resp.closeAll();
  await server.close();
  removeDir(dir);
});

async function scrape(): Promise<{ families: Map<string, Family>; text: string }> {
  const res = await h2request(session, 'GET', '/metrics');
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const text = res.body.toString('utf8');
  return { families: parseExposition(text), text };
}

/** The value of the sample `name` whose labels include `labels`; undefined when there is none. */
function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = familyOf(name, families);
  const sample = family?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return sample?.value;
}

describe('GET /metrics', () => {
  test('is valid Prometheus text with HELP and TYPE for every family, miniqueue and default process metrics', async () => {
    const { families } = await scrape();
    const expected: Record<string, string> = {
      miniqueue_topic_ready_messages: 'gauge',
      miniqueue_topic_in_flight_messages: 'gauge',
      miniqueue_topic_delayed_messages: 'gauge',
      miniqueue_topic_consumers: 'gauge',
      miniqueue_topic_published_total: 'counter',
      miniqueue_topic_acked_total: 'counter',
      miniqueue_topic_nacked_total: 'counter',
      miniqueue_topic_backed_total: 'counter',
      miniqueue_topic_dacked_total: 'counter',
      miniqueue_topic_redelivered_total: 'counter',
      miniqueue_topic_ack_timeouts_total: 'counter',
      miniqueue_topic_dead_lettered_total: 'counter',
      miniqueue_topics: 'gauge',
      miniqueue_messages: 'gauge',
      miniqueue_log_bytes: 'gauge',
      miniqueue_log_segments: 'gauge',
      miniqueue_log_written_bytes_total: 'counter',
      miniqueue_log_fsyncs_total: 'counter',
      miniqueue_fsync_duration_seconds: 'histogram',
      miniqueue_compaction_runs_total: 'counter',
      miniqueue_compaction_reclaimed_bytes_total: 'counter',
      miniqueue_connections: 'gauge',
      miniqueue_connections_max: 'gauge',
      miniqueue_connections_accepted_total: 'counter',
      miniqueue_refusals_total: 'counter',
      process_cpu_user_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
      nodejs_heap_size_used_bytes: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) {
      const family = families.get(name);
      assert.ok(family !== undefined, `${name} is exported`);
      assert.equal(family.type, type, `${name} is a ${type}`);
      assert.ok((family.help ?? '').length > 0, `${name} has HELP text`);
    }
    assert.equal(value(families, 'miniqueue_connections_max'), 10000);
    assert.ok(value(families, 'miniqueue_log_segments')! >= 1);
  });

  test('per-topic figures, log size, fsync latency and connections move as messages flow over both protocols', async () => {
    const topic = 'metrics.flow';
    const before = await scrape();
    assert.equal(value(before.families, 'miniqueue_topic_published_total', { topic }), undefined, 'no series before the topic exists');
    const logBytesBefore = value(before.families, 'miniqueue_log_bytes')!;
    const fsyncsBefore = value(before.families, 'miniqueue_fsync_duration_seconds_count') ?? 0;

    const c = await connect();
    for (let i = 0; i < 3; i++) assert.equal(await c.send('PUBLISH', topic, `resp ${i}`), 'OK');
    for (let i = 0; i < 2; i++) assert.equal((await h2request(session, 'POST', `/publish/${topic}`, `h2 ${i}`)).status, 201);

    let now = (await scrape()).families;
    assert.equal(value(now, 'miniqueue_topic_published_total', { topic }), 5);
    assert.equal(value(now, 'miniqueue_topic_ready_messages', { topic }), 5);
    assert.equal(value(now, 'miniqueue_topic_in_flight_messages', { topic }), 0);
    assert.equal(value(now, 'miniqueue_topic_acked_total', { topic }), 0);
    assert.ok(value(now, 'miniqueue_log_bytes')! > logBytesBefore, 'the log grew');
    assert.ok(value(now, 'miniqueue_fsync_duration_seconds_count')! >= fsyncsBefore + 1, 'fsyncs were observed');
    assert.ok(value(now, 'miniqueue_fsync_duration_seconds_sum')! > 0);
    assert.ok(value(now, 'miniqueue_connections', { protocol: 'resp' })! >= 1);
    assert.ok(value(now, 'miniqueue_connections', { protocol: 'http2' })! >= 1);
    assert.ok(value(now, 'miniqueue_connections_accepted_total', { protocol: 'resp' })! >= 1);
    assert.ok(value(now, 'miniqueue_topics')! >= 1);

    const reserved: Reply[][] = [];
    for (let i = 0; i < 3; i++) reserved.push((await c.send('RESERVE', topic)) as Reply[]);
    now = (await scrape()).families;
    assert.equal(value(now, 'miniqueue_topic_ready_messages', { topic }), 2);
    assert.equal(value(now, 'miniqueue_topic_in_flight_messages', { topic }), 3);

    assert.equal(await c.send('ACK', topic, String(reserved[0]![0])), 'OK');
    assert.equal(await c.send('ACK', topic, String(reserved[1]![0])), 'OK');
    assert.equal(await c.send('DACK', topic, String(reserved[2]![0]), '60'), 'OK');
    now = (await scrape()).families;
    assert.equal(value(now, 'miniqueue_topic_acked_total', { topic }), 2);
    assert.equal(value(now, 'miniqueue_topic_in_flight_messages', { topic }), 0);
    assert.equal(value(now, 'miniqueue_topic_delayed_messages', { topic }), 1);
    assert.equal(value(now, 'miniqueue_topic_dacked_total', { topic }), 1);
    assert.equal(value(now, 'miniqueue_topic_nacked_total', { topic }), 0);
    assert.equal(value(now, 'miniqueue_topic_published_total', { topic }), 5, 'counters only go up');

    const subscriber = await connect();
    assert.ok(Buffer.isBuffer(await subscriber.send('SUBSCRIBE', topic)), 'the first delivery is pushed');
    now = (await scrape()).families;
    assert.equal(value(now, 'miniqueue_topic_consumers', { topic }), 1);
    assert.equal(value(now, 'miniqueue_topic_in_flight_messages', { topic }), 1);
  });

  test('refusals: 413 over HTTP/2 and an oversized RESP PUBLISH count as message_too_large', async () => {
    const before = (await scrape()).families;
    const h2Before = value(before, 'miniqueue_refusals_total', { protocol: 'http2', reason: 'message_too_large' })!;
    const respBefore = value(before, 'miniqueue_refusals_total', { protocol: 'resp', reason: 'message_too_large' })!;
    assert.equal((await h2request(session, 'POST', '/publish/metrics.big', Buffer.alloc(2000))).status, 413);
    const c = await connect();
    const r = await c.send('PUBLISH', 'metrics.big', Buffer.alloc(2000));
    assert.ok(isErrorReply(r));
    const now = (await scrape()).families;
    assert.equal(value(now, 'miniqueue_refusals_total', { protocol: 'http2', reason: 'message_too_large' }), h2Before + 1);
    assert.equal(value(now, 'miniqueue_refusals_total', { protocol: 'resp', reason: 'message_too_large' }), respBefore + 1);
    for (const reason of ['max_connections', 'unauthorized', 'output_limit', 'too_many_arguments']) {
      assert.ok(value(now, 'miniqueue_refusals_total', { protocol: 'resp', reason }) !== undefined, `${reason} is exported even at 0`);
    }
  });

  test(`topic labels are capped at ${TOPIC_LABELS_MAX}: further topics are added up under topic="${OTHER_TOPICS_LABEL}"`, async () => {
    const c = await connect();
    const existing = server.broker.topicNames().length;
    const extra = TOPIC_LABELS_MAX + 10 - existing;
    const commands: string[][] = [];
    for (let i = 0; i < extra; i++) commands.push(['PUBLISH', `metrics.many.${String(i).padStart(3, '0')}`, 'x']);
    const replies = await c.pipeline(commands);
    assert.ok(replies.every((r) => r === 'OK'));
    const total = server.broker.topicNames().length;
    assert.ok(total > TOPIC_LABELS_MAX);

    const { families } = await scrape();
    const ready = families.get('miniqueue_topic_ready_messages')!.samples;
    const labelValues = new Set(ready.map((s) => s.labels['topic']));
    assert.equal(labelValues.size, TOPIC_LABELS_MAX + 1, 'the cap plus one shared label value');
    assert.ok(labelValues.has(OTHER_TOPICS_LABEL));
    assert.equal(value(families, 'miniqueue_topics'), total);
    const sumPublished = families.get('miniqueue_topic_published_total')!.samples.reduce((a, s) => a + s.value, 0);
    let expectedPublished = 0;
    for (const name of server.broker.topicNames()) expectedPublished += server.broker.topicStats(name)!.published;
    assert.equal(sumPublished, expectedPublished, 'folding loses nothing: the series add up to every topic');
    assert.equal(value(families, 'miniqueue_topic_published_total', { topic: OTHER_TOPICS_LABEL }), total - TOPIC_LABELS_MAX);

    // Labels are sticky: the topics that had one keep it on the next scrape.
    const again = (await scrape()).families;
    assert.deepEqual(new Set(again.get('miniqueue_topic_ready_messages')!.samples.map((s) => s.labels['topic'])), labelValues);
  });
});
