import { Writable } from 'node:stream';
import type { Client } from 'graphql-ws';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_NESTING } from '../src/graphql/queryLimits.js';
import { Collector, wsClient } from './support/subscriptions.js';
import { backends, createTestApp, type GqlResult, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const START = 'fullName: "tasks.DataSync", startTime: "2099-01-01 10:00:00"';
/** `argDict: <literal>` in a createTimerTask, written into the document. */
const createWith = (argDict: string) => `mutation { createTimerTask(input: { ${START}, argDict: ${argDict} }) { id } }`;
/** `{a:{a:…1…}}`, `levels` objects, as a GraphQL literal. */
const objectLiteral = (levels: number) => `${'{a:'.repeat(levels)}1${'}'.repeat(levels)}`;
/** The same as JSON text. */
const jsonText = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;

/**
 * Brackets that nest thousands deep fit in MAX_QUERY_TOKENS (a list literal takes two tokens a level)
 * but not in the parser's stack: they are refused before parsing, as QUERY_TOO_COMPLEX, over HTTP and
 * over graphql-ws alike, without a 500, an error in the log or a closed socket.
 */
describe.each(backends)('nesting limit (%s)', (backend) => {
  let t: TestApp;
  let url: string;
  const logs: { level: number; msg: string }[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logs.push(JSON.parse(String(chunk)));
        done();
      },
    });
    t = await createTestApp(backend, { logger: pino({ level: 'info' }, sink), env: { SCHEDULER_ENABLED: 'false' } });
    url = (await t.app.listen(0, '127.0.0.1')).url;
  });
  afterAll(() => t?.close());

  /** A request over real HTTP; `variables` as JSON text (JSON.stringify cannot write thousands of levels). */
  async function post(query: string, variables = '{}') {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"query":${JSON.stringify(query)},"variables":${variables}}`,
    });
    return { status: response.status, body: (await response.json()) as GqlResult };
  }

  const deepDocuments: [string, string, number][] = [
    // QA's document: argDict: { a: [[[…2400 levels…]]] }, about 4,830 tokens.
    ['a list literal', createWith(`{ a: ${'['.repeat(2400)}${']'.repeat(2400)} }`), 2400 + 4],
    ['an object literal', createWith(objectLiteral(1200)), 1200 + 3],
    ['a selection', `${'{ a '.repeat(1600)}${'}'.repeat(1600)}`, 1600],
    ['a variable default', `query($a: JSON = ${objectLiteral(1200)}) { me { role } }`, 1200 + 1],
    ['a variable type', `query($a: ${'['.repeat(2400)}Int${']'.repeat(2400)}) { me { role } }`, 2400 + 1],
  ];

  it.each(deepDocuments)(
    'refuses %s nested thousands deep over HTTP as QUERY_TOO_COMPLEX, logging no error',
    async (_, query, measured) => {
      const from = logs.length;
      const tasks = await t.app.db.prisma.task.count();
      const { status, body } = await post(query);
      expect(status).toBeLessThan(500);
      expect(body.data ?? null).toBeNull();
      expect(body.errors).toHaveLength(1);
      expect(body.errors![0]!.extensions).toEqual({ code: 'QUERY_TOO_COMPLEX', limit: 'MAX_NESTING', measured, allowed: MAX_NESTING });
      expect(logs.slice(from).filter((l) => l.level >= 50)).toEqual([]);
      expect(await t.app.db.prisma.task.count()).toBe(tasks);
    },
  );

  it('answers the same status as for an overlong document', async () => {
    const long = await post(`{ ${Array.from({ length: 6000 }, () => 'taskTypes').join(' ')} }`);
    const deep = await post(deepDocuments[0]![1]);
    expect(long.body.errors?.[0]?.extensions?.limit).toBe('MAX_QUERY_TOKENS');
    expect(deep.status).toBe(long.status);
  });

  it('lets through a literal as deep as JSON may be, and refuses a deeper one as JSON, not as a query limit', async () => {
    ok((await post(createWith(objectLiteral(64)))).body);
    const { body } = await post(createWith(objectLiteral(70)));
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'INVALID_ARG_DICT', field: `argDict${'.a'.repeat(64)}` });
  });

  it('refuses JSON variables nested thousands deep as JSON, without a 5xx or an error in the log', async () => {
    const from = logs.length;
    const { status, body } = await post(
      `mutation($a: JSON) { createTimerTask(input: { ${START}, argDict: $a }) { id } }`,
      `{"a":${jsonText(20_000)}}`,
    );
    expect(status).toBeLessThan(500);
    expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'INVALID_ARG_DICT', field: `argDict${'.a'.repeat(64)}` });
    expect(logs.slice(from).filter((l) => l.level >= 50)).toEqual([]);
  });

  it('refuses it over graphql-ws as one operation error, leaving the socket and its other subscriptions open', async () => {
    let closed = 0;
    const client: Client = wsClient(url);
    client.on('closed', () => closed++);
    try {
      const sub = new Collector(client.iterate({ query: 'subscription { taskStatusChanged { task { id } } }' }));
      await waitFor(() => t.app.taskEvents.status().live >= 1, { what: 'the subscription to be live' });

      const deep = new Collector(client.iterate({ query: deepDocuments[0]![1] }));
      await deep.finished();
      const errors = ((deep.items[0] as GqlResult | undefined)?.errors ?? deep.error) as GqlResult['errors'];
      // toMatchObject: a document yoga already refused over HTTP comes from its parse cache with the
      // `http` extension HTTP added, which createWsServer passes on.
      expect(errors?.[0]?.extensions).toMatchObject({
        code: 'QUERY_TOO_COMPLEX',
        limit: 'MAX_NESTING',
        measured: 2404,
        allowed: MAX_NESTING,
      });

      const created = ok(await t.gql(createWith('{}'))).createTimerTask;
      await sub.until((items) => items.some((r) => (r as GqlResult).data?.taskStatusChanged.task.id === created.id), 'the event');
      const me = new Collector(client.iterate({ query: '{ me { role } }' }));
      expect(((await me.finished())[0] as GqlResult).data).toEqual({ me: { role: 'ADMIN' } });
      expect(closed).toBe(0);
      await sub.close();
    } finally {
      await client.dispose();
    }
  });
});
