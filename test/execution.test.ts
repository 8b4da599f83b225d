import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HandlerContext, LeaseLostError } from '../src/handlers/HandlerRegistry.js';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { holdTask, startRun } from './support/runs.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const now = () => new Date().toISOString();

/**
 * Execution that one bad task cannot break (issue 11), on one instance: poison tasks, thread isolation,
 * unstorable results, fenced leases, forced end of a task whose worker is gone, misfires at start.
 * The multi-process side is in multiInstance.test.ts and chaos.test.ts.
 */
describe.each(backends)('execution (%s)', (backend) => {
  let t: TestApp;
  let svc: TaskSvc;
  const contexts = new Map<string, HandlerContext>();
  const lateResults: string[] = [];

  beforeAll(async () => {
    t = await createTestApp(backend, {
      env: {
        LEASE_MS: '800',
        ABORT_GRACE_MS: '300',
        CONCURRENCY: '20',
        MAX_JSON_BYTES: '4096',
        LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      },
      setup(app) {
        app.handlers.register('test.bad', (args) => {
          const kind = String(args.kind);
          if (kind === 'circular') {
            const o: Record<string, unknown> = { a: 1 };
            o.self = o;
            return o;
          }
          if (kind === 'bigint') return { n: 1n };
          if (kind === 'nul') return { text: 'a\u0000b' };
          if (kind === 'large') return { text: 'x'.repeat(10_000) };
          if (kind === 'nulError') throw new Error('broken \u0000 message');
          return { fine: true };
        });
        // Holds its context so the test can watch its signal and call assertLease from outside.
        app.handlers.register('test.holds', async (_args, ctx) => {
          contexts.set(ctx.task.id, ctx);
          await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
          try {
            await ctx.assertLease();
            lateResults.push('lease still held');
          } catch (error) {
            lateResults.push((error as Error).name);
          }
          return 'late result';
        });
      },
    });
    svc = t.app.getElement('services.TaskSvc') as TaskSvc;
  });
  afterAll(() => t?.close());

  const prisma = () => t.app.db.prisma;
  const create = (input: Record<string, unknown>) => svc.createTimerTask({ fullName: 'tasks.DataSync', startTime: now(), ...input });
  const runsOf = (taskId: string) =>
    prisma().taskRun.findMany({ where: { taskId }, orderBy: { eventId: 'asc' }, include: { logs: { orderBy: { id: 'asc' } } } });
  const eventsOf = (taskId: string) => prisma().taskEvent.findMany({ where: { taskId }, orderBy: { id: 'asc' } });

  /** What a worker that died mid-run leaves behind: RUNNING, an open run, a lease that ran out. */
  async function diedDuring(attempt: number, maxAttempts: number, extra: Record<string, unknown> = {}) {
    const task = await create({
      funcName: 'chronograph.echo',
      startTime: '2099-01-01T00:00:00Z',
      maxAttempts,
      retryBackoffMs: 60_000,
      ...extra,
    });
    await holdTask(prisma(), { taskId: task.id, attempt, workerId: 'dead-worker', leaseMs: -1000 });
    await prisma().$executeRawUnsafe(`SELECT pg_notify('chronograph_wake', '')`);
    return task;
  }

  it('ends a task FAILED when its worker died during its last allowed attempt, and never runs it again', async () => {
    const task = await diedDuring(2, 2);
    const failed = await svc.waitForTask(task.id, { timeoutMs: 10_000 });
    expect(failed).toMatchObject({
      status: 'FAILED',
      attempts: 2,
      lockedBy: null,
      nextRunAt: null,
      lastError: 'the worker running it stopped during attempt 2 of 2',
    });
    const runs = await runsOf(task.id);
    expect(runs.map((r) => [r.workerId, r.status])).toEqual([['dead-worker', 'ABANDONED']]);
    const events = await eventsOf(task.id);
    expect(events.at(-1)).toMatchObject({ type: 'RECOVERED', fromStatus: 'RUNNING', toStatus: 'FAILED' });
    expect(events.at(-1)!.message).toContain('the worker running it stopped during attempt 2 of 2');
    await sleep(300);
    expect((await runsOf(task.id)).length).toBe(1);
  });

  it("retries a crashed attempt after the task's backoff, not at once, and records the next run as recovered", async () => {
    const before = Date.now();
    const task = await diedDuring(1, 3, { retryBackoffMs: 1_000 });
    const retrying = await svc.waitForTask(task.id, { statuses: ['RETRYING'], timeoutMs: 10_000 });
    // Equal jitter: at least half the first backoff.
    expect(retrying.nextRunAt!.getTime()).toBeGreaterThanOrEqual(before + 500);
    expect(retrying.lastError).toBe('the worker running it stopped during attempt 1 of 3');
    // The retry belongs to the occurrence the dead worker was running.
    expect(retrying.occurrenceAt?.toISOString()).toBe('2099-01-01T00:00:00.000Z');
    const done = await svc.waitForTask(task.id, { timeoutMs: 10_000 });
    expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 2, occurrenceAt: null });
    const runs = await runsOf(task.id);
    expect(runs.map((r) => [r.workerId, r.status, r.recovered, r.attempt])).toEqual([
      ['dead-worker', 'ABANDONED', false, 1],
      [t.app.config.WORKER_ID, 'SUCCEEDED', true, 2],
    ]);
    expect(runs[1]!.startedAt.getTime()).toBeGreaterThanOrEqual(retrying.nextRunAt!.getTime());
    expect((await eventsOf(task.id)).map((e) => `${e.type}:${e.fromStatus}>${e.toStatus}`)).toContain('RECOVERED:RUNNING>RETRYING');
  });

  it('fails only the runs whose result or error cannot be stored; the others complete once', async () => {
    await t.app.scheduler.stop(1000);
    try {
      const kinds = ['circular', 'bigint', 'nul', 'large', 'nulError'];
      const bad = await svc.createTimerTasks(
        kinds.map((kind) => ({ fullName: 'tasks.DataSync', funcName: 'test.bad', argDict: { kind }, startTime: now(), maxAttempts: 1 })),
      );
      const good = await svc.createTimerTasks(
        Array.from({ length: 45 }, (_, i) => ({
          fullName: 'tasks.DataSync',
          funcName: 'test.bad',
          argDict: { kind: 'fine', i },
          startTime: now(),
          maxAttempts: 1,
        })),
      );
      await t.app.scheduler.start(); // all 50 due at once: their completions share batches
      for (const task of good) expect((await svc.waitForTask(task.id, { timeoutMs: 15_000 })).status).toBe('SUCCEEDED');
      for (const task of good) expect((await runsOf(task.id)).map((r) => r.status)).toEqual(['SUCCEEDED']);
      const errors = new Map<string, string | null>();
      for (const [i, task] of bad.entries()) {
        expect((await svc.waitForTask(task.id, { timeoutMs: 15_000 })).status, kinds[i]).toBe('FAILED');
        const runs = await runsOf(task.id);
        expect(runs.map((r) => r.status)).toEqual(['FAILED']);
        errors.set(kinds[i]!, runs[0]!.error);
      }
      expect(errors.get('circular')).toMatch(/^result is not JSON: \$\.self\.self.* nests deeper than 64 levels$/);
      expect(errors.get('bigint')).toBe('result is not JSON: $.n is a bigint, which JSON cannot hold');
      expect(errors.get('nul')).toMatch(/^result is not JSON: \$\.text contains a NUL character/);
      expect(errors.get('large')).toMatch(/^result is not JSON: \$ is (more than )?\d+ bytes of JSON; at most 4096 bytes are allowed/);
      expect(errors.get('nulError')).toBe('broken \\0 message');
    } finally {
      await t.app.scheduler.start();
    }
  });

  it('gives every attempt a fencing token and a lease check, and fences off a force-ended run', async () => {
    const task = await create({ funcName: 'test.holds' });
    await waitFor(() => contexts.get(task.id), { what: 'the handler to start' });
    const ctx = contexts.get(task.id)!;
    const [run] = await runsOf(task.id);
    expect(ctx.fencingToken).toBe(`${run!.id}:1`);
    expect(ctx.task).toMatchObject({ attempt: 1, occurrence: 1 });
    await ctx.assertLease();
    const ended = ok(
      await t.gql(
        `mutation($id: ID!) { forcedEnd(taskId: $id, reason: "operator said so") { status runs { status error } events { toStatus message } } }`,
        { id: task.id },
      ),
    ).forcedEnd;
    expect(ended.status).toBe('FORCED_END');
    expect(ended.runs).toEqual([{ status: 'CANCELLED', error: 'forced end: operator said so' }]);
    expect(ended.events.at(-1)).toEqual({ toStatus: 'FORCED_END', message: 'operator said so' });
    await waitFor(() => ctx.signal.aborted, { what: 'the handler to be aborted' });
    await expect(ctx.assertLease()).rejects.toBeInstanceOf(LeaseLostError);
    await waitFor(() => lateResults.length > 0, { what: 'the late result' });
    expect(lateResults[0]).toBe('LeaseLostError');
    await sleep(200);
    expect(await svc.getTask(task.id)).toMatchObject({ status: 'FORCED_END' });
    expect((await runsOf(task.id)).map((r) => r.status)).toEqual(['CANCELLED']);
  });

  it('force-ends at once a task whose worker is gone while its lease is still valid, keeping the reason', async () => {
    const task = await create({ funcName: 'chronograph.echo', startTime: '2099-01-01T00:00:00Z' });
    const run = await holdTask(prisma(), { taskId: task.id, attempt: 1, workerId: 'killed-worker', leaseMs: 600_000 });
    const ended = await svc.forcedEnd(task.id, 'the worker is gone');
    expect(ended).toMatchObject({ status: 'FORCED_END', lockedBy: null, lockedRunId: null });
    const [closed] = await runsOf(task.id);
    expect(closed).toMatchObject({ status: 'CANCELLED', error: 'forced end: the worker is gone' });
    expect((await eventsOf(task.id)).at(-1)).toMatchObject({ toStatus: 'FORCED_END', message: 'the worker is gone', runId: run.id });
  });

  it('aborts a handler as soon as its lease is taken over, and discards its result', async () => {
    const task = await create({ funcName: 'test.holds' });
    await waitFor(() => contexts.get(task.id), { what: 'the handler to start' });
    const ctx = contexts.get(task.id)!;
    // Another instance takes the task over (as recovery does after the lease ran out).
    const taker = await startRun(prisma(), { taskId: task.id, attempt: 2, workerId: 'other-worker', recovered: true });
    await prisma().task.update({ where: { id: task.id }, data: { lockedBy: 'other-worker', lockedRunId: taker.id, attempts: 2 } });
    await waitFor(() => ctx.signal.aborted, { what: 'the heartbeat to notice', timeoutMs: 10_000 });
    expect((ctx.signal.reason as Error).message).toContain('lost its lease');
    await sleep(300);
    expect(await svc.getTask(task.id)).toMatchObject({ status: 'RUNNING', lockedBy: 'other-worker', lockedRunId: taker.id });
  });

  it('runs thread-isolated handlers with their context: logs, lease check, token, result', async () => {
    const task = await create({ funcName: 'test.thread.report', argDict: { rows: 3 } });
    const done = await svc.waitForTask(task.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('SUCCEEDED');
    const [run] = await runsOf(task.id);
    expect(run!.result).toEqual({ rows: 3, token: `${run!.id}:1`, attempt: 1, occurrence: 1, scheduledFor: task.nextRunAt!.toISOString() });
    expect(run!.logs.map((l) => [l.level, l.message, l.data])).toEqual([
      ['info', 'in a thread', null],
      ['warn', 'half way', { rows: 3 }],
    ]);
  });

  it('terminates a thread that goes over its memory, exits or blocks, records why, and keeps the instance running', async () => {
    const hog = await create({ funcName: 'test.thread.hog', maxAttempts: 1 });
    const exit = await create({ funcName: 'test.thread.exit', maxAttempts: 1 });
    const block = await create({ funcName: 'test.thread.block', maxAttempts: 1 });
    const bigint = await create({ funcName: 'test.thread.bigint', maxAttempts: 1 });
    const expected: [string, string, RegExp][] = [
      [hog.id, 'MEMORY_LIMIT', /went over its 32 MB heap limit/],
      [exit.id, 'CRASHED', /thread died: .*exited with code: 7/],
      [block.id, 'TIMED_OUT', /timed out after 300 ms/],
      [bigint.id, 'FAILED', /^result is not JSON: \$\.total is a bigint/],
    ];
    for (const [id, status, error] of expected) {
      expect((await svc.waitForTask(id, { timeoutMs: 30_000 })).status).toBe('FAILED');
      const runs = await runsOf(id);
      expect(runs.map((r) => r.status)).toEqual([status]);
      expect(runs[0]!.error).toMatch(error);
    }
    const after = await create({ funcName: 'test.thread.report', argDict: { rows: 1 } });
    expect((await svc.waitForTask(after.id, { timeoutMs: 20_000 })).status).toBe('SUCCEEDED');
  });

  it('passes an abort to a thread, and runs a module handler in a thread when a task sets memoryLimitMb', async () => {
    const waiting = await create({ funcName: 'test.thread.untilAborted' });
    await svc.waitForTask(waiting.id, { statuses: ['RUNNING'] });
    expect((await svc.forcedEnd(waiting.id)).status).toBe('FORCED_END');
    const viaLimit = await create({ funcName: 'test.module.report', argDict: { rows: 2 }, memoryLimitMb: 64 });
    const viaType = await create({ funcName: 'test.module.report', argDict: { rows: 2 }, taskType: 'tasks.ThreadType' });
    for (const task of [viaLimit, viaType]) expect((await svc.waitForTask(task.id, { timeoutMs: 20_000 })).status).toBe('SUCCEEDED');
    expect(ok(await t.gql(`query($id: ID!) { task(id: $id) { memoryLimitMb } }`, { id: viaLimit.id })).task.memoryLimitMb).toBe(64);
  });

  it('refuses memoryLimitMb or a thread task type for a handler registered as a function, writing nothing', async () => {
    const count = await prisma().task.count();
    const input = { fullName: 'tasks.DataSync', funcName: 'chronograph.echo', startTime: now(), memoryLimitMb: 64 };
    const refused = await t.gql(`mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }`, { input });
    expect(errorCode(refused)).toBe('BAD_USER_INPUT');
    expect(refused.errors![0]!.extensions!.field).toBe('memoryLimitMb');
    const byType = await t.gql(`mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }`, {
      input: { ...input, memoryLimitMb: null, taskType: 'tasks.ThreadType' },
    });
    expect(byType.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'taskType' });
    const tooSmall = await t.gql(`mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }`, {
      input: { ...input, funcName: 'test.thread.report', memoryLimitMb: 1 },
    });
    expect(tooSmall.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'memoryLimitMb' });
    expect(await prisma().task.count()).toBe(count);
    const template = ok(
      await t.gql(
        `mutation { createTaskTemplate(input: { fullName: "tasks.Isolated", title: "Isolated", funcName: "test.thread.report", memoryLimitMb: 128 }) { memoryLimitMb } }`,
      ),
    ).createTaskTemplate;
    expect(template.memoryLimitMb).toBe(128);
    const fromTemplate = await svc.createTimerTask({ fullName: 'tasks.Isolated', startTime: '2099-01-01T00:00:00Z' });
    expect(fromTemplate.memoryLimitMb).toBe(128);
    const handlers = ok(await t.gql(`{ handlers { name isolation memoryLimitMb timeoutMs } }`)).handlers;
    expect(handlers).toContainEqual({ name: 'test.thread.hog', isolation: 'THREAD', memoryLimitMb: 32, timeoutMs: null });
    expect(handlers).toContainEqual({ name: 'chronograph.echo', isolation: 'IN_PROCESS', memoryLimitMb: null, timeoutMs: null });
  });

  it('decides SKIP misfires when it starts, so the first on-time occurrence after a restart runs', async () => {
    // The default 30 s lease: its heartbeat (which also decides misfires) is seconds away after a start.
    const u = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    try {
      const uSvc = u.app.getElement('services.TaskSvc') as TaskSvc;
      const task = await uSvc.createTimerTask({
        fullName: 'tasks.DataSync',
        funcName: 'chronograph.noop',
        repeatType: 'CRON',
        cronExpression: '* * * * * *',
        misfirePolicy: 'SKIP',
        misfireToleranceMs: 500,
        maxRuns: 1,
      });
      await u.app.db.prisma.task.update({ where: { id: task.id }, data: { nextRunAt: new Date(Date.now() - 3_600_000) } });
      const startedAt = Date.now();
      await u.app.scheduler.start();
      expect((await uSvc.waitForTask(task.id, { timeoutMs: 20_000 })).status).toBe('SUCCEEDED');
      const events = await u.app.db.prisma.taskEvent.findMany({ where: { taskId: task.id }, orderBy: { id: 'asc' } });
      const skipped = events.find((e) => e.type === 'RESCHEDULED')!;
      const ran = events.find((e) => e.toStatus === 'RUNNING')!;
      expect(skipped.message).toContain('skipped to the next occurrence');
      // The run is the occurrence the skip moved to, the first second after the start — not one after the first heartbeat.
      expect(ran.nextRunAt).toEqual(skipped.nextRunAt);
      expect(ran.nextRunAt!.getTime()).toBeLessThan(startedAt + 5_000);
    } finally {
      await u.close();
    }
  });
});
