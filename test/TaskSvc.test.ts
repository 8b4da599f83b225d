import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChronographError } from '../src/errors.js';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { NormalType, type TaskTypeRunInput } from '../src/tasks/TaskTypeRegistry.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

class AuditedType extends NormalType {
  override async run(input: TaskTypeRunInput) {
    return { audited: true, result: await super.run(input) };
  }
}

describe.each(backends)('services.TaskSvc through app.getElement (%s)', (backend) => {
  let t: TestApp;
  let taskSvc: TaskSvc;
  beforeAll(async () => {
    t = await createTestApp(backend, {
      setup: (app) => {
        app.taskTypes.register(new AuditedType('tasks.AuditedType'));
      },
    });
    taskSvc = t.app.getElement('services.TaskSvc') as TaskSvc;
  });
  afterAll(() => t?.close());

  it("offers the seed's methods, sharing state with GraphQL", async () => {
    const templates = await taskSvc.getTaskTmplList('');
    expect(templates.map((x) => [x.fullName, x.title, x.taskType, x.repeatType])).toEqual([
      ['tasks.DataBackup', '数据备份', 'tasks.NormalType', 'ONCE'],
      ['tasks.DataSync', 'Data sync', 'tasks.NormalType', 'ONCE'],
    ]);
    expect((await taskSvc.getTaskTmplList('数据备份')).map((x) => x.fullName)).toEqual(['tasks.DataBackup']);

    const task = await taskSvc.createTimerTask({
      fullName: 'tasks.DataBackup',
      startTime: '2030-01-01 10:00:00',
      funcName: 'services.BackupSvc.backupDatabase',
      taskType: 'tasks.AuditedType',
      argDict: { database: 'main_db', backup_path: '/backup/', compress: true },
    });
    expect(task.status).toBe('SCHEDULED');
    expect(task.taskType).toBe('tasks.AuditedType');
    const viaGraphql = ok(await t.gql(`query($id: ID!) { task(id: $id) { status taskType } }`, { id: task.id })).task;
    expect(viaGraphql).toEqual({ status: 'SCHEDULED', taskType: 'tasks.AuditedType' });

    const ended = await taskSvc.forcedEnd(task.id);
    expect(ended.status).toBe('FORCED_END');
  });

  it('throws typed errors with the same codes GraphQL shows', async () => {
    const error = await taskSvc.createTimerTask({ fullName: 'tasks.Nope', startTime: '2030-01-01' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChronographError);
    expect((error as ChronographError).code).toBe('UNKNOWN_TEMPLATE');
    await expect(taskSvc.saveDateFieldTask({ model: 'models.Contract', postData: {} })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
  });

  it('resolves registered elements by name', () => {
    expect(t.app.getElement('tasks.AuditedType')).toBeInstanceOf(AuditedType);
    expect(t.app.getElement('tasks.NormalType')).toBeInstanceOf(NormalType);
    expect(typeof t.app.getElement('chronograph.echo')).toBe('function');
    expect(() => t.app.getElement('services.Nope')).toThrow(/No element/);
  });
});
