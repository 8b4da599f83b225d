import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDateFieldTemplate, DELETE, dateFieldTasks, SAVE, writeCounts } from './support/dateFields.js';
import { lockStage } from './support/lockStage.js';
import { backends, createTestApp, createTestDatabase, ok, type TestApp, type TestDatabase } from './support/testApp.js';
import { lockWaiters } from './support/waitFor.js';

const NOW = new Date('2029-06-01T00:00:00Z');

const CREATE_RECORD = `mutation($data: JSON!) { createModelRecord(model: "models.Contract", data: $data) {
  record { id } dateFields { created changes { task { id startTime } } } } }`;

/** Every row the date-field layer may write, and the record's tasks with their events, to compare before and after. */
async function snapshot(t: TestApp) {
  const tasks = await dateFieldTasks(t);
  return {
    counts: await writeCounts(t),
    tasks: tasks.map((task) => ({
      id: task.id,
      status: task.status,
      startTime: task.startTime.toISOString(),
      events: task.events.map((e) => e.type),
    })),
    records: await t.app.db.prisma.modelRecord.findMany({ orderBy: { id: 'asc' } }),
  };
}

/**
 * QA: hooks acted on Chronograph's own low-code models. With a record R of models.Contract (defined
 * with saveModel) dated 2031-03-10, saveDateFieldTask(postData: { id: R, expireDate: 2032-01-01 })
 * rescheduled R's task while R kept its date, and deleteDateFieldTask(prevData: { id: R }) cancelled it
 * while R still existed: no live task for a live, dated record. The hooks, the Prisma extension's
 * saveRecords and saveExternal now refuse a low-code model of the tenant (CONFLICT naming the model's
 * argument), writing nothing; the record mutations keep its tasks in line as before.
 */
describe.each(backends)('hooks refuse low-code models (%s)', (backend) => {
  let t: TestApp;
  let recordId: string;
  let taskId: string;
  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW, env: { SCHEDULER_ENABLED: 'false' } });
    ok(
      await t.gql(
        `mutation { saveModel(input: { name: "models.Contract", fields: [{ name: "expireDate", type: DATE }, { name: "status", type: TEXT }] }) { name } }`,
      ),
    );
    await createDateFieldTemplate(t);
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    const created = ok(await t.gql(CREATE_RECORD, { data: { expireDate: '2031-03-10', status: 'active' } })).createModelRecord;
    expect(created.dateFields.created).toBe(1);
    recordId = created.record.id;
    taskId = created.dateFields.changes[0].task.id;
  });

  const refusedWithNothingWritten = async (call: () => Promise<unknown>, field: string) => {
    const before = await snapshot(t);
    const error = await call();
    expect(error).toMatchObject({ code: 'CONFLICT', field, model: 'models.Contract' });
    expect((error as { message: string }).message).toMatch(/low-code model.*createModelRecord/);
    expect(await snapshot(t)).toEqual(before);
  };
  const gqlError = async (query: string, variables: Record<string, unknown>) => {
    const result = await t.gql(query, variables);
    expect(result.data ?? null).toBeNull();
    return { message: result.errors?.[0]?.message, ...result.errors?.[0]?.extensions };
  };

  it('saveDateFieldTask of a low-code record: CONFLICT on rowObj.model, the task keeps its time', async () => {
    await refusedWithNothingWritten(
      () =>
        gqlError(SAVE, { rowObj: { model: 'models.Contract', postData: { id: recordId, expireDate: '2032-01-01', status: 'active' } } }),
      'rowObj.model',
    );
    // also for an id that is no record of the model: the name is the model's
    await refusedWithNothingWritten(
      () => gqlError(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'ext-1', expireDate: '2032-01-01' } } }),
      'rowObj.model',
    );
    const [task] = await dateFieldTasks(t, { id: taskId });
    expect(task).toMatchObject({ status: 'SCHEDULED' });
    expect(task!.startTime.toISOString()).toBe('2031-03-07T09:00:00.000Z');
  });

  it('deleteDateFieldTask of a low-code record: CONFLICT, the record keeps its live task', async () => {
    await refusedWithNothingWritten(
      () => gqlError(DELETE, { rowObj: { model: 'models.Contract', prevData: { id: recordId } } }),
      'rowObj.model',
    );
    expect(await dateFieldTasks(t, { sourceRowId: recordId, status: 'SCHEDULED' })).toHaveLength(1);
  });

  it('the Prisma extension (saveRecords) and saveExternal refuse it too, on model', async () => {
    const svc = t.app.dateFieldSvc;
    await refusedWithNothingWritten(
      () => svc.saveRecords('models.Contract', [{ rowId: recordId, data: null }]).then(() => null, flatten),
      'model',
    );
    await refusedWithNothingWritten(
      () =>
        t.app.db.prisma
          .$transaction((tx) =>
            svc.saveExternal(tx, 'models.Contract', [{ rowId: recordId, data: { id: recordId, expireDate: '2032-01-01' } }]),
          )
          .then(() => null, flatten),
      'model',
    );
  });

  it('the record mutations keep the tasks in line, and another tenant may hook a model of that name', async () => {
    const moved = ok(
      await t.gql(
        `mutation($id: ID!) { updateModelRecord(model: "models.Contract", id: $id, data: { expireDate: "2032-01-01" }) { dateFields { rescheduled } } }`,
        { id: recordId },
      ),
    ).updateModelRecord;
    expect(moved.dateFields.rescheduled).toBe(1);
    const deleted = ok(
      await t.gql(`mutation($id: ID!) { deleteModelRecord(model: "models.Contract", id: $id) { dateFields { cancelled } } }`, {
        id: recordId,
      }),
    ).deleteModelRecord;
    expect(deleted.dateFields.cancelled).toBe(1);

    // models.Contract is a low-code model of tenant default only
    const other = { 'x-tenant-id': 'acme' };
    ok(
      await t.gql(
        `mutation { createTaskTemplate(input: { fullName: "tasks.Remind", title: "Remind", funcName: "chronograph.echo", repeatType: DATE_FIELD, dateField: { model: "models.Contract", field: "expireDate" } }) { id } }`,
        {},
        other,
      ),
    );
    const saved = ok(await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'c-1', expireDate: '2031-03-10' } } }, other));
    expect(saved.saveDateFieldTask.created).toBe(1);
  });

  it('a model that is deleted is an external model again', async () => {
    ok(await t.gql(`mutation { saveModel(input: { name: "models.Once", fields: [{ name: "expireDate", type: DATE }] }) { name } }`));
    const hook = { rowObj: { model: 'models.Once', postData: { id: 'o-1', expireDate: '2031-03-10' } } };
    expect(await gqlError(SAVE, hook)).toMatchObject({ code: 'CONFLICT', field: 'rowObj.model' });
    ok(await t.gql(`mutation { deleteModel(name: "models.Once") { name } }`));
    expect(ok(await t.gql(SAVE, hook)).saveDateFieldTask.created).toBe(0);
  });
});

