/**
 * The server's options (SPEC §1): the {@link Config} they produce, their limits, and the option
 * table {@link OPTIONS}, the one place where each option's default is written. `--help` shows the
 * defaults from it and config.ts falls back to them; docstrings name the option, not its default.
 */
import type { FsyncPolicy } from '../log/log-writer.js';

/** Log levels accepted by {@link Config.level}, quietest first. */
export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug';

/**
 * The validated, frozen server configuration returned by `parseConfig` (config.ts). Paths are
 * absolute (resolved against `process.cwd()` at parse time). Each field names the option it comes
 * from; its default is in {@link OPTIONS}.
 */
export interface Config {
  /** HTTP/2 port, integer in [0, 65535]; 0 = let the OS pick a free port. `--port`. */
  readonly port: number;
  /** HTTP/2 bind address (IP literal without brackets, or host name). `--host`. */
  readonly host: string;
  /** RESP port, integer in [-1, 65535]; -1 = no RESP listener, 0 = free port. `--redis-port`. */
  readonly redisPort: number;
  /** RESP bind address. `--redis-host`. */
  readonly redisHost: string;
  /** Absolute path of the data directory. Not checked or created here (see `checkDataDir`, preflight.ts). `--db`. */
  readonly db: string;
  /** Absolute path of the PEM certificate. `--cert`. */
  readonly certPath: string;
  /** Absolute path of the PEM private key. `--key`. */
  readonly keyPath: string;
  /** True when `--cert` or `--key` (or their environment variables) was given: the files must then exist; none is generated. */
  readonly certExplicit: boolean;
  /** Serve HTTP/2 over TLS (true) or cleartext h2c with prior knowledge (false, `--no-tls`). `--tls`. */
  readonly tls: boolean;
  /** pino level. `--level`; `disabled` is read as `silent`. */
  readonly level: LogLevel;
  /** Pretty, human-readable logs (pino-pretty) instead of JSON lines. `--human`. */
  readonly human: boolean;
  /** How often delayed (DACKed) messages are checked, in ms, integer in [1, 2^31-1]. `--period`. */
  readonly periodMs: number;
  /** fsync policy of the log writer. `--fsync`. */
  readonly fsync: FsyncPolicy;
  /** fsync period for `fsync: 'interval'`, in ms, integer in [1, 2^31-1]. `--fsync-interval`. */
  readonly fsyncIntervalMs: number;
  /** Size in bytes at which the active segment is rolled, integer in [4096, 4 GiB]. `--segment-bytes`. */
  readonly segmentBytes: number;
  /** Largest message payload accepted, in bytes, integer in [1, 512 MiB]. `--max-message-bytes`. */
  readonly maxMessageBytes: number;
  /** Move damaged log parts aside into `<db>/damaged/` instead of refusing to start (SPEC §5). `--repair`. */
  readonly repair: boolean;
  /** Background compaction of the log (SPEC §5); `--no-compaction` turns it off. `--compaction`. */
  readonly compaction: boolean;
  /**
   * Shared secret clients must present (HTTP `Authorization: Bearer <token>`, RESP `AUTH <token>`),
   * or null when authentication is off. 1-4096 visible ASCII characters, no spaces.
   * `--auth-token` or `MINIQUEUE_AUTH_TOKEN`.
   */
  readonly authToken: string | null;
  /** Most client connections open at once over both listeners, integer in [1, 1000000]. `--max-connections`. */
  readonly maxConnections: number;
  /**
   * Time a delivery may stay unsettled before it returns to the front of its topic (SPEC §7), in
   * ms; 0 = off. `--ack-timeout` (Go duration, `0`/`off` = off).
   */
  readonly ackTimeoutMs: number;
  /**
   * Deliveries after which a message not acked moves to `<topic>.dead` (SPEC §7), integer in
   * [0, 1000000]; 0 = unlimited. `--max-deliveries`.
   */
  readonly maxDeliveries: number;
  /**
   * Most payload bytes of the arguments of one RESP command, judged on each announced bulk length,
   * so an unfinished command never holds more (issue 13). Integer in [`maxMessageBytes` + 4 KiB,
   * 4 GiB]. `--max-command-bytes`; its default follows `maxMessageBytes` (a PUBLISH of the largest
   * message, or a DEL of 1024 topic names, fits).
   */
  readonly maxCommandBytes: number;
  /**
   * Most RESP input held across all connections (unfinished commands, and commands waiting behind
   * a blocking RESERVE); past it the connection holding the most is cut off. Integer in
   * [`maxCommandBytes`, 64 GiB]. `--max-input-bytes`; its default follows `maxCommandBytes`.
   */
  readonly maxInputBytes: number;
  /** Where the queues live: the embedded segment log, or a NATS JetStream cluster (issue 15). `--engine`. */
  readonly engine: EngineKind;
  /** NATS server URLs (`nats://[user:password@]host:port`), at least one. `--nats` (comma-separated). */
  readonly natsServers: readonly string[];
  /** JetStream stream holding the topics (see jetstream/subjects.ts). `--nats-stream`. */
  readonly natsStream: string;
  /** Replicas of the streams, 1 or 3. `--nats-replicas`. */
  readonly natsReplicas: 1 | 3;
  /**
   * ms the cluster waits before it redelivers what a gateway holds, renewed every third of it while
   * the gateway lives: how soon a dead gateway's messages come back. `--nats-lease` (default 30s).
   */
  readonly natsLeaseMs: number;
  /**
   * NATS credentials from the environment only (arguments show in ps): `MINIQUEUE_NATS_USER`,
   * `MINIQUEUE_NATS_PASSWORD`, `MINIQUEUE_NATS_TOKEN`; null when unset. Credentials in a `--nats`
   * URL work too.
   */
  readonly natsUser: string | null;
  readonly natsPassword: string | null;
  readonly natsToken: string | null;
}

