/**
 * miniqueue's version, read once from its package.json: `--version`, the `miniqueue ready` log
 * line and the RESP `HELLO` / `INFO` replies all take it from here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The `version` of the package.json named `miniqueue` found upwards from this module (it runs
 * from `dist/src/server/`, in a clone or in `node_modules/miniqueue/`), or `0.0.0` when there is
 * none (npm always installs package.json, so only a copied-out dist/ gets here).
 */
export const VERSION: string = readVersion();

function readVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'miniqueue' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // No package.json at this level (or an unreadable one): keep looking upwards.
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return '0.0.0';
}
