import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, AUTH_ENV, createKey } from './support/auth.js';
import { holdTask } from './support/runs.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

/** History you can query (issue 13 item 4): runs, events and logs as connections with totalCount, and runStats. */
describe.each(backends)('history queries (%s)', (backend) => {
  let t: TestApp;
  const ids: { ok: string[]; failed: string }[] = [];
  let asA: Record<string, string>;
  let asB: Record<string, string>;

  beforeAll(async () => {
    t = await createTestApp(backend, {
      env: AUTH_ENV,
      setup(app) {
        app.handlers.register('test.logs', (args, ctx) => {
          ctx.logger.info(`echo ${String(args.i)}`);
          if (args.i === 0) ctx.logger.error('took too long: timeout nearly reached');
          return args;
        });
      },
    });
    asA = { ...ADMIN, 'x-tenant-id': 'a' };
    asB = (await createKey(t, 'b', 'VIEWER')).headers;
    const templates = t.app.templateSvc.forTenant('a');
    await templates.create({ fullName: 'tasks.Echo', title: 'Echo', funcName: 'test.logs' });
    await templates.create({ fullName: 'tasks.Fail', title: 'Fail', funcName: 'chronograph.fail', maxAttempts: 1 });
    const svc = t.app.taskSvc.forTenant('a');
    const now = new Date().toISOString();
    const done = await svc.createTimerTasks(
      Array.from({ length: 5 }, (_, i) => ({ fullName: 'tasks.Echo', startTime: now, argDict: { i } })),
    );
    const failed = await svc.createTimerTask({ fullName: 'tasks.Fail', startTime: now });
    for (const task of [...done, failed]) await svc.waitForTask(task.id, { timeoutMs: 20_000 });
    ids.push({ ok: done.map((d) => d.id), failed: failed.id });
  });
  afterAll(() => t?.close());

  it("taskRuns filters by status through the runs' events: finished statuses, RUNNING, and both", async () => {
    // A run in progress, as another instance's claim leaves it: its task RUNNING under the run's lease.
    const svc = t.app.taskSvc.forTenant('a');
    const waiting = await svc.createTimerTask({ fullName: 'tasks.Echo', startTime: '2099-01-01T00:00:00Z' });
    const run = await holdTask(t.app.db.prisma, { taskId: waiting.id, tenantId: 'a', attempt: 1, workerId: 'elsewhere', leaseMs: 600_000 });
    try {
      const runs = async (status: string) =>
        ok(await t.gql(`{ taskRuns(filter: { status: ${status} }) { totalCount edges { node { id status task { id } } } } }`, {}, asA))
          .taskRuns;
      const running = await runs('[RUNNING]');
      expect(running.totalCount).toBe(1);
      expect(running.edges).toEqual([{ node: { id: run.id, status: 'RUNNING', task: { id: waiting.id } } }]);
      const succeeded = await runs('[SUCCEEDED]');
      expect(succeeded.totalCount).toBe(5);
      expect(new Set(succeeded.edges.map((e: any) => e.node.task.id))).toEqual(new Set(ids[0]!.ok));
      const either = await runs('[FAILED, RUNNING]');
      expect(either.totalCount).toBe(2);
      expect(either.edges.map((e: any) => e.node.status).sort()).toEqual(['FAILED', 'RUNNING']);
      expect((await runs('[TIMED_OUT]')).totalCount).toBe(0);
    } finally {
      await svc.forcedEnd(waiting.id, 'test over');
      await svc.deleteTask(waiting.id);
    }
  });

  it('taskRuns pages oldest first with totalCount and filters by status, task, time and worker', async () => {
    const all = ok(
      await t.gql(
        `{ taskRuns(first: 2) { totalCount edges { node { status task { fullName } } } pageInfo { hasNextPage endCursor } } }`,
        {},
        asA,
      ),
    ).taskRuns;
    expect(all.totalCount).toBe(6);
    expect(all.edges).toHaveLength(2);
    expect(all.pageInfo.hasNextPage).toBe(true);
    // Paging forward reaches every run once.
    const seen: string[] = [];
    let after: string | null = null;
    do {
      const page: any = ok(
        await t.gql(
          `query($after: String) { taskRuns(first: 4, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }`,
          { after },
          asA,
        ),
      ).taskRuns;
      seen.push(...page.edges.map((e: any) => e.node.id));
      after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    } while (after);
    expect(new Set(seen).size).toBe(6);
    const failed = ok(
      await t.gql(`{ taskRuns(filter: { status: [FAILED] }) { totalCount edges { node { task { id } error } } } }`, {}, asA),
    ).taskRuns;
    expect(failed.totalCount).toBe(1);
    expect(failed.edges[0].node.task.id).toBe(ids[0]!.failed);
    const one = ok(
      await t.gql(`query($id: ID!) { taskRuns(filter: { taskId: $id }) { totalCount } }`, { id: ids[0]!.ok[0] }, asA),
    ).taskRuns;
    expect(one.totalCount).toBe(1);
    const future = ok(await t.gql(`{ taskRuns(filter: { from: "2100-01-01T00:00:00Z" }) { totalCount } }`, {}, asA)).taskRuns;
    expect(future.totalCount).toBe(0);
    const worker = ok(
      await t.gql(`query($w: String) { taskRuns(filter: { workerId: $w }) { totalCount } }`, { w: t.app.scheduler.workerId }, asA),
    ).taskRuns;
    expect(worker.totalCount).toBe(6);
    const newest = ok(await t.gql(`{ taskRuns(last: 1) { edges { node { task { id } } } } }`, {}, asA)).taskRuns;
    expect(newest.edges).toHaveLength(1);
  });

  it('taskEvents filters by statuses and types; runLogs by level and text', async () => {
    const events = ok(
      await t.gql(
        `{ taskEvents(filter: { statuses: [SUCCEEDED] }) { totalCount } created: taskEvents(filter: { types: [CREATED] }) { totalCount } }`,
        {},
        asA,
      ),
    );
    expect(events.taskEvents.totalCount).toBe(5);
    expect(events.created.totalCount).toBe(6);
    const logs = ok(
      await t.gql(`{ runLogs(first: 100) { totalCount edges { node { level message run { status } task { fullName } } } } }`, {}, asA),
    ).runLogs;
    expect(logs.totalCount).toBeGreaterThan(0);
    expect(logs.totalCount).toBe(6);
    const echo = ok(await t.gql(`{ runLogs(filter: { search: "ECHO" }) { totalCount } }`, {}, asA)).runLogs;
    expect(echo.totalCount).toBe(5);
    const errors = ok(
      await t.gql(
        `{ runLogs(filter: { levels: ["error"], search: "timeout" }) { totalCount edges { node { message task { id } } } } }`,
        {},
        asA,
      ),
    ).runLogs;
    expect(errors.totalCount).toBe(1);
    expect(errors.edges[0].node.task.id).toBe(ids[0]!.ok[0]);
  });

  it('runStats groups runs with counts, durations and failure rate', async () => {
    const byHandler = ok(
      await t.gql(`{ runStats(groupBy: HANDLER) { key total counts { status count } p50DurationMs p95DurationMs failureRate } }`, {}, asA),
    ).runStats;
    expect(byHandler).toEqual([
      {
        key: 'chronograph.fail',
        total: 1,
        counts: [{ status: 'FAILED', count: 1 }],
        p50DurationMs: expect.any(Number),
        p95DurationMs: expect.any(Number),
        failureRate: 1,
      },
      {
        key: 'test.logs',
        total: 5,
        counts: [{ status: 'SUCCEEDED', count: 5 }],
        p50DurationMs: expect.any(Number),
        p95DurationMs: expect.any(Number),
        failureRate: 0,
      },
    ]);
    const byDay = ok(await t.gql(`{ runStats(groupBy: DAY) { key total } }`, {}, asA)).runStats;
    expect(byDay.reduce((n: number, r: any) => n + r.total, 0)).toBe(6);
    expect(byDay[0].key).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(ok(await t.gql(`{ runStats(groupBy: QUEUE, from: "2100-01-01T00:00:00Z") { key } }`, {}, asA)).runStats).toEqual([]);
  });

  it('runStats counts each run as the view task_run has it: running, cancelled, failed and succeeded, days in UTC', async () => {
    // Two runs in progress, as another instance's claim leaves them; one is then force-ended (CANCELLED).
    const svc = t.app.taskSvc.forTenant('a');
    const prisma = t.app.db.prisma;
    const staged: string[] = [];
    try {
      for (const fullName of ['tasks.Echo', 'tasks.Fail']) {
        const task = await svc.createTimerTask({ fullName, startTime: '2099-01-01T00:00:00Z' });
        staged.push(task.id);
        await holdTask(prisma, { taskId: task.id, tenantId: 'a', attempt: 1, workerId: 'elsewhere', leaseMs: 600_000 });
      }
      await svc.forcedEnd(staged[1]!, 'stopped by the test');
      const expected = async (key: string, join: string) => {
        const rows = await prisma.$queryRawUnsafe<{ key: string; status: string; n: number }[]>(
          `SELECT ${key} AS key, r.status::text AS status, count(*)::int AS n
             FROM task_run r ${join} WHERE r.tenant_id = 'a' GROUP BY 1, 2`,
        );
        const medians = await prisma.$queryRawUnsafe<{ key: string; p50: number | null }[]>(
          `SELECT ${key} AS key, percentile_cont(0.5) WITHIN GROUP (ORDER BY r.duration_ms) FILTER (WHERE r.status <> 'RUNNING') AS p50
             FROM task_run r ${join} WHERE r.tenant_id = 'a' GROUP BY 1`,
        );
        const byKey = new Map<string, { key: string; total: number; counts: Map<string, number>; p50: number | null }>();
        for (const row of rows) {
          const p50 = medians.find((m) => m.key === row.key)!.p50;
          const entry = byKey.get(row.key) ?? { key: row.key, total: 0, counts: new Map(), p50: p50 == null ? null : Number(p50) };
          entry.total += row.n;
          entry.counts.set(row.status, row.n);
          byKey.set(row.key, entry);
        }
        return [...byKey.values()]
          .sort((a, b) => (a.key < b.key ? -1 : 1))
          .map(({ key, total, counts, p50 }) => {
            const n = (s: string) => counts.get(s) ?? 0;
            const ended = total - n('RUNNING') - n('CANCELLED');
            const failed = ['FAILED', 'TIMED_OUT', 'MEMORY_LIMIT', 'CRASHED', 'ABANDONED'].reduce((sum, s) => sum + n(s), 0);
            return {
              key,
              total,
              counts: [...counts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([status, count]) => ({ status, count })),
              p50DurationMs: p50,
              failureRate: ended === 0 ? null : failed / ended,
            };
          });
      };
      const stats = async (groupBy: string) =>
        ok(await t.gql(`{ runStats(groupBy: ${groupBy}) { key total counts { status count } p50DurationMs failureRate } }`, {}, asA))
          .runStats;
      const byHandler = await stats('HANDLER');
      expect(byHandler).toEqual(await expected('t.func_name', 'JOIN task t ON t.id = r.task_id'));
      // The staged runs are there: one RUNNING (test.logs), one CANCELLED beside the FAILED one (chronograph.fail).
      expect(byHandler.map((r: any) => r.counts)).toEqual([
        [
          { status: 'CANCELLED', count: 1 },
          { status: 'FAILED', count: 1 },
        ],
        [
          { status: 'RUNNING', count: 1 },
          { status: 'SUCCEEDED', count: 5 },
        ],
      ]);
      expect(await stats('DAY')).toEqual(await expected(`to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`, ''));
    } finally {
      for (const id of staged) {
        await svc.forcedEnd(id, 'test over').catch(() => {});
        await svc.deleteTask(id);
      }
    }
  });

  it("another tenant sees none of it, and another tenant's task id is NOT_FOUND", async () => {
    const read = ok(
      await t.gql(
        `{ taskRuns { totalCount } taskEvents { totalCount } runLogs { totalCount } runStats(groupBy: TEMPLATE) { key } tasks { totalCount } }`,
        {},
        asB,
      ),
    );
    expect(read).toEqual({
      taskRuns: { totalCount: 0 },
      taskEvents: { totalCount: 0 },
      runLogs: { totalCount: 0 },
      runStats: [],
      tasks: { totalCount: 0 },
    });
    expect(
      errorCode(await t.gql(`query($id: ID!) { taskRuns(filter: { taskId: $id }) { totalCount } }`, { id: ids[0]!.failed }, asB)),
    ).toBe('NOT_FOUND');
    expect(errorCode(await t.gql(`query($id: ID!) { runLogs(filter: { taskId: $id }) { totalCount } }`, { id: ids[0]!.failed }, asB))).toBe(
      'NOT_FOUND',
    );
  });
});
