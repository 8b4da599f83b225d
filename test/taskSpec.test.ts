import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sseSubscribe } from './support/subscriptions.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

/**
 * task_spec holds each task's name, handler and creation time again, indexed where a run does not write
 * (migration 20261205030000_task_spec); triggers on task keep it in step. The task list's name and
 * handler filters and the per-minute creation quota read it.
 */
describe.each(backends)('task_spec (%s)', (backend) => {
  let t: TestApp;
  const LIST = `query($filter: TaskFilter) { tasks(first: 50, filter: $filter) { edges { node { id fullName funcName } } } }`;
  const ids = async (filter: Record<string, unknown>, headers?: Record<string, string>) =>
    (ok(await t.gql(LIST, { filter }, headers)).tasks.edges as { node: { id: string } }[]).map((e) => e.node.id).sort();

  beforeAll(async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    for (const tenant of ['default', 'other']) {
      await t.app.templateSvc.forTenant(tenant).create({ fullName: 'tasks.Alpha', title: 'Alpha', funcName: 'chronograph.noop' });
      await t.app.templateSvc.forTenant(tenant).create({ fullName: 'tasks.Beta', title: 'Beta', funcName: 'chronograph.echo' });
    }
  });
  afterAll(() => t?.close());

  /** Rows of task and of task_spec that do not match one another (none when they are in step). */
  const mismatches = () =>
    t.app.db.sql.query<{ id: string }>(
      `SELECT coalesce(t.id, s.task_id)::text AS id FROM task t FULL JOIN task_spec s ON s.task_id = t.id
        WHERE t.id IS NULL OR s.task_id IS NULL OR (t.tenant_id, t.full_name, t.func_name, t.created_at) IS DISTINCT FROM
              (s.tenant_id, s.full_name, s.func_name, s.created_at)`,
    );

  it('filters the task list by name and handler, within the tenant, and stays in step with every change of a task', async () => {
    const later = '2099-01-01T00:00:00Z';
    const svc = t.app.taskSvc;
    const [a1, a2] = await svc.createTimerTasks([
      { fullName: 'tasks.Alpha', startTime: later },
      { fullName: 'tasks.Alpha', startTime: later },
    ]);
    const b1 = await svc.createTimerTask({ fullName: 'tasks.Beta', startTime: later });
    const other = await svc.forTenant('other').createTimerTask({ fullName: 'tasks.Alpha', startTime: later });
    expect(await ids({ fullName: 'tasks.Alpha' })).toEqual([a1!.id, a2!.id].sort());
    expect(await ids({ funcName: 'chronograph.echo' })).toEqual([b1.id]);
    expect(await ids({ fullName: 'tasks.Alpha', funcName: 'chronograph.echo' })).toEqual([]);
    expect(await ids({ fullName: 'tasks.Alpha' }, { 'x-tenant-id': 'other' })).toEqual([other.id]);

    // Whatever writes the task's handler (a template or binding change does, through Prisma), the filter follows.
    await t.app.db.prisma.task.update({ where: { id: a2!.id }, data: { funcName: 'chronograph.echo' } });
    expect(await ids({ funcName: 'chronograph.echo' })).toEqual([a2!.id, b1.id].sort());
    expect(await ids({ fullName: 'tasks.Alpha', funcName: 'chronograph.noop' })).toEqual([a1!.id]);
    // An update that leaves those columns alone (what a run does) leaves task_spec alone.
    await t.app.db.sql.query(`UPDATE task SET priority = 5, updated_at = now() WHERE id = $1::uuid`, [a1!.id]);
    expect(await mismatches()).toEqual([]);

    // A deleted task leaves no row behind.
    await svc.cancelTask(b1.id);
    expect(ok(await t.gql(`mutation($id: ID!) { deleteTask(taskId: $id) }`, { id: b1.id })).deleteTask).toBe(b1.id);
    expect(await ids({ funcName: 'chronograph.echo' })).toEqual([a2!.id]);
    expect(await t.app.db.sql.query(`SELECT 1 FROM task_spec WHERE task_id = $1::uuid`, [b1.id])).toEqual([]);
    expect(await mismatches()).toEqual([]);
  });

  it('replays a subscription from a cursor through the same filters', async () => {
    const later = '2099-01-01T00:00:00Z';
    const after = (await t.app.db.sql.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM task_event'))[0]!.id;
    await t.app.taskSvc.createTimerTask({ fullName: 'tasks.Beta', startTime: later });
    const alpha = await t.app.taskSvc.createTimerTask({ fullName: 'tasks.Alpha', startTime: later });
    const SUB = `subscription($filter: TaskEventFilter, $after: String) { taskStatusChanged(filter: $filter, after: $after) { type task { id fullName } } }`;
    for (const [filter, expected] of [
      [{ fullName: 'tasks.Alpha' }, alpha.id],
      [{ funcName: 'chronograph.noop' }, alpha.id],
    ] as const) {
      const sub = await sseSubscribe(t.app, SUB, { filter, after });
      const first = (await sub.results.next()).value!;
      await sub.close();
      // Beta's CREATED event comes first: a filter that let it through would show here.
      expect(first.data.taskStatusChanged).toMatchObject({ type: 'CREATED', task: { id: expected } });
    }
  });

  it('is emptied by a TRUNCATE of task (nothing in Chronograph truncates; an operator might)', async () => {
    expect((await t.app.db.sql.query<{ n: number }>('SELECT count(*)::int AS n FROM task_spec'))[0]!.n).toBeGreaterThan(0);
    await t.app.db.sql.query('TRUNCATE task CASCADE');
    expect(await t.app.db.sql.query('SELECT count(*)::int AS n FROM task_spec')).toEqual([{ n: 0 }]);
  });
});
