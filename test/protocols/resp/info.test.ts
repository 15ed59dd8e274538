/**
 * Issue 14 item 5: Redis-style `INFO` sections (server, clients, memory, persistence with
 * `loading`, stats, replication, keyspace; `INFO <section> ...` selects) and `CLIENT HELP`, as
 * redis-cli shows them from a real server.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Broker } from '../../../src/broker/broker.js';
import type { LoadingStatus } from '../../../src/engine/loading-status.js';
import type { QueueEngine, StorageStats, TopicCounters } from '../../../src/engine/queue-engine.js';
import { Admission } from '../../../src/protocols/admission.js';
import { buildInfo } from '../../../src/protocols/resp/info.js';
import type { RunningServer } from '../../../src/server/server.js';
import { removeDir, RespConn, runCommand, silentLogger, startInProcess, tempDir } from '../../helpers/index.js';

let dir: string;
let server: RunningServer;
let port: number;

before(async () => {
  dir = tempDir('mq-info-');
  server = await startInProcess(dir, []);
  port = server.resp!.port;
});

after(async () => {
  await server.close();
  removeDir(dir);
});

async function cli(...args: string[]): Promise<string> {
  const run = await runCommand('redis-cli', ['-p', String(port), ...args]);
  assert.equal(run.code, 0, run.stderr);
  return run.stdout.toString();
}

/** `field:value` lines of INFO output as a map, and the section headings in order. */
function parseInfo(text: string): { sections: string[]; fields: Map<string, string> } {
  const sections: string[] = [];
  const fields = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.startsWith('# ')) sections.push(line.slice(2));
    else if (line.includes(':')) fields.set(line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1));
  }
  return { sections, fields };
}

test('redis-cli INFO lists the sections Redis users expect, with live figures', async () => {
  const topic = 'info.topic';
  const held = [await RespConn.connect(port), await RespConn.connect(port)];
  try {
    for (let i = 0; i < 3; i++) assert.equal(String(await held[0]!.send('PUBLISH', topic, `m${i}`)), 'OK');
    const { sections, fields } = parseInfo(await cli('INFO'));
    assert.deepEqual(sections, ['Server', 'Clients', 'Memory', 'Persistence', 'Stats', 'Replication', 'Keyspace']);
    assert.equal(fields.get('redis_version'), '7.0.0');
    assert.match(fields.get('miniqueue_version') ?? '', /^\d+\.\d+\.\d+/);
    assert.equal(fields.get('process_id'), String(process.pid));
    assert.match(fields.get('uptime_in_seconds') ?? '', /^\d+$/);
    // The two held connections and redis-cli's own.
    assert.equal(fields.get('connected_clients'), '3');
    assert.equal(fields.get('maxclients'), '10000');
    assert.ok(Number(fields.get('used_memory')) > 0);
    assert.ok(Number(fields.get('used_memory_rss')) > 0);
    assert.equal(fields.get('loading'), '0');
    assert.equal(fields.get('aof_enabled'), '1');
    assert.equal(fields.get('miniqueue_log_segments'), String(server.broker.log.segments.length));
    assert.equal(fields.get('miniqueue_log_bytes'), String(server.broker.log.sizeBytes));
    assert.ok(Number(fields.get('total_connections_received')) >= 3);
    assert.equal(fields.get('miniqueue_published'), '3');
    assert.equal(fields.get('miniqueue_messages'), '3');
    assert.equal(fields.get('role'), 'master');
  } finally {
    for (const c of held) c.close();
  }
});

test('INFO <section> [section ...] selects, case-insensitively; an unknown section gives an empty reply', async () => {
  const persistence = parseInfo(await cli('INFO', 'persistence'));
  assert.deepEqual(persistence.sections, ['Persistence']);
  assert.equal(persistence.fields.get('loading'), '0');
  assert.ok(!persistence.fields.has('redis_version'));

  const two = parseInfo(await cli('INFO', 'STATS', 'server'));
  assert.deepEqual(two.sections, ['Server', 'Stats'], 'in Redis order, whatever order they were asked in');

  assert.deepEqual(parseInfo(await cli('INFO', 'everything')).sections.length, 7);
  const none = await runCommand('redis-cli', ['-p', String(port), 'INFO', 'nosuchsection']);
  assert.equal(none.stdout.toString().trim(), '');
});

test('INFO persistence says loading:1 before the log is replayed (and reads nothing of the unopened log)', () => {
  const db = tempDir('mq-info-loading-');
  try {
    const broker = new Broker({ dir: db, fsync: 'never', fsyncIntervalMs: 1000, segmentBytes: 1 << 20, maxMessageBytes: 1024, periodMs: 1000, repair: false, logger: silentLogger });
    const admission = new Admission({ maxConnections: 10, authToken: null });
    const text = buildInfo({ engine: broker, admission, version: '9.9.9' }, [Buffer.from('persistence'), Buffer.from('stats')]);
    const { sections, fields } = parseInfo(text);
    assert.deepEqual(sections, ['Persistence', 'Stats']);
    assert.equal(fields.get('loading'), '1');
    assert.ok(!fields.has('miniqueue_log_bytes'));
    assert.ok(text.endsWith('\r\n'));
  } finally {
    removeDir(db);
  }
});

