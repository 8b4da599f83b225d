import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TemplateInput } from '../src/templates/TemplateSvc.js';
import { QUOTA_LOCK_CLASS } from '../src/tenants/tenantSql.js';
import { lockStage } from './support/lockStage.js';
import { createTestApp, createTestDatabase, type TestApp, type TestDatabase } from './support/testApp.js';
import { lockWaiters } from './support/waitFor.js';

const FIRST = 'quota-order-1';
const SECOND = 'quota-order-2';

/** A CRON template of the platform tenant, as a template file (or createTaskTemplate) declares it. */
function cron(fullName: string, enabled: boolean): TemplateInput {
  return { fullName, title: fullName, repeatType: 'CRON', funcName: 'chronograph.echo', cronExpression: '0 6 * * *', enabled };
}

const outcome = (r: PromiseSettledResult<unknown>) => (r.status === 'rejected' ? String(r.reason) : 'ok');

/**
 * A change of platform templates creates the tasks of the tenants they are bound to, under each bound
 * tenant's quota lock (tenants with count quotas). The template-file sync changes several templates in
 * one transaction: it took those locks template by template, so in the order of the files, while an
 * update of another template took them in tenant order: two transactions that each held one tenant's
 * lock and waited for the other's (40P01, one of them aborted). Staged with a holder connection that
 * keeps the first tenant's quota lock. PostgreSQL only.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('platform template changes take bound tenants’ quota locks in one order (postgres)', () => {
  let db: TestDatabase;
  let t: TestApp;
  const stage = lockStage(() => db.url);
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    t = await createTestApp('postgres', { database: db, env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('a template-file sync and an update of another template, both creating bound tasks: both commit', async () => {
    const platform = t.app.templateSvc.forTenant('platform');
    // File templates: A is bound to the second tenant only, B (after it in the files) to the first only.
    // All disabled for now, so that binding creates no task yet.
    await platform.syncFromFiles([cron('tasks.QuotaA', false), cron('tasks.QuotaB', false)]);
    await platform.create(cron('tasks.QuotaC', false));
    for (const id of [FIRST, SECOND]) await t.app.tenantSvc.setQuota(id, { maxLiveTasks: 100 });
    await t.app.bindings.bind('tasks.QuotaA', SECOND);
    await t.app.bindings.bind('tasks.QuotaB', FIRST);
    await t.app.bindings.bind('tasks.QuotaC', FIRST);
    await t.app.bindings.bind('tasks.QuotaC', SECOND);

    await stage.holder.query('BEGIN');
    await stage.holder.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [QUOTA_LOCK_CLASS, FIRST]);
    // Enabling C creates both tenants' tasks: it waits for the first tenant's quota lock.
    const update = platform.update('tasks.QuotaC', { enabled: true });
    await lockWaiters(stage.watcher, 1, 'the update to wait');
    // Enabling A and B creates the second tenant's task (A), then the first's (B).
    const sync = platform.syncFromFiles([cron('tasks.QuotaA', true), cron('tasks.QuotaB', true)]);
    await lockWaiters(stage.watcher, 2, 'the sync to wait');
    await stage.holder.query('COMMIT');

    const results = await Promise.allSettled([update, sync]);
    expect(results.map(outcome)).toEqual(['ok', 'ok']);
    const live = await t.app.db.prisma.task.findMany({
      where: { source: 'TEMPLATE', status: 'SCHEDULED' },
      include: { template: { select: { fullName: true } } },
    });
    expect(live.map((task) => `${task.template!.fullName} → ${task.tenantId}`).sort()).toEqual([
      `tasks.QuotaA → ${SECOND}`,
      `tasks.QuotaB → ${FIRST}`,
      `tasks.QuotaC → ${FIRST}`,
      `tasks.QuotaC → ${SECOND}`,
    ]);
  });
});
