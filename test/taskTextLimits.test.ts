import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_LABEL_LENGTH, MAX_NAME_LENGTH, MAX_TEXT_LENGTH } from '../src/tasks/validate.js';
import { backends, createTestApp, type GqlResult, ok, type TestApp, taskRows } from './support/testApp.js';

const CREATE = 'mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id queue } }';
const CREATE_MANY = 'mutation($inputs: [TimerTaskInput!]!) { createTimerTasks(inputs: $inputs) { id } }';
const UPDATE = 'mutation($taskId: ID!, $patch: TaskPatch!) { updateTask(taskId: $taskId, patch: $patch) { id queue } }';
const CANCEL = 'mutation($taskId: ID!, $reason: String) { cancelTask(taskId: $taskId, reason: $reason) { id status } }';
const FORCE = 'mutation($taskId: ID!, $reason: String) { forcedEnd(taskId: $taskId, reason: $reason) { id status } }';
const RESCHEDULE =
  'mutation($taskId: ID!, $startTime: String!) { rescheduleTask(taskId: $taskId, startTime: $startTime) { id nextRunAt } }';
const PREVIEW = 'query($input: ScheduleInput!) { previewSchedule(input: $input, count: 2) { at } }';
const base = { fullName: 'tasks.DataSync', startTime: '2099-01-01T10:00:00Z' };

/** A text that is easy to spot if an error message echoed it. */
const marked = (length: number, mark = 'Zq') => mark.repeat(Math.ceil(length / mark.length)).slice(0, length);

/**
 * Every free-text and label input of the task operations has a length limit (BAD_USER_INPUT naming the
 * field and the length, never the text, nothing written): reasons of cancelTask and forcedEnd, the queue
 * (also a Prometheus label, and a restricted name), names, times, the time zone, the cron expression,
 * the uniqueKey and the task id.
 */
