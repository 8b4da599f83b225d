import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../logger.js';
import type { SqlSession } from './SqlSession.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));

/** Any constant shared by all Chronograph versions; it names the lock that serialises migrators. */
const MIGRATION_LOCK_KEY = 727_274_001;

/**
 * How a migration shares the database with the instances still running the previous version during a
 * rolling deploy. Each lock a migration's statement waits for is given up after `lockTimeoutMs`
 * (lock_timeout): a lock request queued behind a long transaction would otherwise make every query of
 * that table wait behind it too. A migration that gives up a lock, or that PostgreSQL picks to end a
 * deadlock (a migration that takes a weaker lock on a table, then a stronger one, against a claim that
 * read the table FOR UPDATE and then writes it), is rolled back whole and tried again after
 * `retryDelayMs` (with jitter), up to `attempts` times.
 */
export interface MigrateOptions {
  lockTimeoutMs?: number;
  attempts?: number;
  retryDelayMs?: number;
}

export const MIGRATION_LOCK_TIMEOUT_MS = 2_000;
export const MIGRATION_ATTEMPTS = 60;
export const MIGRATION_RETRY_DELAY_MS = 1_000;

/** SQLSTATEs after which a migration is tried again: deadlock_detected, lock_not_available (lock_timeout). */
const LOCK_CONFLICTS = new Set(['40P01', '55P03']);

/** PostgreSQL's table lock modes, weakest first, as a deadlock report names them and as LOCK TABLE does. */
const LOCK_MODES = {
  AccessShareLock: 'ACCESS SHARE',
  RowShareLock: 'ROW SHARE',
  RowExclusiveLock: 'ROW EXCLUSIVE',
  ShareUpdateExclusiveLock: 'SHARE UPDATE EXCLUSIVE',
  ShareLock: 'SHARE',
  ShareRowExclusiveLock: 'SHARE ROW EXCLUSIVE',
  ExclusiveLock: 'EXCLUSIVE',
  AccessExclusiveLock: 'ACCESS EXCLUSIVE',
} as const;
type LockMode = keyof typeof LOCK_MODES;
const LOCK_ORDER = Object.keys(LOCK_MODES);

/**
 * Adds to `lockFirst` the tables (an index's table for an index) that this session was waiting for when
 * PostgreSQL ended a deadlock by failing its transaction, with the strongest mode it waited in; returns
 * whether the report named any. A migration that takes a weaker lock on a table and then a stronger one
 * deadlocks again at every attempt while running work keeps reading the table and then writing it (a
 * claim: FOR UPDATE, then UPDATE): once the stronger lock is taken first, it only waits.
 *
 * The report's detail has a line per process of the cycle: "Process <pid> waits for <mode> on relation
 * <oid> of database <oid>; blocked by process <pid>." in English. lc_messages translates the words and
 * may reorder the two oids (ja), but not the numbers or the mode's name, so the line is read by those: our
 * pid first, four numbers in all (a transaction, tuple or page lock has another count), and the relation
 * among the middle two (the database's oid names no relation).
 */
