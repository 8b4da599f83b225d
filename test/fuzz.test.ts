import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  buildSchema,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLObjectType,
  getNamedType,
  isEnumType,
  isInputObjectType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Collector, sseSubscribe, streamIdle } from './support/subscriptions.js';
import { backends, createTestApp, type GqlResult, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * Generated requests against every root field of schema.graphql: argument values generated from
 * their GraphQL types, mixed with values that have broken servers before (NUL characters, lone
 * surrogates, deep and huge JSON, numbers at and past their limits, malformed ids and cursors). For
 * each request: no 5xx, every error has a code, none is the masked "Unexpected error.", and a
 * mutation that failed changed no row. Deterministic: FUZZ_SEED picks the inputs (FUZZ_RUNS per field).
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261122);
const RUNS = Number(process.env.FUZZ_RUNS ?? 40);
const schema = buildSchema(readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8'));

const NASTY = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udc00',
  '💥 ünïcode',
  'x'.repeat(5000),
  "'); DROP TABLE task;--",
  '../../../etc/passwd',
  '%s%n%x',
  '-1',
  '9999999999999999999',
  '99999999999999999999',
  'null',
  '{}',
  'R1BDOlM6YWJj', // base64 of a connection cursor holding no id
  'R1BDOk46NQ==', // base64 of a cursor of another kind
];
const DOMAIN = [
  'tasks.DataSync',
  'tasks.Echo',
  'tasks.DataBackup',
  'chronograph.echo',
  'chronograph.noop',
  'services.BackupSvc.backupDatabase',
  'tasks.NormalType',
  'models.Contract',
  'expireDate',
  '2030-01-01 10:00:00',
  '2030-02-30 10:00:00',
  '2030-03-10T02:30:00Z',
  '0 9 * * 1-5',
  '*/5 * * * * *',
  'not cron',
  'UTC',
  'Asia/Shanghai',
  'Mars/Base',
  'DAYS',
  'BEFORE',
  '09:00',
  '0',
  '1',
];

interface Fixtures {
  ids: string[];
  cursors: string[];
}

function stringArb(fixtures: Fixtures): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...NASTY), weight: 3 },
    { arbitrary: fc.constantFrom(...DOMAIN, ...fixtures.ids, ...fixtures.cursors), weight: 4 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 12 }), weight: 2 },
    { arbitrary: fc.uuid(), weight: 1 },
  );
}

