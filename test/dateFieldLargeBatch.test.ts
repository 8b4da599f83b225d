import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECORD_LOCKS_MAX } from '../src/dateFields/dateFieldSql.js';
import { createDateFieldTemplate, SAVE, UPDATE_TEMPLATE } from './support/dateFields.js';
import { lockStage } from './support/lockStage.js';
import { createTestApp, createTestDatabase, ok, type TestApp, type TestDatabase } from './support/testApp.js';
import { lockWaiters } from './support/waitFor.js';

const NOW = new Date('2029-06-01T00:00:00Z');
const RECORDS = RECORD_LOCKS_MAX + 200;

/** The advisory locks granted to the backends that wait for a lock now (the batch, held by the holder). */
async function advisoryLocksOfWaiters(watcher: pg.Client): Promise<number> {
  const { rows } = await watcher.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' AND l.locktype = 'advisory' AND l.granted`,
  );
  return rows[0]!.n;
}

/**
 * A batch of records (saveRecords: the Prisma extension's createMany / updateMany / deleteMany) took one
 * advisory lock per record in one transaction: ~100,000 records exhausted PostgreSQL's shared lock table
 * (max_locks_per_transaction × max_connections, "out of shared memory"). A batch of more than
 * RECORD_LOCKS_MAX records now holds its model's lock exclusively instead, and no record locks; smaller
 * ones still lock record by record. Counted in pg_locks while a holder connection keeps the batch inside
 * its transaction (after its locks, at a task row). PostgreSQL only.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('a large batch of records holds its model, not a lock per record (postgres)', () => {
  let db: TestDatabase;
  let t: TestApp;
  const stage = lockStage(() => db.url);
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    t = await createTestApp('postgres', { database: db, now: () => NOW, env: { SCHEDULER_ENABLED: 'false' } });
    await createDateFieldTemplate(t);
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  const records = (prefix: string, n: number, expireDate = '2030-03-10') =>
    Array.from({ length: n }, (_, i) => {
      const rowId = `${prefix}${String(i).padStart(5, '0')}`;
      return { rowId, data: { id: rowId, expireDate } };
    });

  /** Saves `batch` while the holder keeps the task of its first record; returns the advisory locks it held meanwhile. */
  async function locksHeldBy(batch: ReturnType<typeof records>, hook?: () => Promise<unknown>) {
    const first = await t.app.db.prisma.task.findFirstOrThrow({ where: { source: 'DATE_FIELD', sourceRowId: batch[0]!.rowId } });
    await stage.holder.query('BEGIN');
    await stage.holder.query('SELECT 1 FROM task_state WHERE task_id = $1::uuid FOR UPDATE', [first.id]);
    const saving = t.app.dateFieldSvc.saveRecords('models.Contract', batch);
    await lockWaiters(stage.watcher, 1, 'the batch to wait for the holder');
    const locks = await advisoryLocksOfWaiters(stage.watcher);
    // A hook of another record of the model, meanwhile: it waits for the batch only if the batch holds the model.
    const hooked = hook?.();
    if (hooked) await lockWaiters(stage.watcher, 2, 'the hook to wait for the batch');
    await stage.holder.query('COMMIT');
    return { locks, result: await saving, hooked: await hooked };
  }

  it(`a batch of ${RECORDS} records holds the model lock and no record locks; a hook of the model waits for it`, async () => {
    const batch = records('big', RECORDS);
    ok(await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: batch[0]!.data } }));
    const { locks, result, hooked } = await locksHeldBy(batch, () =>
      t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'other', expireDate: '2030-04-01' } } }),
    );
    // The model lock alone (the tenant has no count quota, so no quota lock).
    expect(locks).toBe(1);
    expect(result).toMatchObject({ created: RECORDS - 1, unchanged: 1 });
    ok(hooked as never);
    expect(await t.app.db.prisma.task.count({ where: { source: 'DATE_FIELD', sourceRowId: { startsWith: 'big' } } })).toBe(RECORDS);
  });

  it(`a batch of ${RECORD_LOCKS_MAX} records still locks them one by one, beside the model's shared lock`, async () => {
    const batch = records('small', RECORD_LOCKS_MAX);
    ok(await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: batch[0]!.data } }));
    const { locks, result } = await locksHeldBy(batch);
    expect(locks).toBe(RECORD_LOCKS_MAX + 1);
    expect(result).toMatchObject({ created: RECORD_LOCKS_MAX - 1, unchanged: 1 });
  });
  it('a large batch in a transaction that wrote records of the model already locks its records one by one (no shared-to-exclusive upgrade)', async () => {
    const svc = t.app.dateFieldSvc;
    const batch = records('late', RECORDS);
    const advisory = await t.app.db.prisma.$transaction(
      async (tx) => {
        await svc.saveExternal(tx, 'models.Contract', [{ rowId: 'early', data: { id: 'early', expireDate: '2030-03-10' } }]);
        await svc.saveExternal(tx, 'models.Contract', batch);
        const [row] = await tx.$queryRaw<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'`;
        return row!.n;
      },
      { timeout: 60_000 },
    );
    // The model's shared lock, the first record's lock and one per record of the batch: no exclusive model lock.
    expect(advisory).toBe(RECORDS + 2);
    expect(await t.app.db.prisma.task.count({ where: { source: 'DATE_FIELD', sourceRowId: { startsWith: 'late' } } })).toBe(RECORDS);
  });

  it('a template change re-plans a model of more than a page of records without a lock per record', async () => {
    // A model of its own, so that only these records are re-planned.
    await createDateFieldTemplate(t, { fullName: 'tasks.LeaseReminder' }, { model: 'models.Lease' });
    const batch = records('tpl', RECORDS);
    await t.app.dateFieldSvc.saveRecords('models.Lease', batch);
    const first = await t.app.db.prisma.task.findFirstOrThrow({ where: { source: 'DATE_FIELD', sourceRowId: batch[0]!.rowId } });
    await stage.holder.query('BEGIN');
    await stage.holder.query('SELECT 1 FROM task_state WHERE task_id = $1::uuid FOR UPDATE', [first.id]);
    const change = t.gql(UPDATE_TEMPLATE, {
      fullName: 'tasks.LeaseReminder',
      patch: {
        dateField: {
          model: 'models.Lease',
          field: 'expireDate',
          offset: { amount: 4, unit: 'DAYS', direction: 'BEFORE' },
          timeOfDay: '09:00',
        },
      },
    });
    await lockWaiters(stage.watcher, 1, 'the template change to wait for the holder');
    const locks = await advisoryLocksOfWaiters(stage.watcher);
    await stage.holder.query('COMMIT');
    ok(await change);
    // The model's lock, held exclusively; no record locks (it took a thousand per page before).
    expect(locks).toBe(1);
  });
});