describe.each(backends)('task text limits (%s)', (backend) => {
  let t: TestApp;
  let taskId: string;

  beforeAll(async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    taskId = ok(await t.gql(CREATE, { input: base })).createTimerTask.id;
  });
  afterAll(() => t?.close());

  const snapshot = () => taskRows(t);

  /** The request is refused with BAD_USER_INPUT on `field`, its message gives `length`, holds none of the text, and nothing changed. */
  async function expectRefused(request: () => Promise<GqlResult>, field: string, length?: number) {
    const before = await snapshot();
    const result = await request();
    expect(result.data?.createTimerTask ?? result.data?.createTimerTasks ?? null).toBeNull();
    expect(result.errors).toHaveLength(1);
    const error = result.errors![0]!;
    expect(error.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    if (length !== undefined) expect(error.message).toContain(String(length));
    expect(error.message).not.toContain('ZqZqZq');
    expect(error.message.length).toBeLessThan(400);
    expect(await snapshot()).toEqual(before);
    return error;
  }

  it('refuses a cancelTask or forcedEnd reason over MAX_TEXT_LENGTH, and keeps one at the limit', async () => {
    const long = marked(MAX_TEXT_LENGTH + 1);
    await expectRefused(() => t.gql(CANCEL, { taskId, reason: long }), 'reason', MAX_TEXT_LENGTH + 1);
    await expectRefused(() => t.gql(FORCE, { taskId, reason: long }), 'reason', MAX_TEXT_LENGTH + 1);
    // The QA case: five million characters.
    await expectRefused(() => t.gql(CANCEL, { taskId, reason: marked(5_000_000) }), 'reason', 5_000_000);

    const atLimit = marked(MAX_TEXT_LENGTH, 'ok');
    const id = ok(await t.gql(CREATE, { input: base })).createTimerTask.id;
    expect(ok(await t.gql(CANCEL, { taskId: id, reason: atLimit })).cancelTask.status).toBe('CANCELLED');
    const event = await t.app.db.prisma.taskEvent.findFirst({ where: { taskId: id, toStatus: 'CANCELLED' } });
    expect(event?.message).toBe(atLimit);
  });

  it('refuses a queue that is too long or not a queue name, on create, bulk create and update', async () => {
    // The QA case: a due task with a 1 MB queue (a Prometheus label).
    const due = { ...base, startTime: '2020-01-01T00:00:00Z' };
    await expectRefused(() => t.gql(CREATE, { input: { ...due, queue: marked(1_000_000) } }), 'queue', 1_000_000);
    await expectRefused(() => t.gql(CREATE, { input: { ...base, queue: marked(MAX_LABEL_LENGTH + 1) } }), 'queue', MAX_LABEL_LENGTH + 1);
    for (const queue of ['two words', 'mail/eu', 'a"b', 'q\tx', 'éclair', 'a{b}']) {
      const error = await expectRefused(() => t.gql(CREATE, { input: { ...base, queue } }), 'queue');
      expect(error.message).toMatch(/letters, digits/);
    }
    const bulk = await expectRefused(
      () => t.gql(CREATE_MANY, { inputs: [base, { ...base, queue: marked(MAX_LABEL_LENGTH + 1) }] }),
      'queue',
      MAX_LABEL_LENGTH + 1,
    );
    expect(bulk.extensions).toMatchObject({ index: 1 });
    expect(bulk.message).toMatch(/^inputs\[1\]: /);
    await expectRefused(() => t.gql(UPDATE, { taskId, patch: { queue: marked(MAX_LABEL_LENGTH + 1) } }), 'queue', MAX_LABEL_LENGTH + 1);
    await expectRefused(() => t.gql(UPDATE, { taskId, patch: { queue: 'two words' } }), 'queue');

    // A queue name of the limit's length, with every allowed kind of character, is kept as given.
    const name = `Reports_2.eu-west-${'x'.repeat(MAX_LABEL_LENGTH - 18)}`;
    expect(name).toHaveLength(MAX_LABEL_LENGTH);
    expect(ok(await t.gql(CREATE, { input: { ...base, queue: name } })).createTimerTask.queue).toBe(name);
    // Blanks around it are dropped; a blank queue is the template's.
    expect(ok(await t.gql(CREATE, { input: { ...base, queue: ' reports ' } })).createTimerTask.queue).toBe('reports');
    expect(ok(await t.gql(CREATE, { input: { ...base, queue: ' ' } })).createTimerTask.queue).toBe('default');
    expect(ok(await t.gql(UPDATE, { taskId, patch: { queue: 'mail' } })).updateTask.queue).toBe('mail');
  });

  it('refuses over-long names, times, time zones, cron expressions and unique keys of a task input', async () => {
    const cases: [Record<string, unknown>, string, number][] = [
      [{ fullName: marked(MAX_NAME_LENGTH + 1) }, 'fullName', MAX_NAME_LENGTH + 1],
      [{ funcName: marked(1_000_000) }, 'funcName', 1_000_000],
      [{ taskType: marked(MAX_NAME_LENGTH + 1) }, 'taskType', MAX_NAME_LENGTH + 1],
      [{ startTime: marked(100_000) }, 'startTime', 100_000],
      [{ endTime: marked(MAX_LABEL_LENGTH + 1) }, 'endTime', MAX_LABEL_LENGTH + 1],
      [{ timezone: marked(100_000) }, 'timezone', 100_000],
      [{ repeatType: 'CRON', cronExpression: `0 0 * * * ${' '.repeat(100_000)}ZqZqZq` }, 'cronExpression', 100_016],
      [{ uniqueKey: marked(100_000) }, 'uniqueKey', 100_000],
    ];
    for (const [extra, field, length] of cases) {
      await expectRefused(() => t.gql(CREATE, { input: { ...base, ...extra } }), field, length);
    }
    const patches: [Record<string, unknown>, string, number][] = [
      [{ funcName: marked(MAX_NAME_LENGTH + 1) }, 'funcName', MAX_NAME_LENGTH + 1],
      [{ startTime: marked(100_000) }, 'startTime', 100_000],
      [{ timezone: marked(100_000) }, 'timezone', 100_000],
    ];
    for (const [patch, field, length] of patches) {
      await expectRefused(() => t.gql(UPDATE, { taskId, patch }), field, length);
    }
    await expectRefused(() => t.gql(RESCHEDULE, { taskId, startTime: marked(100_000) }), 'startTime', 100_000);
    // previewSchedule takes the same schedule input, with the same limits.
    await expectRefused(() => t.gql(PREVIEW, { input: { startTime: marked(100_000) } }), 'startTime', 100_000);
    await expectRefused(() => t.gql(PREVIEW, { input: { timezone: marked(100_000) } }), 'timezone', 100_000);
  });

  it('refuses a task id that cannot be one without repeating it', async () => {
    await expectRefused(() => t.gql(CANCEL, { taskId: marked(1_000_000) }), 'taskId', 1_000_000);
    await expectRefused(() => t.gql(UPDATE, { taskId: marked(1_000_000), patch: { priority: 1 } }), 'taskId', 1_000_000);
  });

  it('keeps /metrics bounded when a stored queue is longer than a queue name may be', async () => {
    // A task stored before queues were limited (or written around the API) and due now.
    const id = ok(await t.gql(CREATE, { input: base })).createTimerTask.id;
    await t.app.db.prisma.task.update({ where: { id }, data: { queue: marked(1_000_000), nextRunAt: new Date(Date.now() - 60_000) } });
    const { body } = await t.app.metrics.render();
    // (Not toContain: a failure would print the whole exposition.)
    expect(body.includes('ZqZq'.repeat(MAX_LABEL_LENGTH))).toBe(false);
    const line = body.split('\n').find((l) => l.startsWith('chronograph_tasks_due{') && l.includes('ZqZq'));
    expect(line).toBeDefined();
    expect(line!.length).toBeLessThan(MAX_LABEL_LENGTH + 100);
    await t.app.db.prisma.task.update({ where: { id }, data: { queue: 'default', nextRunAt: new Date('2099-01-01T10:00:00Z') } });
  });
});
