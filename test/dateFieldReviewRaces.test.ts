import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CREATE_TEMPLATE, createDateFieldTemplate, RECONCILE, SAVE, UPDATE_TEMPLATE } from './support/dateFields.js';
import { lockStage } from './support/lockStage.js';
import { backends, createTestApp, createTestDatabase, ok, type TestApp, type TestDatabase } from './support/testApp.js';
import { lockWaiterCount, lockWaiters, waitFor } from './support/waitFor.js';

const NOW = new Date('2029-06-01T00:00:00Z');
const LIVE = ['SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED'] as const;

/** A promise and the function that resolves it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/**
 * Makes the next `prisma.$transaction` call wait for `until` before it starts; returns a promise that
 * resolves when that call has arrived (and is waiting), and a function that restores $transaction.
 */
function pauseNextTransaction(prisma: object, until: Promise<void>): { arrived: Promise<void>; restore: () => void } {
  const client = prisma as { $transaction: (...args: unknown[]) => Promise<unknown> };
  const original = client.$transaction;
  const arrived = gate();
  client.$transaction = async (...args: unknown[]) => {
    client.$transaction = original;
    arrived.open();
    await until;
    return original.apply(prisma, args);
  };
  return { arrived: arrived.promise, restore: () => (client.$transaction = original) };
}

/** Live date-field tasks of a record. */
async function liveTasks(t: TestApp, rowId: string) {
  return t.app.db.prisma.task.findMany({ where: { source: 'DATE_FIELD', sourceRowId: rowId, status: { in: [...LIVE] } } });
}

describe.each(backends)('reconcile racing a hook (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW, env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(() => t?.close());

  it('a date cleared by a hook while reconcile is under way stays cleared (no live task)', async () => {
    await createDateFieldTemplate(t);
    const save = (postData: Record<string, unknown>) => t.gql(SAVE, { rowObj: { model: 'models.Contract', postData } });
    ok(await save({ id: 'r1', expireDate: '2030-03-10' }));
    ok(await save({ id: 'r2', expireDate: '2030-03-11' }));

    // reconcile reads r1 (with its date); before it writes, the hook clears r1's date and commits.
    const release = gate();
    const paused = pauseNextTransaction(t.app.db.prisma, release.promise);
    try {
      const reconcile = t.gql(RECONCILE, { model: 'models.Contract' });
      await paused.arrived;
      const cleared = ok(await save({ id: 'r1', expireDate: null })).saveDateFieldTask;
      expect(cleared.cancelled).toBe(1);
      release.open();
      ok(await reconcile);
    } finally {
      paused.restore();
    }
    expect(await liveTasks(t, 'r1')).toEqual([]);
    expect(await liveTasks(t, 'r2')).toHaveLength(1);
  });
});

