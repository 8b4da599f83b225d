import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, createTestDatabase, type TestApp, type TestDatabase } from './support/testApp.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A platform template update racing bindTemplate / a re-bind: whichever commits first, every bound
 * tenant's task ends on the template as updated. Needs real concurrency, so PostgreSQL only.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('template bindings racing a template update (postgres)', () => {
  let db: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    t = await createTestApp('postgres', { database: db, env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('binds with the updated template when an update of it is in flight, and re-binds onto it', async () => {
    const platform = t.app.templateSvc.forTenant('platform');
    await platform.create({
      fullName: 'tasks.Report',
      title: 'Report',
      repeatType: 'CRON' as any,
      funcName: 'chronograph.echo',
      cronExpression: '0 6 * * *',
    });
    const acme = await t.app.bindings.bind('tasks.Report', 'acme');

    // Hold acme's task so that the update below stops inside its transaction, after updating the template row.
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT task_id FROM task_state WHERE binding_id = $1::uuid FOR UPDATE', [acme.binding.id]);
      const update = platform.update('tasks.Report', { cronExpression: '0 7 * * *' });
      await sleep(500);
      const bindNew = t.app.bindings.bind('tasks.Report', 'globex');
      const rebind = t.app.bindings.bind('tasks.Report', 'acme', { argDict: { region: 'eu' } });
      await sleep(500);
      await holder.query('COMMIT');
      const [globex] = await Promise.all([bindNew, rebind, update]);
      expect(globex.task?.cronExpression).toBe('0 7 * * *');
    } finally {
      await holder.end();
    }

    const live = await t.app.db.prisma.task.findMany({
      where: { source: 'TEMPLATE', status: 'SCHEDULED' },
      orderBy: { tenantId: 'asc' },
    });
    expect(live.map((task) => [task.tenantId, task.cronExpression, task.argDict])).toEqual([
      ['acme', '0 7 * * *', { region: 'eu' }],
      ['globex', '0 7 * * *', {}],
    ]);
  });

  // deleteTaskTemplate counted bindings and live tasks before its delete, outside any transaction: a bind
  // committing in between was deleted with the template (the binding cascades), and left its tenant a live
  // task with neither a binding nor a template to reach it.
  it('refuses to delete a template that a bind in flight binds, instead of deleting the new binding with it', async () => {
    const platform = t.app.templateSvc.forTenant('platform');
    const template = await platform.create({ fullName: 'tasks.Doomed', title: 'Doomed', funcName: 'chronograph.echo' });
    const binder = new pg.Client({ connectionString: db.url });
    await binder.connect();
    let deleting: Promise<unknown> | undefined;
    try {
      // A bind in flight: its binding row is written (its foreign key holds the template), not committed.
      await binder.query('BEGIN');
      await binder.query(
        `INSERT INTO template_binding (id, template_id, tenant_id, updated_at) VALUES (gen_random_uuid(), $1::uuid, 'initech', now())`,
        [template.id],
      );
      deleting = platform.delete('tasks.Doomed').then(
        () => 'deleted',
        (error: { code?: string }) => error.code,
      );
      await sleep(300);
      await binder.query('COMMIT');
    } finally {
      await binder.end();
    }
    expect(await deleting).toBe('CONFLICT');
    expect(await t.app.db.prisma.templateBinding.count({ where: { templateId: template.id } })).toBe(1);
  });
});
