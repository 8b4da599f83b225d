import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, createTestApp, type TestApp } from './support/testApp.js';

const START = 'fullName: "tasks.DataSync", startTime: "2099-01-01 10:00:00"';
const TASK = '00000000-0000-7000-8000-000000000000';

/**
 * Text PostgreSQL cannot store (NUL, a lone surrogate) is refused with `field` naming the input as a
 * literal in the same place names it: the argument and the path inside it, never the name the client
 * gave its variable.
 */
describe.each(backends)('the field of unstorable text in variables (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(() => t?.close());

  const cases: [string, string, Record<string, unknown>, string][] = [
    [
      'a JSON variable inside an input object',
      `mutation($a: JSON) { createTimerTask(input: { ${START}, argDict: $a }) { id } }`,
      { a: { k: '\ud800' } },
      'argDict.k',
    ],
    [
      'a key of a JSON variable',
      `mutation($a: JSON) { createTimerTask(input: { ${START}, argDict: $a }) { id } }`,
      { a: { 'k\u0000': 1 } },
      'argDict',
    ],
    [
      'a variable named apart from its argument',
      `mutation($r: String) { cancelTask(taskId: "${TASK}", reason: $r) { id } }`,
      { r: 'x\u0000' },
      'reason',
    ],
    [
      'a variable in a list',
      `mutation($q: String) { createTimerTasks(inputs: [{ ${START} }, { ${START}, queue: $q }]) { id } }`,
      { q: 'q\ud800' },
      'inputs[1].queue',
    ],
    [
      'a variable in a fragment',
      `mutation($r: String) { ...Cancel } fragment Cancel on Mutation { cancelTask(taskId: "${TASK}", reason: $r) { id } }`,
      { r: 'x\u0000' },
      'reason',
    ],
    // As before: a variable holding the whole input object.
    [
      'a whole input variable',
      'mutation($in: TimerTaskInput!) { createTimerTask(input: $in) { id } }',
      { in: { fullName: 'tasks.DataSync', startTime: '2099-01-01 10:00:00', uniqueKey: 'a\u0000' } },
      'uniqueKey',
    ],
  ];

  it.each(cases)('names the input, not the variable: %s', async (_, query, variables, field) => {
    const tasks = await t.app.db.prisma.task.count();
    const result = await t.gql(query, variables);
    expect(result.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field });
    expect(await t.app.db.prisma.task.count()).toBe(tasks);
  });

  it('names the same field as the literal does', async () => {
    const literal = await t.gql(`mutation { createTimerTask(input: { ${START}, argDict: { k: "x\\u0000" } }) { id } }`);
    const variable = await t.gql(`mutation($a: JSON) { createTimerTask(input: { ${START}, argDict: $a }) { id } }`, {
      a: { k: 'x\u0000' },
    });
    expect(variable.errors?.[0]?.extensions).toEqual(literal.errors?.[0]?.extensions);
    expect(literal.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'argDict.k' });
  });
});
