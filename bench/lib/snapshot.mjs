// A private copy of the compiled broker for one benchmark run. dist/ is shared: someone running
// `npm run build` (which deletes dist/ first) or tsc halfway through a run would otherwise make
// later scenarios measure another build, or fail to start. The copy lives in a temporary dir
// next to a package.json copy (ESM "type", version) and a node_modules symlink (dependencies).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './procs.mjs';

/**
 * Copies dist/ and checks that the copy's server loads (`--help` exits 0); retries a few times,
 * since dist/ may be in the middle of a rebuild.
 * @returns `{ mainPath, dir, remove() }`.
 */
export async function snapshotBuild({ attempts = 10, waitMs = 2000 } = {}) {
  let lastError = '';
  for (let i = 0; i < attempts; i++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-bench-build-'));
    const remove = () => fs.rmSync(dir, { recursive: true, force: true });
    try {
      fs.cpSync(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true });
      // The dashboard's page and scripts are served from assets/ next to dist/.
      fs.cpSync(path.join(ROOT, 'assets'), path.join(dir, 'assets'), { recursive: true });
      fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
      fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
      // The server as shipped (the bundle); an older build without one runs from its compiled tree.
      const bundled = path.join(dir, 'dist', 'bundle', 'miniqueue.js');
      const mainPath = fs.existsSync(bundled) ? bundled : path.join(dir, 'dist', 'src', 'server', 'main.js');
      const check = spawnSync(process.execPath, [mainPath, '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
      if (check.status === 0) return { mainPath, dir, remove };
      lastError = (check.stderr || check.stdout || '').split('\n').find((l) => /Error|error/.test(l)) ?? `exit ${check.status}`;
    } catch (err) {
      lastError = err.message;
    }
    remove();
    await new Promise((r) => setTimeout(r, waitMs));
  }
  throw new Error(`dist/ does not load (build first with npm run build): ${lastError}`);
}
