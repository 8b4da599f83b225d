import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  BREAKING_MIGRATIONS_TABLE,
  isBreaking,
  MIGRATED_CHANNEL,
  type Migration,
  MigrationError,
  migrate,
  OutdatedError,
  readMigrations,
} from '../src/db/migrate.js';
import { openPgSession, pgliteSession, type SqlSession } from '../src/db/SqlSession.js';
import { type BackendName, backends, createTestDatabase, newPglite, type TestDatabase } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const logger = pino({ level: 'silent' });

async function openSession(backend: BackendName, database: TestDatabase): Promise<SqlSession> {
  if (backend === 'postgres') return openPgSession(database.url!);
  const pglite = await newPglite();
  const session = pgliteSession(pglite);
  return { ...session, close: () => pglite.close() };
}

describe.each(backends)('migrations (%s)', (backend) => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function fresh() {
    const database = await createTestDatabase(backend);
    const session = await openSession(backend, database);
    cleanup.push(
      () => database.drop(),
      () => session.close(),
    );
    return { database, session };
  }

  it('applies every migration once, in order, with Prisma-compatible records', async () => {
    const { session } = await fresh();
    const files = await readMigrations();
    expect(await migrate(session, logger)).toEqual(files.map((m) => m.name));
    expect(await migrate(session, logger)).toEqual([]);
    const rows = await session.query<{ migration_name: string; checksum: string }>(
      'SELECT migration_name, checksum FROM "_prisma_migrations" ORDER BY migration_name',
    );
    expect(rows).toEqual(files.map((m) => ({ migration_name: m.name, checksum: m.checksum })));
  });

  const future = (name: string, breaking: boolean): Migration => ({
    name,
    sql: `${breaking ? '-- chronograph: breaking\n' : ''}CREATE TABLE ${name.replace(/^\d+_/, '')} (id int);`,
    checksum: 'f'.repeat(64),
  });

  it("runs beside a newer version's migrations that are not breaking, and says so", async () => {
    const { session } = await fresh();
    const files = await readMigrations();
    await migrate(session, logger, [...files, future('29991231000000_compatible_thing', false)]);
    const warnings: unknown[] = [];
    const watching = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
    expect(await migrate(session, watching, files)).toEqual([]);
    expect(warnings).toEqual([
      expect.objectContaining({
        level: 40,
        migrations: ['29991231000000_compatible_thing'],
        msg: expect.stringMatching(/newer Chronograph/),
      }),
    ]);
    // The checksums of its own migrations are still checked.
    const edited = files.map((m, i) => (i === 0 ? { ...m, checksum: '0'.repeat(64) } : m));
    await expect(migrate(session, logger, edited)).rejects.toThrow(/was changed after it was applied/);
  });

  it("refuses a database with a newer version's breaking migration (OutdatedError)", async () => {
    const { session } = await fresh();
    const files = await readMigrations();
    await migrate(session, logger, [
      ...files,
      future('29991231000000_compatible_thing', false),
      future('29991231000001_breaking_thing', true),
    ]);
    const error = await migrate(session, logger, files).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutdatedError);
    expect((error as Error).message).toMatch(/29991231000001_breaking_thing.*breaking: the database is ahead of the code/);
  });

  it('refuses a database whose migrations went another way: it has one this version lacks, and lacks one this version has', async () => {
    const { session } = await fresh();
    const files = await readMigrations();
    await migrate(session, logger, [...files.slice(0, -1), future('29991231000000_other_line', false)]);
    const error = await migrate(session, logger, files).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutdatedError);
    expect((error as Error).message).toContain(`lacks ${files.at(-1)!.name}`);
    // Nothing of this version's was applied on top of the other line.
    const rows = await session.query<{ n: number }>('SELECT count(*)::int AS n FROM "_prisma_migrations" WHERE migration_name = $1', [
      files.at(-1)!.name,
    ]);
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('refuses a migration file that changed after it was applied', async () => {
    const { session } = await fresh();
    const files = await readMigrations();
    await migrate(session, logger, files);
    const edited = files.map((m, i) => (i === 0 ? { ...m, checksum: '0'.repeat(64) } : m));
    const error = await migrate(session, logger, edited).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toMatch(/was changed after it was applied/);
  });

  it('rolls back a failing migration completely', async () => {
    const { session } = await fresh();
    const broken: Migration = {
      name: '20000101000000_broken',
      sql: 'CREATE TABLE half_done (id int); SELECT no_such_function();',
      checksum: 'a'.repeat(64),
    };
    await expect(migrate(session, logger, [broken])).rejects.toThrow(/rolled back/);
    const tables = await session.query(`SELECT 1 FROM information_schema.tables WHERE table_name = 'half_done'`);
    expect(tables).toEqual([]);
    expect(await session.query('SELECT 1 FROM "_prisma_migrations"')).toEqual([]);
  });

  it('records a breaking migration (its own line says so), and no other, for the instances of earlier versions', async () => {
    const { session } = await fresh();
    const files = await readMigrations();
    const newer = (name: string, sql: string): Migration => ({ name, sql, checksum: 'b'.repeat(64) });
    await migrate(session, logger, [
      ...files,
      newer(
        '29991231000000_breaking',
        '-- Drops what the previous version reads.\r\n--   chronograph:  breaking\r\nCREATE TABLE breaking_one (id int);',
      ),
      newer(
        '29991231000001_compatible',
        '-- Not breaking: -- chronograph: breaking only counts on a line of its own.\nCREATE TABLE compatible_one (id int);',
      ),
    ]);
    // The shipped ones that are breaking (20261207000000_task_state), then the new one.
    const shipped = files.filter((m) => isBreaking(m.sql)).map((m) => m.name);
    expect(shipped).toContain('20261207000000_task_state');
    expect(await session.query(`SELECT migration_name FROM "${BREAKING_MIGRATIONS_TABLE}" ORDER BY migration_name`)).toEqual(
      [...shipped, '29991231000000_breaking'].map((migration_name) => ({ migration_name })),
    );
  });

  it('reads the marker only on a line of its own, in any case, and no shipped migration has a line that merely looks like it', async () => {
    expect(isBreaking('CREATE TABLE a (id int);\n  -- Chronograph: Breaking\n')).toBe(true);
    expect(isBreaking('-- chronograph: breaking, but only for a while')).toBe(false);
    expect(isBreaking('CREATE TABLE a (id int); -- chronograph: breaking')).toBe(false);
    // A marker mistyped in a shipped migration would make a breaking migration look compatible: nothing would stop.
    for (const m of await readMigrations()) {
      for (const line of m.sql.split(/\r?\n/).filter((l) => /chronograph\s*:\s*break/i.test(l))) {
        expect({ migration: m.name, line, marker: isBreaking(line) }).toEqual({ migration: m.name, line, marker: true });
      }
    }
  });

  it('a breaking migration that fails is not recorded', async () => {
    const { session } = await fresh();
    const broken: Migration = {
      name: '20000101000000_broken',
      sql: '-- chronograph: breaking\nSELECT no_such_function();',
      checksum: 'c'.repeat(64),
    };
    await expect(migrate(session, logger, [broken])).rejects.toThrow(/rolled back/);
    expect(await session.query(`SELECT 1 FROM "${BREAKING_MIGRATIONS_TABLE}"`)).toEqual([]);
  });

  it("a breaking migration's record is written in its transaction: a failure after it (the announcement) leaves neither", async () => {
    const { session } = await fresh();
    const breaking: Migration = {
      name: '20000101000000_breaking',
      sql: '-- chronograph: breaking\nCREATE TABLE breaking_then_failed (id int);',
      checksum: 'd'.repeat(64),
    };
    // The announcement is the last statement before COMMIT, after the migration and both records.
    const failing: SqlSession = {
      ...session,
      query: (sql, params) => (sql.includes('pg_notify') ? Promise.reject(new Error('the connection broke')) : session.query(sql, params)),
    };
    await expect(migrate(failing, logger, [breaking])).rejects.toThrow(/failed and was rolled back.*the connection broke/);
    expect(await session.query(`SELECT 1 FROM "${BREAKING_MIGRATIONS_TABLE}"`)).toEqual([]);
    expect(await session.query(`SELECT 1 FROM "_prisma_migrations"`)).toEqual([]);
    expect(await session.query(`SELECT to_regclass('breaking_then_failed') AS t`)).toEqual([{ t: null }]);
  });

  it.runIf(backend === 'postgres')('announces each migration by name when it commits', async () => {
    const { database, session } = await fresh();
    const listener = await openPgSession(database.url!);
    cleanup.push(() => listener.close());
    const heard: string[] = [];
    listener.client.on('notification', (n) => n.channel === MIGRATED_CHANNEL && heard.push(n.payload ?? ''));
    await listener.query(`LISTEN ${MIGRATED_CHANNEL}`);
    const files = await readMigrations();
    await migrate(session, logger, files);
    await waitFor(() => heard.length === files.length, { what: 'every migration announced' });
    expect(heard).toEqual(files.map((m) => m.name));
  });

  it.runIf(backend === 'postgres')('lets several instances start at once against one database', async () => {
    const { database } = await fresh();
    const sessions = await Promise.all([1, 2, 3, 4].map(() => openPgSession(database.url!)));
    cleanup.push(async () => {
      for (const s of sessions) await s.close();
    });
    const applied = await Promise.all(sessions.map((s) => migrate(s, logger)));
    const files = await readMigrations();
    expect(applied.flat().sort()).toEqual(files.map((m) => m.name).sort());
    const [row] = await sessions[0]!.query<{ count: string }>('SELECT count(*) FROM "_prisma_migrations"');
    expect(Number(row?.count)).toBe(files.length);
  });
});

