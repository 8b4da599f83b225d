import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DateFieldResult } from '../src/dateFields/applyDateFields.js';
import { ChronographError } from '../src/errors.js';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { createDateFieldTemplate, DELETE, dateFieldTasks, RECONCILE, SAVE, writeCounts } from './support/dateFields.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

const NOW = new Date('2029-06-01T00:00:00Z');

describe.each(backends)('saveDateFieldTask / deleteDateFieldTask (%s)', (backend) => {
  let t: TestApp;
  let taskSvc: TaskSvc;
  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW });
    taskSvc = t.app.getElement('services.TaskSvc') as TaskSvc;
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    const p = t.app.db.prisma;
    await p.task.deleteMany({});
    await p.dateFieldSource.deleteMany({});
    await p.taskTemplate.deleteMany({ where: { origin: 'API' } });
  });

  const save = async (postData: Record<string, unknown>, prevData?: Record<string, unknown>) =>
    ok(await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData, prevData } })).saveDateFieldTask;

  it('creates one task per record, 3 days before the date at 09:00, with the record in its arguments', async () => {
    await createDateFieldTemplate(t);
    const result = await save({ id: 'c-1', expireDate: '2030-03-10', status: 'active' });
    expect(result).toMatchObject({ created: 1, rescheduled: 0, cancelled: 0, unchanged: 0, skipped: 0 });
    expect(result.changes).toHaveLength(1);
    expect(result.changes[0]).toMatchObject({
      template: 'tasks.ContractReminder',
      rowId: 'c-1',
      action: 'CREATED',
      task: {
        status: 'SCHEDULED',
        startTime: '2030-03-07T09:00:00.000Z',
        nextRunAt: '2030-03-07T09:00:00.000Z',
        funcName: 'chronograph.echo',
        source: 'DATE_FIELD',
        sourceModel: 'models.Contract',
        sourceRowId: 'c-1',
        sourceField: 'expireDate',
        argDict: {
          channel: 'mail',
          source: { model: 'models.Contract', id: 'c-1', field: 'expireDate', date: '2030-03-10T00:00:00.000Z' },
        },
      },
    });
    const [task] = await dateFieldTasks(t);
    expect(task!.events.map((e) => [e.type, e.fromStatus, e.toStatus])).toEqual([['CREATED', null, 'SCHEDULED']]);
  });

  it('replays idempotently and treats an unchanged date as a no-op', async () => {
    await createDateFieldTemplate(t);
    const row = { id: 'c-1', expireDate: '2030-03-10', status: 'active' };
    await save(row);
    const before = await writeCounts(t);
    const replay = await save(row);
    expect(replay).toMatchObject({ created: 0, rescheduled: 0, unchanged: 1 });
    // another field changed, the date did not
    const other = await save({ ...row, status: 'renewing' }, row);
    expect(other).toMatchObject({ created: 0, rescheduled: 0, unchanged: 1 });
    expect({ ...(await writeCounts(t)), sources: 1 }).toEqual(before);
  });

  it('reschedules the same task when the date changes, with a RESCHEDULED event, never a second task', async () => {
    await createDateFieldTemplate(t);
    const first = (await save({ id: 'c-1', expireDate: '2030-03-10' })).changes[0].task;
    const moved = await save({ id: 'c-1', expireDate: '2030-04-20' }, { id: 'c-1', expireDate: '2030-03-10' });
    expect(moved).toMatchObject({ created: 0, rescheduled: 1 });
    expect(moved.changes[0].task).toMatchObject({
      id: first.id,
      status: 'SCHEDULED',
      startTime: '2030-04-17T09:00:00.000Z',
      nextRunAt: '2030-04-17T09:00:00.000Z',
    });
    const tasks = await dateFieldTasks(t);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]!.events.map((e) => [e.type, e.fromStatus, e.toStatus, e.nextRunAt?.toISOString()])).toEqual([
      ['CREATED', null, 'SCHEDULED', '2030-03-07T09:00:00.000Z'],
      ['RESCHEDULED', 'SCHEDULED', 'SCHEDULED', '2030-04-17T09:00:00.000Z'],
    ]);
  });

  it('cancels the task when the date is cleared, and creates a new one when a date comes back', async () => {
    await createDateFieldTemplate(t);
    const first = (await save({ id: 'c-1', expireDate: '2030-03-10' })).changes[0].task;
    const cleared = await save({ id: 'c-1', expireDate: null });
    expect(cleared).toMatchObject({
      cancelled: 1,
      changes: [{ action: 'CANCELLED', reason: 'expireDate is empty', task: { id: first.id, status: 'CANCELLED', nextRunAt: null } }],
    });
    expect(await save({ id: 'c-1', expireDate: '' })).toMatchObject({ cancelled: 0, unchanged: 1 });
    const back = await save({ id: 'c-1', expireDate: '2030-03-10' });
    expect(back).toMatchObject({ created: 1 });
    expect(back.changes[0].task.id).not.toBe(first.id);
    const tasks = await dateFieldTasks(t);
    expect(tasks.map((x) => x.status)).toEqual(['CANCELLED', 'SCHEDULED']);
    expect(tasks[0]!.events.at(-1)).toMatchObject({ fromStatus: 'SCHEDULED', toStatus: 'CANCELLED', message: 'expireDate is empty' });
  });

  it('follows the condition: a record that stops matching loses its task', async () => {
    await createDateFieldTemplate(t, {}, { condition: { status: 'active', amount: { $gte: 1000 } } });
    expect(await save({ id: 'c-1', expireDate: '2030-03-10', status: 'draft', amount: 5000 })).toMatchObject({ created: 0, unchanged: 1 });
    expect(await save({ id: 'c-1', expireDate: '2030-03-10', status: 'active', amount: 5000 })).toMatchObject({ created: 1 });
    const stopped = await save({ id: 'c-1', expireDate: '2030-03-10', status: 'active', amount: 10 });
    expect(stopped).toMatchObject({ cancelled: 1, changes: [{ reason: 'record does not match the condition' }] });
    expect((await dateFieldTasks(t)).map((x) => x.status)).toEqual(['CANCELLED']);
  });

  it('cancels on delete and keeps the task in history; deleting again is a no-op', async () => {
    await createDateFieldTemplate(t);
    await save({ id: 'c-1', expireDate: '2030-03-10' });
    const deleted = ok(
      await t.gql(DELETE, { rowObj: { model: 'models.Contract', prevData: { id: 'c-1', expireDate: '2030-03-10' } } }),
    ).deleteDateFieldTask;
    expect(deleted).toMatchObject({
      cancelled: 1,
      changes: [{ action: 'CANCELLED', reason: 'record deleted', task: { status: 'CANCELLED' } }],
    });
    const again = ok(await t.gql(DELETE, { rowObj: { model: 'models.Contract', prevData: { id: 'c-1' } } })).deleteDateFieldTask;
    expect(again).toMatchObject({ cancelled: 0, unchanged: 1 });
    expect((await dateFieldTasks(t)).map((x) => x.status)).toEqual(['CANCELLED']);
    expect(await t.app.db.prisma.dateFieldSource.count()).toBe(0);
  });

  it('does not run a date again whose task has finished, but runs a new date', async () => {
    await createDateFieldTemplate(t);
    const first = (await save({ id: 'c-1', expireDate: '2030-03-10' })).changes[0].task;
    await taskSvc.forcedEnd(first.id, 'handled by hand');
    expect(await save({ id: 'c-1', expireDate: '2030-03-10' })).toMatchObject({ created: 0, unchanged: 1 });
    expect(await save({ id: 'c-1', expireDate: '2030-05-01' })).toMatchObject({ created: 1 });
  });

  it('reads the time zone from a record field, falling back to the template zone', async () => {
    await createDateFieldTemplate(t, { timezone: 'Europe/Paris' }, { timezoneField: 'owner.timezone' });
    const shanghai = await save({ id: 'c-1', expireDate: '2030-03-10', owner: { timezone: 'Asia/Shanghai' } });
    expect(shanghai.changes[0].task).toMatchObject({ startTime: '2030-03-07T01:00:00.000Z', timezone: 'Asia/Shanghai' });
    const paris = await save({ id: 'c-2', expireDate: '2030-03-10', owner: {} });
    expect(paris.changes[0].task).toMatchObject({ startTime: '2030-03-07T08:00:00.000Z', timezone: 'Europe/Paris' });
    const moved = await save({ id: 'c-1', expireDate: '2030-03-10', owner: { timezone: 'America/New_York' } });
    expect(moved.changes[0]).toMatchObject({ action: 'RESCHEDULED', task: { startTime: '2030-03-07T14:00:00.000Z' } });
    const bad = await t.gql(SAVE, {
      rowObj: { model: 'models.Contract', postData: { id: 'c-3', expireDate: '2030-03-10', owner: { timezone: 'Mars/Olympus' } } },
    });
    expect(errorCode(bad)).toBe('INVALID_TIMEZONE');
    expect(bad.errors![0]!.extensions!.field).toBe('rowObj.postData.owner.timezone');
  });

  it('runs every DATE_FIELD template of the model, and only enabled ones', async () => {
    await createDateFieldTemplate(t);
    await createDateFieldTemplate(t, { fullName: 'tasks.ContractExpired' }, { offset: { amount: 0, unit: 'days' }, timeOfDay: null });
    await createDateFieldTemplate(t, { fullName: 'tasks.OrderDelivery' }, { model: 'models.Order', field: 'deliveryDate' });
    await createDateFieldTemplate(t, { fullName: 'tasks.Disabled', enabled: false });
    const result = await save({ id: 'c-1', expireDate: '2030-03-10T12:30:00+08:00' });
    expect(result.created).toBe(2);
    expect(Object.fromEntries(result.changes.map((c: any) => [c.template, c.task.startTime]))).toEqual({
      'tasks.ContractReminder': '2030-03-07T09:00:00.000Z',
      'tasks.ContractExpired': '2030-03-10T04:30:00.000Z',
    });
  });

  it('follows the misfire policy for a time already past: RUN_ONCE runs it at once, SKIP creates nothing', async () => {
    await createDateFieldTemplate(t);
    await createDateFieldTemplate(
      t,
      { fullName: 'tasks.SkipLate', misfirePolicy: 'SKIP', misfireToleranceMs: 60_000 },
      { offset: null, timeOfDay: null },
    );
    const of = (result: any, template: string) => result.changes.find((c: any) => c.template === template);
    const late = await save({ id: 'c-1', expireDate: '2029-01-10' });
    // RUN_ONCE (the default) keeps the past time: it is due, and the scheduler runs it once right away
    expect(of(late, 'tasks.ContractReminder')).toMatchObject({ action: 'CREATED', task: { nextRunAt: '2029-01-07T09:00:00.000Z' } });
    expect(of(late, 'tasks.SkipLate')).toMatchObject({ action: 'SKIPPED', task: null });
    expect(of(late, 'tasks.SkipLate').reason).toContain('misfire policy SKIP');
    expect(late).toMatchObject({ created: 1, skipped: 1 });
    // within the tolerance (60 s) a late time still runs
    const recent = await save({ id: 'c-2', expireDate: '2029-05-31T23:59:30Z' });
    expect(of(recent, 'tasks.SkipLate')).toMatchObject({ action: 'CREATED', task: { nextRunAt: '2029-05-31T23:59:30.000Z' } });
    // a skipped record stays skipped when saved again: nothing is created and cancelled over and over
    expect(of(await save({ id: 'c-1', expireDate: '2029-01-10' }), 'tasks.SkipLate')).toMatchObject({ action: 'SKIPPED' });
    expect(await t.app.db.prisma.task.count({ where: { fullName: 'tasks.SkipLate' } })).toBe(1);
  });

  it('refuses bad rowObj input with a coded error and writes nothing', async () => {
    await createDateFieldTemplate(t);
    await save({ id: 'c-1', expireDate: '2030-03-10' });
    const before = await writeCounts(t);
    const cases: [Record<string, unknown>, string, string][] = [
      [{ model: 'models.Contract', postData: { expireDate: '2030-03-10' } }, 'BAD_USER_INPUT', 'rowObj.postData.id'],
      [{ model: 'models.Contract', postData: { id: { nested: true }, expireDate: '2030-03-10' } }, 'BAD_USER_INPUT', 'rowObj.postData.id'],
      [{ model: 'models.Contract', postData: { id: 'c-1', expireDate: 'next tuesday' } }, 'BAD_USER_INPUT', 'rowObj.postData.expireDate'],
      [{ model: 'models.Contract', postData: { id: 'c-1', expireDate: '2030-02-30' } }, 'BAD_USER_INPUT', 'rowObj.postData.expireDate'],
      [{ model: 'models.Contract', postData: { id: 'c-1', expireDate: true } }, 'BAD_USER_INPUT', 'rowObj.postData.expireDate'],
      [{ model: '', postData: { id: 'c-1' } }, 'BAD_USER_INPUT', 'rowObj.model'],
      [{ model: 'models.Contract', postData: 'c-1' }, 'BAD_USER_INPUT', 'rowObj.postData'],
      [{ model: 'models.Contract' }, 'BAD_USER_INPUT', 'rowObj.postData'],
    ];
    for (const [rowObj, code, field] of cases) {
      const result = await t.gql(SAVE, { rowObj });
      expect(errorCode(result), JSON.stringify(rowObj)).toBe(code);
      expect(result.errors![0]!.extensions!.field, JSON.stringify(rowObj)).toBe(field);
    }
    const noId = await t.gql(DELETE, { rowObj: { model: 'models.Contract', prevData: { expireDate: '2030-03-10' } } });
    expect(noId.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'rowObj.prevData.id' });
    expect(await writeCounts(t)).toEqual(before);
    expect((await dateFieldTasks(t))[0]!.startTime.toISOString()).toBe('2030-03-07T09:00:00.000Z');
  });

  it("says why a record's date is not a date in the client's terms, not the date library's", async () => {
    await createDateFieldTemplate(t);
    const accepted = 'use ISO 8601 such as 2030-03-10 or 2030-03-10T09:00:00Z';
    const cases: [string, string][] = [
      ['not a date', 'rowObj.postData.expireDate "not a date" is not a date; '],
      ['2030-02-30', 'rowObj.postData.expireDate "2030-02-30" is not a date (day 30 does not exist); '],
      ['10000-01-01T00:00:00Z', 'rowObj.postData.expireDate "10000-01-01T00:00:00Z" is not a date (the year 10000 is outside 1970-9999); '],
    ];
    for (const [expireDate, message] of cases) {
      const result = await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'c-1', expireDate } } });
      expect(result.errors?.[0]?.message).toBe(message + accepted);
      expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'rowObj.postData.expireDate' });
    }
    expect(await dateFieldTasks(t)).toEqual([]);
  });

  it('is the same service through TaskSvc: same rules, same typed errors', async () => {
    await createDateFieldTemplate(t);
    const created: DateFieldResult = await taskSvc.saveDateFieldTask({
      model: 'models.Contract',
      postData: { id: 42, expireDate: '2030-03-10' },
      prevData: null,
    });
    expect(created).toMatchObject({ created: 1, changes: [{ rowId: '42', action: 'CREATED' }] });
    const viaGraphql = await save({ id: 42, expireDate: '2030-03-10' });
    expect(viaGraphql).toMatchObject({ unchanged: 1 });
    // a partial postData is merged over prevData
    const moved = await taskSvc.saveDateFieldTask({
      model: 'models.Contract',
      postData: { expireDate: '2030-03-11' },
      prevData: { id: 42, expireDate: '2030-03-10' },
    });
    expect(moved).toMatchObject({ rescheduled: 1, changes: [{ taskId: created.changes[0]!.taskId }] });
    const error = await taskSvc.saveDateFieldTask({ model: 'models.Contract', postData: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChronographError);
    expect(error).toMatchObject({ code: 'BAD_USER_INPUT', details: { field: 'rowObj.postData.id' } });
    const deleted = await taskSvc.deleteDateFieldTask({ model: 'models.Contract', prevData: { id: 42 } });
    expect(deleted).toMatchObject({ cancelled: 1 });
  });

  it('remembers a record named twice in one batch as its last change, so reconcile does not revive a deleted one', async () => {
    await createDateFieldTemplate(t);
    const batch = await t.app.dateFieldSvc.saveRecords('models.Contract', [
      { rowId: 'gone', data: { expireDate: '2030-03-10' } },
      { rowId: 'back', data: null },
      { rowId: 'gone', data: null },
      { rowId: 'back', data: { expireDate: '2030-04-10' } },
    ]);
    expect(batch).toMatchObject({ created: 1, cancelled: 0 });
    const remembered = await t.app.db.prisma.dateFieldSource.findMany({ where: { model: 'models.Contract' } });
    expect(remembered.map((r) => r.rowId)).toEqual(['back']);
    expect(ok(await t.gql(RECONCILE, { model: 'models.Contract' })).reconcileDateFieldTasks).toMatchObject({ created: 0, cancelled: 0 });
    const live = await t.app.db.prisma.task.findMany({ where: { sourceModel: 'models.Contract', status: 'SCHEDULED' } });
    expect(live.map((task) => [task.sourceRowId, task.startTime.toISOString()])).toEqual([['back', '2030-04-07T09:00:00.000Z']]);
  });

  it('keeps tenants apart', async () => {
    await createDateFieldTemplate(t);
    const other = await t.gql(
      SAVE,
      { rowObj: { model: 'models.Contract', postData: { id: 'c-1', expireDate: '2030-03-10' } } },
      { 'x-tenant-id': 'acme' },
    );
    expect(ok(other).saveDateFieldTask).toMatchObject({ created: 0, changes: [] });
    expect(await save({ id: 'c-1', expireDate: '2030-03-10' })).toMatchObject({ created: 1 });
  });
});
