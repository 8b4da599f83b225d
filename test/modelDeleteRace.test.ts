import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDateFieldTemplate } from './support/dateFields.js';
import { lockStage } from './support/lockStage.js';
import { createTestApp, createTestDatabase, type TestApp, type TestDatabase } from './support/testApp.js';
import { lockWaiters } from './support/waitFor.js';

const NOW = new Date('2029-06-01T00:00:00Z');
const LIVE = ['SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED'] as const;

/**
 * deleteModel against record writes of the same low-code model, each staged with a holder connection
 * that keeps a row deleteModel needs, so that the write comes while deleteModel is inside its
 * transaction. PostgreSQL only.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('deleting a low-code model while its records are written (postgres)', () => {
  let db: TestDatabase;
  let t: TestApp;
  const stage = lockStage(() => db.url);
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    t = await createTestApp('postgres', { database: db, now: () => NOW, env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  /** A low-code model with a date-field template and `n` records, each with its task. */
  async function modelWithRecords(name: string, n: number) {
    const models = t.app.modelSvc;
    await models.saveModel({ name, fields: [{ name: 'expireDate', type: 'DATE' }] });
    await createDateFieldTemplate(t, { fullName: `tasks.${name.split('.')[1]}Reminder` }, { model: name });
    await models.importRecords(
      name,
      Array.from({ length: n }, () => ({ expireDate: '2030-03-10' })),
    );
    return t.app.db.prisma.modelRecord.findFirstOrThrow({ where: { model: name }, orderBy: { id: 'asc' } });
  }
  const liveTasks = (model: string) => t.app.db.prisma.task.count({ where: { sourceModel: model, status: { in: [...LIVE] } } });

  it('a record created while the model is being deleted is refused NOT_FOUND, and leaves no live task behind', async () => {
    const first = await modelWithRecords('models.Gone', 3);
    // The holder keeps one record's row: deleteModel waits there, inside its transaction.
    await stage.holder.query('BEGIN');
    await stage.holder.query('SELECT 1 FROM model_record WHERE id = $1::uuid FOR UPDATE', [first.id]);
    const deleting = t.app.modelSvc.deleteModel('models.Gone');
    await lockWaiters(stage.watcher, 1, 'deleteModel to wait for the holder');
    const creating = t.app.modelSvc.createRecord('models.Gone', { expireDate: '2030-04-01' }).then(
      () => 'created',
      (error: unknown) => error,
    );
    await lockWaiters(stage.watcher, 2, 'the create to wait for deleteModel');
    await stage.holder.query('COMMIT');
    await deleting;
    expect(await creating).toMatchObject({ code: 'NOT_FOUND' });
    expect(await t.app.db.prisma.modelRecord.count({ where: { model: 'models.Gone' } })).toBe(0);
    expect(await liveTasks('models.Gone')).toBe(0);
  });

  it('a model of more than a thousand records is deleted holding its model lock, not a lock per record', async () => {
    const first = await modelWithRecords('models.Big', 1200);
    const task = await t.app.db.prisma.task.findFirstOrThrow({ where: { sourceModel: 'models.Big', sourceRowId: first.id } });
    // The holder keeps the first record's task: deleteModel waits there, after taking its locks.
    await stage.holder.query('BEGIN');
    await stage.holder.query('SELECT 1 FROM task_state WHERE task_id = $1::uuid FOR UPDATE', [task.id]);
    const deleting = t.app.modelSvc.deleteModel('models.Big');
    await lockWaiters(stage.watcher, 1, 'deleteModel to wait for the holder');
    const { rows } = await stage.watcher.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' AND l.locktype = 'advisory' AND l.granted`,
    );
    await stage.holder.query('COMMIT');
    await deleting;
    // The model's lock alone (it took a thousand record locks per chunk before).
    expect(rows[0]!.n).toBe(1);
    expect(await liveTasks('models.Big')).toBe(0);
  });
});