async function deadlockedOn(session: SqlSession, pid: number, detail: unknown, lockFirst: Map<string, LockMode>): Promise<boolean> {
  if (typeof detail !== 'string') return false;
  let found = false;
  for (const line of detail.split('\n')) {
    const numbers = [...line.matchAll(/\d+/g)].map((m) => Number(m[0]));
    const mode = [...line.matchAll(/[A-Za-z]+Lock\b/g)].map((m) => m[0]).find((word): word is LockMode => word in LOCK_MODES);
    if (numbers.length !== 4 || numbers[0] !== pid || !mode) continue;
    // The relation as it is after the rollback (one the migration had made is gone); not a catalog.
    const [table] = await session.query<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, t.relname) AS name
         FROM pg_class c
         LEFT JOIN pg_index i ON i.indexrelid = c.oid
         JOIN pg_class t ON t.oid = coalesce(i.indrelid, c.oid)
         JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE c.oid = ANY($1::oid[]) AND c.oid >= 16384 AND t.relkind IN ('r', 'p')`,
      [numbers.slice(1, 3)],
    );
    if (!table) continue;
    found = true;
    const before = lockFirst.get(table.name);
    if (!before || LOCK_ORDER.indexOf(mode) > LOCK_ORDER.indexOf(before)) lockFirst.set(table.name, mode);
  }
  return found;
}

/**
 * When the deadlock report names no relation this session waited for (it waited for a transaction: a row
 * another transaction had locked): every table of the current schema that the migration's statements
 * name, in ACCESS EXCLUSIVE mode, taken in name order. More than the migration needs, and work that
 * takes two of them in the other order can still deadlock with it (then it is tried again). A table
 * named only in a comment is not one of them (the migrations' comments name tables they do not touch,
 * `tenant` beside most changes of `task`): its lock would make the migration wait for, and deadlock
 * with, work it does not conflict with.
 */
async function namedTables(session: SqlSession, sql: string, lockFirst: Map<string, LockMode>): Promise<void> {
  const statements = sql.replace(/'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|\/\*[\s\S]*?\*\//g, (token) =>
    token.startsWith('--') || token.startsWith('/*') ? ' ' : token,
  );
  const tables = await session.query<{ name: string }>(
    `SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables
      WHERE schemaname = current_schema() AND $1 ~* ('\\m' || regexp_replace(tablename, '\\W', '\\\\\\&', 'g') || '\\M')
      ORDER BY tablename`,
    [statements],
  );
  for (const { name } of tables) lockFirst.set(name, 'AccessExclusiveLock');
}

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

/**
 * The line that makes a migration *breaking*: one that instances of earlier versions must not keep
 * working beside. A migration is written to be compatible with the version before it (a rolling deploy
 * runs both for a while) unless it says so on a line of its own:
 *
 *     -- chronograph: breaking
 *
 * (leading spaces and letter case aside; nothing else on the line: test/migrate.test.ts fails on a line of
 * a shipped migration that looks like the marker and is not). Applying one records it
 * (BREAKING_MIGRATIONS_TABLE) in the migration's transaction, and every running instance of a version that
 * does not have it stops on seeing it (src/db/SchemaWatch.ts). What a breaking migration changes must make
 * an earlier version's statements fail, never mean something else to them: an instance may run a few
 * statements between the migration's commit and its own stop.
 */
export function isBreaking(sql: string): boolean {
  return BREAKING_MARKER.test(sql);
}

/** A line of its own (`$` in multiline mode also ends a line before a CR). */
const BREAKING_MARKER = /^[ \t]*--[ \t]*chronograph:[ \t]*breaking[ \t]*$/im;

/** Where applied breaking migrations are recorded (by name), for instances that do not know them. */
export const BREAKING_MIGRATIONS_TABLE = 'chronograph_breaking_migrations';

/** NOTIFY channel on which each applied migration is announced by name, when its transaction commits. */
export const MIGRATED_CHANNEL = 'chronograph_migrated';

let shipped: Promise<Migration[]> | undefined;
let shippedNames: Promise<ReadonlySet<string>> | undefined;

/**
 * The migrations this version ships (MIGRATIONS_DIR), read once per process: the start's migration, the
 * schema watch and the readiness probe share one read. A read that fails is tried again by the next caller.
 */
export function shippedMigrations(): Promise<Migration[]> {
  shipped ??= readMigrations().catch((error: unknown) => {
    shipped = undefined;
    throw error;
  });
  return shipped;
}

/** The names of shippedMigrations. */
export function shippedMigrationNames(): Promise<ReadonlySet<string>> {
  shippedNames ??= shippedMigrations().then(
    (ms) => new Set(ms.map((m) => m.name)),
    (error: unknown) => {
      shippedNames = undefined;
      throw error;
    },
  );
  return shippedNames;
}

export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

/**
 * The database has a migration this version must not run beside: a breaking one of a newer Chronograph,
 * or one of another line of migrations (refuseUnlessCompatible). Running this version cannot help; `npm
 * start` exits with EXIT_OUTDATED.
 */
export class OutdatedError extends MigrationError {
  constructor(message: string) {
    super(message);
    this.name = 'OutdatedError';
  }
}

/**
 * `npm start`'s exit code when the database is ahead of this version: at start, or once running, when a
 * newer version applied a breaking migration (src/db/SchemaWatch.ts). EX_TEMPFAIL: not a crash of this
 * version, and restarting it cannot help; the newer version is what should run.
 */
export const EXIT_OUTDATED = 75;

/**
 * The database has migrations this version does not have (`newer`): a newer Chronograph migrated it, or it
 * is another application's. A newer version's migrations are written so that the version before keeps
 * working beside them unless they are marked breaking (isBreaking), so this version starts beside them, as
 * its running instances go on beside them (src/db/SchemaWatch.ts), with a warning: an instance of the
 * previous version that restarts during a rolling deploy (a crash, a node drained) comes back instead of
 * failing until the deploy ends. It is refused (OutdatedError, exit code 75) when one of them is breaking,
 * and when the database lacks one of this version's own migrations too: then the two histories have
 * diverged, and applying this version's migration after the other's could mean anything.
 */
async function refuseUnlessCompatible(session: SqlSession, logger: Logger, newer: string[], pending: Migration[]): Promise<void> {
  const breaking = await session.query<{ migration_name: string }>(
    `SELECT migration_name FROM "${BREAKING_MIGRATIONS_TABLE}" WHERE migration_name = ANY($1::text[]) ORDER BY migration_name`,
    [newer],
  );
  if (breaking.length) {
    throw new OutdatedError(
      `The database has migration ${breaking[0]!.migration_name}, which this version of Chronograph does not have ` +
        `and which a newer version marked breaking: the database is ahead of the code. Run a newer Chronograph, or point it at another database.`,
    );
  }
  if (pending.length) {
    throw new OutdatedError(
      `The database has migration ${newer[0]}, which this version of Chronograph does not have, and lacks ${pending[0]!.name}, ` +
        `which it has: the database is ahead of the code on another line of migrations. Run the Chronograph that migrated it, or point it at another database.`,
    );
  }
  logger.warn(
    { migrations: newer },
    'the database has migrations of a newer Chronograph, none of them breaking: this version runs beside them (a rolling deploy)',
  );
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
 * turns, and whoever comes second finds nothing left to do. Instances of the previous version may go on
 * working meanwhile: a migration waits for their locks briefly at a time, and is tried again whole when it
 * gives up or ends up in a deadlock with them (MigrateOptions). A database that is ahead of the code is
 * refused when one of the migrations it has and this code does not is breaking (refuseUnlessCompatible), and
 * one whose recorded checksum differs from the file is refused, before anything runs. Each migration is announced on MIGRATED_CHANNEL when it commits, and a breaking
 * one (isBreaking) recorded in BREAKING_MIGRATIONS_TABLE, for the instances already running.
 */
export async function migrate(
  session: SqlSession,
  logger: Logger,
  migrations?: Migration[],
  {
    lockTimeoutMs = MIGRATION_LOCK_TIMEOUT_MS,
    attempts = MIGRATION_ATTEMPTS,
    retryDelayMs = MIGRATION_RETRY_DELAY_MS,
  }: MigrateOptions = {},
): Promise<string[]> {
  const wanted = migrations ?? (await shippedMigrations());
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
    await session.exec(`CREATE TABLE IF NOT EXISTS "${BREAKING_MIGRATIONS_TABLE}" (
      "migration_name" VARCHAR(255) PRIMARY KEY NOT NULL,
      "applied_at" TIMESTAMPTZ NOT NULL DEFAULT now()
    )`);
    const applied = await session.query<{ migration_name: string; checksum: string }>(
      `SELECT migration_name, checksum FROM "_prisma_migrations"
        WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name`,
    );
    const known = new Map(wanted.map((m) => [m.name, m]));
    const done = new Set(applied.map((row) => row.migration_name));
    const pending = wanted.filter((m) => !done.has(m.name));
    const newer = [...done].filter((name) => !known.has(name));
    if (newer.length) await refuseUnlessCompatible(session, logger, newer, pending);
    for (const row of applied) {
      const migration = known.get(row.migration_name);
      if (!migration) continue; // a newer version's, compatible with this one (refuseUnlessCompatible)
      if (migration.checksum !== row.checksum) {
        throw new MigrationError(
          `Migration ${row.migration_name} was changed after it was applied (checksum ${row.checksum.slice(0, 12)}… ` +
            `in the database, ${migration.checksum.slice(0, 12)}… on disk). Applied migrations must never be edited; ` +
            `restore the file and add a new migration instead.`,
        );
      }
    }
    const [{ pid }] = (await session.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')) as [{ pid: number }];
    for (const migration of pending) {
      const started = Date.now();
      // The tables this migration deadlocked on, and in which mode it waited for them: taken first when it is
      // tried again, so that it no longer asks for a stronger lock on a table it holds a weaker one on.
      const lockFirst = new Map<string, LockMode>();
      for (let attempt = 1; ; attempt++) {
        await session.exec('BEGIN');
        try {
          await session.exec(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`);
          for (const [table, mode] of lockFirst) await session.exec(`LOCK TABLE ${table} IN ${LOCK_MODES[mode]} MODE`);
          await session.exec(migration.sql);
          await session.query(
            `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
             VALUES (gen_random_uuid()::text, $1, $2, $3, now(), 1)`,
            [migration.checksum, migration.name, new Date(started)],
          );
          if (isBreaking(migration.sql)) {
            // A migration applied again after a rolled-back record (Prisma's `migrate resolve`) keeps its first record.
            await session.query(`INSERT INTO "${BREAKING_MIGRATIONS_TABLE}" (migration_name) VALUES ($1) ON CONFLICT DO NOTHING`, [
              migration.name,
            ]);
          }
          await session.query('SELECT pg_notify($1, $2)', [MIGRATED_CHANNEL, migration.name]);
          await session.exec('COMMIT');
          break;
        } catch (error) {
          await session.exec('ROLLBACK');
          const code = (error as { code?: unknown }).code;
          if (typeof code === 'string' && LOCK_CONFLICTS.has(code) && attempt < attempts) {
            if (code === '40P01' && !(await deadlockedOn(session, pid, (error as { detail?: unknown }).detail, lockFirst))) {
              await namedTables(session, migration.sql, lockFirst);
            }
            logger.warn(
              { migration: migration.name, attempt, attempts, code, reason: (error as Error).message, lockFirst: [...lockFirst.keys()] },
              'migration rolled back on a lock held by running work (instances of the previous version?); trying again',
            );
            await sleep(retryDelayMs * (0.5 + Math.random() / 2));
            continue;
          }
          const tries = attempt > 1 ? ` (attempt ${attempt} of ${attempts})` : '';
          throw new MigrationError(`Migration ${migration.name} failed and was rolled back${tries}: ${(error as Error).message}`);
        }
      }
      logger.info({ migration: migration.name, ms: Date.now() - started, breaking: isBreaking(migration.sql) }, 'applied migration');
    }
    return pending.map((m) => m.name);
  } finally {
    await session.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
  }
}
