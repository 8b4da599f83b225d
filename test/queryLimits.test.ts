import { readFileSync } from 'node:fs';
import { GraphQLInt, GraphQLObjectType, GraphQLSchema, parse, validate } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costVariables, JSON_COST } from '../src/graphql/queryLimits.js';
import { schema } from '../src/graphql/schema/index.js';
import { Collector, sseSubscribe, wsClient } from './support/subscriptions.js';
import { backends, createTestApp, type GqlResult, ok, type TestApp } from './support/testApp.js';

/** Every `gql '{"query": ...}'` example of the README, as sent. */
const readmeRequests = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  .split('\n')
  .flatMap((line) => /^gql '(.*)'$/.exec(line)?.[1] ?? [])
  .map((body) => JSON.parse(body) as { query: string; variables?: Record<string, unknown> });

/** What a dashboard asks for: a page of 100 tasks with their latest runs, and the counts. */
const DASHBOARD = `query Dashboard($after: String) {
  tasks(first: 100, after: $after, filter: { status: [SCHEDULED, RUNNING, RETRYING, FAILED] }) {
    edges { cursor node { id fullName funcName status nextRunAt runCount attempts maxAttempts lastError priority queue
      template { title } runs(first: 5) { id status startedAt finishedAt durationMs error } } }
    pageInfo { hasNextPage endCursor }
  }
  taskStats { total scheduled running succeeded failed retrying paused forced_end cancelled }
}`;

/** `id events { task { id events { task { … } } } }`, `levels` times. */
const chain = (levels: number) => {
  let selection = 'id';
  for (let i = 0; i < levels; i++) selection = `id events { task { ${selection} } }`;
  return selection;
};
const deep = (levels: number) => `{ tasks(first: 500) { edges { node { ${chain(levels)} } } } }`;

