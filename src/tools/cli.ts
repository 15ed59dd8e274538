/**
 * The command line of the offline tools, `miniqueue inspect` and `miniqueue check` (SPEC §10):
 * yargs parsing, progress on stderr, output on stdout, exit codes. server/main.ts hands the
 * command line here when its first word is one of {@link TOOL_COMMANDS}; the server's own
 * `--help` lists them (server/argv.ts).
 */
import fs from 'node:fs';
// yargs 18 ships no type declarations (see server/argv.ts); `Yargs` below types what is used.
// @ts-ignore
import yargsFactory from 'yargs';
import { CHECK_EXIT, verifyDataDir } from './check.js';
import { dumpRecords, formatInspect, humanBytes, inspectDataDir } from './inspect.js';
import { DataDirError, type ScanProgress } from './log-scan.js';

/** The subcommands, with the one-line description `miniqueue --help` shows for each. */
export const TOOL_COMMANDS: ReadonlyMap<string, string> = new Map([
  ['inspect', 'list the segments and topics of a data directory (--records: every record), read-only'],
  ['check', 'verify the CRC of every record in a data directory without starting the server'],
]);

/** Whether `word` (the first command-line argument) names a tool. */
export function isToolCommand(word: string | undefined): boolean {
  return word !== undefined && TOOL_COMMANDS.has(word);
}

/** Exit code for a bad command line, as the server's (server/cli.ts EXIT_USAGE). */
const EXIT_USAGE = 2;

/** Output hooks of {@link runToolCommand}; tests replace them. */
export interface ToolIo {
  readonly writeOut: (text: string) => void;
  readonly writeErr: (text: string) => void;
  /** Progress lines are written when the walk takes longer than this (ms, default 1000). */
  readonly progressIntervalMs?: number;
}

/** Thrown by the default writer when stdout's reader went away (`| head`): stop quietly. */
class OutputClosed extends Error {}

const PROCESS_IO: ToolIo = {
  writeOut: (text) => writeFdSync(1, text),
  writeErr: (text) => writeFdSync(2, text),
};

/** The slice of the yargs 18 API used here (it ships no type declarations). */
interface Yargs {
  scriptName(name: string): Yargs;
  usage(text: string): Yargs;
  epilogue(text: string): Yargs;
  option(name: string, spec: Record<string, unknown>): Yargs;
  strict(): Yargs;
  help(): Yargs;
  version(enabled: false): Yargs;
  locale(locale: string): Yargs;
  wrap(columns: number | null): Yargs;
  exitProcess(enabled: boolean): Yargs;
  parserConfiguration(config: Record<string, boolean>): Yargs;
  parse(args: readonly string[], context: object, callback: (err: Error | null | undefined, argv: Record<string, unknown>, output: string) => void): unknown;
}

const USAGE: Record<string, string> = {
  inspect:
    'Usage: miniqueue inspect --db DIR [--records] [--topic T]\n\n' +
    'Lists the segments of a data directory (records, bytes, live share) and its topics (live messages,\n' +
    'ready / in flight / delayed at the end of the log). --records prints every record instead (position,\n' +
    'offset, type, id, size, CRC, topic). Read-only: safe beside a running server (no LOCK taken).',
  check:
    'Usage: miniqueue check --db DIR\n\n' +
    'Verifies the length, CRC and offset of every record without starting the server. Read-only: safe\n' +
    'beside a running server (no LOCK taken). Names the file and byte position of the first damage.',
};

const EPILOGUE: Record<string, string> = {
  inspect: 'Exit status: 0, or 1 when the log is damaged (see miniqueue check), 2 for a bad command line.',
  check:
    'Exit status: 0 every record is intact; 1 a damaged record before the end of the log (the server will not start\n' +
    'without --repair); 3 only a torn record at the end of the newest segment (the next start cuts it away and\n' +
    'keeps it in <db>/damaged/); 2 bad command line or no such directory; 4 a file could not be read.',
};

/**
 * Runs `miniqueue inspect|check ...` and returns the exit code. Never starts the server and never
 * writes to the data directory.
 * @param argv - the command line without node and the script: `['check', '--db', 'DIR']`.
 */
