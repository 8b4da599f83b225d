import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endRun, startRun } from './support/runs.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

/**
 * Lists and connections read the columns and relations their selection needs, in a number of
 * statements that does not grow with the page: proven on the SQL Prisma sends (onQuery), not by timing.
 */
describe.each(backends)('reading what is asked (%s)', (backend) => {
  let t: TestApp;
  const sql: string[] = [];
  beforeAll(async () => {
    t = await createTestApp(backend, { onQuery: (event) => sql.push(event.query), env: { SCHEDULER_ENABLED: 'false' } });
    const bulky = { blob: 'x'.repeat(100_000) };
    const tasks = await t.app.taskSvc.createTimerTasks(
      Array.from({ length: 30 }, () => ({ fullName: 'tasks.DataSync', startTime: '2099-01-01 10:00:00', argDict: bulky })),
    );
    // Runs with results and logs, as the scheduler would leave them.
    for (const task of tasks) {
      const run = await startRun(t.app.db.prisma, { taskId: task.id, attempt: 1, workerId: 'w' });
      await endRun(t.app.db.prisma, { id: run.id, taskId: task.id, status: 'SUCCEEDED', result: bulky });
      await t.app.db.prisma.taskRunLog.create({ data: { taskId: task.id, runId: run.id, level: 'info', message: 'done' } });
    }
    ok(
      await t.gql(
        'mutation { saveModel(input: { name: "models.Contract", fields: [{ name: "expireDate", type: DATE }, { name: "notes", type: TEXT }] }) { name } }',
      ),
    );
    ok(
      await t.gql(
        'mutation { createTaskTemplate(input: { fullName: "tasks.Remind", title: "Remind", repeatType: DATE_FIELD, funcName: "chronograph.echo", dateField: { model: "models.Contract", field: "expireDate" } }) { fullName } }',
      ),
    );
    await t.app.modelSvc.importRecords(
      'models.Contract',
      Array.from({ length: 30 }, (_, i) => ({ expireDate: `2099-01-${String(i + 1).padStart(2, '0')}`, notes: 'n'.repeat(10_000) })),
    );
  });
  afterAll(() => t?.close());

  async function statements(query: string): Promise<string[]> {
    sql.length = 0;
    ok(await t.gql(query));
    return [...sql];
  }

  it('lists task ids without reading arg_dict or result, in one statement', async () => {
    const ran = await statements('{ tasks(first: 30) { edges { node { id } } } }');
    expect(ran).toHaveLength(1);
    expect(ran[0]).toMatch(/FROM "public"\."task"/);
    expect(ran.join('\n')).not.toMatch(/arg_dict|result/);
  });

  it('reads a JSON column only when it is selected', async () => {
    expect((await statements('{ tasks(first: 30) { edges { node { id argDict } } } }')).join('\n')).toMatch(/arg_dict/);
    expect((await statements('{ tasks(first: 30) { edges { node { runs { status } } } } }')).join('\n')).not.toMatch(/result|arg_dict/);
  });

  it('loads nested lists and relations with one statement per level, whatever the page size', async () => {
    const nested = (n: number) =>
      `{ tasks(first: ${n}) { edges { node { id template { fullName } runs(first: 5) { status logs { message } } events { toStatus } } } } }`;
    const few = await statements(nested(3));
    const many = await statements(nested(30));
    expect(many).toHaveLength(few.length);
    expect(many.length).toBeLessThanOrEqual(5);
  });

  it('reads one task by id once, with only the selected columns', async () => {
    const [task] = await t.app.db.prisma.task.findMany({ take: 1, select: { id: true } });
    const ran = await statements(`{ task(id: "${task!.id}") { id status } }`);
    expect(ran).toHaveLength(1);
    expect(ran[0]).not.toMatch(/arg_dict/);
  });

  it("answers a create's columns from the rows it wrote, with no statement on the ORM", async () => {
    const create = (selection: string) =>
      statements(`mutation { createTimerTask(input: { fullName: "tasks.DataSync", startTime: "2099-01-01 10:00:00" }) { ${selection} } }`);
    expect(await create('id')).toEqual([]);
    expect(await create('id status nextRunAt argDict')).toEqual([]);
  });

  it('pages model records without reading their data, and their tasks in one statement', async () => {
    const idsOnly = await statements('{ modelRecords(model: "models.Contract", first: 30) { edges { node { id } } } }');
    expect(idsOnly.join('\n')).not.toMatch(/"data"/);
    const withTasks = await statements(
      '{ modelRecords(model: "models.Contract", first: 30) { edges { node { id tasks { id status } } } } }',
    );
    expect(withTasks.filter((q) => /FROM "public"\."task"/.test(q))).toHaveLength(1);
    const page = await t.gql('{ modelRecords(model: "models.Contract", first: 30) { edges { node { tasks { id } } } } }');
    expect(ok(page).modelRecords.edges.every((e: { node: { tasks: unknown[] } }) => e.node.tasks.length === 1)).toBe(true);
  });
});
