/**
 * miniqueue's version, read once from its package.json: `--version`, the `miniqueue ready` log
 * line and the RESP `HELLO` / `INFO` replies all take it from here.
 */
import { PACKAGE } from '../package-root.js';

/** The `version` of miniqueue's package.json ({@link PACKAGE}), or `0.0.0` when there is none. */
export const VERSION: string = PACKAGE?.version ?? '0.0.0';
