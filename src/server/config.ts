/**
 * The server's configuration, validated once at startup (STYLE.md "Errors"): {@link parseConfig}
 * turns the command line and `MINIQUEUE_*` environment variables into a frozen {@link Config}.
 *
 * The parts live beside this file, one concept each:
 * - options.ts: the option table (each default written once), {@link Config} and the limits;
 * - argv.ts: single-dash forms of the Go original, yargs, unknown options, `--help`, `--version`;
 * - option-values.ts: command line, then `MINIQUEUE_<NAME>`, then the default; value checks;
 * - preflight.ts: the certificate, key and data-directory checks;
 * - config-error.ts: {@link ConfigError} (`MQ_ERR_CONFIG`) and {@link HelpRequested}.
 * This module is the entry point and re-exports what callers of the configuration use.
 *
 * An environment variable `MINIQUEUE_<NAME>` (e.g. `MINIQUEUE_REDIS_PORT=6380`) sets an option
 * that is not on the command line; the command line wins. Every mistake becomes a
 * {@link ConfigError} whose message is one line naming the option and the value it was given.
 */
import { parseArgv } from './argv.js';
import { ConfigError } from './config-error.js';
import { OptionValues } from './option-values.js';
import {
  JETSTREAM_ENGINE_OPTIONS,
  LOG_ENGINE_OPTIONS,
  MAX_COMMAND_BYTES_MAX,
  MAX_CONNECTIONS_MAX,
  MAX_DELIVERIES_MAX,
  MAX_INPUT_BYTES_MAX,
  MAX_MESSAGE_BYTES_MAX,
  SEGMENT_BYTES_MAX,
  SEGMENT_BYTES_MIN,
  type Config,
} from './options.js';
import { checkReadableFile } from './preflight.js';

export { ConfigError, HelpRequested } from './config-error.js';
export { checkDataDir } from './preflight.js';
export type { Config } from './options.js';

/**
 * Parses and validates the command line (and `MINIQUEUE_*` environment variables) into a frozen
 * {@link Config}. Call it once at startup.
 *
 * Checks made here: unknown options and stray arguments, value syntax and ranges of every option
 * (ports, durations, sizes, level, fsync policy, host names), and — only when TLS is on and
 * `--cert` or `--key` was given — that both files exist and are readable. It does not look at the
 * data directory (see `checkDataDir`) and never creates or modifies anything.
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
  const values = new OptionValues(parseArgv(argv), env);
  const tls = values.boolean('tls');
  const certGiven = values.has('cert') || values.has('key');
  const fixed = {
    port: values.integer('port', 0, 65535),
    host: values.host('host'),
    redisPort: values.integer('redis-port', -1, 65535),
    redisHost: values.host('redis-host'),
    db: values.path('db'),
    certPath: values.path('cert'),
    keyPath: values.path('key'),
    certExplicit: certGiven,
    tls,
    level: values.level('level'),
    human: values.boolean('human'),
    periodMs: values.duration('period'),
    fsync: values.fsync('fsync'),
    fsyncIntervalMs: values.duration('fsync-interval'),
    segmentBytes: values.bytes('segment-bytes', SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX),
    maxMessageBytes: values.bytes('max-message-bytes', 1, MAX_MESSAGE_BYTES_MAX),
    repair: values.boolean('repair'),
    compaction: values.boolean('compaction'),
    authToken: values.secret('auth-token'),
    maxConnections: values.integer('max-connections', 1, MAX_CONNECTIONS_MAX),
    ackTimeoutMs: values.durationOrOff('ack-timeout'),
    maxDeliveries: values.integer('max-deliveries', 0, MAX_DELIVERIES_MAX),
  };
  // The defaults that follow other options (options.ts `derivedDefault` describes them for --help).
  const maxMessageBytes = fixed.maxMessageBytes;
  const maxCommandBytes = values.bytes('max-command-bytes', maxMessageBytes + 4096, MAX_COMMAND_BYTES_MAX, maxMessageBytes + 1024 ** 2);
  const maxInputBytes = values.bytes('max-input-bytes', maxCommandBytes, MAX_INPUT_BYTES_MAX, Math.max(256 * 1024 ** 2, 2 * maxCommandBytes));
  const engine = values.choice('engine', ['log', 'jetstream'] as const);
  // Options of the other engine are refused rather than silently ignored.
  const unused = engine === 'jetstream' ? LOG_ENGINE_OPTIONS : JETSTREAM_ENGINE_OPTIONS;
  for (const name of unused) {
    if (!values.has(name)) continue;
    throw new ConfigError(
      `--${name}`,
      engine === 'jetstream'
        ? `--${name} is not used with --engine jetstream: the gateway keeps nothing on disk (leave --${name} out)`
        : `--${name} is used only with --engine jetstream (add --engine jetstream, or leave --${name} out)`,
    );
  }
  const natsReplicas = values.integer('nats-replicas', 1, 3);
  if (natsReplicas === 2) throw new ConfigError('--nats-replicas', 'invalid value for --nats-replicas: "2" is not 1 or 3 (JetStream needs a majority: use 1, or 3 on a cluster of three or more)');
  const natsLeaseMs = values.duration('nats-lease');
  if (natsLeaseMs < 1000) throw new ConfigError('--nats-lease', `invalid value for --nats-lease: ${natsLeaseMs} ms is under 1s (the gateway renews its lease every third of it)`);
  const nats = {
    engine,
    natsLeaseMs,
    natsServers: Object.freeze(values.natsUrls('nats')),
    natsStream: values.natsStream('nats-stream'),
    natsReplicas: natsReplicas as 1 | 3,
    natsUser: nonEmpty(env['MINIQUEUE_NATS_USER']),
    natsPassword: nonEmpty(env['MINIQUEUE_NATS_PASSWORD']),
    natsToken: nonEmpty(env['MINIQUEUE_NATS_TOKEN']),
  };
  const config: Config = { ...fixed, maxCommandBytes, maxInputBytes, ...nats };
  // An unused certificate should not stop a cleartext start, so the files are checked only with TLS.
  if (tls && certGiven) {
    checkReadableFile('--cert', config.certPath, values.has('cert'));
    checkReadableFile('--key', config.keyPath, values.has('key'));
  }
  return Object.freeze(config);
}

function nonEmpty(value: string | undefined): string | null {
  return value === undefined || value === '' ? null : value;
}
