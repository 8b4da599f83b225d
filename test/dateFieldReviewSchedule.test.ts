import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDateFieldTemplate, dateFieldTasks, SAVE, UPDATE_TEMPLATE } from './support/dateFields.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

const NOW = new Date('2029-06-01T00:00:00Z');
const LIVE = ['SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED'];

/**
 * A date-field task whose schedule changes: a moved date starts a fresh occurrence (a pending retry
 * of the old one is dropped), and a new repeat moves the next run of a task that has already run.
 */
describe.each(backends)('date-field review: rescheduled tasks (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW, env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    await t.app.db.prisma.task.deleteMany({});
    await t.app.db.prisma.dateFieldSource.deleteMany({});
    await t.app.db.prisma.taskTemplate.deleteMany({ where: { origin: 'API' } });
  });

  const save = (postData: Record<string, unknown>) => t.gql(SAVE, { rowObj: { model: 'models.Contract', postData } });
  const patchTemplate = (patch: Record<string, unknown>) => t.gql(UPDATE_TEMPLATE, { fullName: 'tasks.ContractReminder', patch });

  it('moving the date of a RETRYING task starts its new occurrence fresh', async () => {
    await createDateFieldTemplate(t);
    ok(await save({ id: 'r1', expireDate: '2030-03-10' }));
    const [task] = await dateFieldTasks(t, { sourceRowId: 'r1' });
    await t.app.db.prisma.task.update({
      where: { id: task!.id },
      data: {
        status: 'RETRYING',
        attempts: 2,
        lastError: 'boom',
        occurrenceAt: task!.startTime,
        nextRunAt: new Date(task!.startTime.getTime() + 60_000),
      },
    });

    const result = ok(await save({ id: 'r1', expireDate: '2030-04-10' })).saveDateFieldTask;
    expect(result.rescheduled).toBe(1);
    const after = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task!.id } });
    expect(after).toMatchObject({
      status: 'SCHEDULED',
      attempts: 0,
      lastError: null,
      occurrenceAt: null,
      runCount: 0,
      startTime: new Date('2030-04-07T09:00:00Z'),
      nextRunAt: new Date('2030-04-07T09:00:00Z'),
    });
  });

  it('moving the date of a PAUSED task that was retrying keeps it paused, with a fresh occurrence', async () => {
    await createDateFieldTemplate(t);
    ok(await save({ id: 'r1', expireDate: '2030-03-10' }));
    const [task] = await dateFieldTasks(t, { sourceRowId: 'r1' });
    await t.app.db.prisma.task.update({
      where: { id: task!.id },
      data: { status: 'PAUSED', attempts: 1, lastError: 'boom', occurrenceAt: task!.startTime },
    });
    ok(await save({ id: 'r1', expireDate: '2030-04-10' }));
    const after = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task!.id } });
    expect(after).toMatchObject({ status: 'PAUSED', attempts: 0, lastError: null, occurrenceAt: null });
  });

  it('moving the date of a RETRYING task whose last run was abandoned clears that too: the new run is no recovery', async () => {
    await createDateFieldTemplate(t);
    ok(await save({ id: 'r1', expireDate: '2030-03-10' }));
    const [task] = await dateFieldTasks(t, { sourceRowId: 'r1' });
    await t.app.db.prisma.task.update({
      where: { id: task!.id },
      data: {
        status: 'RETRYING',
        attempts: 1,
        lastError: 'its worker died',
        lastRunAbandoned: true,
        occurrenceAt: task!.startTime,
        nextRunAt: new Date(task!.startTime.getTime() + 60_000),
      },
    });
    ok(await save({ id: 'r1', expireDate: '2030-04-10' }));
    const after = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task!.id } });
    expect(after).toMatchObject({ status: 'SCHEDULED', attempts: 0, lastError: null, occurrenceAt: null, lastRunAbandoned: false });
  });

  describe('a change of only the template timing keeps a RETRYING task retrying its occurrence (the same record date)', () => {
    for (const [what, patch, startTime] of [
      [
        'offset',
        {
          dateField: {
            model: 'models.Contract',
            field: 'expireDate',
            offset: { amount: 1, unit: 'DAYS', direction: 'BEFORE' },
            timeOfDay: '09:00',
          },
        },
        '2030-03-09T09:00:00.000Z',
      ],
      ['time zone', { timezone: 'America/New_York' }, '2030-03-07T14:00:00.000Z'],
    ] as const) {
      it(what, async () => {
        await createDateFieldTemplate(t);
        ok(await save({ id: 'r1', expireDate: '2030-03-10' }));
        const [task] = await dateFieldTasks(t, { sourceRowId: 'r1' });
        const retry = new Date(task!.startTime.getTime() + 60_000);
        const retrying = { attempts: 2, lastError: 'boom', lastRunAbandoned: true, occurrenceAt: task!.startTime, nextRunAt: retry };
        await t.app.db.prisma.task.update({ where: { id: task!.id }, data: { status: 'RETRYING', ...retrying } });

        ok(await patchTemplate(patch));
        const after = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task!.id } });
        // Its first run follows the template; the occurrence being retried, and its attempts, stay.
        expect(after).toMatchObject({ status: 'RETRYING', startTime: new Date(startTime), ...retrying });
      });
    }
  });

  it('a new cron expression moves the next run of a repeating task that has already run', async () => {
    // Every day at 09:00 (UTC) from 3 days before the date; the date is past, so the first run was.
    await createDateFieldTemplate(t, { cronExpression: '0 9 * * *', timezone: 'UTC' });
    ok(await save({ id: 'r1', expireDate: '2029-05-20' }));
    const [task] = await dateFieldTasks(t, { sourceRowId: 'r1' });
    expect(task!.startTime.toISOString()).toBe('2029-05-17T09:00:00.000Z');
    await t.app.db.prisma.task.update({
      where: { id: task!.id },
      data: { runCount: 15, nextRunAt: new Date('2029-06-01T09:00:00Z') },
    });

    ok(await patchTemplate({ cronExpression: '0 12 * * *' }));
    const after = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task!.id }, include: { events: true } });
    expect(after.cronExpression).toBe('0 12 * * *');
    expect(after.startTime.toISOString()).toBe('2029-05-17T09:00:00.000Z');
    expect(after.nextRunAt?.toISOString()).toBe('2029-06-01T12:00:00.000Z');
    expect(after.runCount).toBe(15);
    expect(after.events.at(-1)).toMatchObject({ type: 'RESCHEDULED', nextRunAt: new Date('2029-06-01T12:00:00Z') });

    // A new interval: the grid from the first run, after now.
    ok(await patchTemplate({ cronExpression: null, intervalSeconds: 7 * 86_400 }));
    const interval = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task!.id } });
    expect(interval).toMatchObject({ repeatType: 'INTERVAL', nextRunAt: new Date('2029-06-07T09:00:00Z') });
  });

  it('a new cron expression leaves the first run of a task that has not run yet at its start time', async () => {
    await createDateFieldTemplate(t, { cronExpression: '0 9 * * *', timezone: 'UTC' });
    ok(await save({ id: 'r1', expireDate: '2030-03-10' }));
    ok(await patchTemplate({ cronExpression: '0 12 * * *' }));
    const [task] = await dateFieldTasks(t, { sourceRowId: 'r1', status: { in: LIVE as never } });
    expect(task).toMatchObject({ cronExpression: '0 12 * * *', nextRunAt: new Date('2030-03-07T09:00:00Z') });
  });

  it('a repeat removed from the template ends a waiting task that has already run, and its date does not run again', async () => {
    await createDateFieldTemplate(t, { cronExpression: '0 9 * * *', timezone: 'UTC' });
    ok(await save({ id: 'r1', expireDate: '2029-05-20' }));
    const [task] = await dateFieldTasks(t, { sourceRowId: 'r1' });
    await t.app.db.prisma.task.update({ where: { id: task!.id }, data: { runCount: 15, nextRunAt: new Date('2029-06-01T09:00:00Z') } });

    ok(await patchTemplate({ cronExpression: null }));
    const after = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task!.id } });
    expect(after).toMatchObject({ status: 'SUCCEEDED', repeatType: 'ONCE', nextRunAt: null });
    ok(await save({ id: 'r1', expireDate: '2029-05-20', note: 'saved again' }));
    expect(await t.app.db.prisma.task.count({ where: { sourceRowId: 'r1' } })).toBe(1);
  });

  it('a RETRYING task keeps retrying its occurrence when the repeat changes; the new repeat follows it', async () => {
    await createDateFieldTemplate(t, { cronExpression: '0 9 * * *', timezone: 'UTC' });
    ok(await save({ id: 'r1', expireDate: '2029-05-20' }));
    const [task] = await dateFieldTasks(t, { sourceRowId: 'r1' });
    const retry = new Date('2029-06-01T00:05:00Z');
    await t.app.db.prisma.task.update({
      where: { id: task!.id },
      data: { status: 'RETRYING', runCount: 3, attempts: 1, occurrenceAt: new Date('2029-05-31T09:00:00Z'), nextRunAt: retry },
    });
    ok(await patchTemplate({ cronExpression: '0 12 * * *' }));
    const after = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task!.id } });
    expect(after).toMatchObject({ status: 'RETRYING', cronExpression: '0 12 * * *', nextRunAt: retry, attempts: 1 });
  });
});
