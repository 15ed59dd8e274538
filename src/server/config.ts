/**
 * The server's configuration: defaults, command-line and environment parsing (yargs), and
 * validation, all in one place and run once at startup (STYLE.md "Errors").
 *
 * Every option of SPEC §1 is accepted as `--name value`, `--name=value` and `-name value` /
 * `-name=value` (the Go original's single-dash style; it is accepted for every long option, not
 * only for the seven the original had, because none of them clashes with a short flag).
 * An environment variable `MINIQUEUE_<NAME>` (e.g. `MINIQUEUE_REDIS_PORT=6380`) sets an option
 * that is not on the command line; the command line wins.
 *
 * Every mistake becomes a {@link ConfigError} whose message is one line naming the option and
 * the value it was given. Nothing here touches the data directory or the certificate files
 * beyond `stat`/`access`.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// yargs 18 ships no type declarations and @types/yargs is not a dependency; the part used here is
// typed by `Yargs` below. `@ts-ignore` rather than `@ts-expect-error` so this still compiles if
// the types are added later.
// @ts-ignore
import yargsFactory from 'yargs';
import { TOOL_COMMANDS } from '../tools/cli.js';
import { parseByteSize, parseDurationMs } from './duration.js';

/** Log levels accepted by {@link Config.level}, quietest first. */
export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug';

/** When the log writer calls fdatasync (SPEC §1 `--fsync`). */
export type FsyncPolicy = 'always' | 'interval' | 'never';

/**
 * The validated, frozen server configuration returned by {@link parseConfig}.
 * Paths are absolute (resolved against `process.cwd()` at parse time).
 */
export interface Config {
  /** HTTP/2 port, integer in [0, 65535]; 0 = let the OS pick a free port. `--port`, default 8080. */
  readonly port: number;
  /** HTTP/2 bind address (IP literal without brackets, or host name). `--host`, default `0.0.0.0`. */
  readonly host: string;
  /** RESP port, integer in [-1, 65535]; -1 = no RESP listener, 0 = free port. `--redis-port`, default 6379. */
  readonly redisPort: number;
  /** RESP bind address. `--redis-host`, default `127.0.0.1`. */
  readonly redisHost: string;
  /** Absolute path of the data directory. Not checked or created here (see {@link checkDataDir}). `--db`, default `./data`. */
  readonly db: string;
  /** Absolute path of the PEM certificate. `--cert`, default `certs/localhost.pem`. */
  readonly certPath: string;
  /** Absolute path of the PEM private key. `--key`, default `certs/localhost-key.pem`. */
  readonly keyPath: string;
  /** True when `--cert` or `--key` (or their environment variables) was given: the files must then exist; none is generated. */
  readonly certExplicit: boolean;
  /** Serve HTTP/2 over TLS (true) or cleartext h2c with prior knowledge (false, `--no-tls`). Default true. */
  readonly tls: boolean;
  /** pino level. `--level`, default `info`; `disabled` is read as `silent`. */
  readonly level: LogLevel;
  /** Pretty, human-readable logs (pino-pretty) instead of JSON lines. `--human`, default false. */
  readonly human: boolean;
  /** How often delayed (DACKed) messages are checked, in ms, integer in [1, 2^31-1]. `--period`, default 1000. */
  readonly periodMs: number;
  /** fsync policy of the log writer. `--fsync`, default `always`. */
  readonly fsync: FsyncPolicy;
  /** fsync period for `fsync: 'interval'`, in ms, integer in [1, 2^31-1]. `--fsync-interval`, default 1000. */
  readonly fsyncIntervalMs: number;
  /** Size in bytes at which the active segment is rolled, integer in [4096, 4 GiB]. `--segment-bytes`, default 64 MiB. */
  readonly segmentBytes: number;
  /** Largest message payload accepted, in bytes, integer in [1, 512 MiB]. `--max-message-bytes`, default 1 MiB. */
  readonly maxMessageBytes: number;
  /** Move damaged log parts aside into `<db>/damaged/` instead of refusing to start (SPEC §5). `--repair`, default false. */
  readonly repair: boolean;
  /** Background compaction of the log (SPEC §5); `--no-compaction` turns it off. `--compaction`, default true. */
  readonly compaction: boolean;
  /**
   * Shared secret clients must present (HTTP `Authorization: Bearer <token>`, RESP `AUTH <token>`),
   * or null when authentication is off. 1-4096 visible ASCII characters, no spaces.
   * `--auth-token` or `MINIQUEUE_AUTH_TOKEN`, default off.
   */
  readonly authToken: string | null;
  /** Most client connections open at once over both listeners, integer in [1, 1000000]. `--max-connections`, default 10000. */
  readonly maxConnections: number;
  /**
   * Time a delivery may stay unsettled before it returns to the front of its topic (SPEC §7), in
   * ms; 0 = off. `--ack-timeout` (Go duration, `0`/`off` = off), default off.
   */
  readonly ackTimeoutMs: number;
  /**
   * Deliveries after which a message not acked moves to `<topic>.dead` (SPEC §7), integer in
   * [0, 1000000]; 0 = unlimited. `--max-deliveries`, default 0.
   */
  readonly maxDeliveries: number;
  /**
   * Most payload bytes of the arguments of one RESP command, judged on each announced bulk length,
   * so an unfinished command never holds more (issue 13). Integer in [`maxMessageBytes` + 4 KiB,
   * 4 GiB]. `--max-command-bytes`, default `maxMessageBytes` + 1 MiB (a PUBLISH of the largest
   * message, or a DEL of 1024 topic names, fits).
   */
  readonly maxCommandBytes: number;
  /**
   * Most RESP input held across all connections (unfinished commands, and commands waiting behind
   * a blocking RESERVE); past it the connection holding the most is cut off. Integer in
   * [`maxCommandBytes`, 64 GiB]. `--max-input-bytes`, default the larger of 256 MiB and
   * 2 × `maxCommandBytes`.
   */
  readonly maxInputBytes: number;
}

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
/** Longest accepted `--auth-token`, in characters. */
export const AUTH_TOKEN_MAX_LENGTH = 4096;
/** Largest accepted `--period` / `--fsync-interval` in ms: Node timers overflow above 2^31-1 ms and fire after 1 ms instead. */
export const TIMER_MS_MAX = 2 ** 31 - 1;

