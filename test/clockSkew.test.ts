import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { createTestApp, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * This process' clock behind the database's: the database decides when an occurrence is due (a claim
 * takes `next_run_at <= now()`), the scheduler computes the next one with its own clock. The tests run
 * with Date set back (each test file has a process of its own). PostgreSQL only: PGlite's now() is this
 * process' Date, set back alike.
 */
const SKEW_MS = 900;
const RealDate = Date;
class SkewedDate extends RealDate {
  constructor(...args: unknown[]) {
    if (args.length === 0) super(RealDate.now() - SKEW_MS);
    else super(...(args as [string]));
  }
  static override now(): number {
    return RealDate.now() - SKEW_MS;
  }
}

describe.runIf(Boolean(process.env.TEST_DATABASE_URL))('a host clock behind the database clock', () => {
  let t: TestApp;
  const occurrences: string[] = [];
  beforeAll(async () => {
    t = await createTestApp('postgres', {
      setup(app) {
        app.handlers.register('test.occurrence', (_args, ctx) => void occurrences.push(ctx.task.scheduledFor.toISOString()));
      },
    });
    globalThis.Date = SkewedDate as DateConstructor;
  });
  afterAll(async () => {
    globalThis.Date = RealDate;
    await t?.close();
  });

  it('runs each occurrence of a recurring task once, not again until the host clock passes it', async () => {
    const svc = t.app.getElement('services.TaskSvc') as TaskSvc;
    const task = await svc.createTimerTask({
      fullName: 'tasks.DataSync',
      funcName: 'test.occurrence',
      repeatType: 'CRON',
      cronExpression: '* * * * * *',
      timezone: 'UTC',
    });
    await waitFor(() => occurrences.length >= 4, { what: 'four occurrences', timeoutMs: 15_000 });
    await svc.forcedEnd(task.id);
    // Every run was a different occurrence (before the fix: the same one, back to back, for 0.9 s).
    expect(new Set(occurrences).size).toBe(occurrences.length);
    const runs = await t.app.db.prisma.taskRun.count({ where: { taskId: task.id } });
    expect(runs).toBe(occurrences.length);
  });
});
