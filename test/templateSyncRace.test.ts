import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TemplateInput } from '../src/templates/TemplateSvc.js';
import { lockStage } from './support/lockStage.js';
import { createTestApp, createTestDatabase, type TestApp, type TestDatabase } from './support/testApp.js';
import { lockWaiters } from './support/waitFor.js';

const NOW = new Date('2029-06-01T00:00:00Z');
const TENANT = 'sync-race';
const MODEL = 'models.SyncContract';
const NAME = 'tasks.SyncReminder';

/** A FILE template "3 days before models.SyncContract.expireDate at 09:00", as a template file declares it. */
const fileTemplate: TemplateInput = {
  fullName: NAME,
  title: 'Sync reminder',
  repeatType: 'DATE_FIELD',
  funcName: 'chronograph.echo',
  dateField: { model: MODEL, field: 'expireDate', offset: { amount: 3, unit: 'DAYS', direction: 'BEFORE' }, timeOfDay: '09:00' },
};

const outcome = (r: PromiseSettledResult<unknown>) => (r.status === 'rejected' ? String(r.reason) : 'ok');

/**
 * Two instances starting at once run the template-file sync of the same tenant at once (App.create), or
 * one runs it while createTaskTemplate creates a template of the same name. Both must succeed with one
 * template row: the loser of the insert used to fail on task_template_tenant_id_full_name_key, and with
 * it that instance's start-up. Staged with a holder connection that keeps the model lock of the
 * template's model (as a hook under way does), so that both transactions are inside before either
 * commits. PostgreSQL only.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('template-file syncs racing each other and createTaskTemplate (postgres)', () => {
  let db: TestDatabase;
  let t: TestApp;
  const stage = lockStage(() => db.url);
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    t = await createTestApp('postgres', { database: db, now: () => NOW, env: { SCHEDULER_ENABLED: 'false' } });
    // A low-code model with one record: a DATE_FIELD template that follows it gets one task.
    const models = t.app.modelSvc.forTenant(TENANT);
    await models.saveModel({ name: MODEL, fields: [{ name: 'expireDate', type: 'DATE' }] });
    await models.createRecord(MODEL, { expireDate: '2030-03-10' });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });
  beforeEach(async () => {
    const p = t.app.db.prisma;
    await p.task.deleteMany({ where: { tenantId: TENANT } });
    await p.taskTemplate.deleteMany({ where: { tenantId: TENANT } });
  });

  const templates = () => t.app.templateSvc.forTenant(TENANT);

  /** The holder takes the model's lock shared, as a hook of the model does, until `release`. */
  async function holdModel(): Promise<{ release: () => Promise<unknown> }> {
    await stage.holder.query('BEGIN');
    await stage.holder.query(`SELECT pg_advisory_xact_lock_shared(hashtextextended($1 || '/' || $2, 7275))`, [TENANT, MODEL]);
    return { release: () => stage.holder.query('COMMIT') };
  }

  async function expectOneTemplateAndTask(origin: 'FILE' | 'API') {
    const rows = await t.app.db.prisma.taskTemplate.findMany({ where: { tenantId: TENANT, fullName: NAME } });
    expect(rows.map((r) => r.origin)).toEqual([origin]);
    const tasks = await t.app.db.prisma.task.findMany({ where: { tenantId: TENANT, source: 'DATE_FIELD' } });
    expect(tasks.map((task) => [task.status, task.templateId, task.startTime.toISOString()])).toEqual([
      ['SCHEDULED', rows[0]!.id, '2030-03-07T09:00:00.000Z'],
    ]);
  }

  it('two syncs of the same new file template at once: both succeed, one template, one task', async () => {
    const hold = await holdModel();
    const first = templates().syncFromFiles([fileTemplate]);
    const second = templates().syncFromFiles([fileTemplate]);
    await lockWaiters(stage.watcher, 2, 'both syncs to wait');
    await hold.release();

    const results = await Promise.allSettled([first, second]);
    expect(results.map(outcome)).toEqual(['ok', 'ok']);
    await expectOneTemplateAndTask('FILE');
  });

  it('a sync racing createTaskTemplate of the same name: the sync succeeds and the file wins', async () => {
    const hold = await holdModel();
    const sync = templates().syncFromFiles([fileTemplate]);
    await lockWaiters(stage.watcher, 1, 'the sync to wait');
    const create = templates().create({ ...fileTemplate, title: 'From the API' });
    await lockWaiters(stage.watcher, 2, 'the create to wait');
    await hold.release();

    const [synced, created] = await Promise.allSettled([sync, create]);
    expect(outcome(synced)).toBe('ok');
    // The create's insert waited for the sync's, then found the file's template.
    expect(created.status === 'rejected' && (created.reason as { code?: string }).code).toBe('CONFLICT');
    await expectOneTemplateAndTask('FILE');
    const row = await t.app.db.prisma.taskTemplate.findFirstOrThrow({ where: { tenantId: TENANT, fullName: NAME } });
    expect(row.title).toBe('Sync reminder');
  });

  it('createTaskTemplate of a name a file declares, then the sync: both succeed and the sync takes the template over', async () => {
    const hold = await holdModel();
    const create = templates().create({ ...fileTemplate, title: 'From the API' });
    await lockWaiters(stage.watcher, 1, 'the create to wait');
    const sync = templates().syncFromFiles([fileTemplate]);
    await lockWaiters(stage.watcher, 2, 'the sync to wait');
    await hold.release();

    const results = await Promise.allSettled([create, sync]);
    expect(results.map(outcome)).toEqual(['ok', 'ok']);
    await expectOneTemplateAndTask('FILE');
    const row = await t.app.db.prisma.taskTemplate.findFirstOrThrow({ where: { tenantId: TENANT, fullName: NAME } });
    expect(row.title).toBe('Sync reminder');
  });
});
