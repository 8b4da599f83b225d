import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { createDateFieldTemplate, dateFieldTasks } from './support/dateFields.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

const NOW = new Date('2029-06-01T00:00:00Z');
const LIVE = ['SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED'] as const;

/**
 * On PostgreSQL the hooks below really run at the same time, each in its own transaction on its own
 * pooled connection; on PGlite (one connection) they interleave between statements. Either way, the
 * partial unique index decides: one live task per (template, record).
 */
describe.each(backends)('concurrent date-field hooks (%s)', (backend) => {
  let t: TestApp;
  let taskSvc: TaskSvc;
  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW });
    taskSvc = t.app.getElement('services.TaskSvc') as TaskSvc;
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    await t.app.db.prisma.task.deleteMany({});
    await t.app.db.prisma.taskTemplate.deleteMany({ where: { origin: 'API' } });
    await createDateFieldTemplate(t);
    await createDateFieldTemplate(t, { fullName: 'tasks.ContractExpired' }, { offset: null, timeOfDay: null });
  });

  it('many concurrent saves of one new record leave exactly one live task per template', async () => {
    const rowObj = { model: 'models.Contract', postData: { id: 'c-1', expireDate: '2030-03-10' } };
    const results = await Promise.all(Array.from({ length: 24 }, () => taskSvc.saveDateFieldTask(rowObj)));
    const tasks = await dateFieldTasks(t);
    expect(
      tasks
        .filter((x) => (LIVE as readonly string[]).includes(x.status))
        .map((x) => x.fullName)
        .sort(),
    ).toEqual(['tasks.ContractExpired', 'tasks.ContractReminder']);
    expect(tasks).toHaveLength(2);
    // exactly one hook created each task; the others found it and left it alone
    expect(results.reduce((n, r) => n + r.created, 0)).toBe(2);
    expect(results.reduce((n, r) => n + r.unchanged, 0)).toBe(46);
    for (const task of tasks) expect(task.events.map((e) => e.type)).toEqual(['CREATED']);
  });

  it('concurrent saves with different dates end with one live task holding one of those dates', async () => {
    const dates = Array.from({ length: 16 }, (_, i) => `2030-03-${String(10 + i).padStart(2, '0')}`);
    await Promise.all(
      dates.map((expireDate) =>
        t
          .gql(`mutation($rowObj: DateFieldRowInput!) { saveDateFieldTask(rowObj: $rowObj) { created } }`, {
            rowObj: { model: 'models.Contract', postData: { id: 'c-1', expireDate } },
          })
          .then(ok),
      ),
    );
    const live = await dateFieldTasks(t, { status: { in: [...LIVE] }, fullName: 'tasks.ContractExpired' });
    expect(live).toHaveLength(1);
    expect(dates.map((d) => `${d}T00:00:00.000Z`)).toContain(live[0]!.startTime.toISOString());
    expect(await t.app.db.prisma.task.count({ where: { source: 'DATE_FIELD' } })).toBe(2);
  });

  it('concurrent saves and deletes never leave two live tasks', async () => {
    const save = { model: 'models.Contract', postData: { id: 'c-2', expireDate: '2030-03-10' } };
    const del = { model: 'models.Contract', prevData: { id: 'c-2' } };
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 3 === 2 ? taskSvc.deleteDateFieldTask(del) : taskSvc.saveDateFieldTask(save))),
    );
    for (const fullName of ['tasks.ContractReminder', 'tasks.ContractExpired']) {
      expect(await t.app.db.prisma.task.count({ where: { fullName, sourceRowId: 'c-2', status: { in: [...LIVE] } } })).toBeLessThanOrEqual(
        1,
      );
    }
    await taskSvc.saveDateFieldTask(save);
    expect(await t.app.db.prisma.task.count({ where: { sourceRowId: 'c-2', status: { in: [...LIVE] } } })).toBe(2);
  });

  it('the database itself refuses a second live task for a (template, record)', async () => {
    await taskSvc.saveDateFieldTask({ model: 'models.Contract', postData: { id: 'c-3', expireDate: '2030-03-10' } });
    const [task] = await dateFieldTasks(t, { sourceRowId: 'c-3', fullName: 'tasks.ContractReminder' });
    const { id: _id, createdAt: _c, updatedAt: _u, events: _e, argDict, ...copy } = task!;
    await expect(t.app.db.prisma.task.create({ data: { ...copy, argDict: argDict as object } })).rejects.toMatchObject({ code: 'P2002' });
    // a finished one does not count: history can hold many
    await taskSvc.cancelTask(task!.id);
    await t.app.db.prisma.task.create({ data: { ...copy, argDict: argDict as object } });
    expect(errorCode(await t.gql(`mutation { reconcileDateFieldTasks(model: "models.Contract!") { created } }`))).toBe('BAD_USER_INPUT');
  });
});
