/**
 * The two ways reading the command line ends without a `Config`: a bad option
 * ({@link ConfigError}) and a request for help or the version ({@link HelpRequested}).
 */
import { BrokerError } from '../errors.js';

/**
 * A bad configuration value. `option` names the flag as the user would type it (`--port`,
 * `--fsync`; for an unknown option, the option as given, e.g. `--prot` or `-x`; for a stray
 * positional argument, that argument). `message` is one line naming the option and the value,
 * suitable for `miniqueue: <message>` on stderr. `code` is always `MQ_ERR_CONFIG` (src/errors.ts);
 * it stops the start (exit status 2) and is never sent to a client.
 */
export class ConfigError extends BrokerError {
  declare readonly code: 'MQ_ERR_CONFIG';
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super('MQ_ERR_CONFIG', [message.replace(/[\r\n]+/g, ' ')], options);
    this.name = 'ConfigError';
    this.option = option;
  }
}

/**
 * Thrown by `parseConfig` for `--help`/`-h`/`-help` (`kind: 'help'`) and `--version`
 * (`kind: 'version'`). It is not a failure: `text` is what to print on stdout (usage text, or the
 * version number from package.json), and the process should then exit 0. `parseCliOrExit`
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
