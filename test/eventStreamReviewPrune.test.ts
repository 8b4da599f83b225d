import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sseSubscribe } from './support/subscriptions.js';
import { backends, createTestApp, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const SUB = `subscription($after: String) { taskStatusChanged(after: $after) { cursor toStatus task { id } } }`;

/**
 * History retention and a run in progress: a task whose run is still going keeps its runs, logs and
 * events, however old, until the run has finished; the next prune then takes them. Pruning used to take
 * the events of a running task that were older than the cutoff (its RUNNING event among them).
 */
describe.each(backends)('pruning history around a run in progress (%s)', (backend) => {
  let t: TestApp;
  const release = new Map<string, () => void>();

  beforeAll(async () => {
    t = await createTestApp(backend, {
      env: { HISTORY_PRUNE_INTERVAL_MS: '3600000' },
      setup(app) {
        app.handlers.register('test.quick', (args, ctx) => {
          ctx.logger.info('quick run');
          return args;
        });
        // Runs until the test releases it (by task id), logging as it goes.
        app.handlers.register('test.held', async (args, ctx) => {
          ctx.logger.info('held run started');
          await new Promise<void>((resolve) => {
            release.set(ctx.task.id, resolve);
            ctx.signal.addEventListener('abort', () => resolve(), { once: true });
          });
          ctx.logger.info('held run released');
          return args;
        });
      },
    });
    for (const tenant of ['a', 'b']) {
      const templates = t.app.templateSvc.forTenant(tenant);
      await templates.create({ fullName: 'tasks.Quick', title: 'Quick', funcName: 'test.quick' });
      await templates.create({ fullName: 'tasks.Held', title: 'Held', funcName: 'test.held' });
    }
  });
  afterAll(async () => {
    for (const resolve of release.values()) resolve();
    await t?.close();
  });

  const history = async (taskId: string) => ({
    events: (
      await t.app.db.prisma.taskEvent.findMany({ where: { taskId }, orderBy: { id: 'asc' }, select: { id: true, toStatus: true } })
    ).map((e) => `${e.id} ${e.toStatus}`),
    runs: (await t.app.db.prisma.taskRun.findMany({ where: { taskId }, select: { status: true } })).map((r) => r.status),
    logs: await t.app.db.prisma.taskRunLog.count({ where: { taskId } }),
  });
  const prunedThrough = async (tenantId: string) =>
    (await t.app.db.prisma.tenant.findUnique({ where: { id: tenantId } }))?.eventsPrunedThrough ?? null;

  async function quick(tenant: string) {
    const svc = t.app.taskSvc.forTenant(tenant);
    const task = await svc.createTimerTask({ fullName: 'tasks.Quick', startTime: new Date().toISOString() });
    await svc.waitForTask(task.id, { timeoutMs: 20_000 });
    return task.id;
  }
  async function held(tenant: string) {
    const svc = t.app.taskSvc.forTenant(tenant);
    const task = await svc.createTimerTask({ fullName: 'tasks.Held', startTime: new Date().toISOString() });
    await waitFor(() => release.has(task.id), { what: 'the held run to start' });
    return task.id;
  }

  it('keeps the events and the run of a task whose run is in progress, and prunes them once it has finished', async () => {
    const running = await held('a');
    const done = await quick('a');
    const kept = await history(running);
    expect(kept.events.map((e) => e.split(' ')[1])).toEqual(['SCHEDULED', 'RUNNING']);
    expect(kept.runs).toEqual(['RUNNING']);

    const counts = await t.app.history.pruneBefore(new Date(Date.now() + 60_000), 'a');
    expect(counts.tasks).toBe(1);
    expect(await history(done)).toEqual({ events: [], runs: [], logs: 0 });
    expect(await history(running)).toEqual(kept);
    // The newest event pruned: the finished task's, above the running task's kept ones.
    const pruned = await prunedThrough('a');
    expect(pruned).toBeGreaterThan(BigInt(kept.events.at(-1)!.split(' ')[0]!));

    // The run ends; its history is now that of a finished task, and goes with the next prune.
    release.get(running)!();
    await t.app.taskSvc.forTenant('a').waitForTask(running, { timeoutMs: 20_000 });
    const finished = await history(running);
    expect(finished.runs).toEqual(['SUCCEEDED']);
    expect(finished.logs).toBe(2);
    await t.app.history.pruneBefore(new Date(Date.now() + 60_000), 'a');
    expect(await history(running)).toEqual({ events: [], runs: [], logs: 0 });
    expect(await prunedThrough('a')).toBeGreaterThan(pruned!);
  });

  it('a subscription resuming from the pruned-through cursor gets the kept events of a running task that come after it', async () => {
    const done = await quick('b');
    const doneEvents = (await history(done)).events;
    const running = await held('b');
    const kept = (await history(running)).events;
    await t.app.history.pruneBefore(new Date(Date.now() + 60_000), 'b');
    expect((await history(running)).events).toEqual(kept);
    const pruned = await prunedThrough('b');
    expect(String(pruned)).toBe(doneEvents.at(-1)!.split(' ')[0]);

    const headers = { 'x-tenant-id': 'b' };
    const resumed = await sseSubscribe(t.app, SUB, { after: String(pruned) }, headers);
    const got: string[] = [];
    for (let i = 0; i < kept.length; i++) {
      const r = (await resumed.results.next()).value!;
      expect(r.errors).toBeUndefined();
      got.push(`${r.data.taskStatusChanged.cursor} ${r.data.taskStatusChanged.toStatus}`);
    }
    await resumed.close();
    expect(got).toEqual(kept);

    // From before the pruned events: CURSOR_EXPIRED, even though some events below it are still stored.
    const expired = await sseSubscribe(t.app, SUB, { after: doneEvents[0]!.split(' ')[0] }, headers);
    const first = (await expired.results.next()).value!;
    await expired.close();
    expect(first.errors?.[0]?.extensions).toMatchObject({ code: 'CURSOR_EXPIRED', oldestCursor: String(pruned) });
    release.get(running)!();
    await t.app.taskSvc.forTenant('b').waitForTask(running, { timeoutMs: 20_000 });
  });
});
