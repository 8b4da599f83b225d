import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TemplateInput } from '../src/templates/TemplateSvc.js';
import { lockStage } from './support/lockStage.js';
import { createTestApp, createTestDatabase, type TestApp, type TestDatabase } from './support/testApp.js';
import { lockWaiters } from './support/waitFor.js';

const NOW = new Date('2029-06-01T00:00:00Z');
const TENANT = 'lock-sync';
const LIVE = ['SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED'] as const;

/** A FILE template "3 days before <model>.expireDate at 09:00" (as a template file declares it). */
function fileTemplate(fullName: string, model: string, amount = 3): TemplateInput {
  return {
    fullName,
    title: fullName,
    repeatType: 'DATE_FIELD',
    funcName: 'chronograph.echo',
    dateField: { model, field: 'expireDate', offset: { amount, unit: 'DAYS', direction: 'BEFORE' }, timeOfDay: '09:00' },
  };
}

/**
 * The template-file sync (run at start-up) against hooks of the models its templates follow, with one
 * transaction held at a chosen point by a row that a second connection (`holder`) keeps. PostgreSQL only.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('template-file sync and hooks take one lock order (postgres)', () => {
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
    const p = t.app.db.prisma;
    await p.task.deleteMany({ where: { tenantId: TENANT } });
    await p.dateFieldSource.deleteMany({ where: { tenantId: TENANT } });
    await p.taskTemplate.deleteMany({ where: { tenantId: TENANT } });
    // A count quota: transactions that may create tasks take the tenant's quota lock.
    await p.tenant.upsert({ where: { id: TENANT }, create: { id: TENANT, maxLiveTasks: 1000 }, update: { maxLiveTasks: 1000 } });
  });

  const templates = () => t.app.templateSvc.forTenant(TENANT);
  const hooks = () => t.app.dateFieldSvc.forTenant(TENANT);
  const live = (where: Record<string, unknown>) =>
    t.app.db.prisma.task.findMany({ where: { tenantId: TENANT, source: 'DATE_FIELD', status: { in: [...LIVE] }, ...where } });

  it('removing a file template while a hook of its model runs: both commit (no deadlock)', async () => {
    await templates().syncFromFiles([fileTemplate('tasks.S', 'models.Contract')]);
    await hooks().saveDateFieldTask({ model: 'models.Contract', postData: { id: 'r1', expireDate: '2030-03-10' } });
    const [task] = await live({ sourceRowId: 'r1' });
    expect(task).toBeDefined();

    // The sync that removes S stops at S's task (the holder has it).
    await stage.holder.query('BEGIN');
    await stage.holder.query('SELECT 1 FROM task_state WHERE task_id = $1::uuid FOR UPDATE', [task!.id]);
    const sync = templates().syncFromFiles([]);
    await lockWaiters(stage.watcher, 1, 'the sync to wait for the holder');
    const hook = hooks().saveDateFieldTask({ model: 'models.Contract', postData: { id: 'r2', expireDate: '2030-03-11' } });
    await lockWaiters(stage.watcher, 2, 'the hook to wait');
    await stage.holder.query('COMMIT');

    const [synced, hooked] = await Promise.allSettled([sync, hook]);
    expect([synced, hooked].map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))).toEqual(['ok', 'ok']);
    expect(synced).toMatchObject({ status: 'fulfilled', value: { upserted: 0, removed: ['tasks.S'] } });
    // The hook ran after the sync: S is gone, so r2 gets no task.
    expect(hooked).toMatchObject({ status: 'fulfilled', value: { created: 0 } });
    expect(await t.app.db.prisma.taskTemplate.count({ where: { tenantId: TENANT } })).toBe(0);
    expect(await live({})).toEqual([]);
  });

  it("a file template's change while a hook of another file template's model creates a task: both commit", async () => {
    await templates().syncFromFiles([fileTemplate('tasks.A', 'models.Contract'), fileTemplate('tasks.B', 'models.Lease')]);
    await hooks().saveDateFieldTask({ model: 'models.Contract', postData: { id: 'c1', expireDate: '2030-03-10' } });
    const [task] = await live({ sourceRowId: 'c1' });

    // A's offset changes in the files: the sync reschedules c1's task, which the holder has.
    await stage.holder.query('BEGIN');
    await stage.holder.query('SELECT 1 FROM task_state WHERE task_id = $1::uuid FOR UPDATE', [task!.id]);
    const sync = templates().syncFromFiles([fileTemplate('tasks.A', 'models.Contract', 1), fileTemplate('tasks.B', 'models.Lease')]);
    await lockWaiters(stage.watcher, 1, 'the sync to wait for the holder');
    // A hook of B's model that creates a task (so it takes the quota lock).
    const hook = hooks().saveDateFieldTask({ model: 'models.Lease', postData: { id: 'l1', expireDate: '2030-04-10' } });
    await lockWaiters(stage.watcher, 2, 'the hook to wait');
    await stage.holder.query('COMMIT');

    const [synced, hooked] = await Promise.allSettled([sync, hook]);
    expect([synced, hooked].map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))).toEqual(['ok', 'ok']);
    expect(synced).toMatchObject({ status: 'fulfilled', value: { upserted: 2, removed: [] } });
    expect(hooked).toMatchObject({ status: 'fulfilled', value: { created: 1 } });
    expect((await live({ sourceRowId: 'c1' })).map((x) => x.startTime.toISOString())).toEqual(['2030-03-09T09:00:00.000Z']);
    expect(await live({ sourceRowId: 'l1' })).toHaveLength(1);
  });
});
