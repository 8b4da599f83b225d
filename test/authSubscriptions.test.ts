import { type Client, createClient } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ADMIN, ADMIN_KEY, AUTH_ENV, createKey, hs256 } from './support/auth.js';
import { Collector, type SseSubscription, sseSubscribe, streamIdle, wsClient } from './support/subscriptions.js';
import { backends, createTestApp, createTestDatabase, type GqlResult, ok, type TestApp, type TestDatabase } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const SUB = `subscription { taskStatusChanged { cursor toStatus task { id } } }`;
const CREATE = `mutation { createTimerTask(input: { fullName: "tasks.DataSync", startTime: "2030-01-01 10:00:00" }) { id } }`;

/** Why a graphql-ws stream ended: the socket's close code, or the code of the GraphQL error it ended with. */
function endCode(collector: Collector<unknown>): unknown {
  const error = collector.error as { code?: number; [index: number]: { extensions?: { code?: string } } } | undefined;
  if (typeof error?.code === 'number') return error.code;
  if (Array.isArray(error)) return error[0]?.extensions?.code;
  const last = collector.items.at(-1) as GqlResult | undefined;
  return last?.errors?.[0]?.extensions?.code;
}

/**
 * Credentials of subscriptions: graphql-ws checks `connectionParams.authorization` at connection_init
 * (4403 when missing or bad), decides the tenant then and never again, and a revoked key or an expired
 * token ends what it holds open, over WebSocket and SSE, whichever instance revoked it.
 */
