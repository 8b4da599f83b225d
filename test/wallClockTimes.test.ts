import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDateFieldTemplate, dateFieldTasks, SAVE } from './support/dateFields.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

const NOW = new Date('2029-06-01T00:00:00Z');
const CREATE = `mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id startTime endTime nextRunAt events { message } } }`;
const RESCHEDULE = `mutation($id: ID!, $startTime: String!) { rescheduleTask(taskId: $id, startTime: $startTime) { nextRunAt events { type message } } }`;

describe.each(backends)('wall-clock times in DST gaps and repeated hours (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW });
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    const p = t.app.db.prisma;
    await p.task.deleteMany({});
    await p.dateFieldSource.deleteMany({});
    await p.taskTemplate.deleteMany({ where: { origin: 'API' } });
  });

  const counts = async () => ({ tasks: await t.app.db.prisma.task.count(), events: await t.app.db.prisma.taskEvent.count() });
  const once = (startTime: string, timezone: string, extra: Record<string, unknown> = {}) => ({
    fullName: 'tasks.DataSync',
    startTime,
    timezone,
    ...extra,
  });

  it.each([
    ['2030-03-10 02:30:00', 'America/New_York', 'on 2030-03-10 the clocks jump from 02:00 to 03:00', '2030-03-10T03:00:00-04:00'],
    ['2030-03-31 01:00:00', 'Europe/London', 'on 2030-03-31 the clocks jump from 01:00 to 02:00', '2030-03-31T02:00:00+01:00'],
    ['2030-10-06 02:15:00', 'Australia/Lord_Howe', 'on 2030-10-06 the clocks jump from 02:00 to 02:30', '2030-10-06T02:30:00+11:00'],
  ])('refuses startTime %s in %s, which does not exist, naming the gap and the offset form', async (startTime, zone, gap, offsetForm) => {
    const result = await t.gql(CREATE, { input: once(startTime, zone) });
    expect(errorCode(result)).toBe('INVALID_START_TIME');
    expect(result.errors![0]!.extensions!.field).toBe('startTime');
    expect(result.errors![0]!.message).toContain(`does not exist in ${zone}: ${gap}`);
    expect(result.errors![0]!.message).toContain(offsetForm);
    expect(await counts()).toEqual({ tasks: 0, events: 0 });
    // The offset form it suggests is accepted, and is the moment of the jump.
    const task = ok(await t.gql(CREATE, { input: once(offsetForm, zone) })).createTimerTask;
    expect(task.startTime).toBe(new Date(offsetForm).toISOString());
  });

  it.each([
    ['2030-11-03 01:30:00', 'America/New_York', '2030-11-03T05:30:00.000Z', '2030-11-03T01:30:00-04:00'],
    ['2030-10-27 01:30:00', 'Europe/London', '2030-10-27T00:30:00.000Z', '2030-10-27T01:30:00+01:00'],
    ['2030-04-07 01:45:00', 'Australia/Lord_Howe', '2030-04-06T14:45:00.000Z', '2030-04-07T01:45:00+11:00'],
  ])('takes the first occurrence of %s in %s and says so in the CREATED event', async (startTime, zone, instant, offsetForm) => {
    const task = ok(await t.gql(CREATE, { input: once(startTime, zone) })).createTimerTask;
    expect(task.startTime).toBe(instant);
    expect(task.nextRunAt).toBe(instant);
    expect(task.events).toHaveLength(1);
    expect(task.events[0].message).toMatch(/^created; startTime .* occurs twice in /);
    expect(task.events[0].message).toContain(`used the first occurrence, ${offsetForm}`);
  });

  it('applies the same rules to endTime, and a one-off and a cron at the same repeated time agree', async () => {
    const bad = await t.gql(CREATE, {
      input: once('2030-03-09 00:00:00', 'America/New_York', {
        repeatType: 'CRON',
        cronExpression: '@hourly',
        endTime: '2030-03-10 02:30:00',
      }),
    });
    expect([errorCode(bad), bad.errors![0]!.extensions!.field]).toEqual(['INVALID_START_TIME', 'endTime']);
    expect(await counts()).toEqual({ tasks: 0, events: 0 });

    const cron = ok(
      await t.gql(CREATE, {
        input: once('2030-11-02 12:00:00', 'America/New_York', {
          repeatType: 'CRON',
          cronExpression: '30 1 * * *',
          endTime: '2030-11-03 01:30:00',
        }),
      }),
    ).createTimerTask;
    expect(cron.endTime).toBe('2030-11-03T05:30:00.000Z');
    expect(cron.events[0].message).toContain('endTime 2030-11-03T01:30:00 occurs twice');
    // the cron's occurrence on the fall-back day is the same instant as a one-off at that wall-clock time
    const oneOff = ok(await t.gql(CREATE, { input: once('2030-11-03 01:30:00', 'America/New_York') })).createTimerTask;
    expect(cron.nextRunAt).toBe(oneOff.nextRunAt);
  });

  it('rescheduleTask refuses a time in a gap and takes the first of a repeated time, saying so', async () => {
    const { id } = ok(await t.gql(CREATE, { input: once('2030-01-01 10:00:00', 'Europe/London') })).createTimerTask;
    const gap = await t.gql(RESCHEDULE, { id, startTime: '2030-03-31 01:30:00' });
    expect([errorCode(gap), gap.errors![0]!.extensions!.field]).toEqual(['INVALID_START_TIME', 'startTime']);
    const moved = ok(await t.gql(RESCHEDULE, { id, startTime: '2030-10-27 01:30:00' })).rescheduleTask;
    expect(moved.nextRunAt).toBe('2030-10-27T00:30:00.000Z');
    expect(moved.events.at(-1)).toEqual({
      type: 'RESCHEDULED',
      message:
        'rescheduled to 2030-10-27T00:30:00.000Z; startTime 2030-10-27T01:30:00 occurs twice in Europe/London (the clocks go back from 02:00 to 01:00): used the first occurrence, 2030-10-27T01:30:00+01:00',
    });
    const cron = ok(
      await t.gql(CREATE, { input: once('2030-01-01 00:00:00', 'America/New_York', { repeatType: 'CRON', cronExpression: '30 2 * * *' }) }),
    ).createTimerTask;
    const jumped = ok(await t.gql(RESCHEDULE, { id: cron.id, startTime: '2030-03-10 00:00:00' })).rescheduleTask;
    expect(jumped.nextRunAt).toBe('2030-03-10T07:00:00.000Z');
  });

  it('runs a date-field time of day that falls in a gap at the jump, and notes it on the change and the event', async () => {
    await createDateFieldTemplate(
      t,
      { timezone: 'America/New_York' },
      { offset: { amount: 2, unit: 'DAYS', direction: 'BEFORE' }, timeOfDay: '02:30' },
    );
    const saved = ok(
      await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'c-1', expireDate: '2030-03-12' } } }),
    ).saveDateFieldTask;
    expect(saved.changes[0].task.startTime).toBe('2030-03-10T07:00:00.000Z');
    const note =
      'spring-forward: 2030-03-10T02:30:00 does not exist in America/New_York (on 2030-03-10 the clocks jump from 02:00 to 03:00); moved to 03:00';
    expect(saved.changes[0].reason).toBe(`first run 2030-03-10T07:00:00.000Z; ${note}`);
    const [task] = await dateFieldTasks(t);
    expect(task!.events[0]!.message).toBe(`created from models.Contract c-1 (expireDate); ${note}`);

    // 02:30 on the fall-back day exists once (01:00-01:59 repeats in New York): no note
    const moved = ok(
      await t.gql(SAVE, {
        rowObj: {
          model: 'models.Contract',
          postData: { id: 'c-1', expireDate: '2030-11-05' },
          prevData: { id: 'c-1', expireDate: '2030-03-12' },
        },
      }),
    ).saveDateFieldTask;
    expect(moved.changes[0]).toMatchObject({
      action: 'RESCHEDULED',
      reason: 'expireDate changed: first run moved to 2030-11-03T07:30:00.000Z',
      task: { startTime: '2030-11-03T07:30:00.000Z' },
    });
    const unchanged = ok(
      await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'c-2', expireDate: '2030-03-14' } } }),
    ).saveDateFieldTask;
    expect(unchanged.changes[0].reason).toBe('first run 2030-03-12T06:30:00.000Z');
  });

  it('moves a record date that does not exist to the jump, and takes the first of a repeated one', async () => {
    await createDateFieldTemplate(t, { timezone: 'Europe/London' }, { offset: { amount: 0, unit: 'DAYS' }, timeOfDay: null });
    const gap = ok(
      await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'c-1', expireDate: '2030-03-31 01:30:00' } } }),
    ).saveDateFieldTask;
    expect(gap.changes[0].task.startTime).toBe('2030-03-31T01:00:00.000Z');
    expect(gap.changes[0].reason).toContain('spring-forward: 2030-03-31T01:30:00 does not exist in Europe/London');
    const repeated = ok(
      await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'c-2', expireDate: '2030-10-27 01:30:00' } } }),
    ).saveDateFieldTask;
    expect(repeated.changes[0].task.startTime).toBe('2030-10-27T00:30:00.000Z');
    expect(repeated.changes[0].reason).toContain('occurs twice in Europe/London');
  });
});
