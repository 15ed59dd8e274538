/**
 * Where miniqueue's own files are: the directory of the package.json named `miniqueue`, found
 * upwards from the running module. That is the same directory whether the module runs from the
 * compiled tree (`dist/src/...`) or from the bundle (`dist/bundle/`), in a clone or in
 * `node_modules/miniqueue/`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root and its package.json fields, or null when no such package.json is found upwards. */
export interface PackageInfo {
  /** Absolute path of the directory holding package.json. */
  readonly root: string;
  /** Its `version` field. */
  readonly version: string;
}

/** Most levels looked upwards: dist/src/protocols/http2/ is 4 below the root. */
const MAX_DEPTH = 6;

/**
 * The package.json named `miniqueue` upwards from this module, read once; null when there is none
 * (npm always installs package.json, so only a copied-out dist/ gets there).
 */
export const PACKAGE: PackageInfo | null = findPackage();

function findPackage(): PackageInfo | null {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'miniqueue' && typeof pkg.version === 'string') return { root: dir, version: pkg.version };
    } catch {
      // No package.json at this level (or an unreadable one): keep looking upwards.
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return null;
}
