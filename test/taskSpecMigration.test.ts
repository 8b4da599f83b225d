import pg from 'pg';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate, readMigrations } from '../src/db/migrate.js';
import { openPgSession } from '../src/db/SqlSession.js';
import { createTestDatabase, type TestDatabase } from './support/testApp.js';

const logger = pino({ level: 'silent' });
const TASK_SPEC = '20261205030000_task_spec';
const INSERT_TASKS = `INSERT INTO task (id, full_name, task_type, func_name, start_time, next_run_at, updated_at)
  SELECT gen_random_uuid(), 'tasks.Old', 'tasks.NormalType', 'chronograph.noop', now(), now() + interval '1 day', now()
    FROM generate_series(1, $1::int)`;

/**
 * The task_spec migration copies every existing task into task_spec and then creates the triggers that
 * keep it in step. Another instance may be creating tasks meanwhile (a rolling deploy): a task inserted
 * between the copy and the triggers would be missing from task_spec for good, so the migration locks
 * task first. Here a second connection inserts tasks one by one while the migration runs.
 */
describe.skipIf(!process.env.TEST_DATABASE_URL)('the task_spec migration under concurrent creates (postgres)', () => {
  let database: TestDatabase;
  afterAll(() => database?.drop());

  it('leaves no task out of task_spec', async () => {
    database = await createTestDatabase('postgres');
    const session = await openPgSession(database.url!);
    const writer = new pg.Client({ connectionString: database.url! });
    await writer.connect();
    try {
      const files = await readMigrations();
      const at = files.findIndex((m) => m.name === TASK_SPEC);
      expect(at).toBeGreaterThan(0);
      await migrate(session, logger, files.slice(0, at));
      await session.query(INSERT_TASKS, [50_000]);

      let inserted = 0;
      let stop = false;
      const writing = (async () => {
        while (!stop) {
          await writer.query(INSERT_TASKS, [1]);
          inserted++;
        }
      })();
      while (inserted < 20) await new Promise((r) => setTimeout(r, 5));
      const before = inserted;
      expect(await migrate(session, logger, files.slice(0, at + 1))).toEqual([TASK_SPEC]);
      const after = inserted;
      while (inserted < after + 20) await new Promise((r) => setTimeout(r, 5));
      stop = true;
      await writing;

      // The writer went on during the migration (or waited for its lock), and after it.
      expect(inserted).toBeGreaterThan(before + 20);
      const [counts] = await session.query<{ tasks: number; specs: number; missing: number }>(
        `SELECT (SELECT count(*) FROM task)::int AS tasks, (SELECT count(*) FROM task_spec)::int AS specs,
                (SELECT count(*) FROM task t LEFT JOIN task_spec s ON s.task_id = t.id WHERE s.task_id IS NULL)::int AS missing`,
      );
      expect(counts).toEqual({ tasks: 50_000 + inserted, specs: 50_000 + inserted, missing: 0 });
    } finally {
      await writer.end();
      await session.close();
    }
  }, 120_000);
});
