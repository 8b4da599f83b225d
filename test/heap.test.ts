import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';

const run = promisify(execFile);
const fixture = path.join(import.meta.dirname, 'fixtures', 'heapGrowth.ts');

/** The fixture's highest heap use and what a full collection kept, in a process of its own. */
async function heapGrowth(percent: number): Promise<{ peak: number; kept: number }> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', fixture, String(percent)], { cwd: path.dirname(fixture) });
  return JSON.parse(stdout) as { peak: number; kept: number };
}

describe('HEAP_GROWTH_PERCENT', () => {
  it('defaults to 100 and accepts 0 (V8 chooses)', () => {
    expect(loadConfig({}).HEAP_GROWTH_PERCENT).toBe(100);
    expect(loadConfig({ HEAP_GROWTH_PERCENT: '0' }).HEAP_GROWTH_PERCENT).toBe(0);
    expect(() => loadConfig({ HEAP_GROWTH_PERCENT: '-1' })).toThrow(/HEAP_GROWTH_PERCENT/);
  });

  it('limitHeapGrowth keeps the heap within twice what a collection keeps, where V8 alone lets it grow further', async () => {
    const [limited, free] = await Promise.all([heapGrowth(100), heapGrowth(0)]);
    // The young generation comes on top of the old one's doubling.
    expect(limited.peak).toBeLessThan(2.5 * limited.kept);
    expect(free.peak).toBeGreaterThan(limited.peak);
  }, 60_000);
});