function deepJson(depth: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

function jsonArb(fixtures: Fixtures): fc.Arbitrary<unknown> {
  return fc.oneof(
    { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 4 },
    {
      arbitrary: fc.dictionary(stringArb(fixtures), fc.oneof(stringArb(fixtures), fc.integer(), fc.constant(null)), { maxKeys: 3 }),
      weight: 4,
    },
    {
      arbitrary: fc.constantFrom(
        deepJson(70),
        deepJson(64),
        { big: 'x'.repeat(1_100_000) },
        { $gte: 1 },
        { status: { $in: 'x' } },
        { 'k\u0000': 1 },
        [1, [2]],
      ),
      weight: 2,
    },
  );
}

const INTS = [-2147483648, -1, 0, 1, 2, 5, 100, 500, 501, 1000, 1001, 100_000, 2147483647];

/** A value for an input type; `undefined` (omitted) is allowed where the type is nullable. */
function valueArb(type: GraphQLInputType, fixtures: Fixtures, depth = 0): fc.Arbitrary<unknown> {
  if (isNonNullType(type)) {
    // Now and then the required value is missing or null anyway: the server must say so with a code.
    return fc.oneof({ arbitrary: valueArb(type.ofType, fixtures, depth), weight: 20 }, { arbitrary: fc.constant(null), weight: 1 });
  }
  const nullable = (arb: fc.Arbitrary<unknown>) => fc.oneof({ arbitrary: arb, weight: 6 }, { arbitrary: fc.constant(null), weight: 1 });
  if (isListType(type)) return nullable(fc.array(valueArb(type.ofType, fixtures, depth + 1), { maxLength: depth > 1 ? 1 : 3 }));
  if (isEnumType(type))
    return nullable(
      fc.oneof(
        { arbitrary: fc.constantFrom(...type.getValues().map((v) => v.name)), weight: 9 },
        { arbitrary: fc.constant('NOT_A_VALUE'), weight: 1 },
      ),
    );
  if (isInputObjectType(type)) {
    if (depth > 3) return fc.constant(null);
    const fields = Object.values(type.getFields());
    const model = Object.fromEntries(fields.map((f) => [f.name, valueArb(f.type, fixtures, depth + 1)]));
    const required = fields.filter((f) => isNonNullType(f.type)).map((f) => f.name);
    return nullable(fc.record(model, { requiredKeys: required }));
  }
  if (isScalarType(type)) {
    switch (type.name) {
      case 'Int':
        return nullable(
          fc.oneof(
            { arbitrary: fc.constantFrom(...INTS), weight: 6 },
            { arbitrary: fc.integer(), weight: 2 },
            { arbitrary: fc.constantFrom<unknown>(2 ** 40, 1.5, 'x'), weight: 1 },
          ),
        );
      case 'Float':
        return nullable(fc.oneof(fc.double({ noNaN: true }), fc.constantFrom(0, -1, 1e308)));
      case 'Boolean':
        return nullable(fc.boolean());
      case 'JSON':
        return nullable(jsonArb(fixtures));
      default:
        return nullable(stringArb(fixtures));
    }
  }
  return fc.constant(null);
}

/** Leaf fields of a type, and one level of leaf fields below its object fields that need no arguments. */
function selectionOf(type: GraphQLObjectType, depth = 0): string {
  const parts = ['__typename'];
  for (const field of Object.values(type.getFields())) {
    if (field.args.some((a) => isNonNullType(a.type))) continue;
    const named = getNamedType(field.type);
    if (isLeafType(named)) parts.push(field.name);
    else if (isObjectType(named) && depth < 2) parts.push(`${field.name} { ${selectionOf(named, depth + 1)} }`);
  }
  return parts.join(' ');
}

interface Request {
  operation: 'query' | 'mutation' | 'subscription';
  field: string;
  query: string;
  variables: Record<string, unknown>;
}

function requestArb(operation: Request['operation'], field: GraphQLField<unknown, unknown>, fixtures: Fixtures): fc.Arbitrary<Request> {
  const named = getNamedType(field.type);
  const selection = isObjectType(named) ? ` { ${selectionOf(named)} }` : '';
  const args = field.args;
  const header = args.length ? `(${args.map((a) => `$${a.name}: ${a.type.toString()}`).join(', ')})` : '';
  const call = args.length ? `(${args.map((a) => `${a.name}: $${a.name}`).join(', ')})` : '';
  const query = `${operation} Fuzz${header} { ${field.name}${call}${selection} }`;
  const model = Object.fromEntries(args.map((a) => [a.name, valueArb(a.type, fixtures)]));
  return fc
    .record(model, { requiredKeys: [] })
    .map((variables) => ({ operation, field: field.name, query, variables: variables as Record<string, unknown> }));
}

describe.each(backends)('fuzzing every field of schema.graphql (%s)', (backend) => {
  let t: TestApp;
  const fixtures: Fixtures = { ids: [], cursors: [] };
  beforeAll(async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    const tasks = await t.app.taskSvc.createTimerTasks(
      Array.from({ length: 3 }, () => ({ fullName: 'tasks.DataSync', startTime: '2099-01-01 10:00:00' })),
    );
    fixtures.ids.push(...tasks.map((task) => task.id));
    ok(
      await t.gql(
        'mutation { saveModel(input: { name: "models.Contract", fields: [{ name: "expireDate", type: DATE }, { name: "status", type: TEXT }] }) { name } }',
      ),
    );
    const record = ok(
      await t.gql('mutation { createModelRecord(model: "models.Contract", data: { expireDate: "2099-01-01" }) { record { id } } }'),
    );
    fixtures.ids.push(record.createModelRecord.record.id);
    const page = ok(
      await t.gql('{ tasks(first: 2) { pageInfo { endCursor } } taskEvents(first: 1) { edges { cursor node { cursor } } } }'),
    );
    fixtures.cursors.push(page.tasks.pageInfo.endCursor, page.taskEvents.edges[0].cursor, page.taskEvents.edges[0].node.cursor);
  });
  afterAll(() => t?.close());

  async function counts(): Promise<string> {
    const [row] = await t.app.db.prisma.$queryRaw<Record<string, bigint>[]>`
      SELECT (SELECT count(*) FROM task) AS tasks, (SELECT count(*) FROM task_event) AS events, (SELECT count(*) FROM task_run) AS runs,
             (SELECT count(*) FROM task_template) AS templates, (SELECT count(*) FROM model_definition) AS models,
             (SELECT count(*) FROM model_record) AS records, (SELECT count(*) FROM date_field_source) AS sources,
             (SELECT max(updated_at) FROM task) AS task_change, (SELECT max(updated_at) FROM task_template) AS template_change,
             (SELECT max(updated_at) FROM model_record) AS record_change`;
    return JSON.stringify(row, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  }

  async function send(request: Request): Promise<{ status: number; results: GqlResult[] }> {
    if (request.operation !== 'subscription') {
      const response = await t.app.yoga.fetch('http://chronograph/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: request.query, variables: request.variables }),
      });
      return { status: response.status, results: [(await response.json()) as GqlResult] };
    }
    // A subscription either fails at once (its error is the first event) or starts listening.
    const subscribed = t.app.taskEvents.status().subscriptions;
    const sse = await sseSubscribe(t.app, request.query, request.variables);
    const results = new Collector(sse.results);
    await waitFor(() => results.items.length > 0 || results.ended || t.app.taskEvents.status().subscriptions > subscribed, {
      what: 'a subscription to start or fail',
    });
    await results.close();
    await streamIdle(t.app);
    return { status: 200, results: results.items };
  }

  const roots = [
    ['query', schema.getQueryType()!],
    ['mutation', schema.getMutationType()!],
    ['subscription', schema.getSubscriptionType()!],
  ] as const;

  it('answers every generated request with data or coded errors, and a failed mutation writes nothing', async () => {
    let requests = 0;
    for (const [operation, type] of roots) {
      for (const field of Object.values(type.getFields())) {
        await fc.assert(
          fc.asyncProperty(requestArb(operation, field, fixtures), async (request) => {
            requests++;
            const before = operation === 'mutation' ? await counts() : '';
            const { status, results } = await send(request);
            expect(status, JSON.stringify(results)).toBeLessThan(500);
            const errors = results.flatMap((r) => r.errors ?? []);
            for (const error of errors) {
              expect(error.extensions?.code, `uncoded: ${JSON.stringify(error)}`).toBeTruthy();
              expect(error.extensions?.code).not.toBe('INTERNAL_SERVER_ERROR');
              expect(error.message).not.toBe('Unexpected error.');
            }
            if (operation === 'mutation' && errors.length > 0) expect(await counts(), `${request.field} failed but wrote`).toBe(before);
          }),
          { seed: SEED, numRuns: RUNS, endOnFailure: true },
        );
      }
    }
    expect(requests).toBeGreaterThan(1000);
  }, 600_000);
});
