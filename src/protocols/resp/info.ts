/**
 * The text of RESP `INFO [section ...]` and the reply of `CLIENT HELP` (SPEC §4, issue 14 item 5),
 * kept apart from the commands (compat-commands.ts) because most of it is report text.
 *
 * INFO follows Redis: `# Section` headings, `field:value` lines, CRLF line ends, a blank line
 * between sections; no argument (or `default`, `all`, `everything`) gives every section; names are
 * case-insensitive; an unknown section gives an empty string, as in Redis. The field names are
 * Redis's where the meaning is the same (tools such as redis-cli `--stat`, redis_exporter and
 * client libraries read `redis_version`, `loading`, `connected_clients`, `used_memory`,
 * `total_connections_received`, `role`); figures only miniqueue has are prefixed `miniqueue_`.
 * Nothing here runs per message: INFO is computed when asked, from figures kept anyway.
 */
import os from 'node:os';
import type { QueueEngine } from '../../engine/queue-engine.js';
import type { RespValue } from './encoder.js';
import type { Admission } from '../admission.js';

/** What INFO reads: the connection's options carry all of it. */
export interface InfoSource {
  /** Loading, its progress, storage figures, topics and their counters: all through the engine seam. */
  readonly engine: QueueEngine;
  readonly admission: Admission;
  /** miniqueue's version (package.json). */
  readonly version: string;
}

/** The version miniqueue reports as `redis_version` (the Redis features its RESP side follows). */
export const REDIS_COMPAT_VERSION = '7.0.0';

type SectionName = 'server' | 'clients' | 'memory' | 'persistence' | 'stats' | 'replication' | 'keyspace';

/** Sections in the order Redis prints them. */
const SECTIONS: readonly SectionName[] = ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'keyspace'];
const TITLES: Record<SectionName, string> = {
  server: 'Server',
  clients: 'Clients',
  memory: 'Memory',
  persistence: 'Persistence',
  stats: 'Stats',
  replication: 'Replication',
  keyspace: 'Keyspace',
};

/**
 * The INFO text for the section names in `args` (the command's arguments after `INFO`, any
 * case). Returns a string for a bulk reply: '' when no name matched.
 */
export function buildInfo(source: InfoSource, args: readonly Buffer[]): string {
  const wanted = new Set<SectionName>();
  if (args.length === 0) for (const s of SECTIONS) wanted.add(s);
  for (const arg of args) {
    const name = arg.toString('latin1').toLowerCase();
    if (name === 'default' || name === 'all' || name === 'everything') for (const s of SECTIONS) wanted.add(s);
    else if ((SECTIONS as readonly string[]).includes(name)) wanted.add(name as SectionName);
  }
  const parts: string[] = [];
  for (const section of SECTIONS) {
    if (!wanted.has(section)) continue;
    const fields = FIELDS[section](source);
    parts.push([`# ${TITLES[section]}`, ...fields.map(([k, v]) => `${k}:${v}`)].join('\r\n'));
  }
  return parts.length === 0 ? '' : `${parts.join('\r\n\r\n')}\r\n`;
}

type Fields = [string, string | number][];

