import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../logger.js';
import type { SqlSession } from './SqlSession.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));

/** Any constant shared by all Chronograph versions; it names the lock that serialises migrators. */
const MIGRATION_LOCK_KEY = 727_274_001;

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

/** Reads `prisma/migrations/<timestamp>_<name>/migration.sql` folders in name (= time) order. */
export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isDirectory() && /^\d{14}_\w+$/.test(e.name))
    .map((e) => e.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    }),
  );
}

/**
 * Applies pending migrations, each in its own transaction, and records them in Prisma's own
 * `_prisma_migrations` table (same columns and sha256 checksum), so a Prisma CLI pointed at the
 * database elsewhere sees the same history.
 *
 * Several instances may start at once against one PostgreSQL: a session advisory lock makes them take
 * turns, and whoever comes second finds nothing left to do. A database that has a migration this code
 * does not know (it is ahead of the code), or whose recorded checksum differs from the file, is refused
 * before anything runs.
 */
export async function migrate(session: SqlSession, logger: Logger, migrations?: Migration[]): Promise<string[]> {
  const wanted = migrations ?? (await readMigrations());
  await session.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
  try {
    await session.exec(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY NOT NULL,
      "checksum" VARCHAR(64) NOT NULL,
      "finished_at" TIMESTAMPTZ,
      "migration_name" VARCHAR(255) NOT NULL,
      "logs" TEXT,
      "rolled_back_at" TIMESTAMPTZ,
      "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
      "applied_steps_count" INTEGER NOT NULL DEFAULT 0
    )`);
    const applied = await session.query<{ migration_name: string; checksum: string }>(
      `SELECT migration_name, checksum FROM "_prisma_migrations"
        WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name`,
    );
    const known = new Map(wanted.map((m) => [m.name, m]));
    for (const row of applied) {
      const migration = known.get(row.migration_name);
      if (!migration) {
        throw new MigrationError(
          `The database has migration ${row.migration_name}, which this version of Chronograph does not ` +
            `have: the database is ahead of the code. Run a newer Chronograph, or point it at another database.`,
        );
      }
      if (migration.checksum !== row.checksum) {
        throw new MigrationError(
          `Migration ${row.migration_name} was changed after it was applied (checksum ${row.checksum.slice(0, 12)}… ` +
            `in the database, ${migration.checksum.slice(0, 12)}… on disk). Applied migrations must never be edited; ` +
            `restore the file and add a new migration instead.`,
        );
      }
    }
    const done = new Set(applied.map((row) => row.migration_name));
    const pending = wanted.filter((m) => !done.has(m.name));
    for (const migration of pending) {
      const started = Date.now();
      await session.exec('BEGIN');
      try {
        await session.exec(migration.sql);
        await session.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
           VALUES (gen_random_uuid()::text, $1, $2, $3, now(), 1)`,
          [migration.checksum, migration.name, new Date(started)],
        );
        await session.exec('COMMIT');
      } catch (error) {
        await session.exec('ROLLBACK');
        throw new MigrationError(`Migration ${migration.name} failed and was rolled back: ${(error as Error).message}`);
      }
      logger.info({ migration: migration.name, ms: Date.now() - started }, 'applied migration');
    }
    return pending.map((m) => m.name);
  } finally {
    await session.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
  }
}
