import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { BREAKING_MIGRATIONS_TABLE, EXIT_OUTDATED, type Migration, migrate, readMigrations } from '../src/db/migrate.js';
import { openPgSession } from '../src/db/SqlSession.js';
import { type ChronographProcess, freePort, post, startChronograph } from './support/chronographProcess.js';
import { createTestDatabase, type TestDatabase, withClient } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * A rolling deploy where the newer version's migration is breaking: running instances of this version
 * (the real src/main.ts process, on PostgreSQL) stop on their own, with exit code 75, and say why, and
 * one that starts refuses. A compatible migration leaves them running, and one that (re)starts serves.
 */
const logger = pino({ level: 'silent' });

function newerMigration(name: string, breaking: boolean): Migration {
  const sql = `${breaking ? '-- chronograph: breaking\n' : ''}CREATE TABLE ${name.replace(/^\d+_/, '')} (id int);\n`;
  return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
}

/** Applies this version's migrations and `extra` (if any), as a newer Chronograph starting on the database would. */
async function applyAsNewerVersion(database: TestDatabase, extra?: Migration): Promise<void> {
  const session = await openPgSession(database.url!);
  try {
    await migrate(session, logger, [...(await readMigrations()), ...(extra ? [extra] : [])]);
  } finally {
    await session.close();
  }
}

