import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TaskSvc } from '../src/tasks/TaskSvc.js';
import { Collector, wsClient } from './support/subscriptions.js';
import { createTestApp, type GqlResult, type TestApp } from './support/testApp.js';

/**
 * What went wrong inside the server stays in its log: no answer carries `originalError`, a parser's
 * message or a stack, whether the client sent something unreadable or hit a bug, and whatever NODE_ENV
 * says (yoga adds both in its development mode).
 */
describe('errors tell clients no internals', () => {
  let t: TestApp;
  let url: string;
  const nodeEnv = process.env.NODE_ENV;
  beforeAll(async () => {
    t = await createTestApp('pglite', { env: { SCHEDULER_ENABLED: 'false' } });
    url = (await t.app.listen(0, '127.0.0.1')).url;
  });
  afterAll(() => t?.close());
  afterEach(() => {
    process.env.NODE_ENV = nodeEnv;
  });

  const send = async (body: string, headers: Record<string, string> = {}) => {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const text = await response.text();
    return { status: response.status, text, body: JSON.parse(text) as GqlResult };
  };

  /** Every error's extensions hold nothing but what the README documents. */
  const expectNoInternals = (text: string) => {
    expect(text).not.toContain('originalError');
    expect(text).not.toContain('stack');
    expect(text).not.toContain('SyntaxError');
    expect(text).not.toContain('a bug');
  };

  it.each(['production', 'development'])(
    'answers a body that is not JSON with BAD_REQUEST and no parser error (NODE_ENV=%s)',
    async (env) => {
      process.env.NODE_ENV = env;
      const { status, text, body } = await send('{"query": bad}');
      expect(status).toBeLessThan(500); // 400, or 200 when the answer is application/json (GraphQL over HTTP)
      expect(body.errors).toEqual([{ message: 'POST body sent invalid JSON.', extensions: { code: 'BAD_REQUEST' } }]);
      expectNoInternals(text);
    },
  );

  it.each([
    ['a form post', 'extensions'],
    ['a form post', 'variables'],
    ['a GET', 'variables'],
  ])('answers %s whose %s is not JSON with 400 BAD_REQUEST, not a masked bug', async (kind, param) => {
    const query = `query=${encodeURIComponent('{ taskTypes }')}&${param}=nope`;
    const response =
      kind === 'a GET'
        ? await fetch(`${url}?${query}`, { headers: { accept: 'application/json', 'x-graphql-yoga-csrf': '1' } })
        : await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-graphql-yoga-csrf': '1' },
            body: query,
          });
    const text = await response.text();
    expect(response.status).toBe(400);
    expect((JSON.parse(text) as GqlResult).errors?.[0]?.extensions).toEqual({ code: 'BAD_REQUEST' });
    expectNoInternals(text);
  });

  it.each(['production', 'development'])('masks a bug over HTTP and graphql-ws without its stack (NODE_ENV=%s)', async (env) => {
    process.env.NODE_ENV = env;
    const stats = TaskSvc.prototype.stats;
    TaskSvc.prototype.stats = () => Promise.reject(new TypeError('a bug'));
    const client = wsClient(url);
    try {
      const overHttp = await send(JSON.stringify({ query: '{ taskStats { total } }' }));
      expect(overHttp.body.errors?.[0]).toMatchObject({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
      expect(Object.keys(overHttp.body.errors?.[0]?.extensions ?? {})).toEqual(['code']);
      expectNoInternals(overHttp.text);

      const overWs = new Collector(client.iterate({ query: '{ taskStats { total } }' }));
      const [result] = (await overWs.finished()) as GqlResult[];
      expect(result?.errors?.[0]).toMatchObject({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
      expectNoInternals(JSON.stringify(result));
    } finally {
      TaskSvc.prototype.stats = stats;
      await client.dispose();
    }
  });
});