export function runToolCommand(argv: readonly string[], io: ToolIo = PROCESS_IO): number {
  const command = argv[0] ?? '';
  const parsed = parseToolArgs(command, argv.slice(1));
  if (typeof parsed === 'string') {
    io.writeErr(`miniqueue ${command}: ${parsed}\n`);
    return EXIT_USAGE;
  }
  if (parsed.help !== undefined) {
    io.writeOut(parsed.help.endsWith('\n') ? parsed.help : `${parsed.help}\n`);
    return 0;
  }
  const onProgress = (p: ScanProgress): void => io.writeErr(`miniqueue ${command}: ${progressLine(p)}\n`);
  try {
    if (command === 'check') {
      const result = verifyDataDir(parsed.db, onProgress, io.progressIntervalMs);
      io.writeOut(result.report);
      if (result.error !== null) io.writeErr(`miniqueue check: ${result.error}\n`);
      return result.exitCode;
    }
    if (parsed.records) {
      const scan = dumpRecords(parsed.db, io.writeOut, { topic: parsed.topic, onProgress, progressIntervalMs: io.progressIntervalMs });
      return scan.firstDamage === null ? 0 : 1;
    }
    const summary = inspectDataDir(parsed.db, onProgress, io.progressIntervalMs);
    io.writeOut(formatInspect(summary, parsed.topic));
    return summary.scan.firstDamage === null ? 0 : 1;
  } catch (err) {
    if (err instanceof OutputClosed) return 0;
    if (err instanceof DataDirError) {
      io.writeErr(`miniqueue ${command}: ${err.message}\n`);
      return EXIT_USAGE;
    }
    const e = err as NodeJS.ErrnoException;
    if (typeof e.code === 'string' && typeof e.syscall === 'string') {
      io.writeErr(`miniqueue ${command}: cannot read ${e.path ?? parsed.db}: ${e.code} (${e.syscall})\n`);
      return CHECK_EXIT.UNREADABLE;
    }
    throw err;
  }
}

interface ToolArgs {
  db: string;
  records: boolean;
  topic: string | undefined;
  help?: string;
}

/** The parsed options, or one line saying what is wrong with them. */
function parseToolArgs(command: string, args: readonly string[]): ToolArgs | string {
  // The server takes the Go original's single-dash long options (-db ./x); so do the tools.
  const normalized = args.map((a) => (/^-(db|topic|records|help)(=|$)/.test(a) ? `-${a}` : a));
  let y = (yargsFactory as () => Yargs)()
    .scriptName('miniqueue')
    .usage(USAGE[command] ?? '')
    .locale('en')
    .wrap(110)
    .exitProcess(false)
    .strict()
    .parserConfiguration({ 'duplicate-arguments-array': false, 'dot-notation': false })
    .option('db', { type: 'string', describe: 'data directory to read', default: './data' });
  if (command === 'inspect') {
    y = y
      .option('records', { type: 'boolean', describe: 'print every record instead of the summary', default: false })
      .option('topic', { type: 'string', describe: 'only this topic (records, or the topic table)' });
  }
  y = y.help().version(false).epilogue(EPILOGUE[command] ?? '');
  let result: { err: Error | null | undefined; argv: Record<string, unknown>; output: string } | undefined;
  y.parse(normalized, {}, (err, argv, output) => {
    result = { err, argv, output };
  });
  if (result === undefined) return 'yargs did not report a parse result synchronously';
  if (result.argv['help'] === true) return { db: '', records: false, topic: undefined, help: result.output };
  if (result.err) return `${result.err.message}; see miniqueue ${command} --help`;
  const positional = result.argv['_'];
  if (Array.isArray(positional) && positional.length > 0) {
    return `unexpected argument ${JSON.stringify(String(positional[0]))}; see miniqueue ${command} --help`;
  }
  const db = result.argv['db'];
  if (typeof db !== 'string' || db === '') return '--db needs a directory';
  const topic = result.argv['topic'];
  if (topic !== undefined && (typeof topic !== 'string' || topic === '')) return '--topic needs a topic name';
  return { db, records: result.argv['records'] === true, topic: topic as string | undefined };
}

function progressLine(p: ScanProgress): string {
  const share = p.bytesTotal === 0 ? 100 : Math.floor((100 * p.bytesDone) / p.bytesTotal);
  return (
    `${share}% read (${humanBytes(p.bytesDone)} of ${humanBytes(p.bytesTotal)}, ` +
    `segment ${Math.min(p.segmentsDone + 1, p.segmentsTotal)} of ${p.segmentsTotal}, ${p.records} records, ${(p.elapsedMs / 1000).toFixed(1)} s)`
  );
}

/**
 * Writes all of `text` to a file descriptor synchronously (retrying EAGAIN on a non-blocking
 * pipe). Throws OutputClosed when the reader has gone (EPIPE), so a dump piped into `head` ends
 * quietly.
 */
function writeFdSync(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  let written = 0;
  while (written < bytes.length) {
    try {
      written += fs.writeSync(fd, bytes, written);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') throw new OutputClosed();
      if (code !== 'EAGAIN') throw err;
    }
  }
}
