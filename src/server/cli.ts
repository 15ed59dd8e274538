/**
 * The command-line front of {@link parseConfig}: turns its errors into the exit codes and the
 * one-line messages SPEC §1 asks for.
 */
import fs from 'node:fs';
import { ConfigError, HelpRequested, parseConfig, type Config } from './config.js';

/** Exit code for a bad command line (the BSD `EX_USAGE`-style code most CLIs use for usage errors). */
export const EXIT_USAGE = 2;

/** Where {@link parseCliOrExit} writes and how it exits; replaceable in tests. */
export interface CliIo {
  /** Writes text to stdout. Default: a synchronous write to fd 1. */
  readonly writeOut: (text: string) => void;
  /** Writes text to stderr. Default: a synchronous write to fd 2. */
  readonly writeErr: (text: string) => void;
  /** Ends the process. Default: `process.exit`. Must not return; a test double should throw. */
  readonly exit: (code: number) => never;
}

const PROCESS_IO: CliIo = {
  writeOut: (text) => writeFdSync(1, text),
  writeErr: (text) => writeFdSync(2, text),
  exit: (code) => process.exit(code),
};

/**
 * Parses the command line like {@link parseConfig} and handles the outcomes a CLI must:
 *
 * - `--help`/`-h`/`-help`: usage on stdout, exit 0. `--version`: the version on stdout, exit 0.
 * - a {@link ConfigError}: `miniqueue: <message>` as one line on stderr, exit 2.
 * - anything else thrown is a bug and propagates.
 *
 * Output is written synchronously before exiting, so it is not cut short on a pipe.
 *
 * @param argv - `process.argv.slice(2)`.
 * @param env - environment for `MINIQUEUE_*` options; default `process.env`.
 * @param io - output and exit hooks; default the real process.
 * @returns the frozen Config when the command line is valid.
 */
export function parseCliOrExit(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, io: CliIo = PROCESS_IO): Config {
  try {
    return parseConfig(argv, env);
  } catch (err) {
    if (err instanceof HelpRequested) {
      io.writeOut(err.text.endsWith('\n') ? err.text : `${err.text}\n`);
      return io.exit(0);
    }
    if (err instanceof ConfigError) {
      io.writeErr(`miniqueue: ${err.message.replace(/[\r\n]+/g, ' ')}\n`);
      return io.exit(EXIT_USAGE);
    }
    throw err;
  }
}

/**
 * Writes all of `text` to a file descriptor synchronously. stdout/stderr may be non-blocking
 * pipes, so EAGAIN is retried; the text is at most a screen of help, so the wait is short.
 */
function writeFdSync(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  let written = 0;
  while (written < bytes.length) {
    try {
      written += fs.writeSync(fd, bytes, written);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}
