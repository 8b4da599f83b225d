import type { Client } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Collector, events, type SseSubscription, sseSubscribe, streamIdle, wsClient } from './support/subscriptions.js';
import type { GqlResult } from './support/testApp.js';
import { backends, createTestApp, createTestDatabase, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const SUB = `subscription($filter: TaskEventFilter, $after: String) {
  taskStatusChanged(filter: $filter, after: $after) { id cursor type fromStatus toStatus message createdAt task { id fullName status } run { id } }
}`;
const CREATE = `mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }`;
const FORCED_END = `mutation($id: ID!) { forcedEnd(taskId: $id, reason: "stop") { status } }`;

interface Ev {
  id: string;
  cursor: string;
  type: string;
  fromStatus: string | null;
  toStatus: string;
  message: string | null;
  task: { id: string; fullName: string; status: string };
  run: { id: string } | null;
}

const future = { fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00' };
const transitions = (evs: Ev[]) => evs.map((e) => `${e.fromStatus ?? '∅'}→${e.toStatus}`);
const ids = (evs: { cursor: string }[]) => evs.map((e) => BigInt(e.cursor));

describe.each(backends)('Subscription.taskStatusChanged (%s)', (backend) => {
  let t: TestApp;
  let url: string;
  const clients: Client[] = [];
  const sses: SseSubscription[] = [];

  beforeAll(async () => {
    t = await createTestApp(backend);
    url = (await t.app.listen(0, '127.0.0.1')).url;
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    await t.app.db.prisma.task.deleteMany({});
  });
  // Every test ends by closing its clients; nothing may stay subscribed or listening afterwards.
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
  async function sse(variables?: Record<string, unknown>, headers?: Record<string, string>, query = SUB) {
    const subscription = await sseSubscribe(t.app, query, variables, headers);
    sses.push(subscription);
    return subscription;
  }
  /** Waits until `n` more subscribers are live on the server, so nothing produced next is missed. */
  async function live(n: number) {
    await waitFor(() => t.app.taskEvents.status().live >= n, { what: `${n} live subscribers` });
  }

  it('shows create → run → succeed live over SSE, each event with its task and run', async () => {
    const sub = await sse({ filter: { fullName: 'tasks.DataSync' } });
    const received = new Collector(sub.results);
    await live(1);
    const { id } = ok(
      await t.gql(CREATE, { input: { ...future, startTime: new Date().toISOString(), funcName: 'chronograph.echo' } }),
    ).createTimerTask;
    const evs = events<Ev>(await received.until((r) => r.length >= 3, 'created, running, succeeded'));
    expect(transitions(evs)).toEqual(['∅→SCHEDULED', 'SCHEDULED→RUNNING', 'RUNNING→SUCCEEDED']);
    expect(evs.map((e) => e.type)).toEqual(['CREATED', 'STATUS_CHANGED', 'STATUS_CHANGED']);
    expect(evs.every((e) => e.task.id === id && e.task.fullName === 'tasks.DataSync')).toBe(true);
    expect(evs[1]!.run?.id).toBeTruthy();
    expect(evs[2]!.run?.id).toBe(evs[1]!.run?.id);
    expect(ids(evs)).toEqual([...ids(evs)].sort((a, b) => (a < b ? -1 : 1)));
  });

  it('shows a forced end live over graphql-ws on a real port, only to the tenant of the connection', async () => {
    await t.app.templateSvc.forTenant('acme').create({ fullName: 'tasks.DataSync', title: 'Data sync', funcName: 'chronograph.echo' });
    const acme = new Collector(ws({ tenantId: 'acme' }).iterate({ query: SUB }));
    const byHeader = new Collector(
      ws({ headers: { 'x-tenant-id': 'acme' } }).iterate({ query: SUB, variables: { filter: { statuses: ['FORCED_END'] } } }),
    );
    const dflt = new Collector(ws().iterate({ query: SUB }));
    await live(3);
    const other = ok(await t.gql(CREATE, { input: future })).createTimerTask;
    const mine = ok(await t.gql(CREATE, { input: future }, { 'x-tenant-id': 'acme' })).createTimerTask;
    ok(await t.gql(FORCED_END, { id: mine.id }, { 'x-tenant-id': 'acme' }));
    ok(await t.gql(FORCED_END, { id: other.id }));

    const acmeEvs = events<Ev>(await acme.until((r) => r.length >= 2, 'acme events'));
    expect(acmeEvs.map((e) => [e.task.id, e.toStatus, e.message])).toEqual([
      [mine.id, 'SCHEDULED', 'created'],
      [mine.id, 'FORCED_END', 'stop'],
    ]);
    expect(events<Ev>(await byHeader.until((r) => r.length >= 1)).map((e) => [e.task.id, e.toStatus])).toEqual([[mine.id, 'FORCED_END']]);
    const dfltEvs = events<Ev>(await dflt.until((r) => r.length >= 2, 'default-tenant events'));
    expect(dfltEvs.map((e) => [e.task.id, e.toStatus])).toEqual([
      [other.id, 'SCHEDULED'],
      [other.id, 'FORCED_END'],
    ]);
    // Delivery is in id order, so a leaked event of the other tenant would have arrived before these.
    await dflt.close();
    await acme.close();
    expect(acme.items).toHaveLength(2);
  });

  it('executes each event once for subscribers of the same document, variables and tenant; never across tenants', async () => {
    await t.app.templateSvc.forTenant('globex').create({ fullName: 'tasks.DataSync', title: 'Data sync', funcName: 'chronograph.echo' });
    const same = [ws(), ws(), ws()].map((c) => new Collector(c.iterate({ query: SUB })));
    const otherVariables = new Collector(ws().iterate({ query: SUB, variables: { filter: { statuses: ['SCHEDULED'] } } }));
    const globex = [ws({ tenantId: 'globex' }), ws({ tenantId: 'globex' })].map((c) => new Collector(c.iterate({ query: SUB })));
    await live(6);
    const before = t.app.taskEvents.status().executions;
    const mine = ok(await t.gql(CREATE, { input: future })).createTimerTask;
    const theirs = ok(await t.gql(CREATE, { input: future }, { 'x-tenant-id': 'globex' })).createTimerTask;

    for (const c of same) {
      expect(events<Ev>(await c.until((r) => r.length >= 1)).map((e) => [e.task.id, e.toStatus])).toEqual([[mine.id, 'SCHEDULED']]);
    }
    expect(events<Ev>(await otherVariables.until((r) => r.length >= 1)).map((e) => e.task.id)).toEqual([mine.id]);
    for (const c of globex) {
      expect(events<Ev>(await c.until((r) => r.length >= 1)).map((e) => [e.task.id, e.toStatus])).toEqual([[theirs.id, 'SCHEDULED']]);
    }
    // Default tenant: one execution for the three, one for the other variables; globex: one for its two.
    const after = t.app.taskEvents.status().executions;
    expect({ run: after.run - before.run, reused: after.reused - before.reused }).toEqual({ run: 3, reused: 3 });
    // Nothing of the other tenant arrived (delivery is in id order: it would have come first).
    for (const c of [...same, ...globex]) await c.close();
    expect([...same, ...globex].map((c) => c.items.length)).toEqual([1, 1, 1, 1, 1]);
  });

  it('applies the filter: one task, some statuses', async () => {
    const a = ok(await t.gql(CREATE, { input: future })).createTimerTask;
    const b = ok(await t.gql(CREATE, { input: future })).createTimerTask;
    const sub = await sse({ filter: { taskId: a.id, statuses: ['FORCED_END', 'CANCELLED'], source: 'API', types: ['STATUS_CHANGED'] } });
    const onlyA = new Collector(sub.results);
    await live(1);
    ok(await t.gql(FORCED_END, { id: b.id }));
    ok(await t.gql(FORCED_END, { id: a.id }));
    const evs = events<Ev>(await onlyA.until((r) => r.length >= 1));
    expect(evs.map((e) => [e.task.id, e.toStatus])).toEqual([[a.id, 'FORCED_END']]);
  });

  it.each([
    [{ filter: { taskId: 'nope' } }, 'filter.taskId'],
    [{ filter: { statuses: [] } }, 'filter.statuses'],
    [{ filter: { fullName: ' ' } }, 'filter.fullName'],
    [{ after: 'last' }, 'after'],
    [{ after: '99999999999999999999' }, 'after'],
  ])('rejects a bad filter or cursor %j with BAD_USER_INPUT on both transports', async (variables, field) => {
    const overSse = new Collector((await sse(variables)).results);
    const [sseResult] = await overSse.finished();
    expect(sseResult!.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });

    const overWs = new Collector(ws().iterate({ query: SUB, variables }));
    const [wsResult] = (await overWs.finished()) as unknown as GqlResult[];
    expect(wsResult!.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
  });

  it('rejects a malformed tenant with BAD_USER_INPUT on both transports', async () => {
    const [sseResult] = await new Collector((await sse({}, { 'x-tenant-id': 'no spaces!' })).results).finished();
    expect(sseResult!.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const overWs = new Collector(ws({ tenantId: 'no spaces!' }).iterate({ query: SUB }));
    await overWs.finished();
    expect((overWs.error as GqlResult['errors'])?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'connectionParams.tenantId',
    });
  });

  it('resumes after a cursor with no gap and no duplicate while events are produced concurrently', async () => {
    const client = ws();
    const whole = new Collector(client.iterate({ query: SUB }));
    await live(1);
    let producing = true;
    const produce = async () => {
      while (producing) {
        const batch = await t.app.taskSvc.createTimerTasks(Array.from({ length: 1 + Math.floor(Math.random() * 4) }, () => future));
        await Promise.all(batch.filter((_, i) => i % 2 === 0).map((task) => t.app.taskSvc.forcedEnd(task.id)));
        // PGlite answers within microtasks: yield, or this loop would starve sockets and timers.
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    // Two producers: on PostgreSQL their transactions interleave, so ids commit out of order.
    const producers = [produce(), produce()];
    await whole.until((r) => r.length >= 30, '30 live events');
    const seam = events<Ev>(whole.items)[14]!.cursor;
    const resumed = new Collector(client.iterate({ query: SUB, variables: { after: seam } }));
    await resumed.until((r) => r.length >= 60, 'the resumed subscription to pass its seam under load');
    producing = false;
    await Promise.all(producers);

    const stored = (await t.app.db.prisma.taskEvent.findMany({ orderBy: { id: 'asc' }, select: { id: true } })).map((e) => e.id);
    const last = stored[stored.length - 1]!;
    const reached = (r: readonly { data?: unknown }[]) => r.length > 0 && BigInt(events(r)[r.length - 1]!.cursor) === last;
    await whole.until(reached, 'the live subscription to reach the last event');
    await resumed.until(reached, 'the resumed subscription to reach the last event');

    expect(ids(events(whole.items))).toEqual(stored);
    expect(ids(events(resumed.items))).toEqual(stored.filter((id) => id > BigInt(seam)));
  });

  it('ends a subscriber that stops reading with SUBSCRIBER_TOO_SLOW and its cursor, without holding up others; it resumes from there', async () => {
    const slowApp = await createTestApp(backend, { env: { SUBSCRIPTION_BUFFER_SIZE: '5' } });
    try {
      const stalled = await sseSubscribe(slowApp.app, SUB);
      const fast = new Collector((await sseSubscribe(slowApp.app, SUB)).results);
      await waitFor(() => slowApp.app.taskEvents.status().live === 2, { what: 'two live subscribers' });
      // One event at a time, each received by the fast subscriber before the next: it never has
      // more than one waiting. The stalled one's response stream takes what fits in its own buffer
      // (about 16 KB through yoga.fetch, more through a socket), then its 5 events, then is cut off.
      const created = [];
      while (slowApp.app.taskEvents.status().live === 2 && created.length < 1000) {
        created.push(await slowApp.app.taskSvc.createTimerTask(future));
        await fast.until((r) => r.length === created.length, `event ${created.length} on the fast subscriber`);
      }
      expect(slowApp.app.taskEvents.status().live).toBe(1);

      const got = await new Collector(stalled.results).finished();
      const delivered = events<Ev>(got.slice(0, -1));
      const error = got[got.length - 1]!.errors?.[0];
      expect(error?.extensions?.code).toBe('SUBSCRIBER_TOO_SLOW');
      expect(delivered.length).toBeLessThan(created.length);
      const lastCursor = error?.extensions?.lastCursor as string;
      expect(lastCursor).toBe(delivered.length ? delivered[delivered.length - 1]!.cursor : lastCursor);

      const rest = new Collector((await sseSubscribe(slowApp.app, SUB, { after: lastCursor })).results);
      const resumed = events<Ev>(await rest.until((r) => r.length === created.length - delivered.length, 'the rest after resuming'));
      expect([...delivered, ...resumed].map((e) => e.task.id)).toEqual(created.map((task) => task.id));
      await rest.close();
      await fast.close();
      await streamIdle(slowApp.app);
    } finally {
      await slowApp.close();
    }
  });

  it('ends open subscriptions with SHUTTING_DOWN and a resume cursor when the instance stops', async () => {
    const other = await createTestApp(backend);
    let closed = false;
    try {
      const sub = new Collector((await sseSubscribe(other.app, SUB)).results);
      await waitFor(() => other.app.taskEvents.status().live === 1);
      await other.app.taskSvc.createTimerTask(future);
      await sub.until((r) => r.length === 1);
      await other.close();
      closed = true;
      const got = await sub.finished();
      expect(got[1]!.errors?.[0]?.extensions).toEqual({ code: 'SHUTTING_DOWN', lastCursor: events(got.slice(0, 1))[0]!.cursor });
    } finally {
      if (!closed) await other.close();
    }
  });

  it('serves GraphiQL with its graphql-ws client (test/graphiql.test.ts runs subscriptions in a browser)', async () => {
    const page = await t.app.yoga.fetch('http://chronograph/graphql', { headers: { accept: 'text/html' } });
    expect(await page.text()).toMatch(/<script src="\/graphiql\/[0-9a-f]{16}\/graphql-ws\.js"><\/script>/);
  });
});

describe.runIf(backends.includes('postgres'))('Subscription.taskStatusChanged across instances (postgres)', () => {
  it('delivers events made by instance B to subscribers of instance A, over WebSocket and SSE', async () => {
    const database = await createTestDatabase('postgres');
    const a = await createTestApp('postgres', { database });
    const b = await createTestApp('postgres', { database });
    const client = wsClient((await a.app.listen(0, '127.0.0.1')).url);
    try {
      const onA = new Collector(client.iterate({ query: SUB }));
      const onB = new Collector((await sseSubscribe(b.app, SUB)).results);
      await waitFor(() => a.app.taskEvents.status().live === 1 && b.app.taskEvents.status().live === 1);
      const { id } = ok(await b.gql(CREATE, { input: future })).createTimerTask;
      ok(await b.gql(FORCED_END, { id }));
      const fromA = ok(await a.gql(CREATE, { input: future })).createTimerTask;

      const seenOnA = events<Ev>(await onA.until((r) => r.length === 3, 'three events on A'));
      expect(seenOnA.map((e) => [e.task.id, e.toStatus])).toEqual([
        [id, 'SCHEDULED'],
        [id, 'FORCED_END'],
        [fromA.id, 'SCHEDULED'],
      ]);
      const seenOnB = events<Ev>(await onB.until((r) => r.length === 3, 'three events on B'));
      expect(seenOnB.map((e) => e.cursor)).toEqual(seenOnA.map((e) => e.cursor));
      await onA.close();
      await onB.close();
      await Promise.all([streamIdle(a.app), streamIdle(b.app)]);
    } finally {
      await client.dispose();
      await a.close();
      await b.close();
      await database.drop();
    }
  });
});