describe.each(backends)('credentials of subscriptions (%s)', (backend) => {
  let database: TestDatabase;
  let t: TestApp;
  /** Where keys are revoked: another instance on the same database on PostgreSQL. */
  let other: TestApp;
  let url: string;
  const clients: Client[] = [];
  const sses: SseSubscription[] = [];

  beforeAll(async () => {
    database = await createTestDatabase(backend);
    t = await createTestApp(backend, { env: AUTH_ENV, database });
    other = backend === 'postgres' ? await createTestApp(backend, { env: AUTH_ENV, database }) : t;
    url = (await t.app.listen(0, '127.0.0.1')).url;
    for (const tenant of ['a', 'b']) {
      ok(
        await t.gql(
          `mutation { createTaskTemplate(input: { fullName: "tasks.DataSync", title: "Sync", funcName: "chronograph.echo" }) { id } }`,
          {},
          { ...ADMIN, 'x-tenant-id': tenant },
        ),
      );
    }
  });
  afterAll(async () => {
    if (other !== t) await other?.close();
    await t?.close();
    await database?.drop();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.dispose()));
    await Promise.all(sses.splice(0).map((s) => s.close()));
    await streamIdle(t.app);
  });

  function ws(connectionParams?: Record<string, unknown>) {
    const client = wsClient(url, connectionParams);
    clients.push(client);
    return client;
  }
  async function sse(headers: Record<string, string>) {
    const subscription = await sseSubscribe(t.app, SUB, {}, headers);
    sses.push(subscription);
    return new Collector(subscription.results);
  }
  const live = (n: number) => waitFor(() => t.app.taskEvents.status().live >= n, { what: `${n} live subscribers` });

  it('closes a connection without a valid credential with 4403 at connection_init', async () => {
    for (const params of [{}, { authorization: 'Bearer nope' }, { authorization: ADMIN_KEY }, { headers: { 'x-tenant-id': 'a' } }]) {
      const stream = new Collector(ws(params).iterate({ query: `{ me { actor } }` }));
      await stream.finished();
      expect(endCode(stream), JSON.stringify(params)).toBe(4403);
      expect(stream.items).toEqual([]);
    }
  });

  it('keeps the identity and tenant of connection_init, whatever an operation sends later', async () => {
    const editorB = await createKey(t, 'b', 'EDITOR');
    const client = ws({ authorization: `Bearer ${editorB.secret}` });
    const smuggle = { headers: { 'x-tenant-id': 'a', authorization: ADMIN.authorization }, tenantId: 'a' };
    const me = new Collector(client.iterate({ query: `{ me { tenantId role actor } }`, extensions: smuggle }));
    expect((await me.finished()).map((r) => (r as GqlResult).data)).toEqual([
      { me: { tenantId: 'b', role: 'EDITOR', actor: `key:${editorB.id}` } },
    ]);

    const sub = new Collector(client.iterate({ query: SUB, extensions: smuggle }));
    await live(1);
    const inA = ok(await t.gql(CREATE, {}, { ...ADMIN, 'x-tenant-id': 'a' })).createTimerTask;
    const inB = ok(await t.gql(CREATE, {}, editorB.headers)).createTimerTask;
    await sub.until((r) => r.length >= 1, 'the event of tenant b');
    // Delivery is in event order: had tenant a's event leaked, it would have come first.
    expect(sub.items.map((r) => (r as GqlResult).data?.taskStatusChanged.task.id)).toEqual([inB.id]);
    expect(inA.id).not.toBe(inB.id);
    await sub.close();
  });

  it('lets only an ADMIN choose the tenant in connectionParams; others get FORBIDDEN on every operation', async () => {
    const editorB = await createKey(t, 'b', 'EDITOR');
    const refused = new Collector(
      ws({ authorization: `Bearer ${editorB.secret}`, tenantId: 'a' }).iterate({ query: `{ me { tenantId } }` }),
    );
    await refused.finished();
    expect(endCode(refused)).toBe('FORBIDDEN');
    const admin = new Collector(ws({ authorization: ADMIN.authorization, tenantId: 'a' }).iterate({ query: `{ me { tenantId } }` }));
    expect((await admin.finished()).map((r) => (r as GqlResult).data)).toEqual([{ me: { tenantId: 'a' } }]);
  });

  it('names, in a refused tenant choice, what the client sent it in: connectionParams or the upgrade header', async () => {
    const editorB = await createKey(t, 'b', 'EDITOR');
    const bearer = `Bearer ${editorB.secret}`;
    /** A client whose WebSocket upgrade request carries `headers`. */
    const upgradeWith = (headers: Record<string, string>) => {
      const client = createClient({
        url: url.replace(/^http/, 'ws'),
        connectionParams: { authorization: bearer },
        webSocketImpl: class extends WebSocket {
          constructor(address: string, protocols?: string | string[]) {
            super(address, protocols, { headers });
          }
        },
        retryAttempts: 0,
        lazy: true,
      });
      clients.push(client);
      return client;
    };
    const cases: [Client, string][] = [
      [ws({ authorization: bearer, tenantId: 'a' }), 'connectionParams.tenantId'],
      [ws({ authorization: bearer, headers: { 'x-tenant-id': 'a' } }), 'connectionParams.headers["x-tenant-id"]'],
      [upgradeWith({ 'x-tenant-id': 'a' }), 'x-tenant-id'],
    ];
    for (const [client, field] of cases) {
      const refused = new Collector(client.iterate({ query: `{ me { tenantId } }` }));
      await refused.finished();
      const [error] = refused.error as { message: string; extensions: Record<string, unknown> }[];
      expect(error?.extensions, field).toEqual({ code: 'FORBIDDEN', field });
      expect(error?.message).toBe(
        `${field} names tenant a, but this EDITOR credential belongs to tenant b; only ADMIN credentials may choose a tenant`,
      );
    }
  });

  it('ends WebSocket and SSE subscriptions of a key revoked on another instance', async () => {
    const key = await createKey(t, 'a', 'VIEWER');
    const overWs = new Collector(ws({ authorization: `Bearer ${key.secret}` }).iterate({ query: SUB }));
    const overSse = await sse(key.headers);
    const unaffected = await sse(ADMIN);
    await live(3);
    ok(await other.gql(`mutation($id: ID!) { revokeApiKey(id: $id) { id } }`, { id: key.id }, ADMIN));
    await overWs.finished();
    expect([4403, 'UNAUTHENTICATED']).toContain(endCode(overWs));
    const ended = (await overSse.finished()) as GqlResult[];
    expect(ended.at(-1)!.errors?.[0]?.extensions).toEqual({ code: 'UNAUTHENTICATED', lastCursor: expect.any(String) });
    // The admin's subscription goes on.
    const { id } = ok(await t.gql(CREATE, {}, ADMIN)).createTimerTask;
    await unaffected.until((r) => r.some((x) => (x as GqlResult).data?.taskStatusChanged.task.id === id), 'the admin to keep receiving');
    await unaffected.close();
    // A new connection with the revoked key is refused at once.
    const again = new Collector(ws({ authorization: `Bearer ${key.secret}` }).iterate({ query: SUB }));
    await again.finished();
    expect(endCode(again)).toBe(4403);
  });

  it('ends subscriptions when their token expires', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await hs256({ sub: 'short-lived', tenant_id: 'a', role: 'VIEWER', exp });
    const overWs = new Collector(ws({ authorization: `Bearer ${token}` }).iterate({ query: SUB }));
    const overSse = await sse({ authorization: `Bearer ${token}` });
    await live(2);
    await overWs.finished();
    expect([4403, 'UNAUTHENTICATED']).toContain(endCode(overWs));
    const ended = (await overSse.finished()) as GqlResult[];
    expect(ended.at(-1)!.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
  });

  it('answers an SSE subscription without a credential with 401', async () => {
    const response = await t.app.yoga.fetch('http://chronograph/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: SUB }),
    });
    expect(response.status).toBe(401);
    expect(await response.text()).toContain('UNAUTHENTICATED');
  });
});
