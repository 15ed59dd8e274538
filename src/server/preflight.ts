/**
 * Checks of the files the options name, made before anything is started: the certificate and key
 * given with `--cert` / `--key`, and the data directory `--db`. They only `stat` and `access`;
 * nothing is created or modified here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from './config-error.js';

/**
 * Checks that a certificate or key file exists, is a regular file and is readable.
 *
 * @param option - the flag the path came from.
 * @param file - absolute path.
 * @param named - true when the option itself was given; false when its default is used because
 *   the other of the two was given (the message then says so).
 * @throws ConfigError with `option` naming the flag, the path and the reason.
 */
export function checkReadableFile(option: '--cert' | '--key', file: string, named: boolean): void {
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

/**
 * Checks, without creating or modifying anything, that `db` can be used as the data directory:
 * if it exists it must be a directory this process can write to and enter; if it does not
 * exist, its nearest existing ancestor must be such a directory (so it can be created later).
 * Run as root, `access` reports every directory writable.
 *
 * @param db - absolute path, normally `Config.db`.
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

function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return err instanceof Error ? err.message : String(err);
}