async function exitCode(server: ChronographProcess, ms = 20_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      server.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`did not exit:\n${server.output()}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe.runIf(process.env.TEST_DATABASE_URL)('a newer version migrating the database of a running instance (postgres)', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function scratch(): Promise<TestDatabase> {
    const database = await createTestDatabase('postgres');
    cleanup.push(() => database.drop());
    return database;
  }

  async function starting(database: TestDatabase, env: Record<string, string> = {}): Promise<{ server: ChronographProcess; port: number }> {
    const port = await freePort();
    const server = startChronograph({ PORT: String(port), DATABASE_URL: database.url!, SHUTDOWN_GRACE_MS: '2000', ...env });
    cleanup.push(async () => {
      if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
      await server.exited;
    });
    return { server, port };
  }

  async function running(env: Record<string, string> = {}): Promise<{ database: TestDatabase; server: ChronographProcess; port: number }> {
    const database = await scratch();
    const { server, port } = await starting(database, env);
    await server.listening;
    return { database, server, port };
  }

  it('a breaking migration stops the instance at once: exit code 75, the migration named in its log', async () => {
    const { database, server, port } = await running();
    expect((await post(port, '{ me { tenantId } }')).data).toBeTruthy();
    await applyAsNewerVersion(database, newerMigration('29991231000000_breaking_probe', true));
    expect(await exitCode(server)).toBe(EXIT_OUTDATED);
    expect(server.output()).toMatch(/breaking migration 29991231000000_breaking_probe[^\n]*this instance stops/);
    expect(server.output()).toContain('Chronograph stopped');
  });

  it('a compatible migration is logged once and the instance goes on serving', async () => {
    const { database, server, port } = await running();
    await applyAsNewerVersion(database, newerMigration('29991231000000_compatible_probe', false));
    await waitFor(() => server.output().includes('29991231000000_compatible_probe'), { what: 'the migration to be logged' });
    expect(server.output()).toMatch(/"migration":"29991231000000_compatible_probe"[^\n]*it is compatible with this version/);
    const created = await post(
      port,
      'mutation { createTimerTask(input: { fullName: "tasks.Echo", startTime: "2099-01-01 10:00:00" }) { id } }',
    );
    expect(created.errors).toBeUndefined();
    expect(server.child.exitCode).toBeNull();
  });

  it('a breaking migration announced while the LISTEN connection was down is found when it reconnects', async () => {
    const { database, server } = await running();
    // Recorded without its announcement (as if the NOTIFY had been sent while this instance could not hear it)...
    await withClient(database.url!, (c) =>
      c.query(`INSERT INTO "${BREAKING_MIGRATIONS_TABLE}" (migration_name) VALUES ('29991231000000_unheard_probe')`),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(server.child.exitCode).toBeNull(); // nothing announced it
    // ... then the LISTEN connection drops, and the instance reconnects and reads what it may have missed.
    const ended = await withClient(database.url!, (c) =>
      c.query(
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN %'`,
      ),
    );
    expect(ended.rows.length).toBe(1);
    expect(await exitCode(server)).toBe(EXIT_OUTDATED);
    expect(server.output()).toContain('29991231000000_unheard_probe');
  });
  it("an orchestrator's SIGTERM during that stop joins it: the running handler gets the grace period, and the exit code stays 75", async () => {
    const { database, server, port } = await running({ SHUTDOWN_GRACE_MS: '6000' });
    const startTime = new Date().toISOString();
    const created = await post(
      port,
      `mutation { createTimerTask(input: { fullName: "tasks.Echo", funcName: "chronograph.sleep", argDict: { ms: 3000 }, startTime: "${startTime}" }) { id } }`,
    );
    const id = created.data.createTimerTask.id as string;
    await waitFor(async () => (await post(port, `{ task(id: "${id}") { status } }`)).data?.task?.status === 'RUNNING', {
      what: 'the task to run',
    });
    await applyAsNewerVersion(database, newerMigration('29991231000000_breaking_probe', true));
    await waitFor(() => server.output().includes('this instance stops'), { what: 'the instance to see the migration' });
    server.child.kill('SIGTERM');
    expect(await exitCode(server)).toBe(EXIT_OUTDATED);
    expect(server.output()).toContain('the signal joins that stop');
    // The handler finished within the grace period, and its completion was recorded (this migration breaks nothing it writes).
    const [row] = (await withClient(database.url!, (c) => c.query(`SELECT status::text FROM task WHERE id = $1`, [id]))).rows;
    expect(row.status).toBe('SUCCEEDED');
  });

  it('an instance that starts on a database with a breaking migration it does not have exits with 75 before it serves', async () => {
    const database = await scratch();
    await applyAsNewerVersion(database); // this version's own migrations
    // Recorded, but not among _prisma_migrations (so the migration check passes): what an instance finds
    // when a newer one migrated between its own migration check and its LISTEN.
    await withClient(database.url!, (c) =>
      c.query(`INSERT INTO "${BREAKING_MIGRATIONS_TABLE}" (migration_name) VALUES ('29991231000000_raced_probe')`),
    );
    const { server } = await starting(database);
    expect(await exitCode(server)).toBe(EXIT_OUTDATED);
    expect(server.output()).toContain('29991231000000_raced_probe');
    expect(server.output()).not.toContain('Chronograph is listening');
  });

  it("an instance that starts on a database with a newer version's breaking migration exits with 75 before it serves", async () => {
    const database = await scratch();
    await applyAsNewerVersion(database, newerMigration('29991231000000_breaking_probe', true));
    const { server } = await starting(database);
    expect(await exitCode(server)).toBe(EXIT_OUTDATED);
    expect(server.output()).toMatch(/29991231000000_breaking_probe[^\n]*ahead of the code/);
    expect(server.output()).not.toContain('Chronograph is listening');
  });

  it("an instance that (re)starts on a database with a newer version's compatible migration serves beside it, and says so", async () => {
    const database = await scratch();
    await applyAsNewerVersion(database, newerMigration('29991231000000_compatible_probe', false));
    const { server, port } = await starting(database);
    await server.listening;
    expect(server.output()).toMatch(/"migrations":\["29991231000000_compatible_probe"\][^\n]*newer Chronograph, none of them breaking/);
    const created = await post(
      port,
      'mutation { createTimerTask(input: { fullName: "tasks.Echo", startTime: "2099-01-01 10:00:00" }) { id } }',
    );
    expect(created.errors).toBeUndefined();
    expect(server.child.exitCode).toBeNull();
  });
});
