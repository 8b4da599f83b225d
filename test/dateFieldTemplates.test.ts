import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CREATE_TEMPLATE,
  createDateFieldTemplate,
  dateFieldTasks,
  RECONCILE,
  SAVE,
  UPDATE_TEMPLATE,
  writeCounts,
} from './support/dateFields.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

const NOW = new Date('2029-06-01T00:00:00Z');

describe.each(backends)('DATE_FIELD templates (%s)', (backend) => {
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
    await p.modelDefinition.deleteMany({});
  });

  const save = async (postData: Record<string, unknown>) =>
    ok(await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData } })).saveDateFieldTask;
  const update = async (patch: Record<string, unknown>, fullName = 'tasks.ContractReminder') => t.gql(UPDATE_TEMPLATE, { fullName, patch });

  it('stores the rule and reads it back; units and directions are normalised', async () => {
    const template = await createDateFieldTemplate(
      t,
      { intervalSeconds: 3600 },
      { offset: { amount: 90, unit: 'minutes', direction: 'after' }, condition: { status: 'active' }, maxRuns: 3 },
    );
    expect(template).toMatchObject({
      repeatType: 'DATE_FIELD',
      dateField: {
        model: 'models.Contract',
        field: 'expireDate',
        offset: { amount: 90, unit: 'MINUTES', direction: 'AFTER' },
        timeOfDay: '09:00',
        timezoneField: null,
        condition: { status: 'active' },
        maxRuns: 3,
      },
    });
    const read = ok(
      await t.gql(`{ taskTemplate(fullName: "tasks.ContractReminder") { dateField { field offset { unit } } } }`),
    ).taskTemplate;
    expect(read.dateField).toEqual({ field: 'expireDate', offset: { unit: 'MINUTES' } });
  });

  it('refuses bad rules with a coded error naming the field, and writes nothing', async () => {
    const base = { fullName: 'tasks.Bad', title: 'Bad', repeatType: 'DATE_FIELD', funcName: 'chronograph.echo' };
    const dateField = { model: 'models.Contract', field: 'expireDate' };
    const cases: [Record<string, unknown>, string, string][] = [
      [{ ...base, dateField: { ...dateField, offset: { amount: 3, unit: 'WEEKS' } } }, 'BAD_USER_INPUT', 'dateField.offset.unit'],
      [
        { ...base, dateField: { ...dateField, offset: { amount: 3, unit: 'DAYS', direction: 'AROUND' } } },
        'BAD_USER_INPUT',
        'dateField.offset.direction',
      ],
      [{ ...base, dateField: { ...dateField, offset: { amount: -3, unit: 'DAYS' } } }, 'BAD_USER_INPUT', 'dateField.offset.amount'],
      [{ ...base, dateField: { ...dateField, model: '' } }, 'BAD_USER_INPUT', 'dateField.model'],
      [{ ...base, dateField: { ...dateField, model: '  ' } }, 'BAD_USER_INPUT', 'dateField.model'],
      [{ ...base, dateField: { ...dateField, field: '' } }, 'BAD_USER_INPUT', 'dateField.field'],
      [{ ...base, dateField: { ...dateField, field: 'a..b' } }, 'BAD_USER_INPUT', 'dateField.field'],
      [{ ...base, dateField: { ...dateField, timeOfDay: '25:00' } }, 'BAD_USER_INPUT', 'dateField.timeOfDay'],
      [
        { ...base, dateField: { ...dateField, condition: { amount: { $between: [1, 2] } } } },
        'BAD_USER_INPUT',
        'dateField.condition.amount.$between',
      ],
      [{ ...base, dateField: { ...dateField, condition: ['active'] } }, 'BAD_USER_INPUT', 'dateField.condition'],
      [
        { ...base, dateField: { ...dateField, endOffset: { amount: 1, unit: 'DAYS', direction: 'BEFORE' } } },
        'BAD_USER_INPUT',
        'dateField.endOffset',
      ],
      [{ ...base, dateField: { ...dateField, maxRuns: 0 } }, 'BAD_USER_INPUT', 'dateField.maxRuns'],
      // An end or a run limit is only for a task that repeats after its first run.
      [{ ...base, dateField: { ...dateField, maxRuns: 3 } }, 'BAD_USER_INPUT', 'dateField.maxRuns'],
      [{ ...base, dateField: { ...dateField, endOffset: { amount: 1, unit: 'DAYS' } } }, 'BAD_USER_INPUT', 'dateField.endOffset'],
      [{ ...base }, 'BAD_USER_INPUT', 'dateField'],
      [{ ...base, funcName: null, dateField }, 'BAD_USER_INPUT', 'funcName'],
      [{ ...base, funcName: 'services.Nope.run', dateField }, 'UNKNOWN_FUNC', 'funcName'],
      [{ ...base, dateField, cronExpression: '0 9 * * *', intervalSeconds: 60 }, 'BAD_USER_INPUT', 'intervalSeconds'],
      [{ ...base, repeatType: 'ONCE', dateField }, 'BAD_USER_INPUT', 'dateField'],
    ];
    for (const [input, code, field] of cases) {
      const result = await t.gql(CREATE_TEMPLATE, { input });
      expect(errorCode(result), JSON.stringify(input)).toBe(code);
      expect(result.errors![0]!.extensions!.field, JSON.stringify(input)).toBe(field);
    }
    expect(await t.app.db.prisma.taskTemplate.count({ where: { fullName: 'tasks.Bad' } })).toBe(0);
  });

  it('propagates an offset change to pending tasks: same tasks, RESCHEDULED', async () => {
    await createDateFieldTemplate(t);
    await save({ id: 'c-1', expireDate: '2030-03-10' });
    await save({ id: 'c-2', expireDate: '2030-05-01' });
    const before = await dateFieldTasks(t);
    const updated = ok(
      await update({
        dateField: {
          model: 'models.Contract',
          field: 'expireDate',
          offset: { amount: 1, unit: 'DAYS', direction: 'BEFORE' },
          timeOfDay: '10:30',
        },
      }),
    );
    expect(updated.updateTaskTemplate.dateField.offset).toEqual({ amount: 1, unit: 'DAYS', direction: 'BEFORE' });
    const after = await dateFieldTasks(t);
    expect(after.map((x) => x.id)).toEqual(before.map((x) => x.id));
    expect(after.map((x) => [x.status, x.startTime.toISOString(), x.nextRunAt?.toISOString()])).toEqual([
      ['SCHEDULED', '2030-03-09T10:30:00.000Z', '2030-03-09T10:30:00.000Z'],
      ['SCHEDULED', '2030-04-30T10:30:00.000Z', '2030-04-30T10:30:00.000Z'],
    ]);
    expect(after[0]!.events.at(-1)).toMatchObject({ type: 'RESCHEDULED', fromStatus: 'SCHEDULED', toStatus: 'SCHEDULED' });
    // a title change leaves the tasks alone
    const events = await t.app.db.prisma.taskEvent.count();
    ok(await update({ title: 'Renamed' }));
    expect(await t.app.db.prisma.taskEvent.count()).toBe(events);
  });

  it('propagates a handler change and a condition change; disabling cancels, enabling brings tasks back', async () => {
    await createDateFieldTemplate(t);
    await save({ id: 'c-1', expireDate: '2030-03-10', status: 'active' });
    await save({ id: 'c-2', expireDate: '2030-05-01', status: 'draft' });

    ok(await update({ funcName: 'chronograph.noop', argDict: { channel: 'sms' } }));
    let tasks = await dateFieldTasks(t);
    expect(tasks.map((x) => [x.funcName, (x.argDict as any).channel, x.status])).toEqual([
      ['chronograph.noop', 'sms', 'SCHEDULED'],
      ['chronograph.noop', 'sms', 'SCHEDULED'],
    ]);
    expect(tasks[0]!.events.at(-1)!.message).toContain('template changed');

    ok(
      await update({
        dateField: {
          model: 'models.Contract',
          field: 'expireDate',
          offset: { amount: 3, unit: 'DAYS', direction: 'BEFORE' },
          timeOfDay: '09:00',
          condition: { status: 'active' },
        },
      }),
    );
    tasks = await dateFieldTasks(t);
    expect(tasks.map((x) => [x.sourceRowId, x.status])).toEqual([
      ['c-1', 'SCHEDULED'],
      ['c-2', 'CANCELLED'],
    ]);

    ok(await update({ enabled: false }));
    tasks = await dateFieldTasks(t);
    expect(tasks.map((x) => x.status)).toEqual(['CANCELLED', 'CANCELLED']);
    expect(tasks[0]!.events.at(-1)).toMatchObject({ toStatus: 'CANCELLED', message: 'template disabled' });
    // while disabled, hooks create nothing
    expect(await save({ id: 'c-3', expireDate: '2030-06-01', status: 'active' })).toMatchObject({ created: 0 });

    ok(await update({ enabled: true }));
    tasks = await dateFieldTasks(t, { status: 'SCHEDULED' });
    expect(tasks.map((x) => x.sourceRowId).sort()).toEqual(['c-1', 'c-3']);

    // the template has live tasks, so it cannot be deleted until they are gone
    expect(errorCode(await t.gql(`mutation { deleteTaskTemplate(fullName: "tasks.ContractReminder") { fullName } }`))).toBe('CONFLICT');
    ok(await update({ repeatType: 'ONCE' }));
    expect(await t.app.db.prisma.task.count({ where: { status: 'SCHEDULED' } })).toBe(0);
    expect(ok(await t.gql(`{ taskTemplate(fullName: "tasks.ContractReminder") { repeatType dateField { model } } }`)).taskTemplate).toEqual(
      {
        repeatType: 'ONCE',
        dateField: null,
      },
    );
  });

  it('repeats after the first run by intervalSeconds, up to maxRuns or the end offset', async () => {
    await createDateFieldTemplate(
      t,
      { intervalSeconds: 86_400 },
      { offset: { amount: 7, unit: 'DAYS', direction: 'BEFORE' }, endOffset: { amount: 0, unit: 'DAYS' }, maxRuns: 5 },
    );
    const result = await save({ id: 'c-1', expireDate: '2030-03-10' });
    expect(result.changes[0].task).toMatchObject({ startTime: '2030-03-03T09:00:00.000Z' });
    const [task] = await dateFieldTasks(t);
    expect(task).toMatchObject({ repeatType: 'INTERVAL', intervalSeconds: 86_400, maxRuns: 5 });
    expect(task!.endTime!.toISOString()).toBe('2030-03-10T00:00:00.000Z');
  });

  it("checks a template on a low-code model against the model's date fields", async () => {
    ok(
      await t.gql(
        `mutation { saveModel(input: { name: "models.Contract", fields: [{ name: "expireDate", type: DATE }, { name: "title", type: TEXT }] }) { name } }`,
      ),
    );
    const wrong = await t.gql(CREATE_TEMPLATE, {
      input: {
        fullName: 'tasks.Wrong',
        title: 'W',
        repeatType: 'DATE_FIELD',
        funcName: 'chronograph.echo',
        dateField: { model: 'models.Contract', field: 'title' },
      },
    });
    expect(wrong.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'dateField.field' });
    await createDateFieldTemplate(t);
  });

  it("loads DATE_FIELD templates from the app's template files", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'chronograph-app-'));
    await mkdir(path.join(dir, 'templates'));
    await writeFile(
      path.join(dir, 'templates', 'contracts.json'),
      JSON.stringify({
        fullName: 'tasks.FileReminder',
        title: 'From a file',
        repeatType: 'DATE_FIELD',
        funcName: 'chronograph.echo',
        dateField: { model: 'models.Contract', field: 'expireDate', offset: { amount: 1, unit: 'HOURS', direction: 'BEFORE' } },
      }),
    );
    const fileApp = await createTestApp(backend, { env: { APP_DIR: dir }, now: () => NOW });
    try {
      const result = ok(
        await fileApp.gql(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'c-1', expireDate: '2030-03-10T12:00:00Z' } } }),
      ).saveDateFieldTask;
      expect(result.changes.map((c: any) => [c.template, c.task.startTime])).toEqual([['tasks.FileReminder', '2030-03-10T11:00:00.000Z']]);
    } finally {
      await fileApp.close();
    }
    const bad = path.join(dir, 'templates', 'bad.json');
    await writeFile(
      bad,
      JSON.stringify({
        fullName: 'tasks.BadFile',
        title: 'x',
        repeatType: 'DATE_FIELD',
        funcName: 'chronograph.echo',
        dateField: { model: 'models.Contract', field: 'expireDate', offset: { amount: 1, unit: 'fortnights' } },
      }),
    );
    await expect(createTestApp(backend, { env: { APP_DIR: dir } })).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
      details: { field: 'dateField.offset.unit' },
    });
  });

  it('recomputes external records from what the hooks last reported', async () => {
    await createDateFieldTemplate(t);
    await save({ id: 'c-1', expireDate: '2030-03-10', status: 'active' });
    expect(await writeCounts(t)).toMatchObject({ sources: 1 });
    const snapshot = await t.app.db.prisma.dateFieldSource.findFirstOrThrow();
    expect(snapshot).toMatchObject({
      model: 'models.Contract',
      rowId: 'c-1',
      data: { id: 'c-1', expireDate: '2030-03-10', status: 'active' },
    });
    await save({ id: 'c-1', expireDate: '2030-09-01', status: 'active' });
    expect((await t.app.db.prisma.dateFieldSource.findFirstOrThrow()).data).toMatchObject({ expireDate: '2030-09-01' });
    // a template change recomputes the task from the remembered record, not from the first version
    ok(
      await update({
        dateField: { model: 'models.Contract', field: 'expireDate', offset: { amount: 1, unit: 'HOURS', direction: 'AFTER' } },
      }),
    );
    const [task] = await dateFieldTasks(t);
    expect(task!.startTime.toISOString()).toBe('2030-09-01T01:00:00.000Z');
    expect(task!.events.map((e) => e.type)).toEqual(['CREATED', 'RESCHEDULED', 'RESCHEDULED']);
    expect(ok(await t.gql(RECONCILE, { model: 'models.Contract' })).reconcileDateFieldTasks).toMatchObject({
      created: 0,
      rescheduled: 0,
      cancelled: 0,
      unchanged: 1,
    });
    await t.gql(`mutation { deleteDateFieldTask(rowObj: { model: "models.Contract", prevData: { id: "c-1" } }) { cancelled } }`).then(ok);
    expect(await t.app.db.prisma.dateFieldSource.count()).toBe(0);
  });
});
