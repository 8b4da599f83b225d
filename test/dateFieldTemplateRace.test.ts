import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDateFieldTemplate, SAVE, UPDATE_TEMPLATE } from './support/dateFields.js';
import { createTestApp, createTestDatabase, ok, type TestApp, type TestDatabase } from './support/testApp.js';

const NOW = new Date('2029-06-01T00:00:00Z');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * saveDateFieldTask racing an update of the record's template: the hook plans with the template as
 * updated, whichever commits first. Needs real concurrency, so PostgreSQL only.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('date-field hooks racing a template update (postgres)', () => {
  let db: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    t = await createTestApp('postgres', { database: db, now: () => NOW, env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  const save = (postData: Record<string, unknown>) => t.gql(SAVE, { rowObj: { model: 'models.Contract', postData } });

  it('a hook that arrives while the template is being updated plans with the updated template', async () => {
    await createDateFieldTemplate(t);
    ok(await save({ id: 'r1', expireDate: '2030-03-10' }));
    ok(await save({ id: 'r2', expireDate: '2030-03-10' }));
    const r1 = await t.app.db.prisma.task.findFirstOrThrow({ where: { sourceRowId: 'r1', status: 'SCHEDULED' } });

    // Hold r1's task so that the update below stops inside its transaction, after updating the template row.
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT task_id FROM task_state WHERE task_id = $1::uuid FOR UPDATE', [r1.id]);
      const update = t.gql(UPDATE_TEMPLATE, {
        fullName: 'tasks.ContractReminder',
        patch: {
          dateField: {
            model: 'models.Contract',
            field: 'expireDate',
            offset: { amount: 1, unit: 'DAYS', direction: 'BEFORE' },
            timeOfDay: '09:00',
          },
        },
      });
      await sleep(500);
      const hook = save({ id: 'r2', expireDate: '2030-04-10' });
      await sleep(500);
      await holder.query('COMMIT');
      ok(await update);
      ok(await hook);
    } finally {
      await holder.end();
    }

    const live = await t.app.db.prisma.task.findMany({
      where: { source: 'DATE_FIELD', status: 'SCHEDULED' },
      orderBy: { sourceRowId: 'asc' },
    });
    expect(live.map((task) => [task.sourceRowId, task.startTime.toISOString()])).toEqual([
      ['r1', '2030-03-09T09:00:00.000Z'],
      ['r2', '2030-04-09T09:00:00.000Z'],
    ]);
  });
});
