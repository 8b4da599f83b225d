import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * `mkdir -p`: creates `dir` and whatever parents it lacks. Not `mkdir(dir, { recursive: true })`, which
 * never settles (libuv retries forever, the promise and even mkdirSync hang) where a parent exists but
 * refuses new entries with ENOENT, as /proc and /sys do: DATA_DIR=/proc/nope hung the start-up instead of
 * failing. Here each level is created once, and the error of the first level that cannot be is thrown.
 */
export async function makeDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if ((await stat(dir)).isDirectory()) return;
      throw error;
    }
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw error;
    await makeDirectory(parent);
    try {
      await mkdir(dir);
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST' || !(await stat(dir)).isDirectory()) throw again;
    }
  }
}
