import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { backends, createTestApp, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * A retry belongs to the occurrence that failed: the handler sees that occurrence as `scheduledFor`, and
 * the schedule continues from it, not from the retry's time (which used to move an INTERVAL task's grid by
 * each retry's delay and make a RUN_ALL task skip the occurrences that came due during the backoff).
 */
describe.each(backends)('retries of a recurring task (%s)', (backend) => {
  let t: TestApp;
  const seen = new Map<string, { scheduledFor: string; attempt: number }[]>();
  beforeAll(async () => {
    t = await createTestApp(backend, {
      setup(app) {
        // Fails the first attempt of the task's first occurrence, succeeds otherwise.
        app.handlers.register('test.failFirst', (_args, ctx) => {
          const runs = seen.get(ctx.task.id) ?? [];
          seen.set(ctx.task.id, runs);
          runs.push({ scheduledFor: ctx.task.scheduledFor.toISOString(), attempt: ctx.task.attempt });
          if (runs.length === 1) throw new Error('first attempt fails');
        });
      },
    });
  });
  afterAll(() => t?.close());
  const svc = () => t.app.getElement('services.TaskSvc') as TaskSvc;
  const row = (id: string) => t.app.db.prisma.task.findUniqueOrThrow({ where: { id } });

  it('keeps an INTERVAL task on its grid after a retry', async () => {
    const start = new Date(Math.ceil(Date.now() / 1000) * 1000 + 1000);
    const task = await svc().createTimerTask({
      fullName: 'tasks.DataSync',
      funcName: 'test.failFirst',
      repeatType: 'INTERVAL',
      intervalSeconds: 3,
      startTime: start.toISOString(),
      maxAttempts: 2,
      retryBackoffMs: 400,
    });
    await waitFor(async () => (await row(task.id)).runCount >= 1, { what: 'the retried occurrence to succeed' });
    const after = await row(task.id);
    expect(seen.get(task.id)).toEqual([
      { scheduledFor: start.toISOString(), attempt: 1 },
      { scheduledFor: start.toISOString(), attempt: 2 },
    ]);
    // The next occurrence is on the grid of the start time, not three seconds after the retry.
    expect(after.status).toBe('SCHEDULED');
    expect(after.nextRunAt!.toISOString()).toBe(new Date(start.getTime() + 3000).toISOString());
    expect(after.occurrenceAt).toBeNull();
    await svc().forcedEnd(task.id);
  });

  it('runs, after a retry, a RUN_ALL occurrence that came due during the backoff', async () => {
    const start = new Date(Math.ceil(Date.now() / 1000) * 1000 + 1000);
    const task = await svc().createTimerTask({
      fullName: 'tasks.DataSync',
      funcName: 'test.failFirst',
      repeatType: 'CRON',
      cronExpression: '* * * * * *',
      timezone: 'UTC',
      misfirePolicy: 'RUN_ALL',
      startTime: start.toISOString(),
      maxAttempts: 2,
      retryBackoffMs: 2400,
    });
    // The first occurrence fails, its retry comes 1.2–2.4 s later, after the next occurrence was due.
    await waitFor(() => (seen.get(task.id)?.length ?? 0) >= 3, { what: 'three runs', timeoutMs: 15_000 });
    await svc().forcedEnd(task.id);
    const [first, retry, next] = seen.get(task.id)!;
    expect(first).toEqual({ scheduledFor: start.toISOString(), attempt: 1 });
    expect(retry).toEqual({ scheduledFor: start.toISOString(), attempt: 2 });
    expect(next).toEqual({ scheduledFor: new Date(start.getTime() + 1000).toISOString(), attempt: 1 });
  });
});