/**
 * During a rolling deploy, instances of the previous version go on claiming and completing tasks while
 * a new one migrates. A migration that took a weaker lock on a table and then a stronger one (the
 * released task_spec migration does) deadlocked with a claim that had read the table FOR UPDATE and then
 * wrote it, and the new instance failed to start; a lock request queued behind a long transaction made
 * every query of that table wait behind it. A migration now gives a lock up after lock_timeout and is
 * tried again whole, in a deadlock too.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('migrations beside running work (postgres)', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  const base: Migration = {
    name: '20000101000000_base',
    sql: 'CREATE TABLE item (id int PRIMARY KEY, v int); CREATE INDEX item_v_idx ON item (v); INSERT INTO item VALUES (1, 0);',
    checksum: 'b'.repeat(64),
  };

  async function setup() {
    const database = await createTestDatabase('postgres');
    const session = await openPgSession(database.url!);
    const worker = await openPgSession(database.url!);
    cleanup.push(
      () => database.drop(),
      () => session.close(),
      () => worker.close(),
    );
    await migrate(session, logger, [base]);
    const warnings: { code?: string; attempt?: number }[] = [];
    const recording = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
    const waitingFor = async (mode: string) => {
      await vi.waitFor(
        async () => {
          const rows = await worker.query(`SELECT 1 FROM pg_locks WHERE relation = 'item'::regclass AND mode = $1 AND NOT granted`, [mode]);
          expect(rows).toHaveLength(1);
        },
        { timeout: 5_000, interval: 10 },
      );
    };
    const applied = async () =>
      (await worker.query<{ migration_name: string }>('SELECT migration_name FROM "_prisma_migrations" ORDER BY 1')).map(
        (r) => r.migration_name,
      );
    return { url: database.url!, session, worker, warnings, recording, waitingFor, applied };
  }

  /** Two instances of the previous version, each claiming every 50 ms (FOR UPDATE, then UPDATE) until the test ends. */
  async function claimEvery50ms(url: string) {
    const claimers = await Promise.all([0, 1].map(() => openPgSession(url)));
    let stop = false;
    const claiming = claimers.map(async (claimer) => {
      while (!stop) {
        try {
          await claimer.exec('BEGIN');
          const rows = await claimer.query<{ id: number }>('SELECT id FROM item ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED');
          await claimer.query('UPDATE item SET v = v + 1 WHERE id = ANY($1::int[])', [rows.map((r) => r.id)]);
          await claimer.exec('COMMIT');
        } catch {
          await claimer.exec('ROLLBACK');
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    });
    cleanup.push(async () => {
      stop = true;
      await Promise.all(claiming);
      for (const claimer of claimers) await claimer.close();
    });
  }

  it('a migration that deadlocks with a claim (weaker lock, then a stronger one) is rolled back and tried again', async () => {
    const { session, worker, warnings, recording, applied } = await setup();
    // As the released task_spec migration does: a weaker lock on the table, then (DROP INDEX) the strongest.
    const upgrade: Migration = {
      name: '20000102000000_upgrade',
      sql: 'LOCK TABLE item IN SHARE ROW EXCLUSIVE MODE; SELECT pg_sleep(1); DROP INDEX item_v_idx;',
      checksum: 'c'.repeat(64),
    };
    // A claim of the previous version: the row read FOR UPDATE...
    await worker.exec('BEGIN');
    await worker.query('SELECT * FROM item WHERE id = 1 FOR UPDATE');
    const migrating = migrate(session, recording, [base, upgrade], { retryDelayMs: 50 });
    migrating.catch(() => {}); // awaited below
    await vi.waitFor(
      async () =>
        expect(
          await worker.query(`SELECT 1 FROM pg_locks WHERE relation = 'item'::regclass AND mode = 'ShareRowExclusiveLock' AND granted`),
        ).toHaveLength(1),
      { timeout: 5_000, interval: 10 },
    );
    // ...then written, which waits for the migration's lock; the migration's DROP INDEX then waits for the
    // claim's: PostgreSQL fails the migration at once (deadlock detected), and the claim goes on.
    await worker.query('UPDATE item SET v = 1 WHERE id = 1');
    await worker.exec('COMMIT');
    await expect(migrating).resolves.toEqual([upgrade.name]);
    expect(warnings.map((w) => [w.code, w.attempt])).toEqual([['40P01', 1]]);
    expect(await applied()).toEqual([base.name, upgrade.name]);
    expect(await worker.query(`SELECT 1 FROM pg_indexes WHERE indexname = 'item_v_idx'`)).toEqual([]);
  });

  /**
   * The pg session of a server whose lc_messages is another language: the deadlock report worded as
   * PostgreSQL 15's translation has it ($1 our pid, $2 the mode, $3 the relation, $4 the database, $5 the
   * other process; Japanese names the database before the relation).
   */
  const translatedTo =
    (wording: string) =>
    (session: SqlSession): SqlSession => {
      const translated = async <T>(run: () => Promise<T>): Promise<T> => {
        try {
          return await run();
        } catch (error) {
          const e = error as { code?: string; detail?: string };
          if (e.code === '40P01' && e.detail) {
            const english = /^Process (\d+) waits for (\w+) on relation (\d+) of database (\d+); blocked by process (\d+)\.$/gm;
            expect(e.detail).toMatch(english);
            e.detail = e.detail.replace(english, wording);
          }
          throw error;
        }
      };
      return {
        query: (sql, params) => translated(() => session.query(sql, params)),
        exec: (sql) => translated(() => session.exec(sql)),
        close: () => session.close(),
      };
    };
  const german = translatedTo('Prozess $1 wartet auf $2-Sperre auf Relation $3 der Datenbank $4; blockiert von Prozess $5.');
  const japanese = translatedTo(
    'プロセス $1 は $2 を データベース$4のリレーション$3 で待機していましたが、プロセス $5 でブロックされました',
  );

  /** A deadlock report that names no relation this session waited for, as when it waited for a row another transaction locked. */
  const unreadable = (session: SqlSession): SqlSession => {
    const dropped = async <T>(run: () => Promise<T>): Promise<T> => {
      try {
        return await run();
      } catch (error) {
        const e = error as { code?: string; detail?: string };
        if (e.code === '40P01') e.detail = undefined;
        throw error;
      }
    };
    return {
      query: (sql, params) => dropped(() => session.query(sql, params)),
      exec: (sql) => dropped(() => session.exec(sql)),
      close: () => session.close(),
    };
  };

  it.each([
    ['in English', (session: SqlSession) => session, ['public.item']],
    ['in German (read by its numbers and the mode)', german, ['public.item']],
    ['in Japanese (the database before the relation)', japanese, ['public.item']],
    ['naming no relation (then every table the migration names is locked first)', unreadable, ['public.elsewhere', 'public.item']],
  ])(
    'a migration that deadlocks with claims at every attempt takes the lock it deadlocked on first when tried again: deadlock report %s',
    async (_, messages, lockedFirst) => {
      const { url, session: english, worker, warnings, recording, applied } = await setup();
      const session = messages(english);
      await worker.exec('CREATE TABLE elsewhere (id int)');
      // As the task_spec migration on a busy table: the copy and the CREATE INDEXes between its weaker lock and
      // DROP INDEX take longer than the previous version's claims are apart, so a claim that read rows FOR
      // UPDATE is waiting to write them when DROP INDEX asks for its lock, at every attempt.
      const upgrade: Migration = {
        name: '20000102000000_upgrade',
        sql: 'LOCK TABLE item IN SHARE ROW EXCLUSIVE MODE; SELECT pg_sleep(0.5); SELECT count(*) FROM elsewhere; DROP INDEX item_v_idx;',
        checksum: 'c'.repeat(64),
      };
      await claimEvery50ms(url);
      await expect(migrate(session, recording, [base, upgrade], { attempts: 5, retryDelayMs: 50 })).resolves.toEqual([upgrade.name]);
      expect(warnings.map((w) => [w.code, (w as { lockFirst?: string[] }).lockFirst])).toEqual([['40P01', lockedFirst]]);
      expect(await applied()).toEqual([base.name, upgrade.name]);
    },
  );

  it('after a deadlock report that names no relation, a table the migration names only in a comment is not locked first', async () => {
    const { url, session: english, worker, warnings, recording, applied } = await setup();
    const session = unreadable(english);
    // A table the migration does not touch, which running work reads in a long transaction (as the pruner
    // reads task_run beside task): locked first, it would keep the retry waiting until it gave up.
    await worker.exec('CREATE TABLE other (id int)');
    await worker.exec('BEGIN');
    await worker.query('SELECT count(*) FROM other');
    cleanup.push(() => worker.exec('ROLLBACK'));
    const upgrade: Migration = {
      name: '20000102000000_upgrade',
      sql: '-- Unlike other, item is claimed from.\n/* other: untouched */ LOCK TABLE item IN SHARE ROW EXCLUSIVE MODE; SELECT pg_sleep(0.5); DROP INDEX item_v_idx;',
      checksum: 'c'.repeat(64),
    };
    await claimEvery50ms(url);
    await expect(migrate(session, recording, [base, upgrade], { attempts: 3, retryDelayMs: 50, lockTimeoutMs: 500 })).resolves.toEqual([
      upgrade.name,
    ]);
    expect(warnings.map((w) => [w.code, (w as { lockFirst?: string[] }).lockFirst])).toEqual([['40P01', ['public.item']]]);
    expect(await applied()).toEqual([base.name, upgrade.name]);
  });

  it('a migration gives up a lock held by a long transaction after lock_timeout, and tries again until it is released', async () => {
    const { session, worker, warnings, recording, waitingFor, applied } = await setup();
    const alter: Migration = { name: '20000102000000_alter', sql: 'ALTER TABLE item ADD COLUMN w int;', checksum: 'd'.repeat(64) };
    // A long transaction that read the table.
    await worker.exec('BEGIN');
    await worker.query('SELECT * FROM item');
    const migrating = migrate(session, recording, [base, alter], { lockTimeoutMs: 100, retryDelayMs: 20 });
    migrating.catch(() => {}); // awaited below
    await waitingFor('AccessExclusiveLock');
    await vi.waitFor(() => expect(warnings.length).toBeGreaterThanOrEqual(2), { timeout: 5_000, interval: 10 });
    await worker.exec('COMMIT');
    await expect(migrating).resolves.toEqual([alter.name]);
    expect(new Set(warnings.map((w) => w.code))).toEqual(new Set(['55P03']));
    expect(await applied()).toEqual([base.name, alter.name]);
  });

  it('a session whose connection is lost while idle (the migrator between attempts) rejects its next query instead of ending the process', async () => {
    const { session, worker } = await setup();
    const [{ pid }] = (await session.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')) as [{ pid: number }];
    await worker.query('SELECT pg_terminate_backend($1)', [pid]);
    // The connection's 'error' arrives while nothing is in flight: unhandled, vitest would report it and fail.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await expect(session.query('SELECT 1')).rejects.toThrow();
  });

  it('a migration that cannot get its lock within its attempts fails, rolled back, and says so', async () => {
    const { session, worker, recording, applied } = await setup();
    const alter: Migration = { name: '20000102000000_alter', sql: 'ALTER TABLE item ADD COLUMN w int;', checksum: 'd'.repeat(64) };
    await worker.exec('BEGIN');
    await worker.query('SELECT * FROM item');
    const error = await migrate(session, recording, [base, alter], { lockTimeoutMs: 50, attempts: 3, retryDelayMs: 10 }).catch(
      (e: unknown) => e,
    );
    await worker.exec('COMMIT');
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toMatch(/rolled back \(attempt 3 of 3\): canceling statement due to lock timeout/);
    expect(await applied()).toEqual([base.name]);
    expect(await worker.query(`SELECT 1 FROM information_schema.columns WHERE table_name = 'item' AND column_name = 'w'`)).toEqual([]);
  });
});