/** `--engine` values. */
export type EngineKind = 'log' | 'jetstream';

/** Options that only the log engine uses: given with `--engine jetstream`, they are refused. */
export const LOG_ENGINE_OPTIONS = ['db', 'fsync', 'fsync-interval', 'segment-bytes', 'repair', 'compaction'] as const;

/** Options that only the jetstream engine uses: given with `--engine log`, they are refused. */
export const JETSTREAM_ENGINE_OPTIONS = ['nats', 'nats-stream', 'nats-replicas', 'nats-lease'] as const;

/** Smallest accepted `--segment-bytes`: smaller segments would roll on almost every record. */
export const SEGMENT_BYTES_MIN = 4096;
/** Largest accepted `--segment-bytes` (4 GiB). */
export const SEGMENT_BYTES_MAX = 4 * 1024 ** 3;
/** Largest accepted `--max-message-bytes` (512 MiB, Redis' `proto-max-bulk-len`). */
export const MAX_MESSAGE_BYTES_MAX = 512 * 1024 ** 2;
/** Largest accepted `--max-deliveries`. */
export const MAX_DELIVERIES_MAX = 1_000_000;
/** Largest accepted `--max-connections`: far past what one Node process can serve, and below any fd limit worth raising. */
export const MAX_CONNECTIONS_MAX = 1_000_000;
/** Largest accepted `--max-command-bytes` (4 GiB). */
export const MAX_COMMAND_BYTES_MAX = 4 * 1024 ** 3;
/** Largest accepted `--max-input-bytes` (64 GiB). */
export const MAX_INPUT_BYTES_MAX = 64 * 1024 ** 3;
/** Longest accepted `--auth-token`, in characters. */
export const AUTH_TOKEN_MAX_LENGTH = 4096;
/** Largest accepted `--period` / `--fsync-interval` in ms: Node timers overflow above 2^31-1 ms and fire after 1 ms instead. */
export const TIMER_MS_MAX = 2 ** 31 - 1;

/**
 * One option of the table. A string option's `default` is the text used when the option is not
 * given, parsed like a given value (null: the option is off unless given); `--help` shows it, or
 * `off` for null. An option whose default follows other options has `default: null` and says how
 * in `derivedDefault` (shown by `--help`); config.ts computes it, the only place it is written.
 */
type OptionSpec =
  | { readonly type: 'string'; readonly describe: string; readonly default: string | null; readonly derivedDefault?: string }
  | { readonly type: 'boolean'; readonly describe: string; readonly default: boolean };