/**
 * A bad configuration value. `option` names the flag as the user would type it (`--port`,
 * `--fsync`; for an unknown option, the option as given, e.g. `--prot` or `-x`; for a stray
 * positional argument, that argument). `message` is one line naming the option and the value,
 * suitable for `miniqueue: <message>` on stderr. `code` is always `MQ_ERR_CONFIG`; it is never sent
 * to a client, so it is not in the `ERRORS` table of `src/errors.ts`.
 */
export class ConfigError extends Error {
  readonly code = 'MQ_ERR_CONFIG';
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super(message.replace(/[\r\n]+/g, ' '), options);
    this.name = 'ConfigError';
    this.option = option;
  }
}

/**
 * Thrown by {@link parseConfig} for `--help`/`-h`/`-help` (`kind: 'help'`) and `--version`
 * (`kind: 'version'`). It is not a failure: `text` is what to print on stdout (usage text, or the
 * version number from package.json), and the process should then exit 0. {@link parseCliOrExit}
 * in `cli.ts` does exactly that.
 */
export class HelpRequested extends Error {
  readonly kind: 'help' | 'version';
  readonly text: string;

  constructor(kind: 'help' | 'version', text: string) {
    super(`${kind} requested`);
    this.name = 'HelpRequested';
    this.kind = kind;
    this.text = text;
  }
}

type OptionName =
  | 'port'
  | 'host'
  | 'redis-port'
  | 'redis-host'
  | 'db'
  | 'cert'
  | 'key'
  | 'tls'
  | 'level'
  | 'human'
  | 'period'
  | 'fsync'
  | 'fsync-interval'
  | 'segment-bytes'
  | 'max-message-bytes'
  | 'repair'
  | 'compaction'
  | 'auth-token'
  | 'max-connections'
  | 'ack-timeout'
  | 'max-deliveries'
  | 'max-command-bytes'
  | 'max-input-bytes';

interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly describe: string;
  readonly defaultText: string;
}

