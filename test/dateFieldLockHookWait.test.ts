import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DateFieldSvc } from '../src/dateFields/DateFieldSvc.js';
import { ModelSvc } from '../src/dateFields/ModelSvc.js';
import { QUOTA_LOCK_CLASS } from '../src/tenants/tenantSql.js';
import { CREATE_TEMPLATE, createDateFieldTemplate, SAVE } from './support/dateFields.js';
import { lockStage } from './support/lockStage.js';
import { createTestApp, createTestDatabase, ok, type TestApp, type TestDatabase } from './support/testApp.js';
import { lockWaiters } from './support/waitFor.js';

const NOW = new Date('2029-06-01T00:00:00Z');
const LIVE = ['SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED'] as const;

/**
 * Hooks of a model wait for a template change of that model (which holds the model's lock exclusively
 * for its whole transaction). The template change is held inside its transaction, after it took the
 * model's lock, by the tenant's quota lock (the tenant has a count quota), which a second connection
 * (`holder`) keeps. PostgreSQL only.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('hooks during a template change of their model (postgres)', () => {
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
    // A count quota: a template change takes the tenant's quota lock after the model's.
    await t.app.tenantSvc.setQuota('default', { maxLiveTasks: 1000 });
  });

  /** The holder takes the tenant's quota lock, where a template change of the tenant then waits (holding its model's lock). */
  async function holdQuota() {
    await stage.holder.query('BEGIN');
    await stage.holder.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [QUOTA_LOCK_CLASS, 'default']);
  }

  const save = (postData: Record<string, unknown>) => t.gql(SAVE, { rowObj: { model: 'models.Contract', postData } });

  /** Starts creating a DATE_FIELD template on models.Contract.expireDate and holds it at the tenant's quota lock. */
  async function heldCreate() {
    // Another template of the model, so that r1 is remembered; none follows expireDate yet.
    await createDateFieldTemplate(t, { fullName: 'tasks.Other' }, { field: 'otherDate' });
    ok(await save({ id: 'r1', expireDate: '2030-03-10' }));
    await holdQuota();
    const create = t.gql(CREATE_TEMPLATE, {
      input: {
        fullName: 'tasks.ContractReminder',
        title: 'Contract reminder',
        repeatType: 'DATE_FIELD',
        funcName: 'chronograph.echo',
        dateField: { model: 'models.Contract', field: 'expireDate' },
      },
    });
    await lockWaiters(stage.watcher, 1, 'the create to wait for the holder');
    return { create };
  }

  it('a hook that waits longer than a default transaction (5 s) for a template change commits after it', async () => {
    const { create } = await heldCreate();
    const hook = save({ id: 'r2', expireDate: '2030-03-11' });
    await lockWaiters(stage.watcher, 2, 'the hook to wait for the create');
    // Longer than Prisma's default interactive transaction timeout, shorter than the hooks' lock wait.
    await sleep(6000);
    await stage.holder.query('COMMIT');
    ok(await create);
    const saved = ok(await hook).saveDateFieldTask;
    // The hook planned after the create: r2 has a task of the new template.
    expect(saved.changes.filter((c: { action: string }) => c.action === 'CREATED').map((c: { template: string }) => c.template)).toEqual([
      'tasks.ContractReminder',
    ]);
    const tasks = await t.app.db.prisma.task.findMany({ where: { sourceRowId: 'r2', status: { in: [...LIVE] } } });
    expect(tasks.map((task) => task.fullName)).toEqual(['tasks.ContractReminder']);
  }, 30_000);

  it('a hook that would wait longer than HOOK_LOCK_WAIT_MS fails with TIMEOUT, naming the model, and writes nothing', async () => {
    // A second instance on the same database, configured with a short lock wait.
    const impatient = await createTestApp('postgres', {
      database: db,
      now: () => NOW,
      env: { SCHEDULER_ENABLED: 'false', HOOK_LOCK_WAIT_MS: '200' },
    });
    try {
      const { create } = await heldCreate();
      const result = await impatient.gql(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'r2', expireDate: '2030-03-11' } } });
      await stage.holder.query('COMMIT');
      ok(await create);
      expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'TIMEOUT', model: 'models.Contract', lockWaitMs: 200 });
      expect(result.errors?.[0]?.message).toMatch(/template that follows models\.Contract .*in progress.*retry/);
      expect(await t.app.db.prisma.dateFieldSource.count({ where: { rowId: 'r2' } })).toBe(0);
      expect(await t.app.db.prisma.task.count({ where: { sourceRowId: 'r2' } })).toBe(0);
    } finally {
      await impatient.close();
    }
  });

  it('a low-code record write that would wait longer than its lock wait fails with TIMEOUT and leaves the record as it was', async () => {
    const models = t.app.modelSvc;
    await models.saveModel({ name: 'models.Lease', fields: [{ name: 'expireDate', type: 'DATE' }] });
    const { record } = await models.createRecord('models.Lease', { expireDate: '2030-03-10' });
    // A template created on models.Lease, held at the quota lock (it holds the model lock exclusively).
    await holdQuota();
    const create = t.gql(CREATE_TEMPLATE, {
      input: {
        fullName: 'tasks.LeaseReminder',
        title: 'Lease reminder',
        repeatType: 'DATE_FIELD',
        funcName: 'chronograph.echo',
        dateField: { model: 'models.Lease', field: 'expireDate' },
      },
    });
    await lockWaiters(stage.watcher, 1, 'the create to wait for the holder');
    const dateFields = new DateFieldSvc({ prisma: t.app.db.prisma, maxJsonBytes: 64 * 1024, now: () => NOW, lockWaitMs: 200 });
    const shortWait = new ModelSvc({ prisma: t.app.db.prisma, dateFields, defaultTimezone: 'UTC', maxJsonBytes: 64 * 1024 });
    const error = await shortWait.updateRecord('models.Lease', record.id, { expireDate: '2030-04-10' }).then(
      () => null,
      (e: unknown) => e,
    );
    await stage.holder.query('COMMIT');
    ok(await create);
    expect(error).toMatchObject({ code: 'TIMEOUT', details: { model: 'models.Lease' } });
    expect((await models.getRecord('models.Lease', record.id))!.data).toEqual({ expireDate: '2030-03-10' });
  });
  it('saveModel of a new model that would wait longer than its lock wait for a hook of that name fails with TIMEOUT saying so', async () => {
    // A hook of models.Fresh under way: it holds the model's date-field lock shared until it commits.
    await stage.holder.query('BEGIN');
    await stage.holder.query(`SELECT pg_advisory_xact_lock_shared(hashtextextended($1 || '/' || $2, 7275))`, ['default', 'models.Fresh']);
    const dateFields = new DateFieldSvc({ prisma: t.app.db.prisma, maxJsonBytes: 64 * 1024, now: () => NOW, lockWaitMs: 200 });
    const shortWait = new ModelSvc({ prisma: t.app.db.prisma, dateFields, defaultTimezone: 'UTC', maxJsonBytes: 64 * 1024 });
    const error = await shortWait.saveModel({ name: 'models.Fresh', fields: [{ name: 'expireDate', type: 'DATE' }] }).then(
      () => null,
      (e: unknown) => e,
    );
    await stage.holder.query('COMMIT');
    expect(error).toMatchObject({ code: 'TIMEOUT', details: { model: 'models.Fresh', lockWaitMs: 200 } });
    expect((error as Error).message).toMatch(/hooks, record writes or a template change of models\.Fresh are in progress/);
    expect(await t.app.db.prisma.modelDefinition.count({ where: { name: 'models.Fresh' } })).toBe(0);
  });

  it('a hook the database stops to break a deadlock gets CONFLICT (retryable), not an unexpected error', async () => {
    await createDateFieldTemplate(t);
    await holdQuota();
    // The hook holds the model's lock (shared) and waits for the quota lock the holder has...
    const hook = save({ id: 'r9', expireDate: '2030-03-11' });
    await lockWaiters(stage.watcher, 1, 'the hook to wait for the quota lock');
    // ...which then asks for the model's lock exclusively: a cycle, which the hook, waiting first, detects.
    const holderWait = stage.holder
      .query(`SELECT pg_advisory_xact_lock(hashtextextended('default' || '/' || 'models.Contract', 7275))`)
      .catch((error: unknown) => error);
    const result = await hook;
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', retryable: true });
    expect(result.errors?.[0]?.message).toMatch(/wrote nothing; retry/);
    await holderWait;
    expect(await t.app.db.prisma.task.count({ where: { sourceRowId: 'r9' } })).toBe(0);
  });
});
