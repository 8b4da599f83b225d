import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ModelSvc } from '../src/dateFields/ModelSvc.js';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { createDateFieldTemplate, dateFieldTasks, RECONCILE, writeCounts } from './support/dateFields.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

const NOW = new Date('2029-06-01T00:00:00Z');

const SAVE_MODEL = `mutation($input: ModelDefinitionInput!) { saveModel(input: $input) { name title fields { name type required } recordCount } }`;
const CREATE = `mutation($model: String!, $data: JSON!) { createModelRecord(model: $model, data: $data) {
  record { id model data tasks { id status startTime } } dateFields { created rescheduled cancelled unchanged changes { action task { id } } } } }`;
const UPDATE = `mutation($model: String!, $id: ID!, $data: JSON!, $replace: Boolean) { updateModelRecord(model: $model, id: $id, data: $data, replace: $replace) {
  record { id data tasks { id status startTime events { type fromStatus toStatus } } } dateFields { created rescheduled cancelled unchanged } } }`;
const DELETE = `mutation($model: String!, $id: ID!) { deleteModelRecord(model: $model, id: $id) { record { id } dateFields { cancelled } } }`;
const IMPORT = `mutation($model: String!, $records: [JSON!]!) { importModelRecords(model: $model, records: $records) { count dateFields { created skipped } } }`;
const RECORDS = `query($model: String!, $where: JSON, $first: Int, $after: String) { modelRecords(model: $model, where: $where, first: $first, after: $after) {
  edges { cursor node { id data } } pageInfo { hasNextPage endCursor } } }`;

const CONTRACT = {
  name: 'models.Contract',
  title: 'Contract',
  fields: [
    { name: 'title', type: 'TEXT', required: true },
    { name: 'amount', type: 'NUMBER' },
    { name: 'active', type: 'BOOLEAN' },
    { name: 'status', type: 'TEXT' },
    { name: 'expireDate', type: 'DATE' },
    { name: 'signedAt', type: 'DATETIME' },
    { name: 'meta', type: 'JSON' },
  ],
};

