import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { createTestApp, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * This process' clock off the database's: the database decides when an occurrence is due (a claim
 * takes `next_run_at <= now()`), and the scheduler counts the next one from the database's time too.
 * The tests run with Date shifted (each test file has a process of its own). PostgreSQL only: PGlite's
 * now() is this process' Date, shifted alike.
 */
const RealDate = Date;
let skewMs = 0;
class SkewedDate extends RealDate {
  constructor(...args: unknown[]) {
    if (args.length === 0) super(RealDate.now() - skewMs);
    else super(...(args as [string]));
  }
  static override now(): number {
    return RealDate.now() - skewMs;
  }
}

describe.runIf(Boolean(process.env.TEST_DATABASE_URL))('a host clock off the database clock', () => {
  let t: TestApp;
  const occurrences = new Map<string, string[]>();
  beforeAll(async () => {
    t = await createTestApp('postgres', {
      setup(app) {
        app.handlers.register('test.occurrence', (_args, ctx) => {
          const seen = occurrences.get(ctx.task.id) ?? [];
          occurrences.set(ctx.task.id, seen);
          seen.push(ctx.task.scheduledFor.toISOString());
        });
      },
    });
    globalThis.Date = SkewedDate as DateConstructor;
  });
  afterEach(() => {
    skewMs = 0;
  });
  afterAll(async () => {
    globalThis.Date = RealDate;
    await t?.close();
  });

  // Behind: the next occurrence counted from this clock was the one that just ran, due again at once.
  // Ahead: it was one or more seconds on, and the occurrences in between were skipped.
  it.each([
    ['0.9 s behind', 900],
    ['1.5 s ahead', -1500],
  ])('runs each occurrence of a recurring task once, none skipped, with the host clock %s', async (_name, skew) => {
    skewMs = skew;
    const svc = t.app.getElement('services.TaskSvc') as TaskSvc;
    const task = await svc.createTimerTask({
      fullName: 'tasks.DataSync',
      funcName: 'test.occurrence',
      repeatType: 'CRON',
      cronExpression: '* * * * * *',
      timezone: 'UTC',
    });
    await waitFor(() => (occurrences.get(task.id)?.length ?? 0) >= 4, { what: 'four occurrences', timeoutMs: 15_000 });
    await svc.forcedEnd(task.id);
    const seen = occurrences.get(task.id)!.map((at) => RealDate.parse(at));
    const runs = await t.app.db.prisma.taskRun.findMany({ where: { taskId: task.id }, orderBy: { startedAt: 'asc' } });
    expect(runs).toHaveLength(seen.length);
    // Every run a different, later occurrence; each the second after the one before, unless the run
    // before was still going at that second (overlap policy SKIP: a loaded machine's first run can take
    // more than a second). A skew counted wrongly shows either way: behind, the same occurrence again
    // (0 ms); ahead, a skipped second although the run before had ended well before it.
    const gaps = seen.slice(1).map((at, i) => ({
      ms: at - seen[i]!,
      runBeforeEnded: runs[i]!.finishedAt!.getTime() - seen[i]!,
    }));
    for (const gap of gaps) {
      expect(gap.ms % 1000, JSON.stringify(gaps)).toBe(0);
      expect(gap.ms === 1000 || (gap.ms > 1000 && gap.runBeforeEnded >= gap.ms - 1000), JSON.stringify(gaps)).toBe(true);
    }
  });
});
