import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

const CREATE = `mutation($input: TimerTaskInput!) {
  createTimerTask(input: $input) { id fullName funcName taskType argDict status startTime nextRunAt timezone source maxAttempts
    events { fromStatus toStatus message } template { fullName } runs { attempt } }
}`;
const CREATE_MANY = `mutation($inputs: [TimerTaskInput!]!) { createTimerTasks(inputs: $inputs) { id status } }`;

describe.each(backends)('timer tasks over GraphQL (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend);
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    await t.app.db.prisma.task.deleteMany({});
  });

  async function counts() {
    const prisma = t.app.db.prisma;
    return { tasks: await prisma.task.count(), events: await prisma.taskEvent.count() };
  }

  it('creates a SCHEDULED task with its first event and reads it back', async () => {
    const task = ok(
      await t.gql(CREATE, {
        input: {
          fullName: 'tasks.DataBackup',
          startTime: '2030-01-01 10:00:00',
          funcName: 'services.BackupSvc.backupDatabase',
          taskType: 'tasks.NormalType',
          argDict: { database: 'main_db', backup_path: '/backup/' },
        },
      }),
    ).createTimerTask;
    expect(task).toMatchObject({
      fullName: 'tasks.DataBackup',
      funcName: 'services.BackupSvc.backupDatabase',
      taskType: 'tasks.NormalType',
      status: 'SCHEDULED',
      startTime: '2030-01-01T10:00:00.000Z',
      nextRunAt: '2030-01-01T10:00:00.000Z',
      timezone: 'UTC',
      source: 'API',
      // the template's default args are merged under the task's own
      argDict: { compress: true, database: 'main_db', backup_path: '/backup/' },
      events: [{ fromStatus: null, toStatus: 'SCHEDULED', message: 'created' }],
      // Relations in the answer are read like any Task's.
      template: { fullName: 'tasks.DataBackup' },
      runs: [],
    });
    expect(task.id).toMatch(/^[0-9a-f-]{36}$/);
    const read = ok(await t.gql(`query($id: ID!) { task(id: $id) { id status template { fullName } } }`, { id: task.id })).task;
    expect(read).toEqual({ id: task.id, status: 'SCHEDULED', template: { fullName: 'tasks.DataBackup' } });
    expect(ok(await t.gql(`{ task(id: "00000000-0000-7000-8000-000000000000") { id } }`)).task).toBeNull();
  });

  it('takes defaults from the template and reads wall-clock times in the task time zone', async () => {
    const task = ok(
      await t.gql(CREATE, { input: { fullName: 'tasks.DataSync', startTime: '2030-06-01 10:00:00', timezone: 'Asia/Shanghai' } }),
    ).createTimerTask;
    expect(task).toMatchObject({
      funcName: 'chronograph.echo',
      maxAttempts: 3,
      startTime: '2030-06-01T02:00:00.000Z',
      timezone: 'Asia/Shanghai',
    });
    const iso = ok(await t.gql(CREATE, { input: { fullName: 'tasks.DataSync', startTime: '2030-06-01T10:00:00+02:00' } })).createTimerTask;
    expect(iso.startTime).toBe('2030-06-01T08:00:00.000Z');
  });

  it('computes the first run of a cron task in its time zone', async () => {
    const task = ok(
      await t.gql(CREATE, {
        input: {
          fullName: 'tasks.DataSync',
          repeatType: 'CRON',
          cronExpression: '0 9 * * *',
          timezone: 'America/New_York',
          startTime: '2030-03-10T00:00:00Z',
        },
      }),
    ).createTimerTask;
    // 2030-03-10 is the day New York moves to daylight time: 09:00 EDT is 13:00 UTC.
    expect(task.nextRunAt).toBe('2030-03-10T13:00:00.000Z');
  });

  it.each([
    [{ fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00', funcName: 'services.Nope.run' }, 'UNKNOWN_FUNC', 'funcName'],
    [{ fullName: 'tasks.Missing', startTime: '2030-01-01 10:00:00' }, 'UNKNOWN_TEMPLATE', 'fullName'],
    [{ fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00', taskType: 'tasks.Nope' }, 'UNKNOWN_TASK_TYPE', 'taskType'],
    [{ fullName: 'tasks.DataSync', startTime: 'next tuesday' }, 'INVALID_START_TIME', 'startTime'],
    [{ fullName: 'tasks.DataSync', startTime: '2030-02-30 10:00:00' }, 'INVALID_START_TIME', 'startTime'],
    [{ fullName: 'tasks.DataSync', startTime: '2030-01-01 25:00:00' }, 'INVALID_START_TIME', 'startTime'],
    [{ fullName: 'tasks.DataSync' }, 'INVALID_START_TIME', 'startTime'],
    [{ fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00', argDict: [1, 2] }, 'INVALID_ARG_DICT', 'argDict'],
    [{ fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00', argDict: 'text' }, 'INVALID_ARG_DICT', 'argDict'],
    [{ fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00', argDict: null }, undefined, undefined],
    [{ fullName: 'tasks.DataSync', repeatType: 'CRON', cronExpression: '* * *' }, 'INVALID_CRON', 'cronExpression'],
    [{ fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00', timezone: 'Nowhere/City' }, 'INVALID_TIMEZONE', 'timezone'],
    [{ fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00', maxAttempts: 0 }, 'BAD_USER_INPUT', 'maxAttempts'],
    [{ fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00', endTime: '2029-01-01 10:00:00' }, 'BAD_USER_INPUT', 'endTime'],
  ])('rejects %j with %s and writes nothing', async (input, code, field) => {
    const result = await t.gql(CREATE, { input });
    if (code === undefined) {
      // null argDict means "no arguments": accepted
      expect(ok(result).createTimerTask.status).toBe('SCHEDULED');
      return;
    }
    expect(errorCode(result)).toBe(code);
    expect(result.errors![0]!.extensions!.field).toBe(field);
    expect(await counts()).toEqual({ tasks: 0, events: 0 });
  });

  it("says why a start time is not a date-time in the client's terms, not the date library's", async () => {
    const accepted = `use ISO 8601 such as 2030-01-01T10:00:00Z, or "2030-01-01 10:00:00" for wall-clock time in the task's time zone`;
    const cases: [string, string][] = [
      ['10000-01-01T00:00:00Z', 'startTime "10000-01-01T00:00:00Z" is not a valid date-time (the year 10000 is outside 1970-9999); '],
      ['next tuesday', 'startTime "next tuesday" is not a valid date-time; '],
      ['2030-02-30T10:00:00Z', 'startTime "2030-02-30T10:00:00Z" is not a valid date-time (day 30 does not exist); '],
      ['2030-01-01 25:00:00', 'startTime "2030-01-01 25:00:00" is not a valid date-time (hour 25 does not exist); '],
      ['2030-01-01T10:00:00+25:00', 'startTime "2030-01-01T10:00:00+25:00" is not a valid date-time (the offset +25:00 does not exist); '],
      ['2030-01-01 10:00:00 -1590', 'startTime "2030-01-01 10:00:00 -1590" is not a valid date-time (the offset -15:90 does not exist); '],
      [
        '2030-01-01T10:00:00[Mars/Base]',
        'startTime "2030-01-01T10:00:00[Mars/Base]" is not a valid date-time ("Mars/Base" is not an IANA time zone); ',
      ],
    ];
    for (const [startTime, message] of cases) {
      const result = await t.gql(CREATE, { input: { fullName: 'tasks.DataSync', startTime } });
      expect(result.errors?.[0]?.message).toBe(message + accepted);
      expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'INVALID_START_TIME', field: 'startTime' });
    }
    expect(await counts()).toEqual({ tasks: 0, events: 0 });
  });

  it('rejects a request whose variables do not fit the schema with a code', async () => {
    const result = await t.gql(CREATE, { input: { fullName: 'tasks.DataSync', startTime: 12 } });
    expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(await counts()).toEqual({ tasks: 0, events: 0 });
  });

  it('createTimerTasks is all or nothing', async () => {
    const good = {
      fullName: 'tasks.DataSync',
      startTime: '2030-01-01 01:00:00',
      funcName: 'services.SyncSvc.syncUserData',
      argDict: { table: 'users' },
    };
    const bad = {
      fullName: 'tasks.DataSync',
      startTime: '2030-01-01 02:00:00',
      funcName: 'services.SyncSvc.syncOrderData',
      argDict: { table: 'orders' },
    };
    const failed = await t.gql(CREATE_MANY, { inputs: [good, bad] });
    expect(errorCode(failed)).toBe('UNKNOWN_FUNC');
    expect(failed.errors![0]!.extensions!.index).toBe(1);
    expect(await counts()).toEqual({ tasks: 0, events: 0 });

    const created = ok(await t.gql(CREATE_MANY, { inputs: [good, { ...good, startTime: '2030-01-01 02:00:00' }] })).createTimerTasks;
    expect(created).toHaveLength(2);
    expect(await counts()).toEqual({ tasks: 2, events: 2 });
  });

  it('pages through tasks newest first and filters them', async () => {
    const inputs = Array.from({ length: 5 }, (_, i) => ({
      fullName: i < 3 ? 'tasks.DataSync' : 'tasks.DataBackup',
      startTime: `2030-01-0${i + 1} 00:00:00`,
    }));
    const created = ok(await t.gql(CREATE_MANY, { inputs })).createTimerTasks.map((x: any) => x.id);
    const PAGE = `query($after: String, $filter: TaskFilter) { tasks(first: 2, after: $after, filter: $filter) {
      edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }`;
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = ok(await t.gql(PAGE, { after })).tasks;
      seen.push(...page.edges.map((e: any) => e.node.id));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(seen).toEqual([...created].reverse());

    const filtered = async (filter: object) =>
      ok(await t.gql(`query($filter: TaskFilter) { tasks(first: 50, filter: $filter) { edges { node { id } } } }`, { filter })).tasks.edges
        .length;
    expect(await filtered({ fullName: 'tasks.DataBackup' })).toBe(2);
    expect(await filtered({ funcName: 'chronograph.echo' })).toBe(3);
    expect(await filtered({ status: ['SCHEDULED'] })).toBe(5);
    expect(await filtered({ status: ['FORCED_END'] })).toBe(0);
    expect(await filtered({ source: 'API' })).toBe(5);
    expect(await filtered({ startTimeFrom: '2030-01-02 00:00:00', startTimeTo: '2030-01-04 00:00:00' })).toBe(3);
    expect(errorCode(await t.gql(`{ tasks(filter: { startTimeFrom: "soon" }) { edges { cursor } } }`))).toBe('INVALID_START_TIME');
  });

  it('force-ends a task that has not started, once', async () => {
    const { id } = ok(await t.gql(CREATE, { input: { fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00' } })).createTimerTask;
    const FORCE = `mutation($id: ID!) { forcedEnd(taskId: $id, reason: "not needed") { status nextRunAt events { fromStatus toStatus message } } }`;
    const ended = ok(await t.gql(FORCE, { id })).forcedEnd;
    expect(ended).toEqual({
      status: 'FORCED_END',
      nextRunAt: null,
      events: [
        { fromStatus: null, toStatus: 'SCHEDULED', message: 'created' },
        { fromStatus: 'SCHEDULED', toStatus: 'FORCED_END', message: 'not needed' },
      ],
    });
    expect(errorCode(await t.gql(FORCE, { id }))).toBe('CONFLICT');
    expect(errorCode(await t.gql(FORCE, { id: '00000000-0000-7000-8000-000000000000' }))).toBe('NOT_FOUND');
    expect(errorCode(await t.gql(FORCE, { id: 'task_uuid_12345' }))).toBe('BAD_USER_INPUT');
    const stats = ok(await t.gql(`{ taskStats { total scheduled forced_end } }`)).taskStats;
    expect(stats).toEqual({ total: 1, scheduled: 0, forced_end: 1 });
  });

  it('pages through the history with taskEvents', async () => {
    const { id } = ok(await t.gql(CREATE, { input: { fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00' } })).createTimerTask;
    ok(await t.gql(`mutation($id: ID!) { forcedEnd(taskId: $id) { status } }`, { id }));
    const PAGE = `query($id: ID, $after: String) { taskEvents(first: 1, after: $after, filter: { taskId: $id }) {
      totalCount edges { cursor node { toStatus task { id } } } pageInfo { hasNextPage endCursor } } }`;
    const first = ok(await t.gql(PAGE, { id })).taskEvents;
    expect(first).toMatchObject({
      totalCount: 2,
      edges: [{ node: { toStatus: 'SCHEDULED', task: { id } } }],
      pageInfo: { hasNextPage: true },
    });
    const rest = ok(await t.gql(PAGE, { id, after: first.pageInfo.endCursor })).taskEvents;
    expect(rest).toMatchObject({ totalCount: 2, edges: [{ node: { toStatus: 'FORCED_END' } }], pageInfo: { hasNextPage: false } });
    expect(errorCode(await t.gql(`{ taskEvents(after: "abc") { totalCount } }`))).toBe('BAD_USER_INPUT');
  });

  it('lists handlers and task types', async () => {
    const data = ok(await t.gql(`{ handlers { name } taskTypes }`));
    expect(data.handlers.map((h: any) => h.name)).toEqual(
      expect.arrayContaining([
        'chronograph.echo',
        'chronograph.noop',
        'services.BackupSvc.backupDatabase',
        'services.SyncSvc.syncUserData',
      ]),
    );
    expect(data.taskTypes).toEqual(['tasks.NormalType', 'tasks.ThreadType']);
  });
});
