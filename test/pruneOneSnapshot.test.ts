import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrismaClient } from '../src/generated/prisma/client.js';
import { HistoryPruner } from '../src/history/HistoryPruner.js';
import { createTestApp, type TestApp } from './support/testApp.js';
import { lockWaiters, waitFor } from './support/waitFor.js';

/**
 * A prune batch decides which tasks have a run in progress once, for the runs and the events it selects:
 * a task whose run starts or ends while a batch is being selected loses both its old runs and its old
 * events, or keeps both. The selections used to be separate statements (separate snapshots under READ
 * COMMITTED): a task claimed between them lost its older runs and kept its events, and one whose run
 * finished between them kept its runs and lost its events.
 *
 * The claim (or completion) is made to happen inside a batch, deterministically: the pruner here runs on a
 * Prisma client whose transactions pause before the first statement of the batch that selects events
 * (the events selection of the old code; the one selecting statement now) until a real claim (or
 * completion) by the app's scheduler has committed. Each prune is one batch: during it another session
 * queues for the tenant's prune lock (as another instance would), gets it when the batch commits, and the
 * pruner leaves the tenant to it; so what is checked is what one batch did. PostgreSQL only: PGlite has one connection, so a
 * claim cannot commit while a prune's transaction is open, and the race cannot happen there.
 */
/** HistoryPruner's advisory lock class (first key of the per-tenant prune lock). */
const PRUNE_LOCK_CLASS = 0x70727565;

