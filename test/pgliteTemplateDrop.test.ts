import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTestApp } from './support/testApp.js';

/**
 * Dropping template0 and template1 when Chronograph opens an old data directory (src/db/Database.ts) is
 * housekeeping: when it fails the instance starts all the same, unless the database itself no longer
 * answers. The drop is made to fail here; that it drops them is tested in pgliteStatistics.test.ts.
 */
const failure = vi.hoisted(() => ({ kill: false, wedge: false, fail: true }));
vi.mock('../src/db/pgliteTemplate.js', async (original) => {
  const real = await original<typeof import('../src/db/pgliteTemplate.js')>();
  return {
    ...real,
    dropTemplateDatabases: async (pglite: PGlite) => {
      if (!failure.fail) return real.dropTemplateDatabases(pglite);
      if (failure.kill) await pglite.close();
      if (failure.wedge) {
        // Dead, but not marked closed, and its close() fails too (it does close the files first).
        const close = pglite.close.bind(pglite);
        Object.defineProperty(pglite, 'closed', { get: () => false });
        pglite.query = async () => {
          throw new Error('PGlite is dead');
        };
        pglite.close = async () => {
          await close();
          throw new Error('the close failed');
        };
      }
      throw new Error('the drop failed');
    },
  };
});

/** syncToDisk fails when `sync.fail`: the first thing the open does once PGlite has started. */
const sync = vi.hoisted(() => ({ fail: false, pglite: undefined as PGlite | undefined }));
vi.mock('../src/db/pgliteDurability.js', async (original) => {
  const real = await original<typeof import('../src/db/pgliteDurability.js')>();
  return {
    ...real,
    syncToDisk: (pglite: PGlite) => {
      if (!sync.fail) return real.syncToDisk(pglite);
      sync.pglite = pglite;
      throw new Error('the sync failed');
    },
  };
});

describe('dropping the template databases at open', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    Object.assign(failure, { kill: false, wedge: false, fail: true });
    const started = sync.pglite;
    Object.assign(sync, { fail: false, pglite: undefined });
    if (started && !started.closed) await started.close();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });
  /** The directory opens again (its lock was released) and the instance on it answers. */
  const expectServes = async (dataDir: string) => {
    const t = await createTestApp('pglite', { env: { DATA_DIR: dataDir, SCHEDULER_ENABLED: 'false' } });
    try {
      expect(await t.gql('{ tasks(first: 1) { totalCount } }')).toEqual({ data: { tasks: { totalCount: 0 } } });
    } finally {
      await t.close();
    }
  };
  const newDir = async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'chronograph-drop-'));
    dirs.push(dir);
    return path.join(dir, 'data');
  };

  it('a failed drop is logged at warn and the instance starts and serves', async () => {
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const t = await createTestApp('pglite', { env: { DATA_DIR: await newDir(), SCHEDULER_ENABLED: 'false' }, logger });
    try {
      expect(lines.filter((l) => l.msg.includes('could not drop template0 and template1'))).toHaveLength(1);
      const result = await t.gql('{ tasks(first: 1) { totalCount } }');
      expect(result).toEqual({ data: { tasks: { totalCount: 0 } } });
    } finally {
      await t.close();
    }
  });

  it('a drop that left the database dead fails the start with its error', async () => {
    failure.kill = true;
    await expect(createTestApp('pglite', { env: { DATA_DIR: await newDir(), SCHEDULER_ENABLED: 'false' } })).rejects.toThrow(
      'the drop failed',
    );
  });

  it('a start that fails on a database that is dead but not closed reports its own error and frees the directory', async () => {
    failure.wedge = true;
    const dataDir = await newDir();
    const lines: { level: number; msg: string; err?: { message: string } }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    await expect(createTestApp('pglite', { env: { DATA_DIR: dataDir, SCHEDULER_ENABLED: 'false' }, logger })).rejects.toThrow(
      'the drop failed',
    );
    expect(lines.find((l) => l.msg.includes('could not close the database'))?.err?.message).toBe('the close failed');
    // The lock went with it: the directory opens again.
    failure.fail = false;
    await expectServes(dataDir);
  });

  it('a start that fails as soon as PGlite has started closes PGlite and frees the directory', async () => {
    sync.fail = true;
    const dataDir = await newDir();
    await expect(createTestApp('pglite', { env: { DATA_DIR: dataDir, SCHEDULER_ENABLED: 'false' } })).rejects.toThrow('the sync failed');
    expect(sync.pglite?.closed).toBe(true);
    sync.fail = false;
    await expectServes(dataDir);
  });
});
