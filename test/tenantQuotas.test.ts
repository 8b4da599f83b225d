import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, AUTH_ENV } from './support/auth.js';
import { backends, createTestApp, createTestDatabase, type GqlResult, ok, type TestApp } from './support/testApp.js';

const CREATE = `mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id deduplicated } }`;
const CREATE_MANY = `mutation($inputs: [TimerTaskInput!]!) { createTimerTasks(inputs: $inputs) { id } }`;
const SET_QUOTA = `mutation($tenantId: String!, $input: TenantQuotaInput!) {
  setTenantQuota(tenantId: $tenantId, input: $input) { id quota { maxLiveTasks maxTasksCreatedPerMinute maxConcurrentRuns maxArgDictBytes } }
}`;
const TENANT = `query($id: String!) { tenant(id: $id) { id quota { maxLiveTasks maxTasksCreatedPerMinute maxConcurrentRuns maxArgDictBytes } usage { liveTasks runningTasks createdLastMinute } } }`;
const future = { fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00' };

/**
 * Quotas per tenant, counted in the database: a create that would exceed one is QUOTA_EXCEEDED (naming
 * the quota and its limit) and writes nothing — the whole batch, the record write that would have
 * created the task — also when several instances create at once.
 */
describe.each(backends)('tenant quotas (%s)', (backend) => {
  let t: TestApp;
  let serial = 0;

  beforeAll(async () => {
    t = await createTestApp(backend, { env: AUTH_ENV });
  });
  afterAll(() => t?.close());

  /** A fresh tenant with the fixture templates and the given quota; requests in it as its ADMIN. */
  async function tenantWith(quota: Record<string, number | null>) {
    const tenantId = `q${++serial}`;
    ok(await t.gql(SET_QUOTA, { tenantId, input: quota }, ADMIN));
    await t.app.templateSvc
      .forTenant(tenantId)
      .create({ fullName: 'tasks.DataSync', title: 'Sync', funcName: 'chronograph.echo', argDict: { base: 'x' } });
    const headers = { ...ADMIN, 'x-tenant-id': tenantId };
    const gql = (query: string, variables?: Record<string, unknown>) => t.gql(query, variables, headers);
    const counts = async () => ({
      tasks: await t.app.db.prisma.task.count({ where: { tenantId } }),
      events: await t.app.db.prisma.taskEvent.count({ where: { tenantId } }),
      records: await t.app.db.prisma.modelRecord.count({ where: { tenantId } }),
    });
    return { tenantId, headers, gql, counts };
  }

  function expectExceeded(result: GqlResult, quota: string, limit: number) {
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', quota, limit });
    expect(result.errors![0]!.message).toContain(`${quota} = ${limit}`);
  }

  it('stores quotas per tenant and reads them back with the usage', async () => {
    const { tenantId, gql } = await tenantWith({
      maxLiveTasks: 10,
      maxTasksCreatedPerMinute: 100,
      maxConcurrentRuns: 2,
      maxArgDictBytes: 4096,
    });
    ok(await gql(CREATE, { input: future }));
    expect(ok(await t.gql(TENANT, { id: tenantId }, ADMIN)).tenant).toEqual({
      id: tenantId,
      quota: { maxLiveTasks: 10, maxTasksCreatedPerMinute: 100, maxConcurrentRuns: 2, maxArgDictBytes: 4096 },
      usage: { liveTasks: 1, runningTasks: 0, createdLastMinute: 1 },
    });
    // The input is the whole quota: omitted fields become unlimited.
    ok(await t.gql(SET_QUOTA, { tenantId, input: { maxLiveTasks: 5 } }, ADMIN));
    expect(ok(await t.gql(TENANT, { id: tenantId }, ADMIN)).tenant.quota).toEqual({
      maxLiveTasks: 5,
      maxTasksCreatedPerMinute: null,
      maxConcurrentRuns: null,
      maxArgDictBytes: null,
    });
    // A tenant nobody configured is unlimited.
    expect(ok(await t.gql(TENANT, { id: 'never-seen' }, ADMIN)).tenant.quota.maxLiveTasks).toBeNull();
    const row = await t.app.db.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } });
    expect(row.maxConcurrentRuns).toBeNull();
  });

  it('refuses bad quota input with BAD_USER_INPUT and its field', async () => {
    for (const [variables, field] of [
      [{ tenantId: 'ok', input: { maxLiveTasks: -1 } }, 'maxLiveTasks'],
      [{ tenantId: 'ok', input: { maxArgDictBytes: -5 } }, 'maxArgDictBytes'],
      [{ tenantId: 'bad tenant', input: {} }, 'tenantId'],
      [{ tenantId: 'ok', input: { maxConcurrentRuns: 1.5 } }, 'maxConcurrentRuns'],
    ] as const) {
      const result = await t.gql(SET_QUOTA, variables, ADMIN);
      expect(result.errors?.[0]?.extensions, JSON.stringify(variables)).toMatchObject({ code: 'BAD_USER_INPUT', field });
    }
    expect(await t.app.db.prisma.tenant.findUnique({ where: { id: 'ok' } })).toBeNull();
    expect((await t.gql(TENANT, { id: 'no spaces' }, ADMIN)).errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'id',
    });
  });

  it('maxLiveTasks: refuses the create (a whole batch) that would exceed it, writing nothing', async () => {
    const q = await tenantWith({ maxLiveTasks: 3 });
    ok(await q.gql(CREATE_MANY, { inputs: [future, future] }));
    const before = await q.counts();
    expectExceeded(await q.gql(CREATE_MANY, { inputs: [future, future] }), 'maxLiveTasks', 3);
    expect(await q.counts()).toEqual(before);
    const third = ok(await q.gql(CREATE, { input: future })).createTimerTask;
    expectExceeded(await q.gql(CREATE, { input: future }), 'maxLiveTasks', 3);
    // A task that can no longer run frees its place.
    ok(await q.gql(`mutation($id: ID!) { cancelTask(taskId: $id) { id } }`, { id: third.id }));
    ok(await q.gql(CREATE, { input: future }));
    // A uniqueKey that a live task holds creates nothing, so it is answered, not refused.
    const keyed = { ...future, uniqueKey: 'k' };
    ok(await t.gql(SET_QUOTA, { tenantId: q.tenantId, input: { maxLiveTasks: 4 } }, ADMIN));
    const first = ok(await q.gql(CREATE, { input: keyed })).createTimerTask;
    expect(ok(await q.gql(CREATE, { input: keyed })).createTimerTask).toEqual({ id: first.id, deduplicated: true });
  });

  it('maxTasksCreatedPerMinute: counts creations, not live tasks', async () => {
    const q = await tenantWith({ maxTasksCreatedPerMinute: 2 });
    const a = ok(await q.gql(CREATE, { input: future })).createTimerTask;
    ok(await q.gql(`mutation($id: ID!) { cancelTask(taskId: $id) { id } }`, { id: a.id }));
    ok(await q.gql(CREATE, { input: future }));
    const before = await q.counts();
    expectExceeded(await q.gql(CREATE, { input: future }), 'maxTasksCreatedPerMinute', 2);
    expect(await q.counts()).toEqual(before);
  });

  it("maxArgDictBytes: measures the argDict as stored (merged with the template's), naming the field", async () => {
    const q = await tenantWith({ maxArgDictBytes: 40 });
    ok(await q.gql(CREATE, { input: { ...future, argDict: { n: 1 } } }));
    const before = await q.counts();
    const big = await q.gql(CREATE, { input: { ...future, argDict: { text: 'x'.repeat(40) } } });
    expectExceeded(big, 'maxArgDictBytes', 40);
    expect(big.errors![0]!.extensions).toMatchObject({ field: 'argDict' });
    const inBatch = await q.gql(CREATE_MANY, { inputs: [future, { ...future, argDict: { text: 'é'.repeat(15) } }] });
    expect(inBatch.errors?.[0]?.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', field: 'inputs[1].argDict' });
    expect(await q.counts()).toEqual(before);
  });

  it('counts tasks created from low-code records and date-field hooks; a refused record write writes nothing', async () => {
    const q = await tenantWith({ maxLiveTasks: 1 });
    await t.app.modelSvc.forTenant(q.tenantId).saveModel({ name: 'models.Contract', fields: [{ name: 'expireDate', type: 'DATE' }] });
    ok(
      await q.gql(
        `mutation { createTaskTemplate(input: { fullName: "tasks.Remind", title: "Remind", funcName: "chronograph.echo", repeatType: DATE_FIELD, dateField: { model: "models.Contract", field: "expireDate" } }) { id } }`,
      ),
    );
    const RECORD = `mutation($data: JSON!) { createModelRecord(model: "models.Contract", data: $data) { record { id } dateFields { created } } }`;
    expect(ok(await q.gql(RECORD, { data: { expireDate: '2030-01-01' } })).createModelRecord.dateFields.created).toBe(1);
    const before = await q.counts();
    expectExceeded(await q.gql(RECORD, { data: { expireDate: '2030-02-01' } }), 'maxLiveTasks', 1);
    expect(await q.counts()).toEqual(before);
    // The seed's hook for a model kept elsewhere, and a record without a date (no task) still works.
    ok(
      await q.gql(
        `mutation { createTaskTemplate(input: { fullName: "tasks.Ext", title: "Ext", funcName: "chronograph.echo", repeatType: DATE_FIELD, dateField: { model: "models.External", field: "due" } }) { id } }`,
      ),
    );
    const hook = await q.gql(
      `mutation { saveDateFieldTask(rowObj: { model: "models.External", postData: { id: "x1", due: "2030-05-05" } }) { created } }`,
    );
    expectExceeded(hook, 'maxLiveTasks', 1);
    expect(await t.app.db.prisma.dateFieldSource.count({ where: { tenantId: q.tenantId } })).toBe(0);
    ok(await q.gql(`mutation { saveDateFieldTask(rowObj: { model: "models.External", postData: { id: "x2" } }) { created } }`));
  });

  it('holds under concurrent creates: exactly the quota succeeds', async () => {
    const q = await tenantWith({ maxLiveTasks: 5 });
    const results = await Promise.all(Array.from({ length: 16 }, () => q.gql(CREATE, { input: future })));
    expect(results.filter((r) => !r.errors).length).toBe(5);
    expect(results.filter((r) => r.errors?.[0]?.extensions?.code === 'QUOTA_EXCEEDED').length).toBe(11);
    expect((await q.counts()).tasks).toBe(5);
  });
});

