import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_ENV, createKey } from './support/auth.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

type Headers = Record<string, string>;
/** The four connections of a tenant's history, each with how to read a node's task id. */
const LISTS = {
  tasks: 'id taskId: id',
  taskEvents: 'id task { taskId: id }',
  runLogs: 'id task { taskId: id }',
  taskRuns: 'id task { taskId: id }',
} as const;
type List = keyof typeof LISTS;

const taskIdOf = (node: any): string => node.taskId ?? node.task.taskId;

async function page(t: TestApp, list: List, args: { first?: number; last?: number; after?: string; before?: string }, headers: Headers) {
  const result = ok(
    await t.gql(
      `query($first: Int, $last: Int, $after: String, $before: String) {
        ${list}(first: $first, last: $last, after: $after, before: $before) {
          edges { cursor node { ${LISTS[list]} } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        } }`,
      args,
      headers,
    ),
  )[list];
  return { nodes: result.edges.map((e: any) => e.node), cursors: result.edges.map((e: any) => e.cursor), pageInfo: result.pageInfo };
}

/**
 * Connection cursors are positions, not row lookups: tasks, taskEvents, runLogs and taskRuns page with
 * a keyset condition on the cursor's values inside the caller's tenant. A cursor naming another tenant's
 * row tells nothing about that row (the same page as after the row is gone), and a client whose cursor
 * row was deleted meanwhile reads on without losing or repeating a row.
 */
describe.each(backends)('connection cursors (%s)', (backend) => {
  let t: TestApp;
  let a: { editor: Headers; viewer: Headers };
  let b: { editor: Headers; viewer: Headers };

  beforeAll(async () => {
    t = await createTestApp(backend, {
      env: AUTH_ENV,
      setup(app) {
        app.handlers.register('test.logs', (args, ctx) => {
          ctx.logger.info(`first ${String(args.i)}`);
          ctx.logger.info(`second ${String(args.i)}`);
          return args;
        });
      },
    });
    a = { editor: (await createKey(t, 'a', 'EDITOR')).headers, viewer: (await createKey(t, 'a', 'VIEWER')).headers };
    b = { editor: (await createKey(t, 'b', 'EDITOR')).headers, viewer: (await createKey(t, 'b', 'VIEWER')).headers };
    for (const tenant of ['a', 'b'])
      await t.app.templateSvc.forTenant(tenant).create({ fullName: 'tasks.Echo', title: 'Echo', funcName: 'test.logs' });
    // Interleaved, so that each tenant's rows lie between the other's in every list.
    for (let i = 0; i < 30; i++) {
      const svc = t.app.taskSvc.forTenant(i % 3 === 2 ? 'b' : 'a');
      const task = await svc.createTimerTask({ fullName: 'tasks.Echo', startTime: new Date().toISOString(), argDict: { i } });
      await svc.waitForTask(task.id, { timeoutMs: 20_000 });
    }
  });
  afterAll(() => t?.close());

  it.each(Object.keys(LISTS) as List[])(
    "%s: a cursor of another tenant's row answers as a cursor of a row that does not exist",
    async (list) => {
      const theirs = await page(t, list, { first: 100 }, b.viewer);
      expect(theirs.nodes.length).toBeGreaterThanOrEqual(4);
      const middle = Math.floor(theirs.nodes.length / 2);
      const cursor = theirs.cursors[middle]!;
      const read = async () => ({
        forward: (await page(t, list, { first: 100, after: cursor }, a.viewer)).nodes,
        backward: (await page(t, list, { last: 100, before: cursor }, a.viewer)).nodes,
      });
      const whileItExists = await read();
      // Tenant a's rows lie on both sides of b's row: the answer is a position in a's list, never b's rows.
      expect(whileItExists.forward.length).toBeGreaterThan(0);
      expect(whileItExists.backward.length).toBeGreaterThan(0);
      const ours = new Set((await page(t, list, { first: 100 }, a.viewer)).nodes.map((n: any) => n.id));
      for (const node of [...whileItExists.forward, ...whileItExists.backward]) expect(ours.has(node.id)).toBe(true);
      // The same cursor once b's row is gone: the same answer, so the first told nothing about it.
      ok(await t.gql(`mutation($id: ID!) { deleteTask(taskId: $id) }`, { id: taskIdOf(theirs.nodes[middle]) }, b.editor));
      expect(await read()).toEqual(whileItExists);
    },
  );

  it.each(Object.keys(LISTS) as List[])(
    '%s: paging forward and back returns every row once, also when the cursor row is deleted meanwhile',
    async (list) => {
      for (const direction of ['forward', 'backward'] as const) {
        const before = (await page(t, list, { first: 500 }, a.viewer)).nodes.map((n: any) => n.id as string);
        expect(before.length).toBeGreaterThanOrEqual(4);
        const seen: string[] = [];
        let cursor: string | undefined;
        let deleted = false;
        for (let round = 0; round < 100; round++) {
          const args = direction === 'forward' ? { first: 2, after: cursor } : { last: 2, before: cursor };
          const got = await page(t, list, args, a.viewer);
          seen.push(...(direction === 'forward' ? got.nodes : [...got.nodes].reverse()).map((n: any) => n.id));
          const more = direction === 'forward' ? got.pageInfo.hasNextPage : got.pageInfo.hasPreviousPage;
          if (!more) break;
          cursor = direction === 'forward' ? got.pageInfo.endCursor : got.pageInfo.startCursor;
          if (!deleted) {
            // Delete the task of the row the cursor names (with its runs, logs and events).
            const node = direction === 'forward' ? got.nodes.at(-1) : got.nodes[0];
            ok(await t.gql(`mutation($id: ID!) { deleteTask(taskId: $id) }`, { id: taskIdOf(node) }, a.editor));
            deleted = true;
          }
        }
        expect(deleted).toBe(true);
        const after = (await page(t, list, { first: 500 }, a.viewer)).nodes.map((n: any) => n.id as string);
        expect(new Set(seen).size).toBe(seen.length);
        for (const id of after) expect(seen).toContain(id);
        for (const id of seen) expect(before).toContain(id);
        // In the list's own order.
        const order = direction === 'forward' ? seen : [...seen].reverse();
        expect(order.filter((id) => after.includes(id))).toEqual(after);
      }
    },
  );
});
