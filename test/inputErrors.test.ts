import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaskSvc } from '../src/tasks/TaskSvc.js';
import { backends, createTestApp, type GqlResult, ok, type TestApp } from './support/testApp.js';

const CREATE = 'mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }';
const base = { fullName: 'tasks.DataSync', startTime: '2099-01-01 10:00:00' };
const nested = (depth: number): unknown => (depth === 0 ? 1 : { a: nested(depth - 1) });
const encode = (text: string) => Buffer.from(text).toString('base64');

interface LogLine {
  level: number;
  msg: string;
  err?: { stack?: string };
  stack?: string;
}

/** Bad input of every kind gets a code and the field at fault, is logged as the client's mistake, and writes nothing. */
describe.each(backends)('input errors (%s)', (backend) => {
  let t: TestApp;
  const logs: LogLine[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logs.push(JSON.parse(String(chunk)) as LogLine);
        done();
      },
    });
    t = await createTestApp(backend, { logger: pino({ level: 'info' }, sink), env: { SCHEDULER_ENABLED: 'false' } });
    await t.app.taskSvc.createTimerTask(base);
  });
  afterAll(() => t?.close());

  const counts = async () => {
    const prisma = t.app.db.prisma;
    return [await prisma.task.count(), await prisma.taskEvent.count(), await prisma.taskTemplate.count(), await prisma.modelRecord.count()];
  };

  const cases: [string, string, Record<string, unknown> | undefined, string, string | undefined][] = [
    ['NUL in a variable string', CREATE, { input: { ...base, uniqueKey: 'a\u0000b' } }, 'BAD_USER_INPUT', 'uniqueKey'],
    [
      'NUL in a literal string',
      'mutation { cancelTask(taskId: "00000000-0000-7000-8000-000000000000", reason: "x\\u0000") { id } }',
      undefined,
      'BAD_USER_INPUT',
      'reason',
    ],
    ['NUL in a JSON value', CREATE, { input: { ...base, argDict: { note: 'x\u0000' } } }, 'BAD_USER_INPUT', 'argDict.note'],
    ['NUL in a JSON key', CREATE, { input: { ...base, argDict: { 'k\u0000': 1 } } }, 'BAD_USER_INPUT', 'argDict'],
    ['a lone surrogate', CREATE, { input: { ...base, queue: 'q\ud800' } }, 'BAD_USER_INPUT', 'queue'],
    // GraphQL's own lexer refuses a lone surrogate escape in a document.
    ['a lone surrogate in a literal', '{ taskTemplates(query: "\\ud800") { fullName } }', undefined, 'GRAPHQL_PARSE_FAILED', undefined],
    [
      'JSON nested deeper than 64',
      CREATE,
      { input: { ...base, argDict: nested(70) } },
      'INVALID_ARG_DICT',
      'argDict.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a',
    ],
    [
      'an argDict over MAX_JSON_BYTES',
      CREATE,
      { input: { ...base, argDict: { big: 'x'.repeat(1_100_000) } } },
      'INVALID_ARG_DICT',
      'argDict',
    ],
    ['an out-of-range number', CREATE, { input: { ...base, priority: 5000 } }, 'BAD_USER_INPUT', 'priority'],
    // The value quoted in graphql-js's message holds `"; `, which is not where its path ends.
    [
      'a quoted value that looks like the message going on',
      CREATE,
      { input: { ...base, priority: 'a"; b' } },
      'BAD_USER_INPUT',
      'priority',
    ],
    // A client's value that reads like a database's conflict code is still the client's mistake.
    // Named by the argument the variable is passed to, as the same value written into the query would be.
    ['a value that looks like a SQLSTATE', 'query($f: Int) { tasks(first: $f) { totalCount } }', { f: '40001' }, 'BAD_USER_INPUT', 'first'],
    [
      'a bad value inside a batch variable',
      'mutation($in: [TimerTaskInput!]!) { createTimerTasks(inputs: $in) { id } }',
      { in: [base, { ...base, priority: 'high' }] },
      'BAD_USER_INPUT',
      'inputs[1].priority',
    ],
    [
      'a bad variable of a subscription (SSE)',
      'subscription($s: [TaskStatus!]) { taskStatusChanged(filter: { statuses: $s }) { id } }',
      { s: ['BOGUS'] },
      'BAD_USER_INPUT',
      'statuses[0]',
    ],
    [
      'a literal that looks like a deadlock',
      '{ tasks(first: "deadlock detected 40P01") { totalCount } }',
      undefined,
      'BAD_USER_INPUT',
      'first',
    ],
    ['a number GraphQL cannot hold', CREATE, { input: { ...base, maxRuns: 2 ** 40 } }, 'BAD_USER_INPUT', 'maxRuns'],
    ['after: "garbage"', '{ tasks(after: "garbage") { edges { cursor } } }', undefined, 'BAD_USER_INPUT', 'after'],
    [
      'a well-formed cursor holding no id',
      `{ tasks(after: "${encode('GPC:S:abc')}") { edges { cursor } } }`,
      undefined,
      'BAD_USER_INPUT',
      'after',
    ],
    ['a cursor of another kind', `{ tasks(after: "${encode('GPC:N:5')}") { edges { cursor } } }`, undefined, 'BAD_USER_INPUT', 'after'],
    ['first: -1', '{ tasks(first: -1) { edges { cursor } } }', undefined, 'BAD_USER_INPUT', 'first'],
    ['too large a first', '{ tasks(first: 501) { edges { cursor } } }', undefined, 'BAD_USER_INPUT', 'first'],
    ['before with after', '{ tasks(after: "a", before: "b") { edges { cursor } } }', undefined, 'BAD_USER_INPUT', 'before'],
    [
      'last with after',
      `{ tasks(last: 2, after: "${encode('GPC:S:01a2020e-b914-706c-99f3-60441fbef9a9')}") { edges { cursor } } }`,
      undefined,
      'BAD_USER_INPUT',
      'after',
    ],
    [
      'an event cursor past int8',
      `{ taskEvents(after: "${Buffer.from('GPC:I:9999999999999999999').toString('base64')}") { totalCount } }`,
      undefined,
      'BAD_USER_INPUT',
      'after',
    ],
    [
      'a run cursor that is not one',
      `{ taskRuns(after: "${Buffer.from('GPC:S:x').toString('base64')}") { totalCount } }`,
      undefined,
      'BAD_USER_INPUT',
      'after',
    ],
    [
      'a history range that ends before it starts',
      '{ taskRuns(filter: { from: "2030-01-02T00:00:00Z", to: "2030-01-01T00:00:00Z" }) { totalCount } }',
      undefined,
      'BAD_USER_INPUT',
      'to',
    ],
    ['a nested list page too large', '{ tasks { edges { node { runs(first: 5000) { id } } } } }', undefined, 'BAD_USER_INPUT', 'first'],
    [
      'a record cursor that is no id',
      '{ modelRecords(model: "models.X", after: "x") { edges { cursor } } }',
      undefined,
      'BAD_USER_INPUT',
      'after',
    ],
    // Values written into the document are refused by validation: the same code and field as in a variable.
    [
      'a literal DateTime outside years 1-9999',
      '{ taskRuns(filter: { from: "2030-01-01T00:00:00Z", to: "+010000-01-01T00:00:00Z" }) { totalCount } }',
      undefined,
      'BAD_USER_INPUT',
      'to',
    ],
    [
      'a literal of the wrong type',
      'mutation { createTimerTask(input: { fullName: "tasks.DataSync", priority: "high" }) { id } }',
      undefined,
      'BAD_USER_INPUT',
      'priority',
    ],
    [
      'a literal input without a required field',
      'mutation { createTimerTask(input: { priority: 1 }) { id } }',
      undefined,
      'BAD_USER_INPUT',
      'fullName',
    ],
    ['a required argument left out', 'mutation { createTimerTask { id } }', undefined, 'BAD_USER_INPUT', 'input'],
    [
      'a literal input with a field its type does not have',
      'mutation { createTimerTask(input: { fullName: "tasks.DataSync", nope: 1 }) { id } }',
      undefined,
      'BAD_USER_INPUT',
      'nope',
    ],
    [
      'a literal list item of the wrong type',
      'mutation { createTimerTasks(inputs: [{ fullName: "tasks.DataSync" }, { fullName: 5 }]) { id } }',
      undefined,
      'BAD_USER_INPUT',
      'inputs[1].fullName',
    ],
    // Not about a value: yoga's code stays.
    ['an unknown field', '{ nope }', undefined, 'GRAPHQL_VALIDATION_FAILED', undefined],
    [
      'a subscription cursor that is no cursor',
      'subscription { taskStatusChanged(after: "-1") { id } }',
      undefined,
      'BAD_USER_INPUT',
      'after',
    ],
    [
      // One this database never gave: live events would be dropped until their ids passed it.
      'a subscription cursor beyond the newest event',
      'subscription { taskStatusChanged(after: "999999999") { id } }',
      undefined,
      'BAD_USER_INPUT',
      'after',
    ],
  ];

  it.each(cases)('%s', async (_name, query, variables, code, field) => {
    const before = await counts();
    const lines = logs.length;
    const result = await t.gql(query, variables);
    expect(result.errors?.[0]?.extensions).toMatchObject(field === undefined ? { code } : { code, field });
    expect(result.errors?.[0]?.message).not.toBe('Unexpected error.');
    expect(await counts()).toEqual(before);
    // The client's mistake: logged at info at most, never at error, never with a stack.
    const written = logs.slice(lines);
    expect(written.filter((l) => l.level >= 40)).toEqual([]);
    expect(written.some((l) => l.err?.stack || l.stack)).toBe(false);
  });

  it('answers variables that do not fit their types with HTTP 400, for mutations as for queries', async () => {
    const post = async (query: string, variables: Record<string, unknown>) => {
      const response = await t.app.yoga.fetch('http://chronograph/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query, variables }),
      });
      return { status: response.status, body: (await response.json()) as GqlResult };
    };
    const before = await counts();
    const mutation = await post(CREATE, { input: { ...base, priority: 'high' } });
    expect(mutation.status).toBe(400);
    expect(mutation.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'priority' });
    expect(mutation.body.errors?.[0]?.extensions).not.toHaveProperty('http');
    const query = await post('query($first: Int) { tasks(first: $first) { totalCount } }', { first: 'ten' });
    expect(query.status).toBe(400);
    expect(query.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
    // The same value written into the document: refused by validation with the same code and field
    // (the status is yoga's for any validation error: the GraphQL over HTTP spec's).
    const literal = await post('mutation { createTimerTask(input: { fullName: "tasks.DataSync", priority: "high" }) { id } }', {});
    const unknownField = await post('{ nope }', {});
    expect(literal.status).toBe(unknownField.status);
    expect(literal.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'priority' });
    expect(literal.body.errors?.[0]?.extensions).not.toHaveProperty('http');
    // A mutation that starts and is refused by the service is not a request error.
    const refused = await post(CREATE, { input: { ...base, fullName: 'no.Such' } });
    expect(refused.status).toBe(200);
    expect(refused.body.errors?.[0]?.extensions?.code).toBe('UNKNOWN_TEMPLATE');
    expect(await counts()).toEqual(before);
  });

  it('does not send back, nor log, a huge refused value whole', async () => {
    const huge = 'x'.repeat(200_000);
    const lines = logs.length;
    for (const [query, variables] of [
      [CREATE, { input: { ...base, startTime: huge } }],
      [`mutation { createTimerTask(input: { fullName: "tasks.DataSync", startTime: "${huge}" }) { id } }`, undefined],
      [CREATE, { input: { ...base, fullName: `tasks.${huge}` } }],
    ] as const) {
      const result = await t.gql(query, variables);
      expect(result.errors?.[0]?.extensions?.code).toMatch(/^(BAD_USER_INPUT|INVALID_START_TIME|UNKNOWN_TEMPLATE)$/);
      expect(JSON.stringify(result).length).toBeLessThan(5_000);
    }
    expect(logs.slice(lines).every((line) => JSON.stringify(line).length < 5_000)).toBe(true);
  });

  it('masks a genuine bug and logs it at error with its stack', async () => {
    const stats = TaskSvc.prototype.stats;
    TaskSvc.prototype.stats = () => Promise.reject(new TypeError('a bug'));
    const lines = logs.length;
    try {
      const result: GqlResult = await t.gql('{ taskStats { total } }');
      expect(result.errors?.[0]).toMatchObject({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    } finally {
      TaskSvc.prototype.stats = stats;
    }
    const errors = logs.slice(lines).filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.err?.stack).toContain('TypeError: a bug');
  });

  it('refuses a model record over MAX_JSON_BYTES and NUL in record data, writing nothing', async () => {
    ok(
      await t.gql(
        'mutation { saveModel(input: { name: "models.Note", fields: [{ name: "body", type: TEXT }, { name: "extra", type: JSON }] }) { name } }',
      ),
    );
    const before = await counts();
    const write = 'mutation($data: JSON!) { createModelRecord(model: "models.Note", data: $data) { record { id } } }';
    expect((await t.gql(write, { data: { body: 'x'.repeat(1_100_000) } })).errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'data',
    });
    expect((await t.gql(write, { data: { extra: nested(70) } })).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const many = 'mutation($records: [JSON!]!) { importModelRecords(model: "models.Note", records: $records) { count } }';
    expect((await t.gql(many, { records: [{ body: 'fine' }, { extra: nested(70) }] })).errors?.[0]?.extensions?.field).toMatch(
      /^records\[1\]/,
    );
    expect(await counts()).toEqual(before);
  });
});
