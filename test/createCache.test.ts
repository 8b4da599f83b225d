import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SqlRunner } from '../src/db/SqlPool.js';
import { backends, createTestApp, type TestApp } from './support/testApp.js';

/**
 * createTimerTask(s) builds its rows from templates and tenant quotas it keeps from earlier creates
 * (src/tasks/createCache.ts); its insert confirms, in the same statement, that those rows did not change.
 * A change made behind its back — by another instance, or plain SQL as here — applies to the very next
 * create, as it did when every create read them; and a warm single create is one statement.
 */
describe.each(backends)('templates and quotas kept between creates (%s)', (backend) => {
  let t: TestApp;
  const input = (extra: Record<string, unknown> = {}) => ({ fullName: 'tasks.DataSync', startTime: '2031-01-01T00:00:00Z', ...extra });
  const exec = (sql: string) => t.app.db.prisma.$executeRawUnsafe(sql);
  const count = () => t.app.db.prisma.task.count();

  beforeAll(async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    await exec(`UPDATE tenant SET max_live_tasks = NULL, max_tasks_created_per_minute = NULL, max_arg_dict_bytes = NULL`);
    await exec(`UPDATE task_template SET enabled = true, priority = 0 WHERE full_name = 'tasks.DataSync'`);
    await t.app.db.prisma.task.deleteMany({});
  });

  it('follows a template changed since it was last read, writing nothing for a create it now refuses', async () => {
    expect((await t.app.taskSvc.createTimerTask(input())).priority).toBe(0);
    await exec(`UPDATE task_template SET priority = 7 WHERE full_name = 'tasks.DataSync'`);
    expect((await t.app.taskSvc.createTimerTask(input())).priority).toBe(7);
    await exec(`UPDATE task_template SET enabled = false WHERE full_name = 'tasks.DataSync'`);
    await expect(t.app.taskSvc.createTimerTask(input())).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await count()).toBe(2);
    // Refused while disabled (from what it read); enabled again behind its back, the create goes through.
    await exec(`UPDATE task_template SET enabled = true WHERE full_name = 'tasks.DataSync'`);
    await t.app.taskSvc.createTimerTask(input());
    expect(await count()).toBe(3);
  });

  it('takes a template deleted and created again under the same name as the new one', async () => {
    await t.app.templateSvc.create({ fullName: 'tasks.Again', title: 'Again', funcName: 'chronograph.noop' });
    await t.app.taskSvc.createTimerTask(input({ fullName: 'tasks.Again' }));
    await exec(`DELETE FROM task_template WHERE full_name = 'tasks.Again'`);
    await expect(t.app.taskSvc.createTimerTask(input({ fullName: 'tasks.Again' }))).rejects.toMatchObject({ code: 'UNKNOWN_TEMPLATE' });
    const again = await t.app.templateSvc.create({ fullName: 'tasks.Again', title: 'Again', funcName: 'chronograph.noop', priority: 3 });
    const task = await t.app.taskSvc.createTimerTask(input({ fullName: 'tasks.Again' }));
    expect(task).toMatchObject({ templateId: again.id, priority: 3 });
  });

  it('holds quotas set since they were last read, and one lifted since', async () => {
    await t.app.taskSvc.createTimerTask(input({ argDict: { text: 'x'.repeat(100) } }));
    await exec(`UPDATE tenant SET max_arg_dict_bytes = 50 WHERE id = 'default'`);
    await expect(t.app.taskSvc.createTimerTask(input({ argDict: { text: 'x'.repeat(100) } }))).rejects.toMatchObject({
      code: 'QUOTA_EXCEEDED',
      details: { quota: 'maxArgDictBytes' },
    });
    await exec(`UPDATE tenant SET max_arg_dict_bytes = NULL, max_live_tasks = 2 WHERE id = 'default'`);
    await t.app.taskSvc.createTimerTask(input());
    await expect(t.app.taskSvc.createTimerTasks([input(), input()])).rejects.toMatchObject({
      code: 'QUOTA_EXCEEDED',
      details: { quota: 'maxLiveTasks' },
    });
    expect(await count()).toBe(2);
    await exec(`UPDATE tenant SET max_live_tasks = NULL WHERE id = 'default'`);
    await t.app.taskSvc.createTimerTasks([input(), input()]);
    expect(await count()).toBe(4);
  });

  it("creates a tenant's row with its first tasks, and not for a create it refuses", async () => {
    const rows = () => t.app.db.prisma.tenant.count({ where: { id: 'newcomer' } });
    const svc = t.app.taskSvc.forTenant('newcomer');
    await t.app.templateSvc.forTenant('newcomer').create({ fullName: 'tasks.Mine', title: 'Mine', funcName: 'chronograph.noop' });
    const before = await rows();
    await expect(svc.createTimerTask({ fullName: 'tasks.Nope', startTime: '2031-01-01T00:00:00Z' })).rejects.toMatchObject({
      code: 'UNKNOWN_TEMPLATE',
    });
    await expect(svc.createTimerTask({ fullName: 'tasks.Mine' })).rejects.toMatchObject({ code: 'INVALID_START_TIME' });
    expect(await rows()).toBe(before);
    await svc.createTimerTask({ fullName: 'tasks.Mine', startTime: '2031-01-01T00:00:00Z' });
    await svc.createTimerTask({ fullName: 'tasks.Mine', startTime: '2031-01-01T00:00:00Z' });
    expect(await rows()).toBe(1);
    expect(await t.app.db.prisma.task.count({ where: { tenantId: 'newcomer' } })).toBe(2);
  });

  it('sends one statement for a single create once the template and quotas are known', async () => {
    // Twice: the tenant's first tasks may have created its row, which the next create reads.
    await t.app.taskSvc.createTimerTask(input());
    await t.app.taskSvc.createTimerTask(input());
    const sql = t.app.db.sql as SqlRunner;
    const original = sql.query;
    const sent: string[] = [];
    sql.query = ((s, params) => {
      sent.push(typeof s === 'string' ? s : s.name);
      return original.call(sql, s, params);
    }) as SqlRunner['query'];
    try {
      await t.app.taskSvc.createTimerTask(input({ argDict: { n: 1 } }));
      await t.app.taskSvc.createTimerTasks([input({ argDict: { n: 2 } }), input({ argDict: { n: 3 } })]);
    } finally {
      sql.query = original;
    }
    expect(sent).toHaveLength(2);
    // Both prepared: the single create's one-row statement, and the batch's (src/tasks/bulkInsert.ts).
    expect(sent[0]).toMatch(/^chronograph_insert_tasks_\d+$/);
    expect(sent[1]).toMatch(/^chronograph_insert_tasks_\d+$/);
    expect(sent[1]).not.toBe(sent[0]);
    expect(await count()).toBe(5);
  });
});