/**
 * A QueueEngine that is not the segment log (as a JetStream engine would be): fixed figures, and
 * every call INFO must not make throws.
 */
function figuresEngine(state: { loading: boolean; progress: LoadingStatus | null; storage: StorageStats | undefined }): QueueEngine {
  const counters: Record<string, TopicCounters> = {
    a: { published: 5, acked: 3, nacked: 0, backed: 0, dacked: 0, redelivered: 2, ackTimeouts: 0, deadLettered: 1 },
    b: { published: 7, acked: 4, nacked: 1, backed: 0, dacked: 0, redelivered: 1, ackTimeouts: 1, deadLettered: 0 },
  };
  const unused = (): never => {
    throw new Error('INFO called an engine method it does not need');
  };
  return {
    get loading() {
      return state.loading;
    },
    get loadingProgress() {
      return state.progress;
    },
    messageCount: 42,
    maxMessageBytes: 1024 ** 2,
    topicNames: () => Object.keys(counters),
    topicCounters: (name) => counters[name],
    storageStats: () => state.storage,
    publish: unused,
    openConsumer: unused,
    deleteTopic: unused,
    topicStats: unused,
    health: unused,
    close: unused,
  };
}

test('INFO reads the engine seam only: storage figures, counters and messages of any QueueEngine; loading_* from its progress', () => {
  const admission = new Admission({ maxConnections: 10, authToken: null });
  const storage: StorageStats = {
    logBytes: 1001,
    logSegments: 3,
    writtenBytes: 2002,
    writtenRecords: 17,
    writeBatches: 9,
    failedBatches: 1,
    fsyncs: 8,
    compaction: { runs: 4, segmentsRemoved: 2, bytesReclaimed: 3003, messagesCopied: 0, bytesCopied: 0, failures: 0 },
  };
  const state = { loading: false, progress: null as LoadingStatus | null, storage: storage as StorageStats | undefined };
  const engine = figuresEngine(state);
  const { fields } = parseInfo(buildInfo({ engine, admission, version: '9.9.9' }, [Buffer.from('persistence'), Buffer.from('stats')]));
  const expected: Record<string, string> = {
    loading: '0',
    miniqueue_log_bytes: '1001',
    miniqueue_log_segments: '3',
    miniqueue_log_failed_batches: '1',
    miniqueue_fsyncs: '8',
    miniqueue_compaction_runs: '4',
    miniqueue_compaction_segments_removed: '2',
    miniqueue_compaction_reclaimed_bytes: '3003',
    miniqueue_topics: '2',
    miniqueue_messages: '42',
    miniqueue_published: '12',
    miniqueue_acked: '7',
    miniqueue_redelivered: '3',
    miniqueue_dead_lettered: '1',
    miniqueue_log_records_written: '17',
    miniqueue_log_bytes_written: '2002',
  };
  for (const [k, v] of Object.entries(expected)) assert.equal(fields.get(k), v, k);

  state.loading = true;
  state.storage = undefined;
  state.progress = { startedAtMs: 1_700_000_000_500, totalBytes: 4000, loadedBytes: 1000, percent: 25, etaSeconds: 3 };
  const loading = parseInfo(buildInfo({ engine, admission, version: '9.9.9' }, [Buffer.from('persistence'), Buffer.from('stats')])).fields;
  assert.equal(loading.get('loading'), '1');
  assert.equal(loading.get('loading_start_time'), '1700000000');
  assert.equal(loading.get('loading_total_bytes'), '4000');
  assert.equal(loading.get('loading_loaded_bytes'), '1000');
  assert.equal(loading.get('loading_loaded_perc'), '25.00');
  assert.equal(loading.get('loading_eta_seconds'), '3');
  assert.ok(!loading.has('miniqueue_log_bytes') && !loading.has('miniqueue_topics'), 'no storage or topic figures while loading');
});

test('redis-cli CLIENT HELP lists the subcommands, as Redis does', async () => {
  const lines = (await cli('CLIENT', 'HELP')).trim().split('\n');
  assert.match(lines[0]!, /^CLIENT <subcommand> .*Subcommands are:$/);
  for (const sub of ['GETNAME', 'ID', 'SETNAME <name>', 'SETINFO <option> <value>', 'HELP']) assert.ok(lines.includes(sub), `${sub} in ${lines.join(' | ')}`);
  const bad = await cli('CLIENT', 'NOPE');
  assert.match(bad, /ERR unknown subcommand 'NOPE'\. Try CLIENT HELP\./);
});
