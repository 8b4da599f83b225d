import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN, AUTH_ENV } from './support/auth.js';
import { backends, createTestApp, createTestDatabase, ok, type TestApp, type TestDatabase } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const CREATE_MANY = `mutation($inputs: [TimerTaskInput!]!) { createTimerTasks(inputs: $inputs) { id } }`;
const SET_QUOTA = `mutation($tenantId: String!, $input: TenantQuotaInput!) { setTenantQuota(tenantId: $tenantId, input: $input) { id } }`;

/**
 * Fair scheduling (issue 8): tenants take turns in every claim, priority orders tasks only within a
 * tenant, one tenant's long tasks cannot hold every slot while another tenant waits, and a tenant's
 * maxConcurrentRuns holds across instances.
 */
describe.each(backends)('fair scheduling (%s)', (backend) => {
  const open: TestApp[] = [];
  let database: TestDatabase | undefined;

  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
    await database?.drop();
    database = undefined;
  });

  async function start(env: Record<string, string>, shared?: TestDatabase): Promise<TestApp> {
    const t = await createTestApp(backend, { env: { ...AUTH_ENV, LOG_LEVEL: 'error', ...env }, database: shared });
    open.push(t);
    return t;
  }

  /** Creates `count` sleeping tasks in `tenantId` (as its ADMIN), due at `startTime` (now when omitted). */
  async function createIn(t: TestApp, tenantId: string, count: number, task: { priority?: number; ms: number; startTime?: string }) {
    await t.app.templateSvc
      .forTenant(tenantId)
      .create({ fullName: 'tasks.Sleep', title: 'Sleep', funcName: 'chronograph.sleep' })
      .catch(() => {});
    const inputs = Array.from({ length: count }, () => ({
      fullName: 'tasks.Sleep',
      argDict: { ms: task.ms },
      priority: task.priority ?? 0,
      startTime: task.startTime ?? new Date().toISOString(),
    }));
    return ok(
      await t.gql<{ createTimerTasks: { id: string }[] }>(CREATE_MANY, { inputs }, { ...ADMIN, 'x-tenant-id': tenantId }),
    ).createTimerTasks.map((x) => x.id);
  }

  const running = (t: TestApp, tenantId: string) => t.app.db.prisma.task.count({ where: { tenantId, status: 'RUNNING' } });

  it("one tenant's long top-priority tasks leave a slot for another tenant's due task", async () => {
    // CONCURRENCY 4, TENANT_SLOT_SHARE 0.75: while both tenants have waiting tasks, one holds at most 3 slots.
    const t = await start({ CONCURRENCY: '4' });
    // The installation has more than one tenant (polite has a task for next year).
    await createIn(t, 'polite', 1, { ms: 0, startTime: new Date(Date.now() + 365 * 86_400_000).toISOString() });
    await createIn(t, 'hog', 20, { priority: 1000, ms: 60_000 });
    await waitFor(async () => (await running(t, 'hog')) === 3, { timeoutMs: 15_000 });
    const [late] = await createIn(t, 'polite', 1, { priority: -1000, ms: 0 });
    await waitFor(async () => (await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: late! } })).status === 'SUCCEEDED', {
      timeoutMs: 15_000,
    });
    expect(await running(t, 'hog')).toBe(3);
  });

  it('a single tenant still gets every slot', async () => {
    const t = await start({ CONCURRENCY: '4' });
    await createIn(t, 'alone', 6, { ms: 60_000 });
    await waitFor(async () => (await running(t, 'alone')) === 4, { timeoutMs: 15_000 });
  });

  it('tenants take turns in a claim: priority orders tasks within a tenant, not across tenants', async () => {
    const t = await start({ CONCURRENCY: '2' });
    const startTime = new Date(Date.now() + 1500).toISOString();
    await createIn(t, 'high', 4, { priority: 100, ms: 200, startTime });
    await createIn(t, 'low', 4, { priority: 0, ms: 200, startTime });
    await waitFor(async () => (await t.app.db.prisma.task.count({ where: { status: 'SUCCEEDED' } })) === 8, { timeoutMs: 20_000 });
    const runs = await t.app.db.prisma.taskRun.findMany({ orderBy: [{ startedAt: 'asc' }, { id: 'asc' }], select: { tenantId: true } });
    // One slot each (2 × 0.75 rounds down to 1): the first two runs, and every pair after, are one of each tenant.
    for (let i = 0; i < runs.length; i += 2) expect(new Set([runs[i]!.tenantId, runs[i + 1]!.tenantId])).toEqual(new Set(['high', 'low']));
  });

  it('maxConcurrentRuns holds across instances, counted by the claim itself', async () => {
    // PGlite is one process's database: two instances share one only on PostgreSQL. Two slots each (and
    // every slot open to one tenant): only the two together could go over the limit of 3.
    database = backend === 'postgres' ? await createTestDatabase(backend) : undefined;
    const env = { CONCURRENCY: database ? '2' : '4', TENANT_SLOT_SHARE: '1' };
    const first = await start({ ...env, WORKER_ID: 'one' }, database);
    if (database) await start({ ...env, WORKER_ID: 'two' }, database);
    ok(await first.gql(SET_QUOTA, { tenantId: 'capped', input: { maxConcurrentRuns: 3 } }, ADMIN));
    const ids = await createIn(first, 'capped', 12, { ms: 300, startTime: new Date(Date.now() + 1500).toISOString() });
    await waitFor(async () => (await first.app.db.prisma.task.count({ where: { status: 'SUCCEEDED' } })) === 12, { timeoutMs: 30_000 });
    const runs = await first.app.db.prisma.taskRun.findMany({
      where: { taskId: { in: ids } },
      select: { startedAt: true, finishedAt: true },
    });
    expect(runs).toHaveLength(12);
    // The most runs of the tenant that were ever going at once (an end before a start at the same instant).
    const edges = runs.flatMap((r) => [
      { at: r.startedAt.getTime(), delta: 1 },
      { at: r.finishedAt!.getTime(), delta: -1 },
    ]);
    edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
    let now = 0;
    let most = 0;
    for (const e of edges) most = Math.max(most, (now += e.delta));
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThanOrEqual(2);
  });
});