describe.skipIf(!process.env.TEST_DATABASE_URL)('a prune batch reads one snapshot (postgres)', () => {
  let t: TestApp;
  let watcher: pg.Client;
  const hold = new Set<string>();
  const release = new Map<string, () => void>();

  beforeAll(async () => {
    t = await createTestApp('postgres', {
      env: { HISTORY_PRUNE_INTERVAL_MS: '3600000' },
      setup(app) {
        // Returns at once, unless the test holds the task: then it runs until released.
        app.handlers.register('test.gate', async (args, ctx) => {
          if (!hold.has(ctx.task.id)) return args;
          await new Promise<void>((resolve) => {
            release.set(ctx.task.id, resolve);
            ctx.signal.addEventListener('abort', () => resolve(), { once: true });
          });
          return args;
        });
      },
    });
    watcher = new pg.Client({ connectionString: t.app.config.DATABASE_URL });
    await watcher.connect();
    await t.app.templateSvc.forTenant('g').create({ fullName: 'tasks.Gate', title: 'Gate', funcName: 'test.gate' });
  });
  afterAll(async () => {
    for (const resolve of release.values()) resolve();
    await watcher?.end();
    await t?.close();
  });

  /**
   * pruneBefore(cutoff, 'g') of one batch, during which `between` runs before the batch's statement
   * selecting events (`… UNION ALL SELECT 'event' …`): the pruner's Prisma client pauses there, and another session queues for the
   * tenant's prune lock, so the next batch finds it taken and the prune ends.
   */
  async function pruneOneBatch(cutoff: Date, between: () => Promise<void>) {
    const prisma = t.app.db.prisma;
    const other = new pg.Client({ connectionString: t.app.config.DATABASE_URL });
    await other.connect();
    let queued: Promise<unknown> | undefined;
    let pending: (() => Promise<void>) | undefined = async () => {
      await between();
      queued = other.query('SELECT pg_advisory_lock($1::int, hashtext($2))', [PRUNE_LOCK_CLASS, 'g']);
      await lockWaiters(watcher, 1, 'another session to queue for the prune lock');
    };
    const pausing = {
      $transaction: (fn: (tx: unknown) => Promise<unknown>, options: unknown) =>
        prisma.$transaction(
          (tx) =>
            fn(
              new Proxy(tx, {
                get(target, prop) {
                  if (prop === '$queryRawUnsafe')
                    return async (sql: string, ...params: unknown[]) => {
                      if (pending && sql.includes("UNION ALL SELECT 'event'")) {
                        const run = pending;
                        pending = undefined;
                        await run();
                      }
                      return target.$queryRawUnsafe(sql, ...params);
                    };
                  const value = Reflect.get(target, prop);
                  return typeof value === 'function' ? value.bind(target) : value;
                },
              }),
            ),
          options as { timeout: number },
        ),
    } as unknown as PrismaClient;
    const pruner = new HistoryPruner({ prisma: pausing, logger: pino({ level: 'silent' }), retentionDays: null, archiveDir: null });
    try {
      await pruner.pruneBefore(cutoff, 'g');
      expect(queued).toBeDefined();
      await queued;
    } finally {
      await other.end();
    }
  }

  const status = async (id: string) => (await t.app.db.prisma.task.findUniqueOrThrow({ where: { id } })).status;
  /** Which of these runs and events of the task are still stored. */
  async function stored(taskId: string, runIds: string[], eventIds: bigint[]) {
    const runs = await t.app.db.prisma.taskRun.count({ where: { taskId, id: { in: runIds } } });
    const events = await t.app.db.prisma.taskEvent.count({ where: { taskId, id: { in: eventIds } } });
    return { runs, events };
  }
  async function history(taskId: string) {
    const runs = await t.app.db.prisma.taskRun.findMany({ where: { taskId }, select: { id: true, status: true } });
    const events = await t.app.db.prisma.taskEvent.findMany({ where: { taskId }, select: { id: true } });
    return { runIds: runs.map((r) => r.id), runStatuses: runs.map((r) => r.status), eventIds: events.map((e) => e.id) };
  }
  /** A recurring task (hourly) whose first run has finished: it goes on, with an old run and old events. */
  async function recurringWithHistory() {
    const svc = t.app.taskSvc.forTenant('g');
    const task = await svc.createTimerTask({ fullName: 'tasks.Gate', repeatType: 'INTERVAL', intervalSeconds: 3600 });
    await waitFor(async () => {
      const row = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
      return row.runCount === 1 && row.status === 'SCHEDULED';
    });
    return task.id;
  }

  it('a task claimed while a batch is selected keeps its old runs and its old events', async () => {
    const id = await recurringWithHistory();
    const before = await history(id);
    expect(before.runStatuses).toEqual(['SUCCEEDED']);
    await pruneOneBatch(new Date(Date.now() + 60_000), async () => {
      // Its next run is claimed (and committed) in the middle of the batch.
      hold.add(id);
      await t.app.taskSvc.forTenant('g').runTaskNow(id);
      await waitFor(async () => (await status(id)) === 'RUNNING', { what: 'the claim' });
    });
    // Both kept: the batch saw the run in progress for both selections (before, the old run went and the
    // events stayed).
    expect(await stored(id, before.runIds, before.eventIds)).toEqual({ runs: before.runIds.length, events: before.eventIds.length });
    release.get(id)!();
    await waitFor(async () => (await status(id)) === 'SCHEDULED', { what: 'the run to finish' });
  });

  it('a task whose run finishes while a batch is selected loses its old runs and its old events', async () => {
    const id = await recurringWithHistory();
    hold.add(id);
    await t.app.taskSvc.forTenant('g').runTaskNow(id);
    await waitFor(() => release.has(id), { what: 'the held run to start' });
    const before = await history(id);
    expect(before.runStatuses.sort()).toEqual(['RUNNING', 'SUCCEEDED']);
    await pruneOneBatch(new Date(Date.now() + 60_000), async () => {
      // The run finishes (and commits) in the middle of the batch.
      release.get(id)!();
      await waitFor(async () => (await status(id)) === 'SCHEDULED', { what: 'the completion' });
    });
    // Both gone: the batch saw no run in progress for either selection (before, the runs stayed and the
    // events went).
    expect(await stored(id, before.runIds, before.eventIds)).toEqual({ runs: 0, events: 0 });
  });
});
