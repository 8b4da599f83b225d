import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sseSubscribe } from './support/subscriptions.js';
import { backends, createTestApp, createTestDatabase, ok, type TestApp, type TestDatabase, withClient } from './support/testApp.js';

/**
 * "task" is a view of two tables (migration 20261207000000_task_state): task_spec, which a run never
 * writes, and task_state, which holds the status, the lease and the columns of the indexes that name the
 * status. Reads and Prisma's writes go through the view, whose INSTEAD OF triggers write the tables.
 */
describe.each(backends)('the task view (%s)', (backend) => {
  let t: TestApp;
  const LIST = `query($filter: TaskFilter) { tasks(first: 50, filter: $filter) { edges { node { id fullName funcName } } } }`;
  const ids = async (filter: Record<string, unknown>, headers?: Record<string, string>) =>
    (ok(await t.gql(LIST, { filter }, headers)).tasks.edges as { node: { id: string } }[]).map((e) => e.node.id).sort();
  /** Each table's row version of a task (xmin): whether a statement wrote it. */
  const versions = async (id: string) =>
    (
      await t.app.db.sql.query<{ spec: string; state: string }>(
        `SELECT (SELECT xmin::text FROM task_spec WHERE id = $1::uuid) AS spec, (SELECT xmin::text FROM task_state WHERE task_id = $1::uuid) AS state`,
        [id],
      )
    )[0]!;

  beforeAll(async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    for (const tenant of ['default', 'other']) {
      await t.app.templateSvc.forTenant(tenant).create({ fullName: 'tasks.Alpha', title: 'Alpha', funcName: 'chronograph.noop' });
      await t.app.templateSvc.forTenant(tenant).create({ fullName: 'tasks.Beta', title: 'Beta', funcName: 'chronograph.echo' });
    }
  });
  afterAll(() => t?.close());

  it('filters the task list by name and handler within the tenant, and follows every write of a task', async () => {
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

    // A Prisma update of a spec column writes task_spec (and the state's updated_at).
    const before = await versions(a2!.id);
    await t.app.db.prisma.task.update({ where: { id: a2!.id }, data: { funcName: 'chronograph.echo' } });
    expect((await versions(a2!.id)).spec).not.toBe(before.spec);
    expect(await ids({ funcName: 'chronograph.echo' })).toEqual([a2!.id, b1.id].sort());
    expect(await ids({ fullName: 'tasks.Alpha', funcName: 'chronograph.noop' })).toEqual([a1!.id]);
    // An update of the state alone (what a run, a pause or a retry does) leaves task_spec's row alone.
    const spec = (await versions(a1!.id)).spec;
    await t.app.db.sql.query(`UPDATE task SET priority = 5, updated_at = now() WHERE id = $1::uuid`, [a1!.id]);
    expect(await versions(a1!.id)).toMatchObject({ spec });
    expect(await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: a1!.id } })).toMatchObject({
      priority: 5,
      funcName: 'chronograph.noop',
    });

    // A deleted task leaves no row behind in either table.
    await svc.cancelTask(b1.id);
    expect(ok(await t.gql(`mutation($id: ID!) { deleteTask(taskId: $id) }`, { id: b1.id })).deleteTask).toBe(b1.id);
    expect(await ids({ funcName: 'chronograph.echo' })).toEqual([a2!.id]);
    expect(await versions(b1.id)).toEqual({ spec: null, state: null });
  });

  it('creates a task through the view with the tables’ defaults, and a unique key holds across both ways of creating', async () => {
    const id = '01900000-0000-7000-8000-000000000001';
    const [row] = await t.app.db.sql.query<Record<string, unknown>>(
      `INSERT INTO task (id, full_name, task_type, func_name, start_time, next_run_at, unique_key, updated_at)
       VALUES ($1::uuid, 'tasks.Alpha', 'tasks.NormalType', 'chronograph.noop', now(), now() + interval '1 day', 'only-one', now())
       RETURNING status::text, tenant_id, priority, queue, max_attempts, arg_dict, revision`,
      [id],
    );
    expect(row).toEqual({
      status: 'SCHEDULED',
      tenant_id: 'default',
      priority: 0,
      queue: 'default',
      max_attempts: 1,
      arg_dict: {},
      revision: 0,
    });
    // The bulk insert writes the tables itself: the live unique key on task_state still skips the duplicate.
    const [dup] = await t.app.taskSvc.createTimerTasks([
      { fullName: 'tasks.Alpha', startTime: '2099-01-01T00:00:00Z', uniqueKey: 'only-one' },
    ]);
    expect(dup).toMatchObject({ id, deduplicated: true });
  });

  it('replays a subscription from a cursor through the name and handler filters', async () => {
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

  it('is emptied by a TRUNCATE of task_spec CASCADE (nothing in Chronograph truncates; an operator might)', async () => {
    expect((await t.app.db.sql.query<{ n: number }>('SELECT count(*)::int AS n FROM task'))[0]!.n).toBeGreaterThan(0);
    await t.app.db.sql.query('TRUNCATE task_spec CASCADE');
    expect(
      await t.app.db.sql.query('SELECT (SELECT count(*) FROM task_spec)::int AS spec, (SELECT count(*) FROM task_state)::int AS state'),
    ).toEqual([{ spec: 0, state: 0 }]);
  });
});

