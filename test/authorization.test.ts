import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../src/graphql/schema/index.js';
import { ADMIN, AUTH_ENV, bearer, createKey, hs256, post, unsigned } from './support/auth.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

/**
 * Roles and tenants, as an attacker would try them: a viewer that writes, an editor that administers,
 * a key of one tenant reaching into another (by id, by header, by request extensions), forged tokens.
 * Every refusal is FORBIDDEN (or NOT_FOUND / null for another tenant's rows) and writes nothing.
 */

const TABLES = [
  'task',
  'taskEvent',
  'taskTemplate',
  'modelDefinition',
  'modelRecord',
  'apiKey',
  'tenant',
  'templateBinding',
  'dateFieldSource',
] as const;

/** One call of every mutation, with arguments that would succeed for a caller allowed to make it. */
function mutations(ids: { task: string; record: string; key: string }): Record<string, [string, Record<string, unknown>?]> {
  const future = '{ fullName: "tasks.DataSync", startTime: "2030-01-01 10:00:00" }';
  return {
    createTimerTask: [`mutation { createTimerTask(input: ${future}) { id } }`],
    createTimerTasks: [`mutation { createTimerTasks(inputs: [${future}]) { id } }`],
    pauseTask: [`mutation($id: ID!) { pauseTask(taskId: $id) { id } }`, { id: ids.task }],
    resumeTask: [`mutation($id: ID!) { resumeTask(taskId: $id) { id } }`, { id: ids.task }],
    runTaskNow: [`mutation($id: ID!) { runTaskNow(taskId: $id) { id } }`, { id: ids.task }],
    rescheduleTask: [`mutation($id: ID!) { rescheduleTask(taskId: $id, startTime: "2031-01-01 10:00:00") { id } }`, { id: ids.task }],
    cancelTask: [`mutation($id: ID!) { cancelTask(taskId: $id) { id } }`, { id: ids.task }],
    forcedEnd: [`mutation($id: ID!) { forcedEnd(taskId: $id) { id } }`, { id: ids.task }],
    updateTask: [`mutation($id: ID!) { updateTask(taskId: $id, patch: { priority: 5 }) { id } }`, { id: ids.task }],
    deleteTask: [`mutation($id: ID!) { deleteTask(taskId: $id) }`, { id: ids.task }],
    saveDateFieldTask: [
      `mutation { saveDateFieldTask(rowObj: { model: "models.Contract", postData: { id: "c-9", expireDate: "2030-03-10" } }) { created } }`,
    ],
    deleteDateFieldTask: [`mutation { deleteDateFieldTask(rowObj: { model: "models.Contract", prevData: { id: "c-9" } }) { cancelled } }`],
    reconcileDateFieldTasks: [`mutation { reconcileDateFieldTasks(model: "models.Contract") { created } }`],
    createTaskTemplate: [
      `mutation { createTaskTemplate(input: { fullName: "tasks.New", title: "New", funcName: "chronograph.echo" }) { id } }`,
    ],
    updateTaskTemplate: [`mutation { updateTaskTemplate(fullName: "tasks.Custom", patch: { title: "Changed" }) { id } }`],
    deleteTaskTemplate: [`mutation { deleteTaskTemplate(fullName: "tasks.Custom") { id } }`],
    saveModel: [`mutation { saveModel(input: { name: "models.Thing", fields: [{ name: "due", type: DATE }] }) { id } }`],
    deleteModel: [`mutation { deleteModel(name: "models.Contract") { id } }`],
    createModelRecord: [`mutation { createModelRecord(model: "models.Contract", data: { expireDate: "2030-01-01" }) { record { id } } }`],
    updateModelRecord: [
      `mutation($id: ID!) { updateModelRecord(model: "models.Contract", id: $id, data: { expireDate: "2030-02-02" }) { record { id } } }`,
      { id: ids.record },
    ],
    deleteModelRecord: [
      `mutation($id: ID!) { deleteModelRecord(model: "models.Contract", id: $id) { record { id } } }`,
      { id: ids.record },
    ],
    importModelRecords: [`mutation { importModelRecords(model: "models.Contract", records: [{ expireDate: "2030-01-01" }]) { count } }`],
    createApiKey: [`mutation { createApiKey(input: { name: "x", tenantId: "a", role: ADMIN }) { secret } }`],
    revokeApiKey: [`mutation($id: ID!) { revokeApiKey(id: $id) { id } }`, { id: ids.key }],
    setTenantQuota: [`mutation { setTenantQuota(tenantId: "a", input: { maxLiveTasks: 0 }) { id } }`],
    bindTemplate: [`mutation { bindTemplate(fullName: "tasks.Nightly", tenantId: "a") { tenantId } }`],
    unbindTemplate: [`mutation { unbindTemplate(fullName: "tasks.Nightly", tenantId: "b") { tenantId } }`],
    setTenantHistoryRetention: [`mutation { setTenantHistoryRetention(tenantId: "a", days: 1) { id } }`],
    pruneHistory: [`mutation { pruneHistory(before: "2000-01-01T00:00:00Z") { tasks } }`],
  };
}

