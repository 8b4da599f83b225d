import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, AUTH_ENV, createKey } from './support/auth.js';
import { sseSubscribe } from './support/subscriptions.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const PRUNE = `mutation($before: DateTime!, $tenantId: String) { pruneHistory(before: $before, tenantId: $tenantId) { tasks runs logs events archives } }`;
const RETENTION = `mutation($tenantId: String!, $days: Int) { setTenantHistoryRetention(tenantId: $tenantId, days: $days) { id historyRetentionDays } }`;
const SUB = `subscription($after: String) { taskStatusChanged(after: $after) { cursor toStatus } }`;

/** History you can prune (issue 13 item 5). */
describe.each(backends)('pruning history (%s)', (backend) => {
  let t: TestApp;
  let archiveDir: string;

  beforeAll(async () => {
    archiveDir = await mkdtemp(path.join(os.tmpdir(), 'chronograph-archive-'));
    t = await createTestApp(backend, {
      env: { ...AUTH_ENV, ARCHIVE_DIR: archiveDir, HISTORY_PRUNE_INTERVAL_MS: '3600000' },
      setup(app) {
        app.handlers.register('test.logs', (args, ctx) => {
          ctx.logger.info(`run of ${String(args.n)}`);
          return args;
        });
      },
    });
    for (const tenant of ['p', 'q', 'r', 's', 'u', 'v'])
      await t.app.templateSvc.forTenant(tenant).create({ fullName: 'tasks.Logs', title: 'Logs', funcName: 'test.logs' });
  });
  afterAll(async () => {
    await t?.close();
    await rm(archiveDir, { recursive: true, force: true });
  });

  /** n one-off tasks in `tenant` that run at once; resolves when they have all finished. */
  async function finished(tenant: string, n: number) {
    const svc = t.app.taskSvc.forTenant(tenant);
    const tasks = await svc.createTimerTasks(
      Array.from({ length: n }, (_, i) => ({ fullName: 'tasks.Logs', startTime: new Date().toISOString(), argDict: { n: i } })),
    );
    for (const task of tasks) await svc.waitForTask(task.id, { timeoutMs: 20_000 });
    return tasks.map((task) => task.id);
  }
  const count = async (tenantId: string) => ({
    tasks: await t.app.db.prisma.task.count({ where: { tenantId } }),
    runs: await t.app.db.prisma.taskRun.count({ where: { tenantId } }),
    logs: await t.app.db.prisma.taskRunLog.count({ where: { tenantId } }),
    events: await t.app.db.prisma.taskEvent.count({ where: { tenantId } }),
  });

  it('pruneHistory deletes finished tasks with their history and old history of live tasks, archives it, and reports counts', async () => {
    await finished('p', 4);
    // A recurring task whose first run is done: it stays, its old run, logs and events go.
    const recurring = await t.app.taskSvc
      .forTenant('p')
      .createTimerTask({ fullName: 'tasks.Logs', repeatType: 'INTERVAL', intervalSeconds: 3600, argDict: { n: 9 } });
    await waitFor(async () => (await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: recurring.id } })).runCount === 1);
    const future = await t.app.taskSvc.forTenant('p').createTimerTask({ fullName: 'tasks.Logs', startTime: '2099-01-01T00:00:00Z' });
    await finished('q', 2);
    const before = await count('p');
    const q = await count('q');
    expect(before).toMatchObject({ tasks: 6, runs: 5, logs: 5 });
    const cutoff = new Date(Date.now() + 1000).toISOString();
    // Only an ADMIN may prune.
    const editor = await createKey(t, 'p', 'EDITOR');
    expect(errorCode(await t.gql(PRUNE, { before: cutoff }, editor.headers))).toBe('FORBIDDEN');
    const result = ok(await t.gql(PRUNE, { before: cutoff, tenantId: 'p' }, ADMIN)).pruneHistory;
    const after = await count('p');
    expect(result).toMatchObject({ tasks: 4, runs: 5, logs: 5, events: before.events - after.events });
    expect(result.archives).toBeGreaterThan(0);
    expect(after).toEqual({ tasks: 2, runs: 0, logs: 0, events: 0 });
    expect(await t.app.db.prisma.task.findMany({ where: { tenantId: 'p' }, select: { id: true }, orderBy: { id: 'asc' } })).toEqual(
      [{ id: recurring.id }, { id: future.id }].sort((a, b) => a.id.localeCompare(b.id)),
    );
    // Another tenant is untouched.
    expect(await count('q')).toEqual(q);
    // The archive holds every deleted row once, as gzip JSON lines.
    const files: string[] = [];
    for (const day of await readdir(path.join(archiveDir, 'p'))) {
      for (const file of await readdir(path.join(archiveDir, 'p', day))) files.push(path.join(archiveDir, 'p', day, file));
    }
    const lines = (
      await Promise.all(
        files.map(async (f) =>
          gunzipSync(await readFile(f))
            .toString('utf8')
            .trim()
            .split('\n'),
        ),
      )
    )
      .flat()
      .map((l) => JSON.parse(l) as { table: string; row: { tenant_id: string } });
    const tally = (table: string) => lines.filter((l) => l.table === table).length;
    expect({ tasks: tally('task'), runs: tally('task_run'), logs: tally('task_run_log'), events: tally('task_event') }).toEqual({
      tasks: 4,
      runs: 5,
      logs: 5,
      events: result.events,
    });
    expect(lines.every((l) => l.row.tenant_id === 'p')).toBe(true);
  });

  it("an event outlives its run: once the run is pruned the event keeps its run's id and its `run` reads as null", async () => {
    // What pruning leaves when a run started before the cutoff and ended after it: the event that started
    // the run is gone with the run (TaskRun is read from its events), its ending event stays.
    const [id] = await finished('v', 1);
    const [run] = await t.app.db.prisma.taskRun.findMany({ where: { taskId: id } });
    const query = `query($id: ID!) { task(id: $id) { runs { id } events { toStatus run { id attempt } } } }`;
    const headers = { ...ADMIN, 'x-tenant-id': 'v' };
    const before = ok(await t.gql(query, { id }, headers)).task;
    expect(before.events).toEqual([
      { toStatus: 'SCHEDULED', run: null },
      { toStatus: 'RUNNING', run: { id: run!.id, attempt: 1 } },
      { toStatus: 'SUCCEEDED', run: { id: run!.id, attempt: 1 } },
    ]);
    await t.app.db.sql.query('DELETE FROM task_event WHERE run_id = $1::uuid AND attempt IS NOT NULL', [run!.id]);
    const after = ok(await t.gql(query, { id }, headers)).task;
    expect(after).toEqual({
      runs: [],
      events: before.events
        .filter((e: { toStatus: string }) => e.toStatus !== 'RUNNING')
        .map((e: { toStatus: string }) => ({ toStatus: e.toStatus, run: null })),
    });
    const events = await t.app.db.prisma.taskEvent.findMany({ where: { taskId: id }, orderBy: { id: 'asc' } });
    expect(events.map((e) => e.runId)).toEqual([null, run!.id]);
  });

  it('a subscription resuming from a pruned cursor gets CURSOR_EXPIRED with the oldest cursor it can resume from', async () => {
    const ids = await finished('r', 1);
    const [first] = await t.app.db.prisma.taskEvent.findMany({ where: { taskId: ids[0] }, orderBy: { id: 'asc' }, take: 1 });
    await finished('r', 1);
    ok(await t.gql(PRUNE, { before: new Date(Date.now() + 1000).toISOString(), tenantId: 'r' }, ADMIN));
    const headers = { ...ADMIN, 'x-tenant-id': 'r' };
    const stale = await sseSubscribe(t.app, SUB, { after: first!.id.toString() }, headers);
    const answer = (await stale.results.next()).value!;
    await stale.close();
    expect(answer.errors?.[0]?.extensions).toMatchObject({ code: 'CURSOR_EXPIRED', field: 'after' });
    const oldest = answer.errors![0]!.extensions!.oldestCursor as string;
    expect(BigInt(oldest)).toBeGreaterThan(first!.id);
    // From the oldest cursor it resumes: the next change arrives.
    const resumed = await sseSubscribe(t.app, SUB, { after: oldest }, headers);
    await finished('r', 1);
    const next = (await resumed.results.next()).value!;
    await resumed.close();
    expect(next.errors).toBeUndefined();
    expect(BigInt(next.data.taskStatusChanged.cursor)).toBeGreaterThan(BigInt(oldest));
  });

  it('retention applies per tenant: its own days, else HISTORY_RETENTION_DAYS (unset here: kept)', async () => {
    const old = await finished('s', 2);
    const kept = await finished('u', 2);
    // Both tenants' tasks were created, and ended, three days ago.
    await t.app.db.prisma.$executeRawUnsafe(
      `UPDATE task SET created_at = now() - interval '3 days 1 hour', updated_at = now() - interval '3 days' WHERE id = ANY($1::uuid[])`,
      [...old, ...kept],
    );
    expect(ok(await t.gql(RETENTION, { tenantId: 's', days: 2 }, ADMIN)).setTenantHistoryRetention).toEqual({
      id: 's',
      historyRetentionDays: 2,
    });
    expect(errorCode(await t.gql(RETENTION, { tenantId: 's', days: 0 }, ADMIN))).toBe('BAD_USER_INPUT');
    await t.app.history.pruneByRetention();
    expect(await t.app.db.prisma.task.count({ where: { id: { in: old } } })).toBe(0);
    expect(await t.app.db.prisma.task.count({ where: { id: { in: kept } } })).toBe(2);
  });
});
