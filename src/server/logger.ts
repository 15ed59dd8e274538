/**
 * The process logger: pino, JSON lines by default, pino-pretty with `--human`.
 *
 * Both forms write synchronously, in-process (no worker-thread transport), so the last lines
 * before `process.exit` — a startup failure, the shutdown summary — are never lost. Logging on
 * hot paths is at `debug` level through child loggers, so the cost of a synchronous write is paid
 * only for the rare info/warn/error lines.
 */
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import type { Config } from './config.js';

export type { Logger } from 'pino';

/**
 * Creates the root logger.
 *
 * - JSON lines (pino's default shape: `level` number, `time` epoch ms, `pid`, `hostname`, `msg`,
 *   plus the fields passed) unless `config.human`.
 * - `config.human`: pino-pretty as a synchronous stream in this thread, colours only when writing
 *   to a colour-capable stdout, times as local `HH:MM:ss.l`, without `pid`/`hostname`.
 * - `config.level` `'silent'` writes nothing.
 *
 * @param config - the `level` and `human` fields of {@link Config}.
 * @param destination - where lines go; default stdout (fd 1) written synchronously. A provided
 *   stream receives one `write(line)` call per entry, each line ending in `\n`.
 * @returns a pino Logger; it owns no resources that need closing.
 */
export function createLogger(config: Pick<Config, 'level' | 'human'>, destination?: NodeJS.WritableStream): Logger {
  const options = { level: config.level };
  if (config.human) {
    // Loaded only when asked for: pino-pretty and its dependencies cost ~10 ms of start time.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    const stream = pretty({
      sync: true,
      destination: destination ?? 1,
      // Colours only make sense on our own stdout; a caller's stream may be a file or a test buffer.
      colorize: destination === undefined ? pretty.isColorSupported && process.stdout.isTTY === true : false,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
    });
    return pino(options, stream);
  }
  const stream: DestinationStream = destination ?? pino.destination({ dest: 1, sync: true });
  return pino(options, stream);
}
