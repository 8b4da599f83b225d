import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDateFieldTemplate, dateFieldTasks, RECONCILE, SAVE, UPDATE_TEMPLATE } from './support/dateFields.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

const NOW = new Date('2029-06-01T00:00:00Z');

/**
 * A record date whose task already ran (SUCCEEDED, FAILED, FORCED_END) fires once: a change of the
 * template's timing moves the first run of waiting tasks, and does not run finished dates again.
 */
describe.each(backends)('date-field review: finished dates (%s)', (backend) => {
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
  const dateField = (rule: Record<string, unknown> = {}) => ({
    model: 'models.Contract',
    field: 'expireDate',
    offset: { amount: 3, unit: 'DAYS', direction: 'BEFORE' },
    timeOfDay: '09:00',
    ...rule,
  });
  /** The task of r1 as if the scheduler had run it to the end. */
  const finish = async (status: 'SUCCEEDED' | 'FAILED' | 'FORCED_END' = 'SUCCEEDED') => {
    const [task] = await dateFieldTasks(t, { sourceRowId: 'r1', status: 'SCHEDULED' });
    await t.app.db.prisma.task.update({ where: { id: task!.id }, data: { status, nextRunAt: null, runCount: 1, attempts: 1 } });
    return task!;
  };

  describe('a record date whose task already ran does not run again when the template timing changes', () => {
    for (const [what, patch] of [
      ['timeOfDay', { dateField: dateField({ timeOfDay: '10:00' }) }],
      ['offset', { dateField: dateField({ offset: { amount: 1, unit: 'DAYS', direction: 'BEFORE' } }) }],
      ['time zone', { timezone: 'America/New_York' }],
    ] as const) {
      it(`${what}`, async () => {
        await createDateFieldTemplate(t);
        ok(await save({ id: 'r1', expireDate: '2030-03-10' }));
        ok(await save({ id: 'r2', expireDate: '2030-04-10' }));
        const ran = await finish();

        ok(await patchTemplate(patch));
        // r1's date ran: nothing new for it; r2's waiting task follows the new timing.
        const r1 = await dateFieldTasks(t, { sourceRowId: 'r1' });
        expect(r1.map((x) => [x.id, x.status])).toEqual([[ran.id, 'SUCCEEDED']]);
        const [r2] = await dateFieldTasks(t, { sourceRowId: 'r2' });
        expect(r2!.status).toBe('SCHEDULED');
        expect(r2!.events.map((e) => e.type)).toEqual(['CREATED', 'RESCHEDULED']);

        // Saving the record again with the same date, or reconciling, does not run it either.
        ok(await save({ id: 'r1', expireDate: '2030-03-10', title: 'renamed' }));
        expect(ok(await t.gql(RECONCILE, { model: 'models.Contract' })).reconcileDateFieldTasks.created).toBe(0);
        expect(await t.app.db.prisma.task.count({ where: { sourceRowId: 'r1' } })).toBe(1);

        // A new date is a new occurrence.
        const moved = ok(await save({ id: 'r1', expireDate: '2030-05-10' })).saveDateFieldTask;
        expect(moved.created).toBe(1);
      });
    }
  });

  it('a record date written as an instant that already ran does not run again after a time-zone change', async () => {
    await createDateFieldTemplate(t, {}, { offset: null, timeOfDay: null });
    ok(await save({ id: 'r1', expireDate: '2030-03-10T08:00:00Z' }));
    await finish('FAILED');
    ok(await patchTemplate({ timezone: 'Asia/Tokyo' }));
    expect(await t.app.db.prisma.task.count({ where: { sourceRowId: 'r1' } })).toBe(1);
  });

  it('a DATETIME moved to the second 01:30 of the fall-back hour is a new date: it runs although the first one ran', async () => {
    await createDateFieldTemplate(t, { timezone: 'America/New_York' }, { offset: null, timeOfDay: null });
    ok(await save({ id: 'r1', expireDate: '2030-11-03T01:30:00-04:00' }));
    await finish();
    const moved = ok(await save({ id: 'r1', expireDate: '2030-11-03T01:30:00-05:00' })).saveDateFieldTask;
    expect(moved.created).toBe(1);
    const [task] = await dateFieldTasks(t, { sourceRowId: 'r1', status: 'SCHEDULED' });
    expect(task!.startTime.toISOString()).toBe('2030-11-03T06:30:00.000Z');
  });

  it('a wall-clock DATETIME whose time-zone field changed (same wall-clock time, another instant) is a new date', async () => {
    await createDateFieldTemplate(t, {}, { offset: null, timeOfDay: null, timezoneField: 'tz' });
    ok(await save({ id: 'r1', expireDate: '2030-03-10 09:00:00', tz: 'Europe/Paris' }));
    await finish();
    const moved = ok(await save({ id: 'r1', expireDate: '2030-03-10 09:00:00', tz: 'America/New_York' })).saveDateFieldTask;
    expect(moved.created).toBe(1);
  });

  it('a date-only record value is still the same date when read in another zone (its time zone field changed)', async () => {
    await createDateFieldTemplate(t, {}, { timezoneField: 'tz' });
    ok(await save({ id: 'r1', expireDate: '2030-03-10', tz: 'Europe/Paris' }));
    await finish();
    const saved = ok(await save({ id: 'r1', expireDate: '2030-03-10', tz: 'America/New_York' })).saveDateFieldTask;
    expect(saved.created).toBe(0);
  });
});