/**
 * saveModel creating a model against a hook of that model name under way: the model is created under
 * its date-field model lock, held exclusively, so a hook that holds the lock (shared) commits first and
 * one that comes later waits and then finds the model. PostgreSQL only (PGlite runs one transaction at a
 * time).
 */
describe.runIf(process.env.TEST_DATABASE_URL)('saveModel and a concurrent hook (postgres)', () => {
  let db: TestDatabase;
  let t: TestApp;
  const stage = lockStage(() => db.url);
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    t = await createTestApp('postgres', { database: db, now: () => NOW, env: { SCHEDULER_ENABLED: 'false' } });
    await createDateFieldTemplate(t, { fullName: 'tasks.LateReminder' }, { model: 'models.Late' });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('waits for a hook under way, and a hook that comes meanwhile finds the model and is refused', async () => {
    // The holder stands for a hook of models.Late under way: it holds the model's lock shared.
    await stage.holder.query('BEGIN');
    await stage.holder.query(`SELECT pg_advisory_xact_lock_shared(hashtextextended('default' || '/' || 'models.Late', 7275))`);
    const saving = t.app.modelSvc.saveModel({ name: 'models.Late', fields: [{ name: 'expireDate', type: 'DATE' }] });
    await lockWaiters(stage.watcher, 1, 'saveModel to wait for the hook under way');
    const hooking = t.app.dateFieldSvc
      .saveDateFieldTask({ model: 'models.Late', postData: { id: 'l-1', expireDate: '2031-03-10' } })
      .then(() => null, flatten);
    await lockWaiters(stage.watcher, 2, 'a later hook to wait for saveModel');
    await stage.holder.query('COMMIT');
    await saving;
    expect(await hooking).toMatchObject({ code: 'CONFLICT', field: 'rowObj.model', model: 'models.Late' });
    expect(await writeCounts(t)).toMatchObject({ tasks: 0, sources: 0 });
  });
});

/** A ChronographError as { code, message, ...details }. */
function flatten(error: unknown) {
  const e = error as { code?: string; message: string; details?: Record<string, unknown> };
  return { code: e.code, message: e.message, ...e.details };
}
