import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, createTestApp, type GqlResult, ok, type TestApp, taskRows } from './support/testApp.js';

const CREATE =
  'mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id repeatType cronExpression intervalSeconds nextRunAt } }';
const CREATE_MANY = 'mutation($inputs: [TimerTaskInput!]!) { createTimerTasks(inputs: $inputs) { id } }';
const UPDATE = `mutation($taskId: ID!, $patch: TaskPatch!) {
  updateTask(taskId: $taskId, patch: $patch) { id repeatType cronExpression intervalSeconds }
}`;
const PREVIEW = 'query($input: ScheduleInput!) { previewSchedule(input: $input, count: 2) { at } }';
/** tasks.DataSync (test/fixtures/app) is a ONCE template. */
const once = { fullName: 'tasks.DataSync', startTime: '2030-01-01T00:00:00Z' };

/**
 * A schedule field given to createTimerTask(s), updateTask or previewSchedule is checked even when it
 * would not be used (a bad cron is INVALID_CRON, an interval out of range BAD_USER_INPUT, as
 * previewSchedule, which infers the repeat type, has always said), and one that does not apply to the
 * task's repeat type (the input's repeatType, else the template's, or the task's for updateTask) is
 * refused with BAD_USER_INPUT naming it, instead of being dropped. Nothing is written either way.
 */
