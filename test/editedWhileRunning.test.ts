import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { backends, createTestApp, type TestApp } from './support/testApp.js';

/** A task edited (updateTask) while its run ends: the run's outcome is recorded once, on the edited task. */
describe.each(backends)('a task edited while it runs (%s)', (backend) => {
  let t: TestApp;
  let release: () => void = () => {};
  let calls = 0;
  beforeAll(async () => {
    t = await createTestApp(backend, {
      env: { LEASE_MS: '1000' },
      setup(app) {
        app.handlers.register('test.gated', async (_args, ctx) => {
          calls++;
          ctx.logger.info('line one');
          ctx.logger.info('line two');
          await new Promise<void>((resolve) => (release = resolve));
          return { ok: true };
        });
      },
    });
  });
  afterAll(() => t?.close());
  const svc = () => t.app.getElement('services.TaskSvc') as TaskSvc;

  async function runningTask(maxAttempts: number) {
    calls = 0;
    const task = await svc().createTimerTask({
      fullName: 'tasks.DataSync',
      funcName: 'test.gated',
      maxAttempts,
      startTime: new Date().toISOString(),
    });
    await svc().waitForTask(task.id, { statuses: ['RUNNING'], timeoutMs: 5000 });
    return task;
  }
  async function history(taskId: string) {
    const { prisma } = t.app.db;
    return {
      runs: (await prisma.taskRun.findMany({ where: { taskId }, orderBy: { startedAt: 'asc' } })).map((r) => r.status),
      events: (await prisma.taskEvent.findMany({ where: { taskId }, orderBy: { id: 'asc' } })).map(
        (e) => `${e.type}:${e.fromStatus ?? ''}>${e.toStatus}`,
      ),
      logs: (await prisma.taskRunLog.findMany({ where: { taskId }, orderBy: { id: 'asc' } })).map((l) => l.message),
    };
  }

  it('stores the run once, with its log lines once, when the edit came first', async () => {
    const task = await runningTask(1);
    await svc().updateTask(task.id, { priority: 7 });
    release();
    const end = await svc().waitForTask(task.id, { timeoutMs: 5000 });
    expect(end.status).toBe('SUCCEEDED');
    expect(end.priority).toBe(7);
    expect(await history(task.id)).toEqual({
      runs: ['SUCCEEDED'],
      events: ['CREATED:>SCHEDULED', 'STATUS_CHANGED:SCHEDULED>RUNNING', 'UPDATED:RUNNING>RUNNING', 'STATUS_CHANGED:RUNNING>SUCCEEDED'],
      logs: ['line one', 'line two'],
    });
  });

  // An edit that commits while the completion waits for the task's row (PostgreSQL: PGlite runs one
  // statement at a time). The completion used to find neither its revision (the wait re-read the row)
  // nor an edit (it looked with the statement's older snapshot), gave the run up as lost, and the task
  // sat RUNNING until its lease ran out, then was recovered and ran again, or ended FAILED.
  it.runIf(backend === 'postgres')('records the outcome when the edit commits while the completion waits for the row', async () => {
    const task = await runningTask(1);
    const editor = new pg.Client({ connectionString: t.app.config.DATABASE_URL });
    await editor.connect();
    try {
      // What updateTask's transaction does: lock the row and bump its revision.
      await editor.query('BEGIN');
      await editor.query('UPDATE task SET revision = revision + 1, priority = 5, updated_at = now() WHERE id = $1', [task.id]);
      release();
      // The handler has returned; its completion now waits for this transaction's row lock.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await editor.query('COMMIT');
    } finally {
      await editor.end();
    }
    const end = await svc().waitForTask(task.id, { timeoutMs: 10_000 });
    expect(end.status).toBe('SUCCEEDED');
    expect(end.priority).toBe(5);
    expect(calls).toBe(1);
    const { runs, events, logs } = await history(task.id);
    expect(runs).toEqual(['SUCCEEDED']);
    expect(events).toEqual(['CREATED:>SCHEDULED', 'STATUS_CHANGED:SCHEDULED>RUNNING', 'STATUS_CHANGED:RUNNING>SUCCEEDED']);
    expect(logs).toEqual(['line one', 'line two']);
  });
});
