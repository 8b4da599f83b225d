import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Database, openDatabase } from '../src/db/Database.js';
import { ANALYZE_MIN_ROWS } from '../src/db/pgliteStatistics.js';

/**
 * PGlite has no autovacuum and no checkpointer: an instance on it runs the stand-ins of pgliteStatistics.ts
 * (their passes are tested there). This checks that opening a database starts all three, and that
 * closing it stops them.
 */
describe('an instance on PGlite ANALYZEs, VACUUMs and checkpoints on its own', () => {
  let dir: string | undefined;
  let db: Database | undefined;
  afterEach(async () => {
    await db?.close();
    db = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('with the loops looking every 20 ms', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'chronograph-maintenance-'));
    db = await openDatabase({
      dataDir: path.join(dir, 'data'),
      logger: pino({ level: 'silent' }),
      pgliteMaintenance: { analyzeMs: 20, vacuumMs: 20, checkpointMs: 20, checkpointWalBytes: 1024 * 1024 },
    });
    const prisma = db.prisma;
    const redo = async () =>
      (await prisma.$queryRawUnsafe<{ redo: string }[]>('SELECT redo_lsn::text AS redo FROM pg_control_checkpoint()'))[0]!.redo;
    const before = await redo();
    await prisma.$executeRawUnsafe('CREATE TABLE item (id int PRIMARY KEY, v int)');
    // More rows than ANALYZE_MIN_ROWS (ANALYZE), more inserted than 1,000 + 20 % (VACUUM), and more than 1 MB of WAL.
    await prisma.$executeRawUnsafe(`INSERT INTO item SELECT i, 0 FROM generate_series(1, ${ANALYZE_MIN_ROWS * 20}) i`);
    const stats = async () =>
      (
        await prisma.$queryRawUnsafe<{ analyzed: boolean; vacuumed: boolean }[]>(
          `SELECT last_analyze IS NOT NULL AS analyzed, last_vacuum IS NOT NULL AS vacuumed FROM pg_stat_user_tables WHERE relname = 'item'`,
        )
      )[0]!;
    await vi.waitFor(
      async () => {
        expect(await stats()).toEqual({ analyzed: true, vacuumed: true });
        expect(await redo()).not.toBe(before);
      },
      { timeout: 10_000, interval: 50 },
    );
  });
});