/** The option table. Order is the order of `--help`. Defaults themselves live in parseConfig. */
const OPTIONS: Readonly<Record<OptionName, OptionSpec>> = {
  port: { type: 'string', describe: 'HTTP/2 port (0 = pick a free port and log it)', defaultText: '8080' },
  host: { type: 'string', describe: 'HTTP/2 bind address', defaultText: '0.0.0.0' },
  'redis-port': {
    type: 'string',
    describe: 'Redis protocol (RESP) port; -1 disables it, 0 = pick a free port and log it',
    defaultText: '6379',
  },
  'redis-host': { type: 'string', describe: 'RESP bind address', defaultText: '127.0.0.1' },
  db: { type: 'string', describe: 'data directory (created if missing)', defaultText: './data' },
  cert: {
    type: 'string',
    describe: 'TLS certificate (PEM); when neither --cert nor --key is given and the files are missing, a self-signed localhost certificate is generated',
    defaultText: 'certs/localhost.pem',
  },
  key: { type: 'string', describe: 'TLS private key (PEM)', defaultText: 'certs/localhost-key.pem' },
  tls: { type: 'boolean', describe: 'serve HTTP/2 over TLS; --no-tls serves cleartext h2c (prior knowledge)', defaultText: 'true' },
  level: { type: 'string', describe: 'log level: silent, error, warn, info, debug (disabled = silent)', defaultText: 'info' },
  human: { type: 'boolean', describe: 'pretty, human-readable logs instead of JSON lines', defaultText: 'false' },
  period: {
    type: 'string',
    describe: 'how often delayed (DACKed) messages are checked, as a Go duration (250ms, 1s, 2m)',
    defaultText: '1s',
  },
  fsync: {
    type: 'string',
    describe: 'always: answer after fdatasync (group commit); interval: fsync every --fsync-interval; never: leave it to the OS',
    defaultText: 'always',
  },
  'fsync-interval': { type: 'string', describe: 'fsync period with --fsync interval (Go duration)', defaultText: '1s' },
  'segment-bytes': {
    type: 'string',
    describe: 'size at which the active log segment is rolled (bytes, or with K/M/G suffix, all 1024-based)',
    defaultText: '64MiB',
  },
  'max-message-bytes': { type: 'string', describe: 'largest message accepted (bytes, or with K/M/G suffix)', defaultText: '1MiB' },
  repair: { type: 'boolean', describe: 'move damaged bytes of the log aside into <db>/damaged/ and start with every intact record before and after them', defaultText: 'false' },
  compaction: {
    type: 'boolean',
    describe: 'reclaim log segments whose records are no longer needed in the background; --no-compaction keeps every segment',
    defaultText: 'true',
  },
  'auth-token': {
    type: 'string',
    describe: 'require this token: HTTP "Authorization: Bearer <token>" (except GET /healthz), RESP "AUTH <token>" (prefer MINIQUEUE_AUTH_TOKEN: arguments show in ps)',
    defaultText: 'off',
  },
  'max-connections': {
    type: 'string',
    describe: 'most client connections open at once over both listeners (an HTTP/2 session counts as one)',
    defaultText: '10000',
  },
  'ack-timeout': {
    type: 'string',
    describe: 'return a delivery to the front of its topic when it is not settled (or TOUCHed) within this Go duration; 0 or off = never',
    defaultText: 'off',
  },
  'max-deliveries': {
    type: 'string',
    describe: 'move a message to <topic>.dead when its Nth delivery ends without an ACK; 0 = unlimited',
    defaultText: '0',
  },
  'max-command-bytes': {
    type: 'string',
    describe: 'most bytes of arguments one RESP command may announce; a larger or never-finished command is refused with a protocol error',
    defaultText: '--max-message-bytes + 1MiB',
  },
  'max-input-bytes': {
    type: 'string',
    describe: 'most RESP input held across all connections; past it the connection holding the most is cut off',
    defaultText: 'max(256MiB, 2 x --max-command-bytes)',
  },
};

const OPTION_NAMES = Object.keys(OPTIONS) as OptionName[];