describe.each(backends)('low-code models and their records (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW });
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    const p = t.app.db.prisma;
    await p.task.deleteMany({});
    await p.taskTemplate.deleteMany({ where: { origin: 'API' } });
    await p.modelDefinition.deleteMany({});
    ok(await t.gql(SAVE_MODEL, { input: CONTRACT }));
  });

  const create = async (data: Record<string, unknown>) => ok(await t.gql(CREATE, { model: 'models.Contract', data })).createModelRecord;

  it('defines models with typed fields and validates records against them', async () => {
    const models = ok(await t.gql(`{ models { name fields { name type required } recordCount } }`)).models;
    expect(models).toEqual([{ name: 'models.Contract', fields: CONTRACT.fields.map((f) => ({ required: false, ...f })), recordCount: 0 }]);
    const record = (
      await create({
        title: 'Lease',
        amount: 1200.5,
        active: true,
        expireDate: '2030-03-10',
        signedAt: '2029-01-02 10:00:00',
        meta: { tags: ['a'] },
      })
    ).record;
    expect(record.data).toEqual({
      title: 'Lease',
      amount: 1200.5,
      active: true,
      expireDate: '2030-03-10',
      signedAt: '2029-01-02T10:00:00.000Z',
      meta: { tags: ['a'] },
    });

    const before = await writeCounts(t);
    const bad: [Record<string, unknown>, string][] = [
      [{ amount: 1 }, 'data.title'],
      [{ title: 'x', amount: '12' }, 'data.amount'],
      [{ title: 'x', active: 'yes' }, 'data.active'],
      [{ title: 'x', expireDate: '2030-02-30' }, 'data.expireDate'],
      [{ title: 'x', expireDate: '10/03/2030' }, 'data.expireDate'],
      [{ title: 'x', signedAt: 'soon' }, 'data.signedAt'],
      [{ title: 'x', colour: 'red' }, 'data.colour'],
    ];
    for (const [data, field] of bad) {
      const result = await t.gql(CREATE, { model: 'models.Contract', data });
      expect(result.errors![0]!.extensions, JSON.stringify(data)).toMatchObject({ code: 'BAD_USER_INPUT', field });
    }
    expect(errorCode(await t.gql(CREATE, { model: 'models.Nope', data: {} }))).toBe('NOT_FOUND');
    const badModel = await t.gql(SAVE_MODEL, { input: { name: 'models.X', fields: [{ name: 'id', type: 'TEXT' }] } });
    expect(badModel.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'fields[0].name' });
    const badType = await t.gql(SAVE_MODEL, { input: { name: 'models.X', fields: [{ name: 'a', type: 'MONEY' }] } });
    expect(errorCode(badType)).toBe('BAD_USER_INPUT');
    expect(await writeCounts(t)).toEqual(before);
  });

  it("runs the date-field layer in the record's own transaction: create, update, clear, delete", async () => {
    await createDateFieldTemplate(t, {}, { condition: { status: { $ne: 'closed' } } });
    const created = await create({ title: 'Lease', expireDate: '2030-03-10' });
    expect(created.dateFields).toMatchObject({ created: 1, changes: [{ action: 'CREATED' }] });
    expect(created.record.tasks).toEqual([
      { id: created.dateFields.changes[0].task.id, status: 'SCHEDULED', startTime: '2030-03-07T09:00:00.000Z' },
    ]);
    const id = created.record.id;

    const title = ok(await t.gql(UPDATE, { model: 'models.Contract', id, data: { title: 'Lease 2' } })).updateModelRecord;
    expect(title.dateFields).toMatchObject({ unchanged: 1, rescheduled: 0 });
    expect(title.record.data).toEqual({ title: 'Lease 2', expireDate: '2030-03-10' });

    const moved = ok(await t.gql(UPDATE, { model: 'models.Contract', id, data: { expireDate: '2030-04-20' } })).updateModelRecord;
    expect(moved.dateFields).toMatchObject({ rescheduled: 1 });
    expect(moved.record.tasks).toHaveLength(1);
    expect(moved.record.tasks[0]).toMatchObject({
      startTime: '2030-04-17T09:00:00.000Z',
      events: [{ type: 'CREATED' }, { type: 'RESCHEDULED', fromStatus: 'SCHEDULED', toStatus: 'SCHEDULED' }],
    });

    const closed = ok(await t.gql(UPDATE, { model: 'models.Contract', id, data: { status: 'closed' } })).updateModelRecord;
    expect(closed.dateFields).toMatchObject({ cancelled: 1 });
    const reopened = ok(
      await t.gql(UPDATE, { model: 'models.Contract', id, data: { status: 'open', expireDate: null } }),
    ).updateModelRecord;
    expect(reopened.dateFields).toMatchObject({ created: 0, unchanged: 1 });
    const replaced = ok(
      await t.gql(UPDATE, { model: 'models.Contract', id, data: { title: 'New', expireDate: '2030-05-01' }, replace: true }),
    ).updateModelRecord;
    expect(replaced.record.data).toEqual({ title: 'New', expireDate: '2030-05-01' });
    expect(replaced.dateFields).toMatchObject({ created: 1 });

    const deleted = ok(await t.gql(DELETE, { model: 'models.Contract', id })).deleteModelRecord;
    expect(deleted.dateFields).toMatchObject({ cancelled: 1 });
    expect((await dateFieldTasks(t)).map((x) => x.status)).toEqual(['CANCELLED', 'CANCELLED']);
    expect(ok(await t.gql(`query($id: ID!) { modelRecord(model: "models.Contract", id: $id) { id } }`, { id })).modelRecord).toBeNull();
    expect(errorCode(await t.gql(DELETE, { model: 'models.Contract', id }))).toBe('NOT_FOUND');
  });

  it('writes neither record nor task when the record is bad, and neither when the layer fails', async () => {
    await createDateFieldTemplate(t, {}, { timezoneField: 'status' });
    const before = await writeCounts(t);
    // status is not a time zone: the layer refuses after the record was inserted, and both roll back
    const result = await t.gql(CREATE, {
      model: 'models.Contract',
      data: { title: 'x', expireDate: '2030-03-10', status: 'Mars/Olympus' },
    });
    expect(result.errors![0]!.extensions).toMatchObject({ code: 'INVALID_TIMEZONE', field: 'data.status' });
    expect(await writeCounts(t)).toEqual(before);
  });

  it('creates tasks for existing records when a template is created, and reconcile repairs what hooks missed', async () => {
    const a = (await create({ title: 'A', expireDate: '2030-03-10' })).record.id;
    const b = (await create({ title: 'B', expireDate: '2030-04-10' })).record.id;
    await create({ title: 'C' });
    await createDateFieldTemplate(t);
    expect((await dateFieldTasks(t, { status: 'SCHEDULED' })).map((x) => x.sourceRowId).sort()).toEqual([a, b].sort());

    expect(ok(await t.gql(RECONCILE, { model: 'models.Contract' })).reconcileDateFieldTasks).toEqual({
      created: 0,
      rescheduled: 0,
      cancelled: 0,
      unchanged: 3,
      skipped: 0,
    });

    // drift: a task cancelled behind the layer's back, a record's date changed behind it, a stray task
    const taskSvc = t.app.getElement('services.TaskSvc') as TaskSvc;
    const [taskA] = await dateFieldTasks(t, { sourceRowId: a });
    await taskSvc.cancelTask(taskA!.id, 'oops');
    const p = t.app.db.prisma;
    await p.modelRecord.update({ where: { id: b }, data: { data: { title: 'B', expireDate: '2030-06-10' } } });
    const template = await p.taskTemplate.findFirstOrThrow({ where: { fullName: 'tasks.ContractReminder' } });
    await p.task.create({
      data: {
        templateId: template.id,
        fullName: template.fullName,
        taskType: 'tasks.NormalType',
        funcName: 'chronograph.echo',
        startTime: new Date('2030-01-01T00:00:00Z'),
        nextRunAt: new Date('2030-01-01T00:00:00Z'),
        source: 'DATE_FIELD',
        sourceModel: 'models.Contract',
        sourceRowId: '00000000-0000-7000-8000-000000000000',
        sourceField: 'expireDate',
      },
    });

    const repaired = ok(await t.gql(RECONCILE, { model: 'models.Contract' })).reconcileDateFieldTasks;
    expect(repaired).toEqual({ created: 1, rescheduled: 1, cancelled: 1, unchanged: 1, skipped: 0 });
    const live = await dateFieldTasks(t, { status: { in: ['SCHEDULED'] } });
    expect(live.map((x) => [x.sourceRowId, x.startTime.toISOString()]).sort()).toEqual(
      [
        [a, '2030-03-07T09:00:00.000Z'],
        [b, '2030-06-07T09:00:00.000Z'],
      ].sort(),
    );
    expect(ok(await t.gql(RECONCILE, { model: 'models.Contract' })).reconcileDateFieldTasks).toMatchObject({
      created: 0,
      rescheduled: 0,
      cancelled: 0,
    });
    expect(errorCode(await t.gql(RECONCILE, { model: '' }))).toBe('BAD_USER_INPUT');
  });

  it('imports many records in one transaction, all or none, with their tasks', async () => {
    await createDateFieldTemplate(t);
    const records = Array.from({ length: 2500 }, (_, i) => ({
      title: `C${i}`,
      expireDate: i % 5 === 0 ? null : `2030-0${1 + (i % 9)}-1${i % 10}`,
    }));
    const imported = ok(await t.gql(IMPORT, { model: 'models.Contract', records })).importModelRecords;
    expect(imported).toEqual({ count: 2500, dateFields: { created: 2000, skipped: 0 } });
    expect(await t.app.db.prisma.task.count({ where: { source: 'DATE_FIELD', status: 'SCHEDULED' } })).toBe(2000);
    expect(await t.app.db.prisma.taskEvent.count()).toBe(2000);

    const before = await writeCounts(t);
    const failed = await t.gql(IMPORT, {
      model: 'models.Contract',
      records: [
        { title: 'ok', expireDate: '2030-01-01' },
        { title: 'bad', expireDate: 'tomorrow' },
      ],
    });
    expect(failed.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'records[1].expireDate' });
    expect(await writeCounts(t)).toEqual(before);
    expect(ok(await t.gql(RECONCILE, { model: 'models.Contract' })).reconcileDateFieldTasks).toEqual({
      created: 0,
      rescheduled: 0,
      cancelled: 0,
      unchanged: 2500,
      skipped: 0,
    });
  });

  it('queries records with the condition language, page by page', async () => {
    const modelSvc = t.app.getElement('services.ModelSvc') as ModelSvc;
    await modelSvc.importRecords(
      'models.Contract',
      Array.from({ length: 7 }, (_, i) => ({ title: `C${i}`, amount: i * 100, status: i % 2 ? 'active' : 'draft' })),
    );
    const page = async (vars: Record<string, unknown>) => ok(await t.gql(RECORDS, { model: 'models.Contract', ...vars })).modelRecords;
    const titles = (p: any) => p.edges.map((e: any) => e.node.data.title);
    expect(titles(await page({ where: { status: 'active' } }))).toEqual(['C1', 'C3', 'C5']);
    expect(titles(await page({ where: { amount: { $gte: 300 }, status: { $in: ['draft'] } } }))).toEqual(['C4', 'C6']);
    const first = await page({ first: 3 });
    expect(first.pageInfo.hasNextPage).toBe(true);
    const second = await page({ first: 3, after: first.pageInfo.endCursor });
    const third = await page({ first: 3, after: second.pageInfo.endCursor });
    expect([...titles(first), ...titles(second), ...titles(third)]).toEqual(['C0', 'C1', 'C2', 'C3', 'C4', 'C5', 'C6']);
    expect(third.pageInfo.hasNextPage).toBe(false);
    expect((await t.gql(RECORDS, { model: 'models.Contract', where: { amount: { $near: 1 } } })).errors![0]!.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'where.amount.$near',
    });
    expect(errorCode(await t.gql(RECORDS, { model: 'models.Contract', after: 'nope' }))).toBe('BAD_USER_INPUT');
  });

  it('guards field changes that records or templates depend on, and deleting a model cancels its tasks', async () => {
    await createDateFieldTemplate(t);
    await create({ title: 'Lease', amount: 5, expireDate: '2030-03-10' });
    const without = (name: string) => CONTRACT.fields.filter((f) => f.name !== name);
    const dropAmount = await t.gql(SAVE_MODEL, { input: { ...CONTRACT, fields: without('amount') } });
    expect(dropAmount.errors![0]!.extensions).toMatchObject({ code: 'CONFLICT', field: 'fields' });
    const retypeDate = await t.gql(SAVE_MODEL, {
      input: { ...CONTRACT, fields: [...without('expireDate'), { name: 'expireDate', type: 'TEXT' }] },
    });
    expect(errorCode(retypeDate)).toBe('CONFLICT');
    // unused fields can go, new ones can come
    const changed = ok(
      await t.gql(SAVE_MODEL, { input: { ...CONTRACT, fields: [...without('meta'), { name: 'owner', type: 'TEXT' }] } }),
    ).saveModel;
    expect(changed.fields.map((f: any) => f.name)).toContain('owner');

    const deleted = ok(await t.gql(`mutation { deleteModel(name: "models.Contract") { name } }`)).deleteModel;
    expect(deleted.name).toBe('models.Contract');
    expect((await dateFieldTasks(t)).map((x) => [x.status, x.events.at(-1)!.message])).toEqual([['CANCELLED', 'record deleted']]);
    expect(await t.app.db.prisma.modelRecord.count()).toBe(0);
  });
});
