/**
 * The command line, before any value is checked: the Go original's single-dash forms are
 * rewritten, yargs parses the result against the option table (options.ts), and unknown options,
 * stray arguments, `--help` and `--version` are dealt with. The subcommands of src/tools/cli.ts
 * (`inspect`, `check`) are listed in `--help`; server/main.ts runs them before this is reached.
 *
 * Every option is accepted as `--name value`, `--name=value` and `-name value` / `-name=value`
 * (the Go original's single-dash style; it is accepted for every long option, not only for the
 * seven the original had, because none of them clashes with a short flag).
 */
// yargs 18 ships no type declarations and @types/yargs is not a dependency; the part used here is
// typed by `Yargs` below. `@ts-ignore` rather than `@ts-expect-error` so this still compiles if
// the types are added later.
// @ts-ignore
import yargsFactory from 'yargs';
import { TOOL_COMMANDS } from '../tools/cli.js';
import { ConfigError, HelpRequested } from './config-error.js';
import { GO_BOOLEANS, badValue } from './option-values.js';
import { OPTIONS, OPTION_NAMES, RENAMED, defaultText } from './options.js';
import { VERSION } from './version.js';

const KNOWN_NAMES: ReadonlySet<string> = new Set(OPTION_NAMES);
const BOOLEAN_NAMES: ReadonlySet<string> = new Set(OPTION_NAMES.filter((name) => OPTIONS[name].type === 'boolean'));
const STRING_NAMES: ReadonlySet<string> = new Set(OPTION_NAMES.filter((name) => OPTIONS[name].type === 'string'));

/**
 * Parses the command line with yargs after {@link normalizeArgs}.
 *
 * @param argv - the arguments without node and the script, i.e. `process.argv.slice(2)`.
 * @returns yargs' result: each given option under its name (string for string options, boolean
 *   for on/off options; absent when not given, since the table's defaults are applied later).
 * @throws ConfigError for an unknown option (with a hint for renamed ones and typos), a stray
 *   argument, a `--bool=value` that is not a Go boolean, or anything else yargs refuses.
 * @throws HelpRequested for `--help`/`-h`/`-help` (usage text) or `--version`.
 */
export function parseArgv(argv: readonly string[]): Record<string, unknown> {
  const parsed = runYargs(normalizeArgs(argv));
  if (parsed.argv['help'] === true) throw new HelpRequested('help', parsed.output);
  if (parsed.argv['version'] === true) throw new HelpRequested('version', VERSION);
  checkUnknown(parsed.argv);
  const positional = parsed.argv['_'];
  if (Array.isArray(positional) && positional.length > 0) {
    const first = String(positional[0]);
    throw new ConfigError(first, `unexpected argument ${JSON.stringify(first)}: options start with --, e.g. --port 8080`);
  }
  if (parsed.err) throw new ConfigError('', parsed.err.message, { cause: parsed.err });
  return parsed.argv;
}

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
    // No yargs `default`: an option left out must stay absent, so that its MINIQUEUE_* variable
    // is read (option-values.ts); the table's default is applied there.
    y = y.option(name, { type: OPTIONS[name].type, describe: OPTIONS[name].describe, defaultDescription: defaultText(name) });
  }
  y = y
    .help()
    .alias('help', 'h')
    .version(VERSION)
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
