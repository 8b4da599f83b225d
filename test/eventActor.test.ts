import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, AUTH_ENV, bearer, createKey, hs256 } from './support/auth.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const CREATE = `mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }`;
const EVENTS = `query($id: ID!) { task(id: $id) { events { type toStatus actor } } }`;
const future = { fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00' };

/**
 * The audit trail: every TaskEvent caused by an API call names its actor — the API key (`key:<id>`),
 * the token's subject (`jwt:<sub>`), `anonymous` in development, `task:<id>` for a handler's TaskSvc —
 * and events the scheduler causes on its own have none.
 */
describe.each(backends)('TaskEvent.actor (%s)', (backend) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(backend, {
      env: AUTH_ENV,
      setup: (app) => {
        // A handler that creates a task through its context's TaskSvc.
        app.handlers.register('test.spawn', async (_args, ctx) => ({
          child: (await ctx.taskSvc.createTimerTask(future)).id,
          tenantId: ctx.taskSvc.tenantId,
        }));
      },
    });
    await t.app.templateSvc.forTenant('acme').create({ fullName: 'tasks.DataSync', title: 'Sync', funcName: 'chronograph.echo' });
    await t.app.modelSvc.forTenant('acme').saveModel({ name: 'models.Contract', fields: [{ name: 'expireDate', type: 'DATE' }] });
    await t.app.templateSvc.forTenant('acme').create({
      fullName: 'tasks.Remind',
      title: 'Remind',
      funcName: 'chronograph.echo',
      repeatType: 'DATE_FIELD',
      dateField: { model: 'models.Contract', field: 'expireDate' },
    });
    await t.app.templateSvc.forTenant('acme').create({
      fullName: 'tasks.ExtRemind',
      title: 'Remind',
      funcName: 'chronograph.echo',
      repeatType: 'DATE_FIELD',
      dateField: { model: 'models.External', field: 'due' },
    });
  });
  afterAll(() => t?.close());

  it('names the API key, the token subject, and nobody for the scheduler', async () => {
    const key = await createKey(t, 'acme', 'EDITOR');
    const byKey = ok(await t.gql(CREATE, { input: future }, key.headers)).createTimerTask;
    ok(await t.gql(`mutation($id: ID!) { pauseTask(taskId: $id) { id } }`, { id: byKey.id }, key.headers));
    const jwt = bearer(await hs256({ sub: 'alice@example.test', tenant_id: 'acme', role: 'EDITOR' }));
    ok(await t.gql(`mutation($id: ID!) { resumeTask(taskId: $id) { id } }`, { id: byKey.id }, jwt));
    ok(await t.gql(`mutation($id: ID!) { runTaskNow(taskId: $id) { id } }`, { id: byKey.id }, jwt));
    await t.app.taskSvc.forTenant('acme').waitForTask(byKey.id, { statuses: ['SUCCEEDED'] });
    const events = ok(await t.gql(EVENTS, { id: byKey.id }, key.headers)).task.events;
    expect(events.map((e: any) => [e.toStatus, e.actor])).toEqual([
      ['SCHEDULED', `key:${key.id}`],
      ['PAUSED', `key:${key.id}`],
      ['SCHEDULED', 'jwt:alice@example.test'],
      ['SCHEDULED', 'jwt:alice@example.test'],
      ['RUNNING', null],
      ['SUCCEEDED', null],
    ]);
  });

  it('names the caller on the FORCED_END that the running instance writes', async () => {
    const key = await createKey(t, 'acme', 'EDITOR');
    const { id } = ok(
      await t.gql(
        CREATE,
        { input: { ...future, startTime: new Date().toISOString(), funcName: 'chronograph.sleep', argDict: { ms: 60_000 } } },
        key.headers,
      ),
    ).createTimerTask;
    await t.app.taskSvc.forTenant('acme').waitForTask(id, { statuses: ['RUNNING'] });
    expect(ok(await t.gql(`mutation($id: ID!) { forcedEnd(taskId: $id) { status } }`, { id }, key.headers)).forcedEnd.status).toBe(
      'FORCED_END',
    );
    const ended = await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: id, toStatus: 'FORCED_END' } });
    expect(ended.actor).toBe(`key:${key.id}`);
  });

  it('names the caller of date-field hooks and record writes', async () => {
    const key = await createKey(t, 'acme', 'EDITOR');
    const written = ok(
      await t.gql(
        `mutation($data: JSON!) { createModelRecord(model: "models.Contract", data: $data) { dateFields { changes { task { id } } } } }`,
        { data: { expireDate: '2030-03-10' } },
        key.headers,
      ),
    ).createModelRecord.dateFields.changes[0].task;
    expect((await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: written.id } })).actor).toBe(`key:${key.id}`);
    const jwt = bearer(await hs256({ sub: 'crm-sync', tenant_id: 'acme', role: 'EDITOR' }));
    const SAVE = `mutation($rowObj: DateFieldRowInput!) { saveDateFieldTask(rowObj: $rowObj) { changes { action task { id } } } }`;
    const row = (due: string) => ({ rowObj: { model: 'models.External', postData: { id: 'ext-1', due } } });
    const [hooked] = ok(await t.gql(SAVE, row('2030-04-01'), jwt)).saveDateFieldTask.changes;
    expect(hooked.action).toBe('CREATED');
    ok(await t.gql(SAVE, row('2030-05-01'), key.headers));
    const events = await t.app.db.prisma.taskEvent.findMany({ where: { taskId: hooked.task.id }, orderBy: { id: 'asc' } });
    expect(events.map((e) => [e.type, e.actor])).toEqual([
      ['CREATED', 'jwt:crm-sync'],
      ['RESCHEDULED', `key:${key.id}`],
    ]);
  });

  it("gives handlers a TaskSvc bound to their task's tenant, acting as the task", async () => {
    const { id } = ok(
      await t.gql(
        CREATE,
        { input: { ...future, startTime: new Date().toISOString(), funcName: 'test.spawn' } },
        { ...ADMIN, 'x-tenant-id': 'acme' },
      ),
    ).createTimerTask;
    const parent = await t.app.taskSvc.forTenant('acme').waitForTask(id, { statuses: ['SUCCEEDED'] });
    const run = await waitFor(() => t.app.db.prisma.taskRun.findFirst({ where: { taskId: parent.id, status: 'SUCCEEDED' } }));
    const { child, tenantId } = run.result as { child: string; tenantId: string };
    expect(tenantId).toBe('acme');
    const created = await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: child } });
    expect(created).toMatchObject({ tenantId: 'acme', actor: `task:${id}` });
  });
});

describe('TaskEvent.actor without credentials (development)', () => {
  it('is "anonymous"', async () => {
    const t = await createTestApp('pglite');
    try {
      const { id } = ok(await t.gql(CREATE, { input: future })).createTimerTask;
      expect(ok(await t.gql(EVENTS, { id })).task.events).toEqual([{ type: 'CREATED', toStatus: 'SCHEDULED', actor: 'anonymous' }]);
    } finally {
      await t.close();
    }
  });
});
