import { DateTime } from 'luxon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, AUTH_ENV } from './support/auth.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const PLATFORM = { ...ADMIN, 'x-tenant-id': 'platform' };
const BIND = `mutation($fullName: String!, $tenantId: String!, $overrides: TemplateBindingInput) {
  bindTemplate(fullName: $fullName, tenantId: $tenantId, overrides: $overrides) {
    tenantId enabled nextRunAt effective { enabled cronExpression intervalSeconds timezone argDict funcName } task { id }
  }
}`;
const BINDINGS = `query($fullName: String!) { taskTemplate(fullName: $fullName) {
  bindings { tenantId enabled nextRunAt overrides { cronExpression timezone argDict } effective { cronExpression intervalSeconds timezone argDict funcName } task { id status } }
} }`;
const UNBIND = `mutation($fullName: String!, $tenantId: String!) { unbindTemplate(fullName: $fullName, tenantId: $tenantId) { tenantId } }`;

/** The next time after now that a daily HH:mm in `zone` comes round, computed independently of Chronograph. */
function nextDaily(hour: number, minute: number, zone: string, after = DateTime.now()): string {
  let at = after.setZone(zone).set({ hour, minute, second: 0, millisecond: 0 });
  if (at <= after) at = at.plus({ days: 1 });
  return at.toUTC().toISO()!;
}

/**
 * Shared definitions: a CRON/INTERVAL template of the platform tenant bound to tenants with overrides.
 * Each bound tenant runs its own recurring task (source TEMPLATE) on its effective schedule with its
 * effective arguments; unbinding cancels it; template changes reach the bindings that do not override them.
 */