/** The option table. Order is the order of `--help`. */
export const OPTIONS = {
  port: { type: 'string', describe: 'HTTP/2 port (0 = pick a free port and log it)', default: '8080' },
  host: { type: 'string', describe: 'HTTP/2 bind address', default: '0.0.0.0' },
  'redis-port': {
    type: 'string',
    describe: 'Redis protocol (RESP) port; -1 disables it, 0 = pick a free port and log it',
    default: '6379',
  },
  'redis-host': { type: 'string', describe: 'RESP bind address', default: '127.0.0.1' },
  db: { type: 'string', describe: 'data directory (created if missing)', default: './data' },
  cert: {
    type: 'string',
    describe: 'TLS certificate (PEM); when neither --cert nor --key is given and the files are missing, a self-signed localhost certificate is generated',
    default: 'certs/localhost.pem',
  },
  key: { type: 'string', describe: 'TLS private key (PEM)', default: 'certs/localhost-key.pem' },
  tls: { type: 'boolean', describe: 'serve HTTP/2 over TLS; --no-tls serves cleartext h2c (prior knowledge)', default: true },
  level: { type: 'string', describe: 'log level: silent, error, warn, info, debug (disabled = silent)', default: 'info' },
  human: { type: 'boolean', describe: 'pretty, human-readable logs instead of JSON lines', default: false },
  period: {
    type: 'string',
    describe: 'how often delayed (DACKed) messages are checked, as a Go duration (250ms, 1s, 2m)',
    default: '1s',
  },
  fsync: {
    type: 'string',
    describe: 'always: answer after fdatasync (group commit); interval: fsync every --fsync-interval; never: leave it to the OS',
    default: 'always',
  },
  'fsync-interval': { type: 'string', describe: 'fsync period with --fsync interval (Go duration)', default: '1s' },
  'segment-bytes': {
    type: 'string',
    describe: 'size at which the active log segment is rolled (bytes, or with K/M/G suffix, all 1024-based)',
    default: '64MiB',
  },
  'max-message-bytes': { type: 'string', describe: 'largest message accepted (bytes, or with K/M/G suffix)', default: '1MiB' },
  repair: { type: 'boolean', describe: 'move damaged bytes of the log aside into <db>/damaged/ and start with every intact record before and after them', default: false },
  compaction: {
    type: 'boolean',
    describe: 'reclaim log segments whose records are no longer needed in the background; --no-compaction keeps every segment',
    default: true,
  },
  'auth-token': {
    type: 'string',
    describe: 'require this token: HTTP "Authorization: Bearer <token>" (except GET /healthz), RESP "AUTH <token>" (prefer MINIQUEUE_AUTH_TOKEN: arguments show in ps)',
    default: null,
  },
  'max-connections': {
    type: 'string',
    describe: 'most client connections open at once over both listeners (an HTTP/2 session counts as one)',
    default: '10000',
  },
  'ack-timeout': {
    type: 'string',
    describe: 'return a delivery to the front of its topic when it is not settled (or TOUCHed) within this Go duration; 0 or off = never',
    default: 'off',
  },
  'max-deliveries': {
    type: 'string',
    describe: 'move a message to <topic>.dead when its Nth delivery ends without an ACK; 0 = unlimited',
    default: '0',
  },
  'max-command-bytes': {
    type: 'string',
    describe: 'most bytes of arguments one RESP command may announce; a larger or never-finished command is refused with a protocol error',
    default: null,
    derivedDefault: '--max-message-bytes + 1MiB',
  },
  'max-input-bytes': {
    type: 'string',
    describe: 'most RESP input held across all connections; past it the connection holding the most is cut off',
    default: null,
    derivedDefault: 'max(256MiB, 2 x --max-command-bytes)',
  },
  engine: {
    type: 'string',
    describe: 'log: the embedded segment log in --db; jetstream: a stateless gateway over a NATS JetStream cluster (--nats)',
    default: 'log',
  },
  nats: {
    type: 'string',
    describe: 'NATS server URLs for --engine jetstream, comma-separated (credentials in the URL or MINIQUEUE_NATS_USER / _PASSWORD / _TOKEN)',
    default: 'nats://127.0.0.1:4222',
  },
  'nats-stream': { type: 'string', describe: 'JetStream stream that holds the topics (--engine jetstream)', default: 'MINIQUEUE' },
  'nats-replicas': { type: 'string', describe: 'replicas of the JetStream streams, 1 or 3 (--engine jetstream)', default: '1' },
  'nats-lease': {
    type: 'string',
    describe: 'how long after a gateway dies the messages its consumers held are delivered again, a Go duration of 1s or more (--engine jetstream; set when a topic is first consumed)',
    default: '30s',
  },
} as const satisfies Readonly<Record<string, OptionSpec>>;

/** An option's name as typed after `--`. */
export type OptionName = keyof typeof OPTIONS;
/** The options that take a value. */
export type StringOptionName = { [K in OptionName]: (typeof OPTIONS)[K]['type'] extends 'string' ? K : never }[OptionName];
/** The on/off options (`--name`, `--no-name`, `--name=<Go boolean>`). */
export type BooleanOptionName = Exclude<OptionName, StringOptionName>;

/** Every option, in table order. */
export const OPTION_NAMES = Object.keys(OPTIONS) as OptionName[];

/** The default as `--help` shows it, and as error hints quote it. */
export function defaultText(name: OptionName): string {
  const spec: OptionSpec = OPTIONS[name];
  if (spec.type === 'string' && spec.derivedDefault !== undefined) return spec.derivedDefault;
  return spec.default === null ? 'off' : String(spec.default);
}

/** Options people reach for by another name (other brokers, older drafts) → the one to use. */
export const RENAMED: ReadonlyMap<string, string> = new Map(Object.entries({
  data: '--db',
  'data-dir': '--db',
  dir: '--db',
  path: '--db',
  'log-level': '--level',
  loglevel: '--level',
  pretty: '--human',
  'delay-period': '--period',
  'tls-cert': '--cert',
  'tls-key': '--key',
  'tls-cert-file': '--cert',
  'tls-key-file': '--key',
  insecure: '--no-tls',
  h2c: '--no-tls',
  cleartext: '--no-tls',
  'resp-port': '--redis-port',
  'resp-host': '--redis-host',
  bind: '--host or --redis-host',
  'segment-size': '--segment-bytes',
  'max-message-size': '--max-message-bytes',
  'max-payload': '--max-message-bytes',
  'fsync-interval-ms': '--fsync-interval',
  appendfsync: '--fsync',
  requirepass: '--auth-token',
  password: '--auth-token',
  token: '--auth-token',
  auth: '--auth-token',
  maxclients: '--max-connections',
  'max-clients': '--max-connections',
}));