const ADMIN_ONLY = new Set([
  'createApiKey',
  'revokeApiKey',
  'setTenantQuota',
  'bindTemplate',
  'unbindTemplate',
  'setTenantHistoryRetention',
  'pruneHistory',
]);

it('declares who may use it on every query, mutation and subscription field (scope-auth in the schema)', () => {
  const missing: string[] = [];
  for (const type of [schema.getQueryType()!, schema.getMutationType()!, schema.getSubscriptionType()!]) {
    for (const field of Object.values(type.getFields())) {
      const options = (field.extensions as { pothosOptions?: { authScopes?: unknown } }).pothosOptions;
      if (!options?.authScopes) missing.push(`${type.name}.${field.name}`);
    }
  }
  expect(missing).toEqual([]);
});

describe.each(backends)('roles and tenants (%s)', (backend) => {
  let t: TestApp;
  let ids: { task: string; record: string; key: string };
  let viewerA: Record<string, string>;
  let editorA: Record<string, string>;
  let editorB: Record<string, string>;

  const counts = async () =>
    Object.fromEntries(await Promise.all(TABLES.map(async (table) => [table, await (t.app.db.prisma[table] as any).count()])));

  beforeAll(async () => {
    t = await createTestApp(backend, { env: AUTH_ENV });
    const inA = { ...ADMIN, 'x-tenant-id': 'a' };
    for (const tenant of ['a', 'b']) {
      const headers = { ...ADMIN, 'x-tenant-id': tenant };
      ok(
        await t.gql(
          `mutation { createTaskTemplate(input: { fullName: "tasks.DataSync", title: "Sync", funcName: "chronograph.echo" }) { id } }`,
          {},
          headers,
        ),
      );
      ok(
        await t.gql(
          `mutation { createTaskTemplate(input: { fullName: "tasks.Custom", title: "Custom", funcName: "chronograph.echo" }) { id } }`,
          {},
          headers,
        ),
      );
      ok(
        await t.gql(
          `mutation { saveModel(input: { name: "models.Contract", fields: [{ name: "expireDate", type: DATE }] }) { id } }`,
          {},
          headers,
        ),
      );
    }
    ok(
      await t.gql(
        `mutation { createTaskTemplate(input: { fullName: "tasks.Nightly", title: "Nightly", funcName: "chronograph.noop", repeatType: CRON, cronExpression: "0 3 * * *" }) { id } }`,
        {},
        { ...ADMIN, 'x-tenant-id': 'platform' },
      ),
    );
    ok(await t.gql(`mutation { bindTemplate(fullName: "tasks.Nightly", tenantId: "b") { tenantId } }`, {}, ADMIN));
    const task = ok(
      await t.gql(`mutation { createTimerTask(input: { fullName: "tasks.DataSync", startTime: "2030-01-01 10:00:00" }) { id } }`, {}, inA),
    ).createTimerTask;
    const record = ok(
      await t.gql(
        `mutation { createModelRecord(model: "models.Contract", data: { expireDate: "2030-01-01" }) { record { id } } }`,
        {},
        inA,
      ),
    ).createModelRecord.record;
    const viewer = await createKey(t, 'a', 'VIEWER');
    ids = { task: task.id, record: record.id, key: viewer.id };
    viewerA = viewer.headers;
    editorA = (await createKey(t, 'a', 'EDITOR')).headers;
    editorB = (await createKey(t, 'b', 'EDITOR')).headers;
  });
  afterAll(() => t?.close());

  it('covers every mutation of the schema in these checks', () => {
    expect(Object.keys(mutations(ids)).sort()).toEqual(Object.keys(schema.getMutationType()!.getFields()).sort());
  });

  it('lets a VIEWER read and subscribe, and refuses every mutation with FORBIDDEN, writing nothing', async () => {
    const read = ok(
      await t.gql(
        `query($id: ID!) { task(id: $id) { id } tasks(first: 5) { edges { node { id } } } taskTemplates { fullName } models { name } taskStats { total } }`,
        { id: ids.task },
        viewerA,
      ),
    );
    expect(read.task.id).toBe(ids.task);
    const before = await counts();
    for (const [name, [query, variables]] of Object.entries(mutations(ids))) {
      const answer = await post(t, query, variables, viewerA);
      expect(answer.body.errors?.[0]?.extensions?.code, name).toBe('FORBIDDEN');
      expect(answer.body.data?.[name] ?? null, name).toBeNull();
    }
    expect(await counts()).toEqual(before);
  });

  it('refuses ADMIN mutations and queries to an EDITOR, writing nothing', async () => {
    const before = await counts();
    for (const [name, [query, variables]] of Object.entries(mutations(ids))) {
      if (!ADMIN_ONLY.has(name)) continue;
      expect((await post(t, query, variables, editorA)).body.errors?.[0]?.extensions?.code, name).toBe('FORBIDDEN');
    }
    for (const query of [`{ apiKeys { id } }`, `{ tenants { id } }`, `{ tenant(id: "b") { id } }`]) {
      expect((await post(t, query, undefined, editorA)).body.errors?.[0]?.extensions?.code, query).toBe('FORBIDDEN');
    }
    expect(ok(await t.gql(`{ tenant(id: "a") { id quota { maxLiveTasks } usage { liveTasks } } }`, {}, editorA)).tenant.id).toBe('a');
    expect(await counts()).toEqual(before);
  });

  it("gives another tenant's key nothing of tenant a: no read, no write, by id or by name", async () => {
    const before = await counts();
    const read = ok(
      await t.gql(
        `query($id: ID!, $record: ID!) {
          task(id: $id) { id } tasks(first: 50) { edges { node { id tenantId } } } taskEvents(first: 5) { totalCount edges { node { id task { tenantId } } } }
          modelRecord(model: "models.Contract", id: $record) { id } taskTemplate(fullName: "tasks.Custom") { id }
          taskStats { total } me { tenantId }
        }`,
        { id: ids.task, record: ids.record },
        editorB,
      ),
    );
    expect(read.task).toBeNull();
    expect(read.modelRecord).toBeNull();
    expect(read.taskEvents.edges.every((e: any) => e.node.task.tenantId === 'b')).toBe(true);
    expect(read.tasks.edges.every((e: any) => e.node.tenantId === 'b')).toBe(true);
    const own = await t.app.db.prisma.taskTemplate.findUniqueOrThrow({
      where: { tenantId_fullName: { tenantId: 'b', fullName: 'tasks.Custom' } },
    });
    expect(read.taskTemplate.id).toBe(own.id);
    expect(read.me.tenantId).toBe('b');
    for (const name of [
      'pauseTask',
      'resumeTask',
      'runTaskNow',
      'rescheduleTask',
      'cancelTask',
      'forcedEnd',
      'updateTask',
      'deleteTask',
      'updateModelRecord',
      'deleteModelRecord',
    ]) {
      const [query, variables] = mutations(ids)[name]!;
      expect((await post(t, query, variables, editorB)).body.errors?.[0]?.extensions?.code, name).toBe('NOT_FOUND');
    }
    expect(
      (await post(t, `query($id: ID!) { taskRuns(filter: { taskId: $id }) { totalCount } }`, { id: ids.task }, editorB)).body.errors?.[0]
        ?.extensions?.code,
    ).toBe('NOT_FOUND');
    expect(await counts()).toEqual(before);
  });

  it('refuses x-tenant-id naming another tenant for non-ADMIN credentials (403), and ignores request extensions', async () => {
    const before = await counts();
    const jwtB = bearer(await hs256({ sub: 'mallory', tenant_id: 'b', role: 'EDITOR' }));
    for (const headers of [editorB, jwtB, viewerA]) {
      const other = headers === viewerA ? 'b' : 'a';
      const answer = await post(t, mutations(ids).createTimerTask![0], undefined, { ...headers, 'x-tenant-id': other });
      expect(answer.status).toBe(403);
      expect(answer.body.errors?.[0]?.extensions).toEqual({ code: 'FORBIDDEN', field: 'x-tenant-id' });
    }
    // Naming one's own tenant is fine.
    expect(ok(await t.gql(`{ me { tenantId } }`, {}, { ...editorB, 'x-tenant-id': 'b' })).me.tenantId).toBe('b');
    // Headers smuggled in the request's extensions (what GraphiQL puts there over WebSocket) mean nothing.
    const smuggled = await post(t, `query($id: ID!) { me { tenantId role } task(id: $id) { id } }`, { id: ids.task }, editorB, {
      headers: { 'x-tenant-id': 'a', authorization: ADMIN.authorization },
    });
    expect(smuggled.body.data).toEqual({ me: { tenantId: 'b', role: 'EDITOR' }, task: null });
    expect(await counts()).toEqual(before);
  });

  it('refuses forged tokens claiming ADMIN', async () => {
    for (const token of [
      unsigned({ sub: 'root', role: 'ADMIN' }),
      await hs256({ sub: 'root', role: 'ADMIN' }, { secret: 'guessed-secret-guessed-secret-guessed-00' }),
    ]) {
      expect(
        (await post(t, `mutation { setTenantQuota(tenantId: "b", input: { maxLiveTasks: 0 }) { id } }`, undefined, bearer(token))).status,
      ).toBe(401);
    }
    expect((await t.app.db.prisma.tenant.findUnique({ where: { id: 'b' } }))?.maxLiveTasks ?? null).toBeNull();
  });

  it('lets an ADMIN act on any tenant with x-tenant-id, and hides platform templates of bound tasks from tenants', async () => {
    const inB = ok(
      await t.gql(
        `{ me { tenantId } tasks(first: 10, filter: { source: TEMPLATE }) { edges { node { id fullName template { id } } } } }`,
        {},
        { ...ADMIN, 'x-tenant-id': 'b' },
      ),
    );
    expect(inB.me.tenantId).toBe('b');
    expect(inB.tasks.edges).toHaveLength(1);
    expect(inB.tasks.edges[0].node.template).not.toBeNull();
    const asTenant = ok(
      await t.gql(`{ tasks(first: 10, filter: { source: TEMPLATE }) { edges { node { fullName template { id } } } } }`, {}, editorB),
    );
    expect(asTenant.tasks.edges).toEqual([{ node: { fullName: 'tasks.Nightly', template: null } }]);
  });

  it('lets an EDITOR change its own tenant', async () => {
    const created = ok(await t.gql(mutations(ids).createTimerTask![0], {}, editorA)).createTimerTask;
    const task = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: created.id } });
    expect(task.tenantId).toBe('a');
  });
});
