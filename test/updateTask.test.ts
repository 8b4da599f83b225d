import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, AUTH_ENV, createKey } from './support/auth.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const CREATE = `mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id status nextRunAt } }`;
const UPDATE = `mutation($taskId: ID!, $patch: TaskPatch!) {
  updateTask(taskId: $taskId, patch: $patch) { id status nextRunAt cronExpression intervalSeconds timezone argDict priority endTime maxRuns timeoutMs }
}`;
const DELETE = `mutation($taskId: ID!) { deleteTask(taskId: $taskId) }`;
const EVENTS = `query($id: ID!) { task(id: $id) { events { type fromStatus toStatus message actor } } }`;

/** updateTask and deleteTask (issue 13 item 6), through GraphQL. */
describe.each(backends)('updateTask and deleteTask (%s)', (backend) => {
  let t: TestApp;
  const gql = (query: string, variables?: Record<string, unknown>, headers: Record<string, string> = ADMIN) =>
    t.gql(query, variables, headers);

  beforeAll(async () => {
    t = await createTestApp(backend, { env: AUTH_ENV });
  });
  afterAll(() => t?.close());

  async function create(input: Record<string, unknown>) {
    return ok(await gql(CREATE, { input: { fullName: 'tasks.DataSync', ...input } })).createTimerTask as {
      id: string;
      status: string;
      nextRunAt: string;
    };
  }
  const row = (id: string) => t.app.db.prisma.task.findUniqueOrThrow({ where: { id } });
  const events = async (id: string) =>
    ok(await gql(EVENTS, { id })).task.events as { type: string; message: string; actor: string | null }[];

  it('a new cron expression recomputes the next run and records an UPDATED event naming the fields', async () => {
    const task = await create({ repeatType: 'CRON', cronExpression: '0 9 * * *', timezone: 'UTC', startTime: '2031-01-01T00:00:00Z' });
    expect(task.nextRunAt).toBe('2031-01-01T09:00:00.000Z');
    const updated = ok(
      await gql(UPDATE, { taskId: task.id, patch: { cronExpression: '30 17 * * 1', timezone: 'Asia/Shanghai', priority: 7 } }),
    ).updateTask;
    // The task's own startTime (2031-01-01, a Wednesday) still bounds it: the first Monday 17:30 in Shanghai after it.
    expect(updated).toMatchObject({
      status: 'SCHEDULED',
      cronExpression: '30 17 * * 1',
      timezone: 'Asia/Shanghai',
      priority: 7,
      nextRunAt: '2031-01-06T09:30:00.000Z',
    });
    const last = (await events(task.id)).at(-1)!;
    expect(last).toMatchObject({ type: 'UPDATED', actor: 'key:ADMIN_API_KEY' });
    expect(last.message).toBe('updated: timezone, cronExpression, priority');
    expect((await row(task.id)).revision).toBe(1);
  });

  it('arguments alone leave the schedule where it was; argDict replaces the whole object', async () => {
    const task = await create({ startTime: '2031-05-05T05:05:05Z', argDict: { a: 1, b: 2 } });
    const updated = ok(await gql(UPDATE, { taskId: task.id, patch: { argDict: { c: 3 } } })).updateTask;
    expect(updated.nextRunAt).toBe('2031-05-05T05:05:05.000Z');
    expect(updated.argDict).toEqual({ c: 3 });
  });

  it('a one-off task moves with startTime; endTime, maxRuns and timeoutMs are cleared by null', async () => {
    const once = await create({ startTime: '2031-05-05T05:05:05Z', timeoutMs: 5000 });
    expect(
      ok(await gql(UPDATE, { taskId: once.id, patch: { startTime: '2032-01-01 08:00:00', timezone: 'Europe/Paris', timeoutMs: null } }))
        .updateTask,
    ).toMatchObject({
      nextRunAt: '2032-01-01T07:00:00.000Z',
      timeoutMs: null,
    });
    const every = await create({
      repeatType: 'INTERVAL',
      intervalSeconds: 60,
      startTime: '2031-01-01T00:00:00Z',
      endTime: '2031-02-01T00:00:00Z',
      maxRuns: 5,
    });
    expect(
      ok(await gql(UPDATE, { taskId: every.id, patch: { endTime: null, maxRuns: null, intervalSeconds: 120 } })).updateTask,
    ).toMatchObject({
      endTime: null,
      maxRuns: null,
      intervalSeconds: 120,
      nextRunAt: '2031-01-01T00:00:00.000Z',
    });
  });

  it("bad input is refused with createTimerTask's codes and writes nothing", async () => {
    const task = await create({ repeatType: 'CRON', cronExpression: '0 9 * * *', startTime: '2031-01-01T00:00:00Z' });
    const before = await row(task.id);
    const eventsBefore = (await events(task.id)).length;
    const cases: [Record<string, unknown>, string, string][] = [
      [{ cronExpression: '61 * * * *' }, 'INVALID_CRON', 'cronExpression'],
      [{ timezone: 'Mars/Olympus' }, 'INVALID_TIMEZONE', 'timezone'],
      [{ funcName: 'no.such.handler' }, 'UNKNOWN_FUNC', 'funcName'],
      [{ priority: 5000 }, 'BAD_USER_INPUT', 'priority'],
      [{ priority: null }, 'BAD_USER_INPUT', 'priority'],
      [{ argDict: [1, 2] }, 'INVALID_ARG_DICT', 'argDict'],
      [{}, 'BAD_USER_INPUT', 'patch'],
    ];
    for (const [patch, code, field] of cases) {
      const result = await gql(UPDATE, { taskId: task.id, patch });
      expect([errorCode(result), result.errors![0]!.extensions!.field], JSON.stringify(patch)).toEqual([code, field]);
    }
    expect(await row(task.id)).toEqual(before);
    expect((await events(task.id)).length).toBe(eventsBefore);
  });

  it('a running task keeps its attempt and continues on the edited schedule', async () => {
    await t.app.templateSvc
      .forTenant('default')
      .create({ fullName: 'tasks.Slow', title: 'Slow', funcName: 'chronograph.sleep' })
      .catch(() => {});
    const task = ok(
      await gql(CREATE, { input: { fullName: 'tasks.Slow', repeatType: 'INTERVAL', intervalSeconds: 86_400, argDict: { ms: 1500 } } }),
    ).createTimerTask;
    await waitFor(async () => (await row(task.id)).status === 'RUNNING');
    const updated = ok(await gql(UPDATE, { taskId: task.id, patch: { intervalSeconds: 2, argDict: { ms: 0 } } })).updateTask;
    expect(updated.status).toBe('RUNNING');
    expect((await events(task.id)).at(-1)!.message).toBe('updated: argDict, intervalSeconds (from the next occurrence)');
    // The attempt that was running finishes, and the next run is two seconds of grid away, not a day.
    await waitFor(async () => (await row(task.id)).runCount >= 1 && (await row(task.id)).status !== 'RUNNING');
    const after = await row(task.id);
    expect(after.nextRunAt!.getTime() - Date.now()).toBeLessThan(5_000);
    // And the next run uses the new arguments.
    await waitFor(async () => (await row(task.id)).runCount >= 2, { timeoutMs: 15_000 });
    const runs = await t.app.db.prisma.taskRun.findMany({ where: { taskId: task.id }, orderBy: { startedAt: 'asc' } });
    expect(runs[0]!.result).toEqual({ sleptMs: 1500 });
    expect(runs[1]!.result).toEqual({ sleptMs: 0 });
    ok(await gql(`mutation($id: ID!) { forcedEnd(taskId: $id) { id } }`, { id: task.id }));
  });

  it('only live tasks can be edited', async () => {
    const task = await create({ startTime: '2031-01-01T00:00:00Z' });
    ok(await gql(`mutation($id: ID!) { cancelTask(taskId: $id) { id } }`, { id: task.id }));
    expect(errorCode(await gql(UPDATE, { taskId: task.id, patch: { priority: 1 } }))).toBe('CONFLICT');
  });

  it('deleteTask removes a finished task with its runs, logs and events; a live one is CONFLICT', async () => {
    const task = await create({ startTime: '2031-01-01T00:00:00Z' });
    expect(errorCode(await gql(DELETE, { taskId: task.id }))).toBe('CONFLICT');
    expect(await t.app.db.prisma.task.count({ where: { id: task.id } })).toBe(1);
    const done = await create({ startTime: new Date().toISOString() });
    await waitFor(async () => (await row(done.id)).status === 'SUCCEEDED');
    expect(await t.app.db.prisma.taskRun.count({ where: { taskId: done.id } })).toBe(1);
    expect(ok(await gql(DELETE, { taskId: done.id })).deleteTask).toBe(done.id);
    expect(await t.app.db.prisma.task.count({ where: { id: done.id } })).toBe(0);
    expect(await t.app.db.prisma.taskRun.count({ where: { taskId: done.id } })).toBe(0);
    expect(await t.app.db.prisma.taskEvent.count({ where: { taskId: done.id } })).toBe(0);
    expect(errorCode(await gql(DELETE, { taskId: done.id }))).toBe('NOT_FOUND');
  });

  it('a viewer may not edit or delete, and another tenant cannot see the task', async () => {
    const task = await create({ startTime: '2031-01-01T00:00:00Z' });
    const viewer = await createKey(t, 'default', 'VIEWER');
    expect(errorCode(await gql(UPDATE, { taskId: task.id, patch: { priority: 1 } }, viewer.headers))).toBe('FORBIDDEN');
    expect(errorCode(await gql(DELETE, { taskId: task.id }, viewer.headers))).toBe('FORBIDDEN');
    const other = await createKey(t, 'other', 'EDITOR');
    expect(errorCode(await gql(UPDATE, { taskId: task.id, patch: { priority: 1 } }, other.headers))).toBe('NOT_FOUND');
    expect((await row(task.id)).priority).toBe(0);
  });
});
