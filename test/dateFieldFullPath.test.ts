import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { createDateFieldTemplate, SAVE } from './support/dateFields.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

/**
 * The whole path on the real clock and the real scheduler: a record saved with a date two seconds
 * ahead gets a task, the scheduler runs it when it is due, and its run and events are readable.
 */
describe.each(backends)('date-field tasks run (%s)', (backend) => {
  let t: TestApp;
  let taskSvc: TaskSvc;
  const calls: Record<string, unknown>[] = [];
  beforeAll(async () => {
    t = await createTestApp(backend, {
      setup(app) {
        app.handlers.register('services.ContractSvc.remind', (args) => {
          calls.push(args);
          return { reminded: (args.source as { id: string }).id };
        });
      },
    });
    taskSvc = t.app.getElement('services.TaskSvc') as TaskSvc;
    ok(
      await t.gql(
        `mutation { saveModel(input: { name: "models.Contract", fields: [{ name: "title", type: TEXT }, { name: "remindAt", type: DATETIME }] }) { name } }`,
      ),
    );
    await createDateFieldTemplate(
      t,
      { fullName: 'tasks.RemindNow', funcName: 'services.ContractSvc.remind', argDict: { via: 'mail' } },
      { field: 'remindAt', offset: null, timeOfDay: null },
    );
    // Hooks are for models Chronograph does not keep (a low-code model's records are written with createModelRecord etc.).
    await createDateFieldTemplate(
      t,
      { fullName: 'tasks.RemindBooking', funcName: 'services.ContractSvc.remind', argDict: { via: 'mail' } },
      { model: 'models.Booking', field: 'remindAt', offset: null, timeOfDay: null },
    );
  });
  afterAll(() => t?.close());

  it('a low-code record due in two seconds: created, run by the scheduler, run and events visible', async () => {
    const remindAt = new Date(Date.now() + 2_000).toISOString();
    const created = ok(
      await t.gql(
        `mutation($data: JSON!) { createModelRecord(model: "models.Contract", data: $data) { record { id } dateFields { changes { action task { id nextRunAt } } } } }`,
        {
          data: { title: 'Lease', remindAt },
        },
      ),
    ).createModelRecord;
    const { id: recordId } = created.record;
    const [change] = created.dateFields.changes;
    expect(change).toMatchObject({ action: 'CREATED', task: { nextRunAt: remindAt } });

    const done = await taskSvc.waitForTask(change.task.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('SUCCEEDED');
    expect(calls).toContainEqual({ via: 'mail', source: { model: 'models.Contract', id: recordId, field: 'remindAt', date: remindAt } });

    const read = ok(
      await t.gql(
        `query($id: ID!) { modelRecord(model: "models.Contract", id: $id) {
        tasks { status runCount runs { status result } events { type fromStatus toStatus } } } }`,
        { id: recordId },
      ),
    ).modelRecord;
    expect(read.tasks).toEqual([
      {
        status: 'SUCCEEDED',
        runCount: 1,
        runs: [{ status: 'SUCCEEDED', result: { reminded: recordId } }],
        events: [
          { type: 'CREATED', fromStatus: null, toStatus: 'SCHEDULED' },
          { type: 'STATUS_CHANGED', fromStatus: 'SCHEDULED', toStatus: 'RUNNING' },
          { type: 'STATUS_CHANGED', fromStatus: 'RUNNING', toStatus: 'SUCCEEDED' },
        ],
      },
    ]);

    // saving the record again with the same date does not run it again
    const again = ok(
      await t.gql(
        `mutation($id: ID!) { updateModelRecord(model: "models.Contract", id: $id, data: { title: "Lease 2" }) { dateFields { created unchanged } } }`,
        { id: recordId },
      ),
    );
    expect(again.updateModelRecord.dateFields).toEqual({ created: 0, unchanged: 1 });
  });

  it('a hook for an external record due in two seconds runs the same way', async () => {
    const remindAt = new Date(Date.now() + 2_000).toISOString();
    const saved = ok(await t.gql(SAVE, { rowObj: { model: 'models.Booking', postData: { id: 'ext-1', remindAt } } })).saveDateFieldTask;
    const taskId = saved.changes[0].task.id;
    const done = await taskSvc.waitForTask(taskId, { timeoutMs: 20_000 });
    expect(done).toMatchObject({ status: 'SUCCEEDED', sourceRowId: 'ext-1' });
    const events = ok(await t.gql(`query($id: ID) { taskEvents(filter: { taskId: $id }) { edges { node { toStatus } } } }`, { id: taskId }))
      .taskEvents.edges;
    expect(events.map((e: any) => e.node.toStatus)).toEqual(['SCHEDULED', 'RUNNING', 'SUCCEEDED']);
  });
});
