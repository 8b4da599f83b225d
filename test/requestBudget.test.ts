import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RequestScope } from '../src/db/requestScope.js';
import { collectGarbage } from '../src/ops/heap.js';
import { TaskSvc } from '../src/tasks/TaskSvc.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const BUDGET_MS = 300;
const create = 'mutation { createTimerTask(input: { fullName: "tasks.DataSync", startTime: "2099-01-01 10:00:00" }) { id } }';

/**
 * A service method made slower than the budget: it waits `ms`, then does its real work. `settled`
 * resolves once that real work has been attempted (and possibly refused), so a test can look at what
 * reached the database without a fixed sleep.
 */
function slowDown<K extends 'stats' | 'createTimerTasks'>(method: K, ms: number) {
  const original = TaskSvc.prototype[method] as (...args: unknown[]) => Promise<unknown>;
  let settle!: (outcome: unknown) => void;
  const settled = new Promise<unknown>((resolve) => (settle = resolve));
  let enter!: () => void;
  const entered = new Promise<void>((resolve) => (enter = resolve));
  (TaskSvc.prototype as unknown as Record<string, unknown>)[method] = async function (this: TaskSvc, ...args: unknown[]) {
    enter();
    await new Promise((resolve) => setTimeout(resolve, ms));
    try {
      const result = await original.apply(this, args);
      settle(result);
      return result;
    } catch (error) {
      settle(error);
      throw error;
    }
  };
  return { entered, settled, restore: () => ((TaskSvc.prototype as unknown as Record<string, unknown>)[method] = original) };
}

describe.each(backends)('request budget and abandoned requests (%s)', (backend) => {
  let t: TestApp;
  const sql: string[] = [];
  let restore = () => {};
  beforeAll(async () => {
    t = await createTestApp(backend, {
      env: { REQUEST_TIMEOUT_MS: String(BUDGET_MS), SCHEDULER_ENABLED: 'false' },
      onQuery: (event) => sql.push(event.query),
    });
  });
  afterEach(() => restore());
  afterAll(() => t?.close());

  it('answers a query that outlasts REQUEST_TIMEOUT_MS with TIMEOUT, and its later statements never run', async () => {
    const slow = slowDown('stats', BUDGET_MS * 2);
    restore = slow.restore;
    sql.length = 0;
    const result = await t.gql('{ taskStats { total } }');
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'TIMEOUT', timeoutMs: BUDGET_MS });
    const outcome = await slow.settled;
    expect(outcome).toMatchObject({ code: 'TIMEOUT' });
    expect(sql.filter((q) => /GROUP BY/i.test(q))).toEqual([]);
  });

  it('answers a mutation that outlasts the budget with TIMEOUT only when it wrote nothing', async () => {
    const before = await t.app.db.prisma.task.count();
    const slow = slowDown('createTimerTasks', BUDGET_MS * 2);
    restore = slow.restore;
    const result = await t.gql(create);
    expect(result.errors?.[0]?.extensions?.code).toBe('TIMEOUT');
    expect(await t.app.db.prisma.task.count()).toBe(before);
    restore();
    ok(await t.gql(create));
    expect(await t.app.db.prisma.task.count()).toBe(before + 1);
  });

  it('stops the database work of a request whose client went away', async () => {
    const slow = slowDown('stats', BUDGET_MS / 2);
    restore = slow.restore;
    sql.length = 0;
    const client = new AbortController();
    const answer = Promise.resolve(
      t.app.yoga.fetch('http://chronograph/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ taskStats { total } }' }),
        signal: client.signal,
      }),
    )
      .then((response) => response.text())
      .catch((error: unknown) => error);
    await slow.entered;
    client.abort();
    await answer;
    expect(await slow.settled).toBeInstanceOf(Error);
    expect(sql.filter((q) => /GROUP BY/i.test(q))).toEqual([]);
  });

  it("lets a finished request's signal be collected (no listener keeps it alive)", async () => {
    // Node keeps a signal made by AbortSignal.any alive, in a set of its own, for as long as it has an
    // 'abort' listener, and the executor removes its listener only on abort: such a signal per query
    // leaked about 1.2 KB per request for the life of the process.
    const original = TaskSvc.prototype.stats;
    const originalWithScope = TaskSvc.prototype.withScope;
    let seen: WeakRef<AbortSignal> | undefined;
    // The scope of the operation being built (contextFor binds the services to it), held until it runs.
    let current: RequestScope | undefined;
    restore = () => {
      TaskSvc.prototype.stats = original;
      TaskSvc.prototype.withScope = originalWithScope;
    };
    TaskSvc.prototype.withScope = function (this: TaskSvc, scope: RequestScope) {
      current = scope;
      return originalWithScope.call(this, scope);
    };
    TaskSvc.prototype.stats = function (this: TaskSvc, ...args: Parameters<TaskSvc['stats']>) {
      if (current?.signal) seen = new WeakRef(current.signal);
      current = undefined;
      return original.apply(this, args);
    };
    const query = async () => {
      const response = await t.app.yoga.fetch('http://chronograph/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ taskStats { total } }' }),
        signal: new AbortController().signal,
      });
      return response.json();
    };
    await query(); // the first request opens connections, whose resources may keep its context
    expect(await query()).toMatchObject({ data: { taskStats: {} } });
    expect(seen).toBeDefined();
    for (let i = 0; i < 5 && seen!.deref(); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      collectGarbage();
    }
    expect(seen!.deref()).toBeUndefined();
  });

  it('stops a mutation whose HTTP client hung up before it wrote anything (the Node server adapter)', async () => {
    const slow = slowDown('createTimerTasks', BUDGET_MS / 2);
    restore = slow.restore;
    const before = await t.app.db.prisma.task.count();
    const { url } = await t.app.listen(0, '127.0.0.1');
    const body = JSON.stringify({ query: create });
    const request = http.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    request.on('error', () => {});
    request.end(body);
    await slow.entered;
    request.destroy();
    expect(await slow.settled).toBeInstanceOf(Error);
    expect(await t.app.db.prisma.task.count()).toBe(before);
  });

  it.runIf(backend === 'postgres')('cancels a statement that runs past the budget on PostgreSQL', async () => {
    await expect(t.app.db.prisma.$queryRaw`SELECT pg_sleep(5)`).rejects.toMatchObject({
      meta: { driverAdapterError: { cause: { code: '57014' } } },
    });
    await waitFor(async () => {
      const [row] = await t.app.db.prisma.$queryRaw<
        { n: bigint }[]
      >`SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(5)%' AND state = 'active'`;
      return row!.n === 0n;
    });
  });
});