/** Options people reach for by another name (other brokers, older drafts) → the one to use. */
const RENAMED: ReadonlyMap<string, string> = new Map(Object.entries({
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

/** Go's `strconv.ParseBool` vocabulary, which the original's `-human=1` relied on. */
const GO_BOOLEANS: ReadonlyMap<string, boolean> = new Map(Object.entries({
  '1': true,
  t: true,
  T: true,
  true: true,
  TRUE: true,
  True: true,
  '0': false,
  f: false,
  F: false,
  false: false,
  FALSE: false,
  False: false,
}));

/** Accepted `--level` words. The zerolog names of the Go original map to the nearest pino level. */
const LEVELS: ReadonlyMap<string, LogLevel> = new Map(Object.entries({
  silent: 'silent',
  disabled: 'silent',
  error: 'error',
  fatal: 'error',
  panic: 'error',
  warn: 'warn',
  warning: 'warn',
  info: 'info',
  debug: 'debug',
  trace: 'debug',
}));

const FSYNC_HINTS: ReadonlyMap<string, string> = new Map(Object.entries({
  everysec: 'use interval (like Redis appendfsync everysec)',
  no: 'use never (like Redis appendfsync no)',
  yes: 'use always',
  true: 'use always',
  false: 'use never',
}));

/** The slice of the yargs 18 API used here (it ships no type declarations). */
interface Yargs {
  scriptName(name: string): Yargs;
  usage(text: string): Yargs;
  epilogue(text: string): Yargs;
  option(name: string, spec: Record<string, unknown>): Yargs;
  command(name: string, describe: string): Yargs;
  strict(): Yargs;
  help(): Yargs;
  alias(name: string, alias: string): Yargs;
  version(version: string): Yargs;
  locale(locale: string): Yargs;
  wrap(columns: number | null): Yargs;
  exitProcess(enabled: boolean): Yargs;
  parserConfiguration(config: Record<string, boolean>): Yargs;
  parse(
    args: readonly string[],
    context: object,
    callback: (err: Error | null | undefined, argv: Record<string, unknown>, output: string) => void,
  ): unknown;
}

/**
 * Parses and validates the command line (and `MINIQUEUE_*` environment variables) into a frozen
 * {@link Config}. Call it once at startup.
 *
 * Checks made here: unknown options and stray arguments, value syntax and ranges of every option
 * (ports, durations, sizes, level, fsync policy, host names), and — only when TLS is on and
 * `--cert` or `--key` was given — that both files exist and are readable. It does not look at the
 * data directory (see {@link checkDataDir}) and never creates or modifies anything.
 *
 * @param argv - the arguments without node and the script, i.e. `process.argv.slice(2)`.
 * @param env - where `MINIQUEUE_<NAME>` variables are read (default `process.env`); an empty
 *   variable counts as unset.
 * @returns a frozen Config.
 * @throws ConfigError (`code` `MQ_ERR_CONFIG`) for the first problem found; `option` names the
 *   flag (`--port`) and `message` is one line naming the flag and the value.
 * @throws HelpRequested for `--help`/`-h`/`-help` or `--version`: print `text` and exit 0.
 */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Config {
  const args = normalizeArgs(argv);
  const parsed = runYargs(args);

  if (parsed.argv['help'] === true) throw new HelpRequested('help', parsed.output);
  if (parsed.argv['version'] === true) throw new HelpRequested('version', readVersion());
  checkUnknown(parsed.argv);
  const positional = parsed.argv['_'];
  if (Array.isArray(positional) && positional.length > 0) {
    const first = String(positional[0]);
    throw new ConfigError(first, `unexpected argument ${JSON.stringify(first)}: options start with --, e.g. --port 8080`);
  }
  if (parsed.err) throw new ConfigError('', parsed.err.message, { cause: parsed.err });

  const values = new RawValues(parsed.argv, env);
  const tls = values.boolean('tls', true);
  const certGiven = values.has('cert') || values.has('key');
  const config: { -readonly [K in keyof Config]: Config[K] } = {
    port: values.integer('port', '8080', 0, 65535),
    host: values.host('host', '0.0.0.0'),
    redisPort: values.integer('redis-port', '6379', -1, 65535),
    redisHost: values.host('redis-host', '127.0.0.1'),
    db: values.path('db', './data'),
    certPath: values.path('cert', 'certs/localhost.pem'),
    keyPath: values.path('key', 'certs/localhost-key.pem'),
    certExplicit: certGiven,
    tls,
    level: values.level('level', 'info'),
    human: values.boolean('human', false),
    periodMs: values.duration('period', '1s'),
    fsync: values.fsync('fsync', 'always'),
    fsyncIntervalMs: values.duration('fsync-interval', '1s'),
    segmentBytes: values.bytes('segment-bytes', '64MiB', SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX),
    maxMessageBytes: values.bytes('max-message-bytes', '1MiB', 1, MAX_MESSAGE_BYTES_MAX),
    repair: values.boolean('repair', false),
    compaction: values.boolean('compaction', true),
    authToken: values.secret('auth-token'),
    maxConnections: values.integer('max-connections', '10000', 1, MAX_CONNECTIONS_MAX),
    ackTimeoutMs: values.durationOrOff('ack-timeout'),
    maxDeliveries: values.integer('max-deliveries', '0', 0, MAX_DELIVERIES_MAX),
    maxCommandBytes: 0,
    maxInputBytes: 0,
  };
  const maxMessageBytes = config.maxMessageBytes;
  const maxCommandBytes = values.bytes('max-command-bytes', String(maxMessageBytes + 1024 ** 2), maxMessageBytes + 4096, 4 * 1024 ** 3);
  config.maxCommandBytes = maxCommandBytes;
  config.maxInputBytes = values.bytes('max-input-bytes', String(Math.max(256 * 1024 ** 2, 2 * maxCommandBytes)), maxCommandBytes, 64 * 1024 ** 3);
  // An unused certificate should not stop a cleartext start, so the files are checked only with TLS.
  if (tls && certGiven) {
    checkReadableFile('--cert', config.certPath, values.has('cert'));
    checkReadableFile('--key', config.keyPath, values.has('key'));
  }
  return Object.freeze(config);
}

/**
 * Checks, without creating or modifying anything, that `db` can be used as the data directory:
 * if it exists it must be a directory this process can write to and enter; if it does not
 * exist, its nearest existing ancestor must be such a directory (so it can be created later).
 * Run as root, `access` reports every directory writable.
 *
 * @param db - absolute path, normally {@link Config.db}.
 * @throws ConfigError with `option` `--db` naming the path and the reason.
 */
export function checkDataDir(db: string): void {
  let candidate = path.resolve(db);
  for (;;) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(candidate);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const parent = path.dirname(candidate);
      if ((code === 'ENOENT' || code === 'ENOTDIR') && parent !== candidate) {
        if (code === 'ENOTDIR') {
          throw new ConfigError('--db', `invalid value for --db: ${JSON.stringify(db)} is inside something that is not a directory`, { cause: err });
        }
        candidate = parent;
        continue;
      }
      throw new ConfigError('--db', `cannot use --db ${JSON.stringify(db)}: ${describeFsError(err)}`, { cause: err });
    }
    const what = candidate === db ? `${JSON.stringify(db)}` : `${JSON.stringify(db)} (its parent ${JSON.stringify(candidate)})`;
    if (!stat.isDirectory()) {
      throw new ConfigError('--db', `invalid value for --db: ${what} exists and is not a directory`);
    }
    try {
      fs.accessSync(candidate, fs.constants.W_OK | fs.constants.X_OK);
    } catch (err) {
      throw new ConfigError('--db', `invalid value for --db: ${what} is not writable by this user`, { cause: err });
    }
    return;
  }
}

// ---------------------------------------------------------------------------------------------

const KNOWN_NAMES: ReadonlySet<string> = new Set(OPTION_NAMES);
const BOOLEAN_NAMES: ReadonlySet<string> = new Set(OPTION_NAMES.filter((name) => OPTIONS[name].type === 'boolean'));
const STRING_NAMES: ReadonlySet<string> = new Set(OPTION_NAMES.filter((name) => OPTIONS[name].type === 'string'));

/**
 * Rewrites single-dash long options (`-port`, `-port=8081`, `-no-tls`, `-help`) to double-dash,
 * because yargs would read `-port` as the short flags p, o, r, t. It also checks `--bool=value`
 * forms against Go's boolean words, because yargs silently reads `--human=yes` as false, and
 * joins `--name value` into `--name=value` for non-boolean options.
 */
function normalizeArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  let afterTerminator = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (afterTerminator || arg === '--') {
      afterTerminator = true;
      out.push(arg);
      continue;
    }
    let long = arg;
    // `-1` is a value (--redis-port -1), `-` alone is a value too; anything else with one dash is an option.
    if (/^-[^-\d.]/.test(arg)) {
      const name = arg.slice(1).split('=', 1)[0] ?? '';
      const bare = name.startsWith('no-') ? name.slice(3) : name;
      if (name === 'h') {
        out.push(arg);
        continue;
      }
      if (!KNOWN_NAMES.has(name) && !BOOLEAN_NAMES.has(bare) && name !== 'help' && name !== 'version') {
        throw unknownOption(`-${name}`, name);
      }
      long = `-${arg}`;
    }
    const eq = long.indexOf('=');
    if (long.startsWith('--') && eq > 2) {
      const name = long.slice(2, eq);
      const value = long.slice(eq + 1);
      const kebab = toKebab(name);
      if (BOOLEAN_NAMES.has(kebab)) {
        const parsed = GO_BOOLEANS.get(value);
        if (parsed === undefined) throw badValue(`--${kebab}`, `--${name}`, value, 'is not a boolean (use true or false)');
        long = `--${name}=${parsed}`;
      } else if (kebab.startsWith('no-') && BOOLEAN_NAMES.has(kebab.slice(3))) {
        throw new ConfigError(`--${kebab}`, `--${kebab} takes no value, got ${JSON.stringify(value)}`);
      }
    }
    // Like Go's flag package, a non-boolean option takes the next argument as its value even when
    // it starts with a dash (`--period -1s` is a bad period, not the short flags 1 and s).
    const spaced = /^--([^=]+)$/.exec(long);
    const next = argv[i + 1];
    if (spaced !== null && next !== undefined && STRING_NAMES.has(toKebab(spaced[1] ?? ''))) {
      out.push(`${long}=${next}`);
      i++;
      continue;
    }
    out.push(long);
  }
  return out;
}

