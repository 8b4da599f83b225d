import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

/**
 * A run's and an event's task_id is not a foreign key (migration 20261205040000_task_history_reference):
 * the trigger "task_deleted" removes a deleted task's runs, their logs and its events, as ON DELETE
 * CASCADE did, and leaves every other task's history alone.
 */
describe.each(backends)('a deleted task takes its history with it (%s)', (backend) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(backend, {
      env: { CONCURRENCY: '4' },
      setup(app) {
        app.handlers.register('test.logs', (_args, ctx) => {
          ctx.logger.info('ran');
          return 'done';
        });
      },
    });
    await t.app.templateSvc.create({ fullName: 'tasks.Logs', title: 'Logs', funcName: 'test.logs' });
  });
  afterAll(() => t?.close());

  const count = async (table: string, taskId: string) =>
    (await t.app.db.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE task_id = $1::uuid`, [taskId]))[0]!.n;
  const history = async (taskId: string) => ({
    runs: await count('task_run', taskId),
    logs: await count('task_run_log', taskId),
    events: await count('task_event', taskId),
  });

  it('deleteTask removes the runs, logs and events of that task only', async () => {
    const [gone, kept] = await t.app.taskSvc.createTimerTasks([
      { fullName: 'tasks.Logs', startTime: new Date().toISOString() },
      { fullName: 'tasks.Logs', startTime: new Date().toISOString() },
    ]);
    for (const task of [gone!, kept!]) {
      expect((await t.app.taskSvc.waitForTask(task.id, { timeoutMs: 10_000 })).status).toBe('SUCCEEDED');
    }
    const before = await history(kept!.id);
    expect(before).toEqual({ runs: 1, logs: 1, events: 3 });
    expect(await history(gone!.id)).toEqual(before);

    expect(ok(await t.gql(`mutation($id: ID!) { deleteTask(taskId: $id) }`, { id: gone!.id })).deleteTask).toBe(gone!.id);
    expect(await history(gone!.id)).toEqual({ runs: 0, logs: 0, events: 0 });
    expect(await history(kept!.id)).toEqual(before);
  });

  it('a statement that deletes many tasks removes the history of each of them', async () => {
    const tasks = await t.app.taskSvc.createTimerTasks(
      Array.from({ length: 5 }, () => ({ fullName: 'tasks.Logs', startTime: new Date().toISOString() })),
    );
    for (const task of tasks) await t.app.taskSvc.waitForTask(task.id, { timeoutMs: 10_000 });
    const ids = tasks.map((task) => task.id);
    await t.app.db.sql.query('DELETE FROM task WHERE id = ANY($1::uuid[])', [ids]);
    for (const id of ids) expect(await history(id)).toEqual({ runs: 0, logs: 0, events: 0 });
  });

  it('TRUNCATE task_spec CASCADE empties the history too (nothing in Chronograph truncates; an operator might)', async () => {
    const [task] = await t.app.taskSvc.createTimerTasks([{ fullName: 'tasks.Logs', startTime: new Date().toISOString() }]);
    await t.app.taskSvc.waitForTask(task!.id, { timeoutMs: 10_000 });
    await t.app.db.sql.query('TRUNCATE task_spec CASCADE');
    const left = await t.app.db.sql.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM task_run) + (SELECT count(*) FROM task_event) + (SELECT count(*) FROM task_run_log)::int AS n`,
    );
    expect(Number(left[0]!.n)).toBe(0);
    // A TRUNCATE that names the history tables itself empties them once (the trigger skips them).
    const [again] = await t.app.taskSvc.createTimerTasks([{ fullName: 'tasks.Logs', startTime: new Date().toISOString() }]);
    await t.app.taskSvc.waitForTask(again!.id, { timeoutMs: 10_000 });
    await t.app.db.sql.query('TRUNCATE task_spec, task_state, task_event, task_run_log');
    expect(await history(again!.id)).toEqual({ runs: 0, logs: 0, events: 0 });
  });
});