const FIELDS: Record<SectionName, (s: InfoSource) => Fields> = {
  server: (s) => {
    const uptimeS = Math.floor(process.uptime());
    return [
      ['redis_version', REDIS_COMPAT_VERSION],
      ['miniqueue_version', s.version],
      ['redis_mode', 'standalone'],
      ['os', `${os.type()} ${os.release()} ${os.arch()}`],
      ['arch_bits', process.arch.endsWith('64') ? 64 : 32],
      ['node_version', process.versions.node],
      ['process_id', process.pid],
      ['uptime_in_seconds', uptimeS],
      ['uptime_in_days', Math.floor(uptimeS / 86400)],
      ['executable', process.argv[1] ?? ''],
    ];
  },
  clients: (s) => [
    ['connected_clients', s.admission.open.resp],
    ['miniqueue_http2_connections', s.admission.open.http2],
    ['maxclients', s.admission.maxConnections],
  ],
  memory: () => {
    const m = process.memoryUsage();
    const used = m.heapUsed + m.external;
    return [
      ['used_memory', used],
      ['used_memory_human', humanBytes(used)],
      ['used_memory_rss', m.rss],
      ['used_memory_rss_human', humanBytes(m.rss)],
      ['total_system_memory', os.totalmem()],
      ['total_system_memory_human', humanBytes(os.totalmem())],
      ['mem_allocator', 'v8'],
    ];
  },
  persistence: (s) => {
    const e = s.engine;
    const loading = e.loading;
    const fields: Fields = [
      ['loading', loading ? 1 : 0],
      ['async_loading', 0],
      // The segment log is an append-only file in Redis's sense: every change, fsynced per --fsync.
      // A gateway (--engine jetstream) keeps none.
      ['aof_enabled', e.localLog === false ? 0 : 1],
      ['rdb_bgsave_in_progress', 0],
    ];
    if (loading) {
      // Redis's loading_* fields: ioredis waits loading_eta_seconds before it asks again.
      const progress = e.loadingProgress;
      if (progress !== null) {
        fields.push(
          ['loading_start_time', Math.floor(progress.startedAtMs / 1000)],
          ['loading_total_bytes', progress.totalBytes],
          ['loading_loaded_bytes', progress.loadedBytes],
          ['loading_loaded_perc', progress.percent.toFixed(2)],
          ['loading_eta_seconds', progress.etaSeconds],
        );
      }
      return fields;
    }
    const st = e.storageStats();
    if (st === undefined) return fields;
    const c = st.compaction;
    fields.push(
      ['miniqueue_log_bytes', st.logBytes],
      ['miniqueue_log_segments', st.logSegments],
      ['miniqueue_log_failed_batches', st.failedBatches],
      ['miniqueue_fsyncs', st.fsyncs],
      ['miniqueue_compaction_runs', c.runs],
      ['miniqueue_compaction_segments_removed', c.segmentsRemoved],
      ['miniqueue_compaction_reclaimed_bytes', c.bytesReclaimed],
    );
    return fields;
  },
  stats: (s) => {
    const a = s.admission;
    const fields: Fields = [
      ['total_connections_received', a.accepted.resp],
      ['rejected_connections', a.refused.resp.max_connections],
      ['miniqueue_http2_connections_received', a.accepted.http2],
      ['miniqueue_http2_rejected_connections', a.refused.http2.max_connections],
    ];
    const e = s.engine;
    if (e.loading) return fields;
    let published = 0;
    let acked = 0;
    let redelivered = 0;
    let deadLettered = 0;
    const names = e.topicNames();
    for (const name of names) {
      const counters = e.topicCounters(name);
      if (counters === undefined) continue;
      published += counters.published;
      acked += counters.acked;
      redelivered += counters.redelivered;
      deadLettered += counters.deadLettered;
    }
    const st = e.storageStats();
    fields.push(
      ['miniqueue_topics', names.length],
      ['miniqueue_messages', e.messageCount],
      ['miniqueue_published', published],
      ['miniqueue_acked', acked],
      ['miniqueue_redelivered', redelivered],
      ['miniqueue_dead_lettered', deadLettered],
    );
    if (st !== undefined) fields.push(['miniqueue_log_records_written', st.writtenRecords], ['miniqueue_log_bytes_written', st.writtenBytes]);
    return fields;
  },
  replication: () => [
    ['role', 'master'],
    ['connected_slaves', 0],
  ],
  // Topics are not Redis keys (there is no db0 to list), so the section is empty, as in a Redis
  // without keys.
  keyspace: () => [],
};

/** `CLIENT HELP`: the subcommands miniqueue answers, in Redis's layout (simple-string lines). */
export const CLIENT_HELP: readonly RespValue[] = [
  'CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
  'GETNAME',
  '    Return the name of the current connection.',
  'ID',
  '    Return the ID of the current connection.',
  'SETNAME <name>',
  '    Assign the name <name> to the current connection.',
  'SETINFO <option> <value>',
  '    Set client meta attr (LIB-NAME, LIB-VER): accepted and ignored, as client libraries send it on connect.',
  'HELP',
  '    Print this help.',
].map((simple) => ({ simple }));

function humanBytes(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes}B` : `${value.toFixed(2)}${units[unit]}`;
}