describe.each(backends)('template bindings (%s)', (backend) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(backend, { env: AUTH_ENV });
    ok(
      await t.gql(
        `mutation { createTaskTemplate(input: { fullName: "tasks.Report", title: "Daily report", funcName: "chronograph.echo", repeatType: CRON,
          cronExpression: "0 6 * * *", argDict: { format: "pdf", region: "eu" } }) { id } }`,
        {},
        PLATFORM,
      ),
    );
  });
  afterAll(() => t?.close());

  const liveTaskOf = (tenantId: string, fullName: string) =>
    t.app.db.prisma.task.findFirst({
      where: { tenantId, fullName, source: 'TEMPLATE', status: { in: ['SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED'] } },
    });

  it('gives each bound tenant its own recurring task on its effective schedule, and propagates template changes it does not override', async () => {
    const acme = ok(await t.gql(BIND, { fullName: 'tasks.Report', tenantId: 'acme' }, ADMIN)).bindTemplate;
    expect(acme).toMatchObject({
      tenantId: 'acme',
      enabled: true,
      nextRunAt: new Date(nextDaily(6, 0, 'UTC')).toISOString(),
      effective: {
        enabled: true,
        cronExpression: '0 6 * * *',
        intervalSeconds: null,
        timezone: 'UTC',
        argDict: { format: 'pdf', region: 'eu' },
        funcName: 'chronograph.echo',
      },
    });
    const beta = ok(
      await t.gql(
        BIND,
        {
          fullName: 'tasks.Report',
          tenantId: 'beta',
          overrides: { cronExpression: '30 7 * * *', timezone: 'Asia/Shanghai', argDict: { region: 'cn' } },
        },
        ADMIN,
      ),
    ).bindTemplate;
    expect(new Date(beta.nextRunAt).toISOString()).toBe(new Date(nextDaily(7, 30, 'Asia/Shanghai')).toISOString());
    expect(beta.effective).toMatchObject({
      cronExpression: '30 7 * * *',
      timezone: 'Asia/Shanghai',
      argDict: { format: 'pdf', region: 'cn' },
    });

    const acmeTask = (await liveTaskOf('acme', 'tasks.Report'))!;
    expect(acmeTask).toMatchObject({
      id: acme.task.id,
      source: 'TEMPLATE',
      repeatType: 'CRON',
      cronExpression: '0 6 * * *',
      argDict: { format: 'pdf', region: 'eu' },
    });
    const created = await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: acmeTask.id } });
    expect(created).toMatchObject({ type: 'CREATED', actor: 'key:ADMIN_API_KEY', tenantId: 'acme' });
    // The tenant sees it as its own task; the platform does not run one itself.
    expect(await t.app.db.prisma.task.count({ where: { tenantId: 'platform' } })).toBe(0);
    // Binding again with the same overrides changes nothing.
    ok(await t.gql(BIND, { fullName: 'tasks.Report', tenantId: 'acme' }, ADMIN));
    expect(await t.app.db.prisma.taskEvent.count({ where: { taskId: acmeTask.id } })).toBe(1);

    ok(
      await t.gql(
        `mutation { updateTaskTemplate(fullName: "tasks.Report", patch: { cronExpression: "0 5 * * *", argDict: { format: "csv", region: "eu" } }) { id } }`,
        {},
        PLATFORM,
      ),
    );
    const listed = ok(await t.gql(BINDINGS, { fullName: 'tasks.Report' }, PLATFORM)).taskTemplate.bindings;
    expect(listed.map((b: any) => [b.tenantId, b.effective.cronExpression, b.effective.argDict])).toEqual([
      ['acme', '0 5 * * *', { format: 'csv', region: 'eu' }],
      ['beta', '30 7 * * *', { format: 'csv', region: 'cn' }],
    ]);
    const acmeAfter = (await liveTaskOf('acme', 'tasks.Report'))!;
    expect(acmeAfter).toMatchObject({ id: acmeTask.id, cronExpression: '0 5 * * *', argDict: { format: 'csv', region: 'eu' } });
    expect(acmeAfter.nextRunAt!.toISOString()).toBe(new Date(nextDaily(5, 0, 'UTC')).toISOString());
    const betaAfter = (await liveTaskOf('beta', 'tasks.Report'))!;
    expect(betaAfter).toMatchObject({ cronExpression: '30 7 * * *', timezone: 'Asia/Shanghai', argDict: { format: 'csv', region: 'cn' } });
    const rescheduled = await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: acmeTask.id, type: 'RESCHEDULED' } });
    expect(rescheduled.actor).toBe('key:ADMIN_API_KEY');
    expect(rescheduled.message).toContain('cronExpression');
  });

  it("runs a bound INTERVAL template with the tenant's arguments", async () => {
    ok(
      await t.gql(
        `mutation { createTaskTemplate(input: { fullName: "tasks.Ping", title: "Ping", funcName: "chronograph.echo", repeatType: INTERVAL, intervalSeconds: 3600, argDict: { target: "default" } }) { id } }`,
        {},
        PLATFORM,
      ),
    );
    const bound = ok(
      await t.gql(
        BIND,
        { fullName: 'tasks.Ping', tenantId: 'runner', overrides: { intervalSeconds: 1, argDict: { target: 'runner-host' } } },
        ADMIN,
      ),
    ).bindTemplate;
    expect(bound.effective).toMatchObject({ intervalSeconds: 1, argDict: { target: 'runner-host' } });
    const run = await waitFor(() => t.app.db.prisma.taskRun.findFirst({ where: { taskId: bound.task.id, status: 'SUCCEEDED' } }), {
      what: 'a run of the bound task',
    });
    expect(run.result).toEqual({ target: 'runner-host' });
    expect(run.tenantId).toBe('runner');
    // Scheduler-caused events carry no actor.
    const running = await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: bound.task.id, toStatus: 'RUNNING' } });
    expect(running.actor).toBeNull();
    ok(await t.gql(UNBIND, { fullName: 'tasks.Ping', tenantId: 'runner' }, ADMIN));
    await waitFor(async () => !(await liveTaskOf('runner', 'tasks.Ping')), { what: 'the unbound task to end' });
  });

  it("cancels the tenant's pending task on unbinding and when the binding or the template is disabled", async () => {
    ok(await t.gql(BIND, { fullName: 'tasks.Report', tenantId: 'gamma' }, ADMIN));
    const first = (await liveTaskOf('gamma', 'tasks.Report'))!;
    ok(await t.gql(BIND, { fullName: 'tasks.Report', tenantId: 'gamma', overrides: { enabled: false } }, ADMIN));
    expect(await liveTaskOf('gamma', 'tasks.Report')).toBeNull();
    expect((await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: first.id } })).status).toBe('CANCELLED');
    const listed = ok(await t.gql(BINDINGS, { fullName: 'tasks.Report' }, PLATFORM)).taskTemplate.bindings.find(
      (b: any) => b.tenantId === 'gamma',
    );
    expect(listed).toMatchObject({ enabled: false, nextRunAt: null, task: null });

    ok(await t.gql(BIND, { fullName: 'tasks.Report', tenantId: 'gamma' }, ADMIN));
    const second = (await liveTaskOf('gamma', 'tasks.Report'))!;
    expect(second.id).not.toBe(first.id);

    ok(await t.gql(`mutation { updateTaskTemplate(fullName: "tasks.Report", patch: { enabled: false }) { id } }`, {}, PLATFORM));
    expect(await t.app.db.prisma.task.count({ where: { fullName: 'tasks.Report', source: 'TEMPLATE', status: 'SCHEDULED' } })).toBe(0);
    ok(await t.gql(`mutation { updateTaskTemplate(fullName: "tasks.Report", patch: { enabled: true }) { id } }`, {}, PLATFORM));
    expect(await liveTaskOf('gamma', 'tasks.Report')).not.toBeNull();

    ok(await t.gql(UNBIND, { fullName: 'tasks.Report', tenantId: 'gamma' }, ADMIN));
    expect(await liveTaskOf('gamma', 'tasks.Report')).toBeNull();
    const history = await t.app.db.prisma.task.findMany({ where: { tenantId: 'gamma', fullName: 'tasks.Report' } });
    expect(history.every((task) => task.status === 'CANCELLED' && task.bindingId === null)).toBe(true);
    expect(
      ok(await t.gql(BINDINGS, { fullName: 'tasks.Report' }, PLATFORM)).taskTemplate.bindings.map((b: any) => b.tenantId),
    ).not.toContain('gamma');
    expect(errorCode(await t.gql(UNBIND, { fullName: 'tasks.Report', tenantId: 'gamma' }, ADMIN))).toBe('NOT_FOUND');
  });

  it("cancels an ALLOW-overlap task's waiting occurrences with it when it is unbound or its binding disabled", async () => {
    await t.app.templateSvc.forTenant('platform').create({
      fullName: 'tasks.Tick',
      title: 'Tick',
      repeatType: 'INTERVAL' as any,
      intervalSeconds: 3600,
      funcName: 'chronograph.echo',
      overlapPolicy: 'ALLOW' as any,
    });
    const future = new Date(Date.now() + 86_400_000);
    /** Occurrences as the scheduler fires them (one-off children of the bound task), waiting in each status. */
    const occurrencesOf = async (tenantId: string) => {
      const parent = (await liveTaskOf(tenantId, 'tasks.Tick'))!;
      const { id: _id, createdAt: _c, updatedAt: _u, ...rest } = parent as any;
      const children = [];
      for (const status of ['SCHEDULED', 'RETRYING', 'PAUSED'] as const) {
        children.push(
          await t.app.db.prisma.task.create({
            data: {
              ...rest,
              argDict: parent.argDict ?? {},
              repeatType: 'ONCE',
              intervalSeconds: null,
              bindingId: null,
              parentId: parent.id,
              status,
              nextRunAt: status === 'PAUSED' ? null : future,
            },
          }),
        );
      }
      return { parent, children };
    };

    ok(await t.gql(BIND, { fullName: 'tasks.Tick', tenantId: 'overlap' }, ADMIN));
    const unbound = await occurrencesOf('overlap');
    ok(await t.gql(UNBIND, { fullName: 'tasks.Tick', tenantId: 'overlap' }, ADMIN));

    ok(await t.gql(BIND, { fullName: 'tasks.Tick', tenantId: 'overlap2' }, ADMIN));
    const disabled = await occurrencesOf('overlap2');
    ok(await t.gql(BIND, { fullName: 'tasks.Tick', tenantId: 'overlap2', overrides: { enabled: false } }, ADMIN));

    for (const { parent, children } of [unbound, disabled]) {
      expect((await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: parent.id } })).status).toBe('CANCELLED');
      for (const child of children) {
        const now = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: child.id } });
        expect(now, `${child.status} occurrence`).toMatchObject({ status: 'CANCELLED', nextRunAt: null });
        const events = await t.app.db.prisma.taskEvent.findMany({ where: { taskId: child.id } });
        expect(events.map((e) => [e.fromStatus, e.toStatus])).toEqual([[child.status, 'CANCELLED']]);
      }
    }
  });

  it('refuses bad bindings with a coded error and writes nothing', async () => {
    ok(
      await t.gql(
        `mutation { createTaskTemplate(input: { fullName: "tasks.Once", title: "Once", funcName: "chronograph.echo" }) { id } }`,
        {},
        PLATFORM,
      ),
    );
    ok(
      await t.gql(
        `mutation { createTaskTemplate(input: { fullName: "tasks.Mine", title: "Mine", funcName: "chronograph.echo", repeatType: CRON, cronExpression: "0 1 * * *" }) { id } }`,
        {},
        { ...ADMIN, 'x-tenant-id': 'acme' },
      ),
    );
    const before = { bindings: await t.app.db.prisma.templateBinding.count(), tasks: await t.app.db.prisma.task.count() };
    for (const [variables, code, field] of [
      [{ fullName: 'tasks.Mine', tenantId: 'delta' }, 'UNKNOWN_TEMPLATE', 'fullName'],
      [{ fullName: 'tasks.Once', tenantId: 'delta' }, 'BAD_USER_INPUT', 'fullName'],
      [{ fullName: 'tasks.Report', tenantId: 'platform' }, 'BAD_USER_INPUT', 'tenantId'],
      [{ fullName: 'tasks.Report', tenantId: 'bad tenant!' }, 'BAD_USER_INPUT', 'tenantId'],
      [
        { fullName: 'tasks.Report', tenantId: 'delta', overrides: { cronExpression: '61 * * * *' } },
        'INVALID_CRON',
        'overrides.cronExpression',
      ],
      [{ fullName: 'tasks.Report', tenantId: 'delta', overrides: { intervalSeconds: 60 } }, 'BAD_USER_INPUT', 'overrides.intervalSeconds'],
      [{ fullName: 'tasks.Report', tenantId: 'delta', overrides: { timezone: 'Mars/Olympus' } }, 'INVALID_TIMEZONE', 'overrides.timezone'],
      [{ fullName: 'tasks.Report', tenantId: 'delta', overrides: { funcName: 'nope.nothing' } }, 'UNKNOWN_FUNC', 'overrides.funcName'],
      [{ fullName: 'tasks.Report', tenantId: 'delta', overrides: { argDict: [1, 2] } }, 'INVALID_ARG_DICT', 'overrides.argDict'],
    ] as const) {
      const result = await t.gql(BIND, variables, ADMIN);
      expect(result.errors?.[0]?.extensions, JSON.stringify(variables)).toMatchObject({ code, field });
    }
    expect({ bindings: await t.app.db.prisma.templateBinding.count(), tasks: await t.app.db.prisma.task.count() }).toEqual(before);
  });

  it("counts a bound task against the tenant's quota, and keeps a bound template from being deleted", async () => {
    ok(await t.gql(`mutation { setTenantQuota(tenantId: "full", input: { maxLiveTasks: 0 }) { id } }`, {}, ADMIN));
    const refused = await t.gql(BIND, { fullName: 'tasks.Report', tenantId: 'full' }, ADMIN);
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'maxLiveTasks', limit: 0, tenantId: 'full' });
    expect(await t.app.db.prisma.templateBinding.count({ where: { tenantId: 'full' } })).toBe(0);
    const deleting = await t.gql(`mutation { deleteTaskTemplate(fullName: "tasks.Report") { id } }`, {}, PLATFORM);
    expect(deleting.errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT' });
    expect(deleting.errors?.[0]?.message).toContain('unbind');
  });
});