describe.each(backends)('query limits (%s)', (backend) => {
  let t: TestApp;
  let sql: string[];
  beforeAll(async () => {
    sql = [];
    t = await createTestApp(backend, { onQuery: (event) => sql.push(event.query) });
    await t.app.taskSvc.createTimerTasks(
      Array.from({ length: 3 }, () => ({ fullName: 'tasks.DataSync', startTime: '2099-01-01 10:00:00' })),
    );
  });
  afterAll(() => t?.close());

  /** The request's result and the SQL statements it ran. */
  async function run(query: string, variables?: Record<string, unknown>) {
    sql.length = 0;
    const result = await t.gql(query, variables);
    return { result, statements: [...sql] };
  }

  function refusal(result: GqlResult) {
    expect(result.data ?? null).toBeNull();
    expect(result.errors).toHaveLength(1);
    return result.errors![0]!.extensions!;
  }

  it("lets the README's examples and a dashboard through with the default limits", async () => {
    expect(readmeRequests.length).toBeGreaterThan(8);
    for (const request of [...readmeRequests, { query: DASHBOARD }]) {
      const { result } = await run(request.query, request.variables);
      expect(result.errors?.map((e) => e.extensions?.code) ?? []).not.toContain('QUERY_TOO_COMPLEX');
    }
    ok((await run(DASHBOARD)).result);
  });

  it('refuses the task → events → task chain by depth, before anything runs', async () => {
    const { result, statements } = await run(deep(8));
    expect(refusal(result)).toEqual({ code: 'QUERY_TOO_COMPLEX', limit: 'MAX_QUERY_DEPTH', measured: 20, allowed: 12 });
    expect(statements).toEqual([]);
  });

  it('refuses by cost when lists multiply within the depth limit', async () => {
    const { result, statements } = await run(deep(3));
    const refused = refusal(result);
    expect(refused).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'MAX_QUERY_COST', allowed: 50_000 });
    expect(refused.measured).toBeGreaterThan(500 * 100 * 100);
    expect(statements).toEqual([]);
  });

  it('refuses many aliases, and many aliased pages of JSON by their cost', async () => {
    const aliases = (n: number, field: string) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ')} }`;
    expect(refusal((await run(aliases(40, 'taskStats { total }'))).result)).toEqual({
      code: 'QUERY_TOO_COMPLEX',
      limit: 'MAX_ALIASES',
      measured: 40,
      allowed: 30,
    });
    const { result, statements } = await run(aliases(5, 'tasks(first: 500) { edges { node { id argDict } } }'));
    expect(refusal(result)).toMatchObject({ limit: 'MAX_QUERY_COST', measured: 5 * (1 + 500 * (2 + JSON_COST)) });
    expect(statements).toEqual([]);
  });

  it('refuses an overlong document while parsing', async () => {
    const long = `{ ${Array.from({ length: 6000 }, () => 'taskTypes').join(' ')} }`;
    expect(refusal((await run(long)).result)).toEqual({
      code: 'QUERY_TOO_COMPLEX',
      limit: 'MAX_QUERY_TOKENS',
      measured: 'more than 5000',
      allowed: 5000,
    });
  });

  it('measures page sizes given in variables, request by request', async () => {
    const query = 'query($n: Int) { tasks(first: $n) { edges { node { id argDict } } } }';
    expect(ok((await run(query, { n: 50 })).result).tasks.edges.length).toBeGreaterThan(0);
    const { result, statements } = await run(query, { n: 500 });
    expect(refusal(result)).toMatchObject({ limit: 'MAX_QUERY_COST', measured: 1 + 500 * (2 + JSON_COST) });
    expect(statements).toEqual([]);
    expect(ok((await run(query, { n: 50 })).result).tasks.edges.length).toBeGreaterThan(0);
  });

  it('measures a page size passed in a fragment or as `last`, request by request, whatever else varies', async () => {
    const query = `query($n: Int, $status: [TaskStatus!]) { ...Page }
      fragment Page on Query { tasks(last: $n, filter: { status: $status }) { edges { node { id argDict } } } }`;
    for (const status of [['SCHEDULED'], ['RUNNING']]) {
      expect(ok((await run(query, { n: 50, status })).result).tasks.edges).toBeDefined();
      const { result, statements } = await run(query, { n: 500, status });
      expect(refusal(result)).toMatchObject({ limit: 'MAX_QUERY_COST', measured: 1 + 500 * (2 + JSON_COST) });
      expect(statements).toEqual([]);
      // Omitted, $n is the default page size, not the last value seen.
      expect(ok((await run(query, { status })).result).tasks.edges).toBeDefined();
      expect(refusal((await run(query, { n: 500, status })).result)).toMatchObject({ limit: 'MAX_QUERY_COST' });
    }
  });

  it('keys a kept verdict by the variables the cost reads: page sizes, and the arguments of a field with a cost of its own', () => {
    const document = parse(`query($n: Int, $input: ScheduleInput!, $k: Int) {
      tasks(first: $n) { edges { node { upcomingRuns(count: $k) { at } } } }
      previewSchedule(input: $input) { at }
    }`);
    // previewSchedule's cost reads its input (the years its runs cover, src/graphql/schema/schedule.ts): every variable.
    expect(costVariables(schema, document)).toEqual(['input', 'k', 'n']);
    const costly = new GraphQLSchema({
      query: new GraphQLObjectType({
        name: 'Query',
        fields: { a: { type: GraphQLInt, args: { x: { type: GraphQLInt } }, extensions: { complexity: () => 1 } } },
      }),
    });
    expect(costVariables(costly, parse('query($x: Int, $n: Int) { a(x: $x) b: a(x: $n) }'))).toEqual(['n', 'x']);
    // Variables nowhere near a cost — a create's argDict, a filter, a skip — do not split the kept verdicts.
    const create = parse(`mutation($args: JSON!) { createTimerTask(input: { fullName: "a.B", argDict: $args }) { id } }`);
    expect(costVariables(schema, create)).toEqual([]);
    const preview = parse(`query($cron: String, $status: [TaskStatus!], $x: Boolean!, $c: Int) {
      tasks(filter: { status: $status }) @include(if: $x) { edges { node { id } } }
      ...Preview
    }
    fragment Preview on Query { previewSchedule(input: { cronExpression: $cron }, count: $c) { at } }`);
    expect(validate(schema, preview)).toEqual([]);
    expect(costVariables(schema, preview)).toEqual(['c', 'cron']);
  });

  it('keeps no verdict from a request whose variables do not coerce: a later one with the same page sizes is measured', async () => {
    // $x is not in the key (no cost reads it); a request without it (or with a list where none fits) is
    // refused by execution, and what the cost rule made of it (nothing: it measures no operation whose
    // variables fail) must not stand for the next request that gives it.
    const variants = [{ when: ['SCHEDULED'] }, { x: true, when: null }, { x: 'yes', when: ['SCHEDULED'] }];
    for (const [i, variables] of variants.entries()) {
      // A document of its own for each (yoga keeps one per text), whose first request is the invalid one.
      const query = `query($x: Boolean!, $when: [TaskStatus!]!) {
        tasks(first: 500, filter: { status: $when }) @include(if: $x) { edges { node { ${chain(3)} } } } # ${i}
      }`;
      const invalid = await run(query, variables);
      expect(invalid.result.errors?.[0]?.extensions?.code).not.toBe('QUERY_TOO_COMPLEX');
      expect(invalid.statements).toEqual([]);
      const { result, statements } = await run(query, { x: true, when: ['SCHEDULED'] });
      expect(refusal(result)).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'MAX_QUERY_COST' });
      expect(statements).toEqual([]);
    }
    const depth = `query($x: Boolean!) { tasks(first: 1) @include(if: $x) { edges { node { ${chain(8)} } } } }`;
    expect((await run(depth, {})).result.errors?.[0]?.extensions?.code).not.toBe('QUERY_TOO_COMPLEX');
    expect(refusal((await run(depth, { x: false })).result)).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'MAX_QUERY_DEPTH' });
  });

  it('tells an omitted variable from one given null, whatever its name', async () => {
    // Omitted, $constructor is 500 (over the cost); given null, the default page (within it).
    for (const name of ['constructor', 'toString', 'valueOf']) {
      const query = `query($${name}: Int = 500) { tasks(first: $${name}) { edges { node { id argDict } } } }`;
      expect(ok((await run(query, { [name]: null })).result).tasks.edges.length).toBeGreaterThan(0);
      const { result, statements } = await run(query, {});
      expect(refusal(result)).toMatchObject({ limit: 'MAX_QUERY_COST', measured: 1 + 500 * (2 + JSON_COST) });
      expect(statements).toEqual([]);
    }
  });

  it('counts a list variable as empty, and still measures a page size beside it', async () => {
    // The cost reads no list argument; only the page size in $n decides here.
    const query = `mutation($inputs: [TimerTaskInput!]!, $n: Int) {
      createTimerTasks(inputs: $inputs) { id runs(first: $n) { id result } }
    }`;
    const inputs = Array.from({ length: 3 }, () => ({ fullName: 'tasks.DataSync', startTime: '2099-01-01 10:00:00' }));
    const { result, statements } = await run(query, { inputs, n: 1000 });
    expect(refusal(result)).toMatchObject({ limit: 'MAX_QUERY_COST' });
    expect(statements).toEqual([]);
    expect(ok((await run(query, { inputs, n: 5 })).result).createTimerTasks).toHaveLength(3);
    // A list execution refuses is refused with its coded error, not let through by the cost.
    const bad = await run(query, { inputs: [{ startTime: '2099-01-01 10:00:00' }], n: 5 });
    expect(bad.result.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
  });

  it('refuses a too complex subscription over SSE and over graphql-ws', async () => {
    const subscription = `subscription { taskStatusChanged { task { ${chain(5)} } } }`;
    const [overSse] = (await new Collector((await sseSubscribe(t.app, subscription)).results).finished()) as GqlResult[];
    expect(overSse!.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX' });
    const client = wsClient((await t.app.listen(0, '127.0.0.1')).url);
    try {
      const overWs = new Collector(client.iterate({ query: subscription }));
      const [result] = (await overWs.finished()) as unknown as GqlResult[];
      expect((result ?? { errors: overWs.error as GqlResult['errors'] }).errors?.[0]?.extensions).toMatchObject({
        code: 'QUERY_TOO_COMPLEX',
      });
    } finally {
      await client.dispose();
    }
    expect(t.app.taskEvents.status().subscriptions).toBe(0);
  });
});

describe('query limits from configuration', () => {
  it('applies MAX_QUERY_COST, MAX_QUERY_DEPTH and MAX_ALIASES', async () => {
    const t = await createTestApp('pglite', { env: { MAX_QUERY_COST: '100', MAX_QUERY_DEPTH: '3', MAX_ALIASES: '1' } });
    try {
      expect((await t.gql('{ tasks(first: 100) { edges { cursor } } }')).errors?.[0]?.extensions).toMatchObject({
        limit: 'MAX_QUERY_COST',
        measured: 101,
        allowed: 100,
      });
      expect((await t.gql('{ tasks(first: 10) { edges { node { id } } } }')).errors?.[0]?.extensions).toMatchObject({
        limit: 'MAX_QUERY_DEPTH',
        measured: 4,
        allowed: 3,
      });
      expect((await t.gql('{ a: taskTypes b: taskTypes }')).errors?.[0]?.extensions).toMatchObject({
        limit: 'MAX_ALIASES',
        measured: 2,
        allowed: 1,
      });
      ok(await t.gql('{ tasks(first: 10) { edges { cursor } } }'));
    } finally {
      await t.close();
    }
  });
});
