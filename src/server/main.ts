#!/usr/bin/env node
/**
 * `miniqueue` / `npm start`: parse the command line, start the broker and both listeners,
 * and stop gracefully on SIGINT/SIGTERM (SPEC §1).
 */
import path from 'node:path';
import { BrokerError } from '../errors.js';
import { LogCorruptError } from '../log/segment-log.js';
import { ensureDevCert } from './certs.js';
import { parseCliOrExit } from './cli.js';
import { ConfigError, checkDataDir } from './config.js';
import { isToolCommand, runToolCommand } from '../tools/cli.js';
import { DataDirLockedError, createDataDir } from './lock.js';
import { createLogger } from './logger.js';
import type { StartingGateway } from './gateway.js';
import { startListening, type StartingServer } from './server.js';
import { VERSION } from './version.js';

// `miniqueue inspect|check ...` reads a data directory and exits; it never starts the server.
if (isToolCommand(process.argv[2])) process.exit(runToolCommand(process.argv.slice(2)));
const config = parseCliOrExit(process.argv.slice(2));
const logger = createLogger(config);

function fail(message: string, code = 1): never {
  process.stderr.write(`miniqueue: ${message.replace(/[\r\n]+/g, ' ')}\n`);
  process.exit(code);
}

/** The server once it listens; a signal before that stops it as soon as it does. */
let server: StartingServer | StartingGateway | null = null;
let stopSignal: string | null = null;

function shutdown(running: StartingServer | StartingGateway, signal: string): void {
  logger.info({ signal }, 'shutting down');
  const forced = setTimeout(() => {
    logger.error('shutdown took longer than 10 s; exiting');
    process.exit(1);
  }, 10_000);
  forced.unref();
  running.close().then(
    () => {
      logger.info('stopped');
      process.exit(0);
    },
    (err: unknown) => {
      logger.error({ err }, 'error while shutting down');
      process.exit(1);
    },
  );
}

const stop = (signal: string): void => {
  if (stopSignal !== null) return;
  stopSignal = signal;
  if (server !== null) shutdown(server, signal);
};

try {
  if (config.engine === 'log') {
    checkDataDir(config.db);
    // Before the certificate is generated: a start refused for its --db writes nothing.
    createDataDir(config.db);
  }
  const tls = config.tls ? await ensureDevCert(config, logger) : null;
  // Before the "listening" lines: whoever waits for them may signal at once, and without a
  // handler a SIGTERM would kill the process during the replay instead of stopping it.
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  server = config.engine === 'jetstream'
    // Loaded only for this engine: the NATS client is ~0.5 MB of JavaScript every start would compile.
    ? await (await import('./gateway.js')).startGateway(config, logger, tls)
    : await startListening(config, logger, tls);
  if (stopSignal !== null) shutdown(server, stopSignal);
  let replayed = true;
  try {
    await server.ready;
  } catch (err) {
    // Stopped during the replay: shutdown() is under way and exits.
    if (stopSignal === null) throw err;
    replayed = false;
  }
  if (replayed && stopSignal === null) {
    if (config.engine === 'jetstream') logger.info({ version: VERSION, engine: 'jetstream', stream: config.natsStream }, 'miniqueue ready');
    else logger.info({ version: VERSION, db: config.db, fsync: config.fsync }, 'miniqueue ready');
  }
} catch (err) {
  // Exit codes (README "Options"): 2 = the start was refused because of the configuration or the
  // environment it names (an option, a port, the data directory or its lock, a certificate);
  // 1 = a failure at run time (a damaged log, an I/O error, anything unexpected).
  if (err instanceof ConfigError) fail(err.message, 2);
  if (err instanceof DataDirLockedError) fail(err.message, 2);
  if (err instanceof LogCorruptError) fail(err.message, 1);
  if (err instanceof BrokerError && err.code === 'MQ_ERR_CONFIG') fail(err.message, 2);
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string; portFlag?: string; hostFlag?: string };
  const portFlag = e.portFlag ?? '--port / --redis-port';
  const hostFlag = e.hostFlag ?? '--host / --redis-host';
  if (e.code === 'EADDRINUSE') fail(`port ${e.port} on ${e.address} is already in use (${portFlag})`, 2);
  if (e.code === 'EACCES' && e.syscall === 'listen') fail(`not allowed to listen on port ${e.port} (${portFlag})`, 2);
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') fail(`cannot resolve the address ${JSON.stringify(e.hostname)} (${hostFlag})`, 2);
  if (e.code === 'EADDRNOTAVAIL') fail(`${JSON.stringify(e.address)} is not an address of this machine (${hostFlag})`, 2);
  if (e.code !== undefined && e.path !== undefined) {
    // Name --db only for a file under it: a missing file of the installation is not the user's --db.
    const underDb = config.engine === 'log' && path.resolve(e.path).startsWith(path.resolve(config.db) + path.sep);
    fail(`${e.code}: ${e.path}${underDb ? ' (--db)' : ''}`, 1);
  }
  logger.error({ err }, 'start failed');
  fail(e.message ?? String(err), 1);
}
