import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type Migration, MigrationError, migrate, readMigrations } from '../src/db/migrate.js';
import { openPgSession, pgliteSession, type SqlSession } from '../src/db/SqlSession.js';
import { type BackendName, backends, createTestDatabase, newPglite, type TestDatabase } from './support/testApp.js';

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

  it('refuses a database that is ahead of the code', async () => {
    const { session } = await fresh();
    const files = await readMigrations();
    const future: Migration = {
      name: '29991231000000_from_the_future',
      sql: 'CREATE TABLE future_thing (id int);',
      checksum: 'f'.repeat(64),
    };
    await migrate(session, logger, [...files, future]);
    await expect(migrate(session, logger, files)).rejects.toThrow(/ahead of the code/);
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