/**
 * Races that need real concurrency: one transaction is held at a chosen point by a lock that a second
 * connection (`holder`) keeps, the other runs into it, then the holder lets go. PostgreSQL only.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('date-field locks under real concurrency (postgres)', () => {
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
  beforeEach(async () => {
    await t.app.db.prisma.task.deleteMany({});
    await t.app.db.prisma.dateFieldSource.deleteMany({});
    await t.app.db.prisma.taskTemplate.deleteMany({ where: { origin: 'API' } });
    await t.app.db.prisma.tenant.updateMany({ data: { maxLiveTasks: null } });
  });

  const save = (postData: Record<string, unknown>) => t.gql(SAVE, { rowObj: { model: 'models.Contract', postData } });

  it('reconcile waits for a hook that is clearing a date, then reads the record as the hook left it', async () => {
    await createDateFieldTemplate(t);
    ok(await save({ id: 'r1', expireDate: '2030-03-10' }));

    // The hook clearing r1's date stops inside its transaction, after cancelling the task, at the write
    // of the remembered record (the holder has that row).
    await stage.holder.query('BEGIN');
    await stage.holder.query(`SELECT 1 FROM date_field_source WHERE row_id = 'r1' FOR UPDATE`);
    const hook = save({ id: 'r1', expireDate: null });
    await lockWaiters(stage.watcher, 1, 'the hook to wait for the holder');
    const reconcile = t.gql(RECONCILE, { model: 'models.Contract' });
    await lockWaiters(stage.watcher, 2, 'reconcile to wait for the hook');
    await stage.holder.query('COMMIT');
    expect(ok(await hook).saveDateFieldTask.cancelled).toBe(1);
    ok(await reconcile);
    expect(await liveTasks(t, 'r1')).toEqual([]);
  });

  it('a template created while a hook clears a date gives that record no task', async () => {
    // Another template of the model, so that r1 is remembered; none follows expireDate yet.
    await createDateFieldTemplate(t, { fullName: 'tasks.Other' }, { field: 'otherDate' });
    ok(await save({ id: 'r1', expireDate: '2030-03-10' }));

    await stage.holder.query('BEGIN');
    await stage.holder.query(`SELECT 1 FROM date_field_source WHERE row_id = 'r1' FOR UPDATE`);
    const hook = save({ id: 'r1', expireDate: null });
    await lockWaiters(stage.watcher, 1, 'the hook to wait for the holder');
    let done = false;
    const create = t
      .gql(CREATE_TEMPLATE, {
        input: {
          fullName: 'tasks.ContractReminder',
          title: 'Contract reminder',
          repeatType: 'DATE_FIELD',
          funcName: 'chronograph.echo',
          dateField: { model: 'models.Contract', field: 'expireDate' },
        },
      })
      .finally(() => {
        done = true;
      });
    // Either the create finishes at once (reading r1 as it was) or it waits for the hook.
    await waitFor(async () => done || (await lockWaiterCount(stage.watcher)) >= 2, { what: 'the create to finish or to wait' });
    await stage.holder.query('COMMIT');
    ok(await hook);
    ok(await create);
    expect(await liveTasks(t, 'r1')).toEqual([]);
  });

  it('a batch of many records and a single hook of one of them both commit (one lock order)', async () => {
    await createDateFieldTemplate(t);
    // A count quota: creating transactions take the tenant's quota lock.
    await t.app.db.prisma.tenant.upsert({
      where: { id: 'default' },
      create: { id: 'default', maxLiveTasks: 100_000 },
      update: { maxLiveTasks: 100_000 },
    });
    ok(await save({ id: 'r0007', expireDate: '2030-03-10' }));
    const [r7] = await liveTasks(t, 'r0007');

    // The batch: 1,001 records, so two chunks. The first clears every date (r0007's task is cancelled,
    // nothing created); the second record of the second chunk gets a task (the quota lock).
    const records = Array.from({ length: 1001 }, (_, i) => {
      const rowId = `r${String(i).padStart(4, '0')}`;
      return { rowId, data: { id: rowId, expireDate: i === 1000 ? '2030-03-12' : null } };
    });
    // The holder keeps r0007's task, so the batch stops in its first chunk, after the record locks.
    await stage.holder.query('BEGIN');
    await stage.holder.query('SELECT 1 FROM task_state WHERE task_id = $1::uuid FOR UPDATE', [r7!.id]);
    const batch = t.app.dateFieldSvc.saveRecords('models.Contract', records);
    await lockWaiters(stage.watcher, 1, 'the batch to wait for the holder');
    // A hook of r0005 (in the first chunk) that creates a task.
    const hook = save({ id: 'r0005', expireDate: '2030-03-11' });
    await lockWaiters(stage.watcher, 2, 'the hook to wait');
    await stage.holder.query('COMMIT');
    const [batchResult, hookResult] = await Promise.allSettled([batch, hook]);
    expect(batchResult).toMatchObject({ status: 'fulfilled', value: { created: 1, cancelled: 1 } });
    expect(hookResult.status).toBe('fulfilled');
    ok((hookResult as PromiseFulfilledResult<Awaited<typeof hook>>).value);
    expect(await liveTasks(t, 'r1000')).toHaveLength(1);
    expect(await liveTasks(t, 'r0007')).toEqual([]);
  });
});

describe.each(backends)('template updates racing each other (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW, env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(() => t?.close());

  it('an update that read the template before another update committed keeps that update, and the tasks follow', async () => {
    await createDateFieldTemplate(t);
    ok(await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'r1', expireDate: '2030-03-10' } } }));
    const update = (patch: Record<string, unknown>) => t.gql(UPDATE_TEMPLATE, { fullName: 'tasks.ContractReminder', patch });

    // A title change reads the template (3 days before), then waits; an offset change commits meanwhile.
    const release = gate();
    const paused = pauseNextTransaction(t.app.db.prisma, release.promise);
    try {
      const retitle = update({ title: 'Renamed' });
      await paused.arrived;
      ok(
        await update({
          dateField: {
            model: 'models.Contract',
            field: 'expireDate',
            offset: { amount: 1, unit: 'DAYS', direction: 'BEFORE' },
            timeOfDay: '09:00',
          },
        }),
      );
      release.open();
      ok(await retitle);
    } finally {
      paused.restore();
    }
    const template = await t.app.db.prisma.taskTemplate.findFirstOrThrow({ where: { fullName: 'tasks.ContractReminder' } });
    expect(template.title).toBe('Renamed');
    expect((template.dateRule as { offset: unknown }).offset).toEqual({ amount: 1, unit: 'DAYS', direction: 'BEFORE' });
    expect((await liveTasks(t, 'r1')).map((task) => task.startTime.toISOString())).toEqual(['2030-03-09T09:00:00.000Z']);
  });
});
