import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, AUTH_ENV } from './support/auth.js';
import { createDateFieldTemplate, dateFieldTasks, SAVE } from './support/dateFields.js';
import { backends, createTestApp, type GqlResult, ok, type TestApp, taskRows } from './support/testApp.js';

const RESCHEDULE =
  'mutation($taskId: ID!, $startTime: String!) { rescheduleTask(taskId: $taskId, startTime: $startTime) { id nextRunAt } }';
const UPDATE = 'mutation($taskId: ID!, $patch: TaskPatch!) { updateTask(taskId: $taskId, patch: $patch) { id } }';
const PLATFORM = { ...ADMIN, 'x-tenant-id': 'platform' };
const ACME = { ...ADMIN, 'x-tenant-id': 'acme' };

/**
 * Tasks that follow a record's date field or a template binding keep their schedule: rescheduleTask
 * refuses them as updateTask does (CONFLICT, the same words), and writes nothing.
 */
describe.each(backends)('rescheduleTask on tasks that follow a date field or a binding (%s)', (backend) => {
  // Date-field hooks as an app without credentials calls them; bindings need the platform tenant's ADMIN.
  let plain: TestApp;
  let auth: TestApp;
  let t: TestApp;

  beforeAll(async () => {
    plain = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    auth = await createTestApp(backend, { env: { ...AUTH_ENV, SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(async () => {
    await plain?.close();
    await auth?.close();
  });

  const snapshot = () => taskRows(t);

  async function expectConflict(request: () => Promise<GqlResult>, field: string) {
    const before = await snapshot();
    const result = await request();
    expect(result.errors).toHaveLength(1);
    expect(result.errors![0]!.extensions).toMatchObject({ code: 'CONFLICT', field });
    expect(await snapshot()).toEqual(before);
    return result.errors![0]!.message;
  }

  it('refuses to reschedule a DATE_FIELD task, as updateTask refuses to edit its schedule', async () => {
    t = plain;
    await createDateFieldTemplate(t);
    ok(await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'c-1', expireDate: '2031-03-10' } } }));
    const [task] = await dateFieldTasks(t);
    expect(task).toMatchObject({ source: 'DATE_FIELD', status: 'SCHEDULED' });

    const rescheduled = await expectConflict(() => t.gql(RESCHEDULE, { taskId: task!.id, startTime: '2030-01-01T00:00:00Z' }), 'startTime');
    const updated = await expectConflict(
      () => t.gql(UPDATE, { taskId: task!.id, patch: { startTime: '2030-01-01T00:00:00Z' } }),
      'startTime',
    );
    expect(rescheduled).toBe(updated);
    expect(rescheduled).toContain("follows its record's date field");
  });

  it('refuses to reschedule the task of a template binding', async () => {
    t = auth;
    ok(
      await t.gql(
        `mutation { createTaskTemplate(input: { fullName: "tasks.Report", title: "Daily report", funcName: "chronograph.echo",
          repeatType: CRON, cronExpression: "0 6 * * *" }) { id } }`,
        {},
        PLATFORM,
      ),
    );
    const bound = ok(
      await t.gql('mutation { bindTemplate(fullName: "tasks.Report", tenantId: "acme") { task { id } } }', {}, ADMIN),
    ).bindTemplate;
    const taskId = bound.task.id as string;
    expect(await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: taskId } })).toMatchObject({ source: 'TEMPLATE', tenantId: 'acme' });

    const rescheduled = await expectConflict(() => t.gql(RESCHEDULE, { taskId, startTime: '2030-01-01T00:00:00Z' }, ACME), 'startTime');
    const updated = await expectConflict(() => t.gql(UPDATE, { taskId, patch: { startTime: '2030-01-01T00:00:00Z' } }, ACME), 'startTime');
    expect(rescheduled).toBe(updated);
    expect(rescheduled).toContain('follows its template binding');
  });

  it('still reschedules a task created through the API', async () => {
    t = auth;
    const { id } = ok(
      await t.gql(
        'mutation { createTimerTask(input: { fullName: "tasks.DataSync", startTime: "2031-01-01T00:00:00Z" }) { id } }',
        {},
        ADMIN,
      ),
    ).createTimerTask;
    expect(ok(await t.gql(RESCHEDULE, { taskId: id, startTime: '2030-01-01T00:00:00Z' }, ADMIN)).rescheduleTask.nextRunAt).toBe(
      '2030-01-01T00:00:00.000Z',
    );
  });
});
