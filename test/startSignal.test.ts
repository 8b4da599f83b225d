import { afterEach, describe, expect, it } from 'vitest';
import { type ChronographProcess, freePort, startChronograph } from './support/chronographProcess.js';
import { createTestDatabase, withClient } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * A signal while the instance starts (the real src/main.ts process, on PostgreSQL): opening the database
 * can wait a long time (here for the migration lock another migrator holds), and the process ends at
 * once, saying so, with nothing served or claimed.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('a signal while starting (postgres)', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('SIGTERM while the migrations wait for their lock ends the process with 0 and a warning', async () => {
    const database = await createTestDatabase('postgres');
    cleanup.push(() => database.drop());
    // Another migrator holds the lock (src/db/migrate.ts MIGRATION_LOCK_KEY) for as long as this session lives.
    const pg = await import('pg');
    const holder = new pg.default.Client({ connectionString: database.url! });
    await holder.connect();
    cleanup.push(() => holder.end());
    await holder.query('SELECT pg_advisory_lock(727274001)');
    const server: ChronographProcess = startChronograph({ PORT: String(await freePort()), DATABASE_URL: database.url! });
    cleanup.push(async () => {
      if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
      await server.exited;
    });
    await waitFor(
      async () =>
        (
          await withClient(database.url!, (c) =>
            c.query(
              `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
            ),
          )
        ).rows.length > 0,
      { what: 'the instance to wait for the migration lock' },
    );
    server.child.kill('SIGTERM');
    const code = await Promise.race([server.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 10_000))]);
    expect({ code, signal: server.child.signalCode }).toEqual({ code: 0, signal: null });
    expect(server.output()).toContain('signal while starting');
    expect(server.output()).not.toContain('Chronograph is listening');
  });
});
