import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

const NOW = new Date('2029-06-01T00:00:00Z');
const PREVIEW = `query($input: ScheduleInput!, $count: Int) { previewSchedule(input: $input, count: $count) { at local offset note } }`;
const CREATE = `mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id status nextRunAt upcomingRuns { at local offset note } } }`;
const UPCOMING = `query($id: ID!, $count: Int) { task(id: $id) { status upcomingRuns(count: $count) { at local offset note } } }`;

describe.each(backends)('previewSchedule and Task.upcomingRuns over GraphQL (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW });
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    await t.app.db.prisma.task.deleteMany({});
  });

  const counts = async () => ({ tasks: await t.app.db.prisma.task.count(), events: await t.app.db.prisma.taskEvent.count() });

  it('previews a cron schedule across the New York spring-forward day with wall-clock times, offsets and notes', async () => {
    const runs = ok(
      await t.gql(PREVIEW, {
        input: { repeatType: 'CRON', cronExpression: '30 2 * * *', timezone: 'America/New_York', startTime: '2030-03-09 00:00:00' },
        count: 3,
      }),
    ).previewSchedule;
    expect(runs).toEqual([
      { at: '2030-03-09T07:30:00.000Z', local: '2030-03-09T02:30:00', offset: '-05:00', note: null },
      {
        at: '2030-03-10T07:00:00.000Z',
        local: '2030-03-10T03:00:00',
        offset: '-04:00',
        note: 'spring-forward: moved to 03:00 (02:30 does not exist)',
      },
      { at: '2030-03-11T06:30:00.000Z', local: '2030-03-11T02:30:00', offset: '-04:00', note: null },
    ]);
    expect(await counts()).toEqual({ tasks: 0, events: 0 });
  });

  it('previews both copies of the repeated hour for a sub-hourly job, and the first only for a fixed time', async () => {
    const quarter = ok(
      await t.gql(PREVIEW, {
        input: { cronExpression: '*/30 * * * *', timezone: 'Europe/London', startTime: '2030-10-27T00:00:00Z' },
        count: 4,
      }),
    ).previewSchedule;
    expect(quarter).toEqual([
      { at: '2030-10-27T00:00:00.000Z', local: '2030-10-27T01:00:00', offset: '+01:00', note: 'repeated hour: first occurrence' },
      { at: '2030-10-27T00:30:00.000Z', local: '2030-10-27T01:30:00', offset: '+01:00', note: 'repeated hour: first occurrence' },
      { at: '2030-10-27T01:00:00.000Z', local: '2030-10-27T01:00:00', offset: '+00:00', note: 'repeated hour: second occurrence' },
      { at: '2030-10-27T01:30:00.000Z', local: '2030-10-27T01:30:00', offset: '+00:00', note: 'repeated hour: second occurrence' },
    ]);
    const fixed = ok(
      await t.gql(PREVIEW, {
        input: { cronExpression: '45 1 * * *', timezone: 'Australia/Lord_Howe', startTime: '2030-04-07 00:00:00' },
        count: 2,
      }),
    ).previewSchedule;
    expect(fixed).toEqual([
      { at: '2030-04-06T14:45:00.000Z', local: '2030-04-07T01:45:00', offset: '+11:00', note: 'repeated hour: first occurrence' },
      { at: '2030-04-07T15:15:00.000Z', local: '2030-04-08T01:45:00', offset: '+10:30', note: null },
    ]);
  });

  it('previews intervals as real durations, within maxRuns and endTime, and counts 10 by default', async () => {
    const interval = ok(
      await t.gql(PREVIEW, {
        input: {
          repeatType: 'INTERVAL',
          intervalSeconds: 3600,
          timezone: 'America/New_York',
          startTime: '2030-11-03T04:30:00Z',
          maxRuns: 3,
        },
      }),
    ).previewSchedule;
    expect(interval).toEqual([
      { at: '2030-11-03T04:30:00.000Z', local: '2030-11-03T00:30:00', offset: '-04:00', note: null },
      { at: '2030-11-03T05:30:00.000Z', local: '2030-11-03T01:30:00', offset: '-04:00', note: null },
      { at: '2030-11-03T06:30:00.000Z', local: '2030-11-03T01:30:00', offset: '-05:00', note: null },
    ]);
    const hourly = ok(await t.gql(PREVIEW, { input: { cronExpression: '@hourly', startTime: '2030-01-01T00:00:00Z' } })).previewSchedule;
    expect(hourly).toHaveLength(10);
    expect(hourly[9]).toMatchObject({ at: '2030-01-01T09:00:00.000Z', local: '2030-01-01T09:00:00', offset: '+00:00' });
    const ended = ok(
      await t.gql(PREVIEW, {
        input: { cronExpression: '0 0 * * *', startTime: '2030-01-01T00:00:00Z', endTime: '2030-01-03T00:00:00Z' },
        count: 10,
      }),
    ).previewSchedule;
    expect(ended.map((r: any) => r.at)).toEqual(['2030-01-01T00:00:00.000Z', '2030-01-02T00:00:00.000Z', '2030-01-03T00:00:00.000Z']);
    const once = ok(await t.gql(PREVIEW, { input: { startTime: '2030-11-03 01:30:00', timezone: 'America/New_York' } })).previewSchedule;
    expect(once).toEqual([{ at: '2030-11-03T05:30:00.000Z', local: '2030-11-03T01:30:00', offset: '-04:00', note: null }]);
  });

  it.each([
    [{ cronExpression: '0 0 13 * 5', timezone: 'UTC', startTime: '2030-09-01T00:00:00Z' }, 200, null, null],
    [{ cronExpression: '61 * * * *' }, 10, 'INVALID_CRON', 'cronExpression'],
    [{ repeatType: 'CRON' }, 10, 'INVALID_CRON', 'cronExpression'],
    [{ cronExpression: '@daily', timezone: 'Mars/Olympus' }, 10, 'INVALID_TIMEZONE', 'timezone'],
    [{ startTime: '2030-03-10 02:30:00', timezone: 'America/New_York' }, 10, 'INVALID_START_TIME', 'startTime'],
    [{ repeatType: 'ONCE' }, 10, 'INVALID_START_TIME', 'startTime'],
    [{ repeatType: 'INTERVAL' }, 10, 'BAD_USER_INPUT', 'intervalSeconds'],
    [{ intervalSeconds: 0 }, 10, 'BAD_USER_INPUT', 'intervalSeconds'],
    [{ cronExpression: '@daily', startTime: '2030-01-02T00:00:00Z', endTime: '2030-01-01T00:00:00Z' }, 10, 'BAD_USER_INPUT', 'endTime'],
    [{ cronExpression: '@daily', maxRuns: 0 }, 10, 'BAD_USER_INPUT', 'maxRuns'],
    [{ repeatType: 'DATE_FIELD' }, 10, 'BAD_USER_INPUT', 'repeatType'],
    [{ cronExpression: '@daily' }, 0, 'BAD_USER_INPUT', 'count'],
    [{ cronExpression: '@daily' }, 1001, 'BAD_USER_INPUT', 'count'],
  ])('previewSchedule(%j, count: %d) → %s', async (input, count, code, field) => {
    const result = await t.gql(PREVIEW, { input, count });
    if (code === null) {
      expect(ok(result).previewSchedule).toHaveLength(count);
      return;
    }
    expect(errorCode(result)).toBe(code);
    expect(result.errors![0]!.extensions!.field).toBe(field);
  });

  it('refuses the same input with the same codes as createTimerTask', async () => {
    for (const input of [
      { cronExpression: '0 0 31 2 *' },
      { cronExpression: '@daily', timezone: 'Nowhere' },
      { startTime: '2030-03-31 01:30:00', timezone: 'Europe/London' },
    ]) {
      const preview = await t.gql(PREVIEW, { input: { ...input, repeatType: input.cronExpression ? 'CRON' : 'ONCE' } });
      const create = await t.gql(CREATE, {
        input: { fullName: 'tasks.DataSync', ...input, repeatType: input.cronExpression ? 'CRON' : 'ONCE' },
      });
      expect([errorCode(preview), preview.errors![0]!.extensions!.field]).toEqual([
        errorCode(create),
        create.errors![0]!.extensions!.field,
      ]);
      expect(preview.errors![0]!.message).toBe(create.errors![0]!.message);
    }
    expect(await counts()).toEqual({ tasks: 0, events: 0 });
  });

  it("lists a task's upcoming runs as the preview of its schedule does, within maxRuns", async () => {
    const input = {
      repeatType: 'CRON',
      cronExpression: '0 * * * *',
      timezone: 'America/New_York',
      startTime: '2030-11-03 00:00:00',
      maxRuns: 4,
    };
    const task = ok(await t.gql(CREATE, { input: { fullName: 'tasks.DataSync', ...input } })).createTimerTask;
    const preview = ok(await t.gql(PREVIEW, { input, count: 10 })).previewSchedule;
    expect(preview).toHaveLength(4);
    expect(task.upcomingRuns).toEqual(preview);
    expect(task.upcomingRuns.map((r: any) => [r.local, r.offset])).toEqual([
      ['2030-11-03T00:00:00', '-04:00'],
      ['2030-11-03T01:00:00', '-04:00'],
      ['2030-11-03T01:00:00', '-05:00'],
      ['2030-11-03T02:00:00', '-05:00'],
    ]);
    expect(ok(await t.gql(UPCOMING, { id: task.id, count: 2 })).task.upcomingRuns).toEqual(preview.slice(0, 2));
    expect(errorCode(await t.gql(UPCOMING, { id: task.id, count: 0 }))).toBe('BAD_USER_INPUT');
  });

  it('lists no upcoming runs for a paused or finished task', async () => {
    const { id } = ok(
      await t.gql(CREATE, {
        input: { fullName: 'tasks.DataSync', repeatType: 'INTERVAL', intervalSeconds: 60, startTime: '2030-01-01T00:00:00Z' },
      }),
    ).createTimerTask;
    expect(ok(await t.gql(UPCOMING, { id })).task.upcomingRuns.map((r: any) => r.at)).toEqual([
      '2030-01-01T00:00:00.000Z',
      '2030-01-01T00:01:00.000Z',
      '2030-01-01T00:02:00.000Z',
      '2030-01-01T00:03:00.000Z',
      '2030-01-01T00:04:00.000Z',
    ]);
    ok(await t.gql(`mutation($id: ID!) { pauseTask(taskId: $id) { status } }`, { id }));
    expect(ok(await t.gql(UPCOMING, { id })).task).toEqual({ status: 'PAUSED', upcomingRuns: [] });
    ok(await t.gql(`mutation($id: ID!) { cancelTask(taskId: $id) { status } }`, { id }));
    expect(ok(await t.gql(UPCOMING, { id })).task).toEqual({ status: 'CANCELLED', upcomingRuns: [] });
  });
});