interface YargsResult {
  err: Error | null | undefined;
  argv: Record<string, unknown>;
  output: string;
}

function runYargs(args: readonly string[]): YargsResult {
  let y = (yargsFactory as () => Yargs)()
    .scriptName('miniqueue')
    .usage('Usage: $0 [options]\n   or: $0 <command> --db DIR   (see $0 <command> --help)\n\nA small message broker speaking HTTP/2 and the Redis protocol, with an append-only log.')
    .locale('en')
    .wrap(100)
    .exitProcess(false)
    .strict()
    .parserConfiguration({ 'duplicate-arguments-array': false, 'dot-notation': false });
  for (const [name, describe] of TOOL_COMMANDS) y = y.command(name, describe);
  for (const name of OPTION_NAMES) {
    const spec = OPTIONS[name];
    y = y.option(name, { type: spec.type, describe: spec.describe, defaultDescription: spec.defaultText });
  }
  y = y
    .help()
    .alias('help', 'h')
    .version(readVersion())
    .epilogue(
      'Each option is also accepted as --name=value and in the single-dash form of the Go original (-port 8081, -human).\n' +
        'MINIQUEUE_<NAME> environment variables (e.g. MINIQUEUE_REDIS_PORT=6380) set options not given on the command line.',
    );
  let result: YargsResult | undefined;
  y.parse(args, {}, (err, argv, output) => {
    result = { err, argv, output };
  });
  // yargs calls the callback synchronously when no command or async middleware is registered.
  if (result === undefined) throw new Error('yargs did not report a parse result synchronously');
  return result;
}