describe.runIf(backends.includes('postgres'))('tenant quotas across instances (postgres)', () => {
  it('holds maxLiveTasks and maxTasksCreatedPerMinute when two instances create at once', async () => {
    const database = await createTestDatabase('postgres');
    const a = await createTestApp('postgres', { env: AUTH_ENV, database });
    const b = await createTestApp('postgres', { env: AUTH_ENV, database });
    try {
      ok(await a.gql(SET_QUOTA, { tenantId: 'shared', input: { maxLiveTasks: 7 } }, ADMIN));
      ok(await a.gql(SET_QUOTA, { tenantId: 'burst', input: { maxTasksCreatedPerMinute: 9 } }, ADMIN));
      for (const tenantId of ['shared', 'burst']) {
        await a.app.templateSvc.forTenant(tenantId).create({ fullName: 'tasks.DataSync', title: 'Sync', funcName: 'chronograph.echo' });
      }
      for (const [tenantId, limit] of [
        ['shared', 7],
        ['burst', 9],
      ] as const) {
        const headers = { ...ADMIN, 'x-tenant-id': tenantId };
        // Batches of one and of two, alternating between the instances.
        const results = await Promise.all(
          Array.from({ length: 24 }, (_, i) => {
            const instance = i % 2 === 0 ? a : b;
            return i % 3 === 0
              ? instance.gql(CREATE_MANY, { inputs: [future, future] }, headers)
              : instance.gql(CREATE, { input: future }, headers);
          }),
        );
        const refused = results.filter((r) => r.errors?.[0]?.extensions?.code === 'QUOTA_EXCEEDED').length;
        expect(results.filter((r) => r.errors && r.errors[0]?.extensions?.code !== 'QUOTA_EXCEEDED')).toEqual([]);
        expect(refused).toBeGreaterThan(0);
        const stored = await a.app.db.prisma.task.count({ where: { tenantId } });
        expect(stored).toBeLessThanOrEqual(limit);
        // Whatever was refused wrote nothing: every stored task belongs to an accepted answer.
        const accepted = results.flatMap((r) => (r.errors ? [] : (r.data!.createTimerTasks ?? [r.data!.createTimerTask]))).length;
        expect(stored).toBe(accepted);
        expect(await a.app.db.prisma.taskEvent.count({ where: { tenantId } })).toBe(stored);
        // And the refusals were real: one more task would not have fitted.
        expect(stored).toBeGreaterThanOrEqual(limit - 1);
      }
    } finally {
      await a.close();
      await b.close();
      await database.drop();
    }
  });
});
