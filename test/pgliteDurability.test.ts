import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openDatabase } from '../src/db/Database.js';
import { createLogger } from '../src/logger.js';

/**
 * PGlite on a data directory flushes each commit to disk (src/db/pgliteDurability.ts): PostgreSQL's
 * fsync is on, and its fsync() calls reach the files through NODEFS. Without it they stopped in the
 * operating system's cache, and a power cut lost acknowledged commits.
 */
describe('PGlite durability', () => {
  const logger = createLogger('silent');
  const dirs: string[] = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  it('on a data directory, every commit waits for an fsync of the WAL, and a checkpoint for its pages', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'chronograph-durability-'));
    dirs.push(dir);
    const db = await openDatabase({ dataDir: dir, logger });
    try {
      expect(
        await db.sql.query('SELECT current_setting($1) AS fsync, current_setting($2) AS method', ['fsync', 'wal_sync_method']),
      ).toEqual([{ fsync: 'on', method: 'fsync' }]);
      const fsync = vi.spyOn(fs, 'fsyncSync');
      await db.sql.query(`CREATE TABLE durable (id int)`);
      const before = fsync.mock.calls.length;
      for (let i = 0; i < 5; i++) await db.sql.query(`INSERT INTO durable VALUES ($1)`, [i]);
      // One flush per commit (each statement outside a transaction commits on its own).
      expect(fsync.mock.calls.length - before).toBeGreaterThanOrEqual(5);
      expect(fsync.mock.calls.every(([fd]) => typeof fd === 'number')).toBe(true);
      const beforeCheckpoint = fsync.mock.calls.length;
      await db.sql.query('CHECKPOINT');
      expect(fsync.mock.calls.length).toBeGreaterThan(beforeCheckpoint);
    } finally {
      await db.close();
    }
  });

  it('memory:// (tests) keeps nothing, so flushes nothing', async () => {
    const db = await openDatabase({ dataDir: 'memory://', logger });
    try {
      const fsync = vi.spyOn(fs, 'fsyncSync');
      await db.sql.query(`CREATE TABLE volatile (id int)`);
      await db.sql.query(`INSERT INTO volatile VALUES (1)`);
      expect(fsync).not.toHaveBeenCalled();
      expect(await db.sql.query(`SELECT current_setting('fsync') AS fsync`)).toEqual([{ fsync: 'off' }]);
    } finally {
      await db.close();
    }
  });
});