describe.each(backends)('schedule fields that do not apply (%s)', (backend) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    ok(
      await t.gql(`mutation { createTaskTemplate(input: { fullName: "tasks.Nightly", title: "Nightly", funcName: "chronograph.echo",
        repeatType: CRON, cronExpression: "0 3 * * *" }) { id } }`),
    );
    ok(
      await t.gql(`mutation { createTaskTemplate(input: { fullName: "tasks.Poll", title: "Poll", funcName: "chronograph.echo",
        repeatType: INTERVAL, intervalSeconds: 60 }) { id } }`),
    );
  });
  afterAll(() => t?.close());

  const snapshot = () => taskRows(t);

  async function expectRefused(request: () => Promise<GqlResult>, code: string, field: string, details: Record<string, unknown> = {}) {
    const before = await snapshot();
    const result = await request();
    expect(result.errors).toHaveLength(1);
    const error = result.errors![0]!;
    expect(error.extensions).toMatchObject({ code, field, ...details });
    expect(await snapshot()).toEqual(before);
    return error;
  }

  it("checks a given cron expression or interval even when the template's repeat type would not use it, as previewSchedule does", async () => {
    // The QA cases: a ONCE template with a cron expression that is not one, or a negative interval.
    const notCron = { ...once, cronExpression: 'this is not cron' };
    await expectRefused(() => t.gql(CREATE, { input: notCron }), 'INVALID_CRON', 'cronExpression');
    const { fullName: _, ...schedule } = notCron;
    await expectRefused(() => t.gql(PREVIEW, { input: schedule }), 'INVALID_CRON', 'cronExpression');
    await expectRefused(() => t.gql(CREATE, { input: { ...once, intervalSeconds: -5 } }), 'BAD_USER_INPUT', 'intervalSeconds');
    await expectRefused(
      () => t.gql(PREVIEW, { input: { startTime: once.startTime, intervalSeconds: -5 } }),
      'BAD_USER_INPUT',
      'intervalSeconds',
    );
    // An INTERVAL task given a cron expression that is not one.
    await expectRefused(
      () => t.gql(CREATE, { input: { ...once, repeatType: 'INTERVAL', intervalSeconds: 60, cronExpression: 'garbage' } }),
      'INVALID_CRON',
      'cronExpression',
    );
    await expectRefused(
      () => t.gql(CREATE, { input: { fullName: 'tasks.Poll', cronExpression: 'garbage' } }),
      'INVALID_CRON',
      'cronExpression',
    );
  });

  it('refuses a valid schedule field that does not apply to the repeat type, naming where the repeat type came from', async () => {
    const cronOnOnce = await expectRefused(
      () => t.gql(CREATE, { input: { ...once, cronExpression: '0 9 * * *' } }),
      'BAD_USER_INPUT',
      'cronExpression',
    );
    expect(cronOnOnce.message).toContain('tasks.DataSync');
    expect(cronOnOnce.message).toContain('ONCE');
    expect(cronOnOnce.message).toContain('repeatType: CRON');

    const intervalOnCron = await expectRefused(
      () => t.gql(CREATE, { input: { fullName: 'tasks.Nightly', intervalSeconds: 300 } }),
      'BAD_USER_INPUT',
      'intervalSeconds',
    );
    expect(intervalOnCron.message).toContain('tasks.Nightly');
    expect(intervalOnCron.message).toContain('CRON');

    const cronOnInterval = await expectRefused(
      () => t.gql(CREATE, { input: { fullName: 'tasks.Poll', cronExpression: '*/5 * * * *' } }),
      'BAD_USER_INPUT',
      'cronExpression',
    );
    expect(cronOnInterval.message).toContain('INTERVAL');

    // An explicit repeatType that the field does not fit, on create and in a preview.
    const explicit = await expectRefused(
      () => t.gql(CREATE, { input: { ...once, repeatType: 'ONCE', intervalSeconds: 60 } }),
      'BAD_USER_INPUT',
      'intervalSeconds',
    );
    expect(explicit.message).toContain('ONCE');
    await expectRefused(
      () => t.gql(PREVIEW, { input: { repeatType: 'INTERVAL', intervalSeconds: 60, cronExpression: '0 9 * * *' } }),
      'BAD_USER_INPUT',
      'cronExpression',
    );
  });

  it('refuses the same in a bulk create, with the index of the input', async () => {
    const inputs = [once, { ...once, startTime: '2030-01-02T00:00:00Z' }, { ...once, cronExpression: '0 9 * * *' }];
    const error = await expectRefused(() => t.gql(CREATE_MANY, { inputs }), 'BAD_USER_INPUT', 'cronExpression', { index: 2 });
    expect(error.message).toMatch(/^inputs\[2\]: /);
    const bad = await expectRefused(
      () => t.gql(CREATE_MANY, { inputs: [once, { ...once, cronExpression: 'this is not cron' }] }),
      'INVALID_CRON',
      'cronExpression',
      { index: 1 },
    );
    expect(bad.message).toMatch(/^inputs\[1\]: /);
  });

  it('refuses in updateTask a schedule field the task does not use, unless the patch changes its repeat type', async () => {
    const poll = ok(await t.gql(CREATE, { input: { fullName: 'tasks.Poll', startTime: '2030-01-01T00:00:00Z' } })).createTimerTask;
    const error = await expectRefused(
      () => t.gql(UPDATE, { taskId: poll.id, patch: { cronExpression: '0 9 * * *' } }),
      'BAD_USER_INPUT',
      'cronExpression',
    );
    expect(error.message).toContain('INTERVAL');
    await expectRefused(() => t.gql(UPDATE, { taskId: poll.id, patch: { cronExpression: 'nope' } }), 'INVALID_CRON', 'cronExpression');
    // Switching the repeat type: the old type's setting is dropped, not refused.
    expect(
      ok(await t.gql(UPDATE, { taskId: poll.id, patch: { repeatType: 'CRON', cronExpression: '0 9 * * *' } })).updateTask,
    ).toMatchObject({ repeatType: 'CRON', cronExpression: '0 9 * * *', intervalSeconds: null });
    expect(ok(await t.gql(UPDATE, { taskId: poll.id, patch: { repeatType: 'INTERVAL', intervalSeconds: 30 } })).updateTask).toMatchObject({
      repeatType: 'INTERVAL',
      cronExpression: null,
      intervalSeconds: 30,
    });
  });

  it('still takes fields that apply, and a repeatType that overrides the template with its own fields', async () => {
    expect(ok(await t.gql(CREATE, { input: { ...once, repeatType: 'CRON', cronExpression: '0 9 * * *' } })).createTimerTask).toMatchObject({
      repeatType: 'CRON',
      cronExpression: '0 9 * * *',
      intervalSeconds: null,
      nextRunAt: '2030-01-01T09:00:00.000Z',
    });
    // A CRON template switched to INTERVAL: its default cron expression is not the input's, so not refused.
    expect(
      ok(await t.gql(CREATE, { input: { fullName: 'tasks.Nightly', repeatType: 'INTERVAL', intervalSeconds: 300 } })).createTimerTask,
    ).toMatchObject({ repeatType: 'INTERVAL', cronExpression: null, intervalSeconds: 300 });
    expect(ok(await t.gql(CREATE, { input: { fullName: 'tasks.Poll', intervalSeconds: 90 } })).createTimerTask).toMatchObject({
      repeatType: 'INTERVAL',
      intervalSeconds: 90,
    });
    expect(
      ok(await t.gql(CREATE, { input: { fullName: 'tasks.Nightly', repeatType: 'ONCE', startTime: '2030-01-01T00:00:00Z' } }))
        .createTimerTask,
    ).toMatchObject({ repeatType: 'ONCE', cronExpression: null });
    // A blank cron expression is no cron expression, for a task that does not use one.
    expect(ok(await t.gql(CREATE, { input: { ...once, cronExpression: '  ' } })).createTimerTask.repeatType).toBe('ONCE');
  });
});
