/** A small tmpfs to fill up (disk-full tests); needs root, so callers skip when it fails. */
import { execFileSync } from 'node:child_process';

/** Mounts a tmpfs of `sizeBytes` on `dir`; false when that is not allowed here. */
export function tryMountTmpfs(dir: string, sizeBytes: number): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
