import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

const LIST = `query($q: String) { taskTemplates(query: $q) { fullName title taskType repeatType origin funcName argDict } }`;
const CREATE = `mutation($input: TaskTemplateInput!) { createTaskTemplate(input: $input) { fullName title repeatType cronExpression timezone origin } }`;

describe.each(backends)('task templates over GraphQL (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend);
  });
  afterAll(() => t?.close());

  it('loads the templates an app ships in files, and filters them like getTaskTmplList', async () => {
    const all = ok(await t.gql(LIST, { q: '' })).taskTemplates;
    expect(all.map((x: any) => x.fullName)).toEqual(['tasks.DataBackup', 'tasks.DataSync']);
    expect(all[0]).toMatchObject({
      title: '数据备份',
      taskType: 'tasks.NormalType',
      repeatType: 'ONCE',
      origin: 'FILE',
      argDict: { compress: true },
    });
    expect(ok(await t.gql(LIST, { q: '备份' })).taskTemplates.map((x: any) => x.fullName)).toEqual(['tasks.DataBackup']);
    expect(ok(await t.gql(LIST, { q: 'datasync' })).taskTemplates.map((x: any) => x.fullName)).toEqual(['tasks.DataSync']);
    expect(ok(await t.gql(LIST, { q: 'nothing-like-this' })).taskTemplates).toEqual([]);
    expect(ok(await t.gql(`{ taskTemplates { fullName } }`)).taskTemplates).toHaveLength(2);
  });

  it('creates, reads, updates and deletes a template', async () => {
    const created = ok(
      await t.gql(CREATE, {
        input: {
          fullName: 'tasks.Nightly',
          title: 'Nightly',
          repeatType: 'CRON',
          cronExpression: '0 2 * * *',
          timezone: 'Europe/Paris',
          funcName: 'chronograph.noop',
        },
      }),
    ).createTaskTemplate;
    expect(created).toMatchObject({
      fullName: 'tasks.Nightly',
      repeatType: 'CRON',
      cronExpression: '0 2 * * *',
      timezone: 'Europe/Paris',
      origin: 'API',
    });

    const updated = ok(
      await t.gql(
        `mutation { updateTaskTemplate(fullName: "tasks.Nightly", patch: { title: "Nightly job", priority: 5 }) { title priority cronExpression } }`,
      ),
    ).updateTaskTemplate;
    expect(updated).toEqual({ title: 'Nightly job', priority: 5, cronExpression: '0 2 * * *' });
    expect(ok(await t.gql(`{ taskTemplate(fullName: "tasks.Nightly") { title } }`)).taskTemplate.title).toBe('Nightly job');

    ok(await t.gql(`mutation { deleteTaskTemplate(fullName: "tasks.Nightly") { fullName } }`));
    expect(ok(await t.gql(`{ taskTemplate(fullName: "tasks.Nightly") { title } }`)).taskTemplate).toBeNull();
  });

  it('rejects bad templates with specific codes and writes nothing', async () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ fullName: 'not a name', title: 'x' }, 'BAD_USER_INPUT'],
      [{ fullName: 'tasks.X', title: '  ' }, 'BAD_USER_INPUT'],
      [{ fullName: 'tasks.X', title: 'x', repeatType: 'CRON', cronExpression: '61 * * * *' }, 'INVALID_CRON'],
      [{ fullName: 'tasks.X', title: 'x', repeatType: 'CRON' }, 'INVALID_CRON'],
      [{ fullName: 'tasks.X', title: 'x', repeatType: 'INTERVAL' }, 'BAD_USER_INPUT'],
      [{ fullName: 'tasks.X', title: 'x', timezone: 'Mars/Olympus' }, 'INVALID_TIMEZONE'],
      [{ fullName: 'tasks.X', title: 'x', funcName: 'services.Nope.run' }, 'UNKNOWN_FUNC'],
      [{ fullName: 'tasks.X', title: 'x', taskType: 'tasks.NoSuchType' }, 'UNKNOWN_TASK_TYPE'],
      [{ fullName: 'tasks.X', title: 'x', argDict: [1, 2] }, 'INVALID_ARG_DICT'],
      [{ fullName: 'tasks.DataSync', title: 'again' }, 'CONFLICT'],
    ];
    for (const [input, code] of bad) {
      expect(errorCode(await t.gql(CREATE, { input })), JSON.stringify(input)).toBe(code);
    }
    expect(ok(await t.gql(LIST, { q: '' })).taskTemplates).toHaveLength(2);
  });

  it('keeps file templates read-only over the API and unknown ones NOT_FOUND', async () => {
    expect(errorCode(await t.gql(`mutation { updateTaskTemplate(fullName: "tasks.DataSync", patch: { title: "x" }) { title } }`))).toBe(
      'CONFLICT',
    );
    expect(errorCode(await t.gql(`mutation { deleteTaskTemplate(fullName: "tasks.DataSync") { title } }`))).toBe('CONFLICT');
    expect(errorCode(await t.gql(`mutation { deleteTaskTemplate(fullName: "tasks.Missing") { title } }`))).toBe('NOT_FOUND');
  });

  it('refuses to delete a template that still has live tasks', async () => {
    ok(await t.gql(CREATE, { input: { fullName: 'tasks.Busy', title: 'Busy', funcName: 'chronograph.noop' } }));
    const task = ok(
      await t.gql(`mutation { createTimerTask(input: { fullName: "tasks.Busy", startTime: "2099-01-01T00:00:00Z" }) { id } }`),
    ).createTimerTask;
    expect(errorCode(await t.gql(`mutation { deleteTaskTemplate(fullName: "tasks.Busy") { title } }`))).toBe('CONFLICT');
    ok(await t.gql(`mutation($id: ID!) { forcedEnd(taskId: $id) { status } }`, { id: task.id }));
    ok(await t.gql(`mutation { deleteTaskTemplate(fullName: "tasks.Busy") { title } }`));
    const after = ok(await t.gql(`query($id: ID!) { task(id: $id) { fullName template { fullName } } }`, { id: task.id })).task;
    expect(after).toEqual({ fullName: 'tasks.Busy', template: null });
  });

  it('keeps tenants apart (x-tenant-id)', async () => {
    const acme = { 'x-tenant-id': 'acme' };
    expect(ok(await t.gql(LIST, { q: '' }, acme)).taskTemplates).toEqual([]);
    ok(await t.gql(CREATE, { input: { fullName: 'tasks.AcmeOnly', title: 'Acme', funcName: 'chronograph.noop' } }, acme));
    expect(ok(await t.gql(LIST, { q: '' }, acme)).taskTemplates.map((x: any) => x.fullName)).toEqual(['tasks.AcmeOnly']);
    expect(ok(await t.gql(LIST, { q: 'Acme' })).taskTemplates).toEqual([]);
    expect(errorCode(await t.gql(LIST, { q: '' }, { 'x-tenant-id': 'bad tenant!' }))).toBe('BAD_USER_INPUT');
  });
});