/** Rejects the first key yargs produced that is not a known option (yargs' own message cannot be told apart from other failures). */
function checkUnknown(argv: Record<string, unknown>): void {
  const keys = Object.keys(argv).filter((key) => key !== '_' && key !== '$0' && key !== 'help' && key !== 'h' && key !== 'version');
  const unknown = keys.filter((key) => !KNOWN_NAMES.has(key) && !KNOWN_NAMES.has(toKebab(key)));
  // yargs adds a camelCase copy of every dashed key; report the dashed one, as it was typed.
  const first = unknown.find((key) => !/[A-Z]/.test(key) || !unknown.includes(toKebab(key)));
  if (first === undefined) return;
  throw unknownOption(first.length === 1 ? `-${first}` : `--${first}`, first);
}

function unknownOption(display: string, name: string): ConfigError {
  const renamed = RENAMED.get(toKebab(name));
  const hint = renamed ?? closestOption(toKebab(name));
  const suffix = renamed !== undefined ? ` (use ${renamed})` : hint !== undefined ? ` (did you mean ${hint}?)` : '';
  return new ConfigError(display, `unknown option ${display}${suffix}; see --help`);
}

function closestOption(name: string): string | undefined {
  let best: string | undefined;
  // More than two edits away, or more than half the name, is not a typo worth suggesting.
  let bestDistance = Math.min(2, Math.floor(name.length / 2)) + 1;
  for (const candidate of OPTION_NAMES) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) {
      best = `--${candidate}`;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function toKebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function badValue(option: string, source: string, value: string, problem: string): ConfigError {
  const from = source === option ? option : `${option} (from ${source})`;
  return new ConfigError(option, `invalid value for ${from}: ${JSON.stringify(value)} ${problem}`);
}

/** One option's raw value and where it came from, before validation. */
interface Raw {
  readonly value: string | boolean;
  readonly source: string;
}

/** Looks up each option on the command line, then in the environment, and validates it. */
class RawValues {
  readonly #argv: Record<string, unknown>;
  readonly #env: NodeJS.ProcessEnv;

  constructor(argv: Record<string, unknown>, env: NodeJS.ProcessEnv) {
    this.#argv = argv;
    this.#env = env;
  }

  has(name: OptionName): boolean {
    return this.#raw(name) !== undefined;
  }

  #raw(name: OptionName): Raw | undefined {
    const fromArgv = this.#argv[name];
    if (typeof fromArgv === 'string' || typeof fromArgv === 'boolean') return { value: fromArgv, source: `--${name}` };
    const envName = `MINIQUEUE_${name.toUpperCase().replace(/-/g, '_')}`;
    const fromEnv = this.#env[envName];
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, source: envName };
    return undefined;
  }

  /** The string value of a string option, or `fallback`; `--no-port` and empty values are errors. */
  #string(name: OptionName, fallback: string): { text: string; source: string } {
    const raw = this.#raw(name);
    if (raw === undefined) return { text: fallback, source: `--${name}` };
    if (typeof raw.value === 'boolean') {
      throw new ConfigError(`--${name}`, `--no-${name} is not an option: --${name} needs a value, e.g. --${name} ${OPTIONS[name].defaultText}`);
    }
    if (raw.value.trim() === '') throw badValue(`--${name}`, raw.source, raw.value, `is empty: --${name} needs a value`);
    return { text: raw.value, source: raw.source };
  }

  /**
   * A secret string option, or null when not given. The value is never put into an error
   * message, which may end up in logs.
   */
  secret(name: OptionName): string | null {
    const raw = this.#raw(name);
    if (raw === undefined) return null;
    if (typeof raw.value === 'boolean') {
      throw new ConfigError(`--${name}`, `--no-${name} is not an option: leave --${name} out to turn it off`);
    }
    const { text, source } = this.#string(name, '');
    const from = source === `--${name}` ? source : `--${name} (from ${source})`;
    if (text.length > AUTH_TOKEN_MAX_LENGTH || !/^[\x21-\x7e]+$/.test(text)) {
      throw new ConfigError(`--${name}`, `invalid value for ${from} (not shown): use 1-${AUTH_TOKEN_MAX_LENGTH} visible ASCII characters without spaces`);
    }
    return text;
  }

  boolean(name: OptionName, fallback: boolean): boolean {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    if (typeof raw.value === 'boolean') return raw.value;
    const parsed = GO_BOOLEANS.get(raw.value);
    if (parsed === undefined) throw badValue(`--${name}`, raw.source, raw.value, 'is not a boolean (use true or false)');
    return parsed;
  }

  integer(name: OptionName, fallback: string, min: number, max: number): number {
    const { text, source } = this.#string(name, fallback);
    if (!/^-?\d+$/.test(text)) throw badValue(`--${name}`, source, text, `is not a whole number in ${min}..${max}`);
    const value = Number(text);
    if (value < min || value > max) throw badValue(`--${name}`, source, text, `is out of range ${min}..${max}`);
    return value;
  }

  host(name: OptionName, fallback: string): string {
    const { text, source } = this.#string(name, fallback);
    // Accept the URL form [::1] too; listen() wants it without brackets.
    const host = /^\[.*\]$/.test(text) ? text.slice(1, -1) : text;
    const hostName = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
    if (net.isIP(host) === 0 && !hostName.test(host)) {
      throw badValue(`--${name}`, source, text, 'is not an IP address or host name');
    }
    return host;
  }

  path(name: OptionName, fallback: string): string {
    return path.resolve(this.#string(name, fallback).text);
  }

  level(name: OptionName, fallback: string): LogLevel {
    const { text, source } = this.#string(name, fallback);
    const level = LEVELS.get(text.toLowerCase());
    if (level === undefined) throw badValue(`--${name}`, source, text, 'is not a level: use silent, error, warn, info or debug');
    return level;
  }

  fsync(name: OptionName, fallback: string): FsyncPolicy {
    const { text, source } = this.#string(name, fallback);
    const word = text.toLowerCase();
    if (word === 'always' || word === 'interval' || word === 'never') return word;
    const hint = FSYNC_HINTS.get(word);
    throw badValue(`--${name}`, source, text, `is not an fsync policy: ${hint ?? 'use always, interval or never'}`);
  }

  duration(name: OptionName, fallback: string): number {
    const { text, source } = this.#string(name, fallback);
    let ms: number;
    try {
      ms = parseDurationMs(text);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw badValue(`--${name}`, source, text, `is not a duration like 250ms, 1s, 2m (${reason})`);
    }
    if (ms < 1 || ms > TIMER_MS_MAX) throw badValue(`--${name}`, source, text, 'is out of range: use 1ms to 596h');
    return ms;
  }

  /** A duration option that may be off: absent, `0`, `off` or `none` give 0, else as {@link duration}. */
  durationOrOff(name: OptionName): number {
    if (!this.has(name)) return 0;
    const { text } = this.#string(name, 'off');
    if (/^(0+(ns|us|µs|ms|s|m|h)?|off|none)$/i.test(text.trim())) return 0;
    return this.duration(name, 'off');
  }

  bytes(name: OptionName, fallback: string, min: number, max: number): number {
    const { text, source } = this.#string(name, fallback);
    let bytes: number;
    try {
      bytes = parseByteSize(text);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw badValue(`--${name}`, source, text, `is not a size like 4096, 64KiB, 1MiB (${reason})`);
    }
    if (bytes < min || bytes > max) throw badValue(`--${name}`, source, text, `is out of range ${formatBytes(min)}..${formatBytes(max)}`);
    return bytes;
  }
}

function formatBytes(bytes: number): string {
  for (const [suffix, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${suffix}`;
  }
  return String(bytes);
}

function checkReadableFile(option: '--cert' | '--key', file: string, named: boolean): void {
  const which = named ? `${option} file` : `${option} file (the default, used because ${option === '--cert' ? '--key' : '--cert'} was given)`;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
    fs.accessSync(file, fs.constants.R_OK);
  } catch (err) {
    throw new ConfigError(option, `cannot read ${which} ${JSON.stringify(file)}: ${describeFsError(err)}`, { cause: err });
  }
  if (!stat.isFile()) throw new ConfigError(option, `${which} ${JSON.stringify(file)} is not a regular file`);
}

function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return err instanceof Error ? err.message : String(err);
}

let cachedVersion: string | undefined;

/** The version in miniqueue's package.json, found upwards from this module (src/ or dist/src/). */
function readVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'miniqueue' && typeof pkg.version === 'string') return (cachedVersion = pkg.version);
    } catch {
      // No package.json at this level (or an unreadable one): keep looking upwards.
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return (cachedVersion = 'unknown');
}