/**
 * The view's rows are read without locks, so an UPDATE through it writes a task only while its status
 * and revision are still those it read (checked again after waiting for a concurrent writer), and writes
 * only the columns it changed: a lease extended meanwhile is kept.
 */
describe.skipIf(!process.env.TEST_DATABASE_URL)('an update through the task view beside a concurrent writer (postgres)', () => {
  let t: TestApp;
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    t = await createTestApp('postgres', { database, env: { SCHEDULER_ENABLED: 'false' } });
    await t.app.templateSvc.create({ fullName: 'tasks.Alpha', title: 'Alpha', funcName: 'chronograph.noop' });
  });
  afterAll(async () => {
    await t?.close();
    await database?.drop();
  });

  /** Runs `first` in a transaction of its own connection, starts `second` (which waits for its row lock), then commits. */
  async function whileLocked<T>(first: string, params: unknown[], second: () => Promise<T>): Promise<T> {
    return withClient(database.url!, async (client) => {
      await client.query('BEGIN');
      await client.query(first, params);
      // Awaited at once: a Prisma query is sent only when something awaits it.
      const waiting = (async () => await second())();
      // The second statement waits for the row lock (a session of this database waiting on a lock; pg_locks
      // is the whole server's, where other tests' sessions wait too). pg_stat_activity is read once per
      // transaction unless its snapshot is cleared, and this one is in a transaction.
      let waited = false;
      for (let i = 0; i < 1000 && !waited; i++) {
        await client.query('SELECT pg_stat_clear_snapshot()');
        const { rows } = await client.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'UPDATE "public"."task"%'`,
        );
        waited = rows[0].n > 0;
        if (!waited) await new Promise((r) => setTimeout(r, 10));
      }
      expect(waited).toBe(true);
      await client.query('COMMIT');
      return waiting;
    });
  }

  it('keeps a lease extended while it waited, and writes what it changed', async () => {
    const task = await t.app.taskSvc.createTimerTask({ fullName: 'tasks.Alpha', startTime: '2099-01-01T00:00:00Z' });
    const lease = '2099-02-01T00:00:00.000Z';
    const updated = await whileLocked(`UPDATE task_state SET locked_until = $2 WHERE task_id = $1::uuid`, [task.id, lease], () =>
      t.app.db.prisma.task.updateManyAndReturn({ where: { id: task.id, status: 'SCHEDULED' }, data: { priority: 7 } }),
    );
    expect(updated).toHaveLength(1);
    expect(updated[0]).toMatchObject({ priority: 7 });
    expect(updated[0]!.lockedUntil?.toISOString()).toBe(lease);
  });

  it('leaves a task whose status changed while it waited', async () => {
    const task = await t.app.taskSvc.createTimerTask({ fullName: 'tasks.Alpha', startTime: '2099-01-01T00:00:00Z' });
    const updated = await whileLocked(`UPDATE task_state SET status = 'PAUSED' WHERE task_id = $1::uuid`, [task.id], () =>
      t.app.db.prisma.task.updateManyAndReturn({ where: { id: task.id, status: 'SCHEDULED' }, data: { status: 'CANCELLED' } }),
    );
    expect(updated).toEqual([]);
    expect(await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task.id } })).toMatchObject({ status: 'PAUSED' });
  });

  it('leaves a task edited while it waited (its revision changed)', async () => {
    const task = await t.app.taskSvc.createTimerTask({ fullName: 'tasks.Alpha', startTime: '2099-01-01T00:00:00Z' });
    const updated = await whileLocked(
      `UPDATE task_state SET revision = revision + 1, priority = 3 WHERE task_id = $1::uuid`,
      [task.id],
      () => t.app.db.prisma.task.updateManyAndReturn({ where: { id: task.id }, data: { priority: 9 } }),
    );
    expect(updated).toEqual([]);
    expect(await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task.id } })).toMatchObject({ priority: 3, revision: 1 });
  });
});
