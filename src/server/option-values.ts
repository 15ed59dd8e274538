/**
 * Reading one option's value: from the parsed command line, else from its `MINIQUEUE_<NAME>`
 * environment variable, else the default of the option table (options.ts), then checking it
 * against what the option accepts. Every problem is a {@link ConfigError} naming the option, where
 * the value came from, and the value (except for secrets).
 */
import net from 'node:net';
import path from 'node:path';
import type { FsyncPolicy } from '../log/log-writer.js';
import { isValidStreamName } from '../jetstream/subjects.js';
import { ConfigError } from './config-error.js';
import { parseByteSize, parseDurationMs } from './duration.js';
import {
  AUTH_TOKEN_MAX_LENGTH,
  OPTIONS,
  TIMER_MS_MAX,
  defaultText,
  type BooleanOptionName,
  type LogLevel,
  type OptionName,
  type StringOptionName,
} from './options.js';

/** Go's `strconv.ParseBool` vocabulary, which the original's `-human=1` relied on. */
export const GO_BOOLEANS: ReadonlyMap<string, boolean> = new Map(Object.entries({
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

/**
 * The error for a value an option does not accept: `invalid value for --x (from SOURCE): "v" PROBLEM`.
 * @param option - the flag, `--x`.
 * @param source - where the value came from: the flag as typed, or the environment variable.
 */
export function badValue(option: string, source: string, value: string, problem: string): ConfigError {
  const from = source === option ? option : `${option} (from ${source})`;
  return new ConfigError(option, `invalid value for ${from}: ${JSON.stringify(value)} ${problem}`);
}

/** One option's raw value and where it came from, before validation. */
interface Raw {
  readonly value: string | boolean;
  readonly source: string;
}

/**
 * Looks up each option on the command line, then in the environment (an empty variable counts as
 * unset), then in the option table, and validates it. Each getter throws {@link ConfigError}.
 */
export class OptionValues {
  readonly #argv: Record<string, unknown>;
  readonly #env: NodeJS.ProcessEnv;

  /**
   * @param argv - yargs' result for the command line (argv.ts), keyed by option name.
   * @param env - where `MINIQUEUE_<NAME>` variables are read.
   */
  constructor(argv: Record<string, unknown>, env: NodeJS.ProcessEnv) {
    this.#argv = argv;
    this.#env = env;
  }

  /** Whether the option was given, on the command line or in the environment. */
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

  /**
   * The string value of a string option, or `fallback` (for a derived default), or the table's
   * default; `--no-port` and empty values are errors.
   */
  #string(name: StringOptionName, fallback?: string): { text: string; source: string } {
    const raw = this.#raw(name);
    if (raw === undefined) return { text: fallback ?? OPTIONS[name].default ?? '', source: `--${name}` };
    if (typeof raw.value === 'boolean') {
      throw new ConfigError(`--${name}`, `--no-${name} is not an option: --${name} needs a value, e.g. --${name} ${defaultText(name)}`);
    }
    if (raw.value.trim() === '') throw badValue(`--${name}`, raw.source, raw.value, `is empty: --${name} needs a value`);
    return { text: raw.value, source: raw.source };
  }

  /**
   * A secret string option, or null when not given. The value is never put into an error
   * message, which may end up in logs.
   */
  secret(name: StringOptionName): string | null {
    const raw = this.#raw(name);
    if (raw === undefined) return null;
    if (typeof raw.value === 'boolean') {
      throw new ConfigError(`--${name}`, `--no-${name} is not an option: leave --${name} out to turn it off`);
    }
    const { text, source } = this.#string(name);
    const from = source === `--${name}` ? source : `--${name} (from ${source})`;
    if (text.length > AUTH_TOKEN_MAX_LENGTH || !/^[\x21-\x7e]+$/.test(text)) {
      throw new ConfigError(`--${name}`, `invalid value for ${from} (not shown): use 1-${AUTH_TOKEN_MAX_LENGTH} visible ASCII characters without spaces`);
    }
    return text;
  }

  /** An on/off option; a string value (from the environment) is read as a Go boolean. */
  boolean(name: BooleanOptionName): boolean {
    const raw = this.#raw(name);
    if (raw === undefined) return OPTIONS[name].default;
    if (typeof raw.value === 'boolean') return raw.value;
    const parsed = GO_BOOLEANS.get(raw.value);
    if (parsed === undefined) throw badValue(`--${name}`, raw.source, raw.value, 'is not a boolean (use true or false)');
    return parsed;
  }

  /** A whole number in [min, max] (both inclusive). */
  integer(name: StringOptionName, min: number, max: number): number {
    const { text, source } = this.#string(name);
    if (!/^-?\d+$/.test(text)) throw badValue(`--${name}`, source, text, `is not a whole number in ${min}..${max}`);
    const value = Number(text);
    if (value < min || value > max) throw badValue(`--${name}`, source, text, `is out of range ${min}..${max}`);
    return value;
  }

  /** An IP address (IPv6 with or without brackets; returned without) or a host name. */
  host(name: StringOptionName): string {
    const { text, source } = this.#string(name);
    // Accept the URL form [::1] too; listen() wants it without brackets.
    const host = /^\[.*\]$/.test(text) ? text.slice(1, -1) : text;
    const hostName = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
    if (net.isIP(host) === 0 && !hostName.test(host)) {
      throw badValue(`--${name}`, source, text, 'is not an IP address or host name');
    }
    return host;
  }

  /** A path, made absolute against the current directory. Not checked here (preflight.ts). */
  path(name: StringOptionName): string {
    return path.resolve(this.#string(name).text);
  }

  /** A log level word (see LEVELS), case-insensitive. */
  level(name: StringOptionName): LogLevel {
    const { text, source } = this.#string(name);
    const level = LEVELS.get(text.toLowerCase());
    if (level === undefined) throw badValue(`--${name}`, source, text, 'is not a level: use silent, error, warn, info or debug');
    return level;
  }

  /** `always`, `interval` or `never`, case-insensitive, with a hint for Redis' words. */
  fsync(name: StringOptionName): FsyncPolicy {
    const { text, source } = this.#string(name);
    const word = text.toLowerCase();
    if (word === 'always' || word === 'interval' || word === 'never') return word;
    const hint = FSYNC_HINTS.get(word);
    throw badValue(`--${name}`, source, text, `is not an fsync policy: ${hint ?? 'use always, interval or never'}`);
  }

  /** One of `words`, case-insensitive. */
  choice<W extends string>(name: StringOptionName, words: readonly W[]): W {
    const { text, source } = this.#string(name);
    const word = words.find((w) => w === text.toLowerCase());
    if (word === undefined) throw badValue(`--${name}`, source, text, `is not one of ${words.join(', ')}`);
    return word;
  }

  /** Comma-separated NATS URLs: `nats://` or `tls://`, a host and a port each; at most 16. */
  natsUrls(name: StringOptionName): string[] {
    const { text, source } = this.#string(name);
    const urls = text.split(',').map((u) => u.trim());
    if (urls.length > 16) throw badValue(`--${name}`, source, '(not shown)', 'names more than 16 servers');
    for (const u of urls) {
      let url: URL | null = null;
      try {
        url = new URL(u);
      } catch {
        url = null;
      }
      // Shown without what may be a password (before an '@').
      const shown = JSON.stringify(url === null ? (u.includes('@') ? `***@${u.slice(u.lastIndexOf('@') + 1)}` : u) : `${url.protocol}//${url.host}`);
      if (url === null || (url.protocol !== 'nats:' && url.protocol !== 'tls:') || url.hostname === '' || url.port === '' || (url.pathname !== '' && url.pathname !== '/')) {
        throw new ConfigError(`--${name}`, `invalid value for --${name}${source === `--${name}` ? '' : ` (from ${source})`}: ${shown} is not a NATS URL like nats://127.0.0.1:4222 (nats:// or tls://, host and port; comma-separated)`);
      }
    }
    return urls;
  }

  /** A JetStream stream name miniqueue can use (jetstream/subjects.ts isValidStreamName). */
  natsStream(name: StringOptionName): string {
    const { text, source } = this.#string(name);
    if (!isValidStreamName(text)) throw badValue(`--${name}`, source, text, 'is not a stream name: use 1-64 letters, digits, _ or -, not ending in _DACKS');
    return text;
  }

  /** A Go duration in ms, in [1, {@link TIMER_MS_MAX}]. */
  duration(name: StringOptionName): number {
    const { text, source } = this.#string(name);
    const ms = parseOrThrow(parseDurationMs, name, source, text, 'a duration like 250ms, 1s, 2m');
    if (ms < 1 || ms > TIMER_MS_MAX) throw badValue(`--${name}`, source, text, 'is out of range: use 1ms to 596h');
    return ms;
  }

  /** A duration option that may be off: `0` (with any unit), `off` or `none` give 0, else as {@link duration}. */
  durationOrOff(name: StringOptionName): number {
    const { text } = this.#string(name);
    if (/^(0+(ns|us|µs|ms|s|m|h)?|off|none)$/i.test(text.trim())) return 0;
    return this.duration(name);
  }

  /**
   * A byte size (bytes, or with a 1024-based K/M/G suffix) in [min, max] (both inclusive).
   * @param derivedDefault - the default of an option whose default follows other options.
   */
  bytes(name: StringOptionName, min: number, max: number, derivedDefault?: number): number {
    const { text, source } = this.#string(name, derivedDefault === undefined ? undefined : String(derivedDefault));
    const bytes = parseOrThrow(parseByteSize, name, source, text, 'a size like 4096, 64KiB, 1MiB');
    if (bytes < min || bytes > max) throw badValue(`--${name}`, source, text, `is out of range ${formatBytes(min)}..${formatBytes(max)}`);
    return bytes;
  }
}

/** `parse(text)`, or a {@link badValue} saying the value is not `expected`, with the parser's reason. */
function parseOrThrow(parse: (text: string) => number, name: OptionName, source: string, text: string, expected: string): number {
  try {
    return parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw badValue(`--${name}`, source, text, `is not ${expected} (${reason})`);
  }
}

function formatBytes(bytes: number): string {
  for (const [suffix, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${suffix}`;
  }
  return String(bytes);
}
