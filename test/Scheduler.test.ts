import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { NormalType, type TaskTypeRunInput } from '../src/tasks/TaskTypeRegistry.js';
import { createDateFieldTemplate, DELETE, SAVE } from './support/dateFields.js';
import { holdTask } from './support/runs.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const soon = (ms = 0) => new Date(Date.now() + ms).toISOString();

class WrappedType extends NormalType {
  override async run(input: TaskTypeRunInput) {
    input.ctx.logger.info('wrapped before');
    return { wrapped: await super.run(input) };
  }
}

describe.each(backends)('the scheduler runs tasks (%s)', (backend) => {
  let t: TestApp;
  let svc: TaskSvc;
  const flaky = new Map<string, number>();
  const order: string[] = [];
  const lateReaders = new Map<string, () => void>();
  const signalsReadLate = new Map<string, { aborted: boolean; reason?: string }>();

  beforeAll(async () => {
    t = await createTestApp(backend, {
      env: {
        LEASE_MS: '600',
        ABORT_GRACE_MS: '300',
        CONCURRENCY: '8',
        QUEUE_CONCURRENCY: 'serial=1',
        LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      },
      setup(app) {
        app.taskTypes.register(new WrappedType('tasks.WrappedType'));
        app.handlers.register('test.flaky', (args) => {
          const key = String(args.key);
          const n = (flaky.get(key) ?? 0) + 1;
          flaky.set(key, n);
          if (n <= Number(args.failTimes)) throw new Error(`failure ${n}`);
          return { succeededOnCall: n };
        });
        app.handlers.register('test.logs', (args, ctx) => {
          ctx.logger.info('starting');
          ctx.logger.warn({ table: args.table }, 'half way');
          return { attempt: ctx.task.attempt };
        });
        app.handlers.register(
          'test.untilAborted',
          (_args, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
        );
        app.handlers.register('test.ignoresAbort', () => sleep(2_000).then(() => 'late result'));
        // Reads its signal only once the test lets it go on: the run's signal is made on first read.
        app.handlers.register('test.readsSignalLate', async (args, ctx) => {
          await new Promise<void>((resolve) => lateReaders.set(String(args.key), resolve));
          signalsReadLate.set(String(args.key), { aborted: ctx.signal.aborted, reason: (ctx.signal.reason as Error | undefined)?.message });
        });
        app.handlers.register('test.order', (args) => {
          order.push(String(args.name));
          return sleep(30);
        });
      },
    });
    svc = t.app.getElement('services.TaskSvc') as TaskSvc;
  });
  afterAll(() => t?.close());

  const create = (input: Record<string, unknown>) => svc.createTimerTask({ fullName: 'tasks.DataSync', startTime: soon(), ...input });
  const runsOf = (taskId: string) =>
    t.app.db.prisma.taskRun.findMany({ where: { taskId }, orderBy: { startedAt: 'asc' }, include: { logs: { orderBy: { id: 'asc' } } } });
  const eventsOf = async (taskId: string) =>
    (await t.app.db.prisma.taskEvent.findMany({ where: { taskId }, orderBy: { id: 'asc' } })).map(
      (e) => `${e.type}:${e.fromStatus ?? '-'}>${e.toStatus}`,
    );

  it('runs a task that is due now, once, recording run, result, logs and every event', async () => {
    const task = await create({ funcName: 'test.logs', argDict: { table: 'users' } });
    const done = await svc.waitForTask(task.id, { timeoutMs: 10_000 });
    expect(done).toMatchObject({ status: 'SUCCEEDED', runCount: 1, attempts: 1, nextRunAt: null, lockedBy: null });
    const runs = await runsOf(task.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      status: 'SUCCEEDED',
      attempt: 1,
      recovered: false,
      result: { attempt: 1 },
      workerId: t.app.config.WORKER_ID,
    });
    expect(runs[0]!.finishedAt).not.toBeNull();
    expect(runs[0]!.logs.map((l) => [l.level, l.message, l.data])).toEqual([
      ['info', 'starting', null],
      ['warn', 'half way', { table: 'users' }],
    ]);
    expect(await eventsOf(task.id)).toEqual([
      'CREATED:->SCHEDULED',
      'STATUS_CHANGED:SCHEDULED>RUNNING',
      'STATUS_CHANGED:RUNNING>SUCCEEDED',
    ]);
    const viaGraphql = ok(
      await t.gql(`query($id: ID!) { task(id: $id) { status runs { status result logs { message } } } }`, { id: task.id }),
    ).task;
    expect(viaGraphql).toEqual({
      status: 'SUCCEEDED',
      runs: [{ status: 'SUCCEEDED', result: { attempt: 1 }, logs: [{ message: 'starting' }, { message: 'half way' }] }],
    });
  });

  it('runs a future task at its time, not before', async () => {
    const at = new Date(Date.now() + 400);
    const task = await create({ funcName: 'chronograph.echo', startTime: at.toISOString() });
    const done = await svc.waitForTask(task.id, { timeoutMs: 10_000 });
    const [run] = await runsOf(task.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(run!.startedAt.getTime()).toBeGreaterThanOrEqual(at.getTime());
  });

  it('retries with backoff until an attempt succeeds', async () => {
    const task = await create({
      funcName: 'test.flaky',
      argDict: { key: `r-${backend}`, failTimes: 2 },
      maxAttempts: 3,
      retryBackoffMs: 20,
    });
    const done = await svc.waitForTask(task.id, { timeoutMs: 10_000 });
    expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 3, lastError: null });
    expect((await runsOf(task.id)).map((r) => [r.attempt, r.status, r.error])).toEqual([
      [1, 'FAILED', 'failure 1'],
      [2, 'FAILED', 'failure 2'],
      [3, 'SUCCEEDED', null],
    ]);
    expect(await eventsOf(task.id)).toContain('STATUS_CHANGED:RUNNING>RETRYING');
  });

  it('fails for good when the attempts run out', async () => {
    const task = await create({ funcName: 'chronograph.fail', argDict: { message: 'disk full' }, maxAttempts: 2, retryBackoffMs: 10 });
    const done = await svc.waitForTask(task.id, { timeoutMs: 10_000 });
    expect(done).toMatchObject({ status: 'FAILED', attempts: 2, lastError: 'disk full', nextRunAt: null });
    const runs = await runsOf(task.id);
    expect(runs.map((r) => r.status)).toEqual(['FAILED', 'FAILED']);
    expect(runs[1]!.errorStack).toContain('disk full');
  });

  it('aborts a handler that runs past its timeout and records TIMED_OUT', async () => {
    const task = await create({ funcName: 'chronograph.sleep', argDict: { ms: 10_000 }, timeoutMs: 100, maxAttempts: 1 });
    const done = await svc.waitForTask(task.id, { timeoutMs: 10_000 });
    expect(done).toMatchObject({ status: 'FAILED', lastError: 'timed out after 100 ms' });
    expect((await runsOf(task.id)).map((r) => r.status)).toEqual(['TIMED_OUT']);
  });

  it('force-ends a running task: the handler is aborted and the run cancelled', async () => {
    const task = await create({ funcName: 'test.untilAborted' });
    await svc.waitForTask(task.id, { statuses: ['RUNNING'] });
    const ended = ok(await t.gql(`mutation($id: ID!) { forcedEnd(taskId: $id) { status runs { status } } }`, { id: task.id })).forcedEnd;
    expect(ended).toEqual({ status: 'FORCED_END', runs: [{ status: 'CANCELLED' }] });
    expect(await eventsOf(task.id)).toEqual([
      'CREATED:->SCHEDULED',
      'STATUS_CHANGED:SCHEDULED>RUNNING',
      'STATUS_CHANGED:RUNNING>FORCED_END',
    ]);
    expect(errorCode(await t.gql(`mutation($id: ID!) { forcedEnd(taskId: $id) { status } }`, { id: task.id }))).toBe('CONFLICT');
  });

  it('abandons a handler that ignores its abort signal and discards its late result', async () => {
    const task = await create({ funcName: 'test.ignoresAbort' });
    await svc.waitForTask(task.id, { statuses: ['RUNNING'] });
    const ended = await svc.forcedEnd(task.id);
    expect(ended.status).toBe('FORCED_END');
    await sleep(2_200); // the handler's own 2 s sleep ends: its result must not be applied
    const after = await svc.getTask(task.id);
    const runs = await runsOf(task.id);
    expect(after.status).toBe('FORCED_END');
    expect(runs.map((r) => r.status)).toEqual(['CANCELLED']);
    expect(runs[0]!.logs.map((l) => l.message)).toEqual([expect.stringContaining('abandoned')]);
  });

  it("gives a handler that reads ctx.signal only after a forced end a signal already aborted, with the end's reason", async () => {
    const task = await create({ funcName: 'test.readsSignalLate', argDict: { key: 'late' } });
    await svc.waitForTask(task.id, { statuses: ['RUNNING'] });
    await waitFor(() => lateReaders.has('late'), { what: 'the handler to wait' });
    // The forced end reaches the instance running the task by NOTIFY (on PostgreSQL after forcedEnd has
    // answered): the handler reads its signal once the scheduler has aborted the run, not before.
    const scheduler = t.app.scheduler;
    const abortTask = scheduler.abortTask.bind(scheduler);
    let aborted = false;
    scheduler.abortTask = (taskId, reason) => {
      const done = abortTask(taskId, reason);
      if (taskId === task.id && done) aborted = true;
      return done;
    };
    try {
      expect((await svc.forcedEnd(task.id)).status).toBe('FORCED_END');
      await waitFor(() => aborted, { what: 'the scheduler to abort the run' });
    } finally {
      scheduler.abortTask = abortTask;
    }
    lateReaders.get('late')!();
    await waitFor(() => signalsReadLate.has('late'), { what: 'the handler to read its signal' });
    expect(signalsReadLate.get('late')).toEqual({ aborted: true, reason: 'the task was force-ended' });
  });

  it('runs an interval task on its grid until maxRuns', async () => {
    const task = await create({ funcName: 'chronograph.noop', repeatType: 'INTERVAL', intervalSeconds: 1, maxRuns: 3 });
    const done = await svc.waitForTask(task.id, { timeoutMs: 15_000 });
    expect(done).toMatchObject({ status: 'SUCCEEDED', runCount: 3 });
    expect(await runsOf(task.id)).toHaveLength(3);
    // The occurrences stay on the grid startTime + k·1 s, however late a run starts or long it takes.
    const planned = (
      await t.app.db.prisma.taskEvent.findMany({
        where: { taskId: task.id, fromStatus: 'RUNNING', toStatus: 'SCHEDULED' },
        orderBy: { id: 'asc' },
      })
    ).map((e) => e.nextRunAt!.getTime() - task.startTime.getTime());
    expect(planned.length).toBe(2);
    for (const offset of planned) expect(offset % 1000).toBe(0);
  });

  it('runs a 6-field cron task every second and goes back to SCHEDULED between runs', async () => {
    const task = await create({ funcName: 'chronograph.noop', repeatType: 'CRON', cronExpression: '* * * * * *', maxRuns: 2 });
    const done = await svc.waitForTask(task.id, { timeoutMs: 15_000 });
    expect(done).toMatchObject({ status: 'SUCCEEDED', runCount: 2 });
    const events = await eventsOf(task.id);
    expect(events).toEqual([
      'CREATED:->SCHEDULED',
      'STATUS_CHANGED:SCHEDULED>RUNNING',
      'STATUS_CHANGED:RUNNING>SCHEDULED',
      'STATUS_CHANGED:SCHEDULED>RUNNING',
      'STATUS_CHANGED:RUNNING>SUCCEEDED',
    ]);
  });

  it('really runs a */1 * * * * * task once a second, each run at or after its own second', async () => {
    const task = await create({ funcName: 'chronograph.noop', repeatType: 'CRON', cronExpression: '*/1 * * * * *', maxRuns: 5 });
    expect((await svc.waitForTask(task.id, { timeoutMs: 30_000 })).status).toBe('SUCCEEDED');
    const runs = await runsOf(task.id);
    expect(runs).toHaveLength(5);
    // The occurrence each run was for (nextRunAt on its RUNNING event): whole seconds, strictly increasing,
    // and never started early. Under load a late run makes the next skip ahead (misfire RUN_ONCE), so the
    // seconds need not be consecutive; no bound is put on lateness here (benchmarks measure that).
    const started = await t.app.db.prisma.taskEvent.findMany({
      where: { taskId: task.id, toStatus: 'RUNNING' },
      orderBy: { id: 'asc' },
      include: { run: true },
    });
    expect(started).toHaveLength(5);
    const seconds = started.map((e) => e.nextRunAt!.getTime());
    for (const [i, at] of seconds.entries()) {
      expect(at % 1000).toBe(0);
      if (i > 0) expect(at).toBeGreaterThan(seconds[i - 1]!);
      expect(started[i]!.run!.startedAt.getTime()).toBeGreaterThanOrEqual(at);
    }
    expect(seconds.at(-1)! - seconds[0]!).toBeGreaterThanOrEqual(4000);
  });

  it('lets occurrences of an ALLOW-overlap task run at the same time, each as its own task', async () => {
    const parent = await create({
      funcName: 'chronograph.sleep',
      argDict: { ms: 2500 },
      repeatType: 'INTERVAL',
      intervalSeconds: 1,
      maxRuns: 3,
      overlapPolicy: 'ALLOW',
    });
    expect((await svc.waitForTask(parent.id, { timeoutMs: 15_000 })).status).toBe('SUCCEEDED');
    const children = await t.app.db.prisma.task.findMany({
      where: { parentId: parent.id },
      include: { runs: true },
      orderBy: { id: 'asc' },
    });
    expect(children).toHaveLength(3);
    for (const child of children) {
      expect(child).toMatchObject({ repeatType: 'ONCE', overlapPolicy: 'SKIP', funcName: 'chronograph.sleep', argDict: { ms: 2500 } });
      expect((await svc.waitForTask(child.id, { timeoutMs: 15_000 })).status).toBe('SUCCEEDED');
      const [created] = await t.app.db.prisma.taskEvent.findMany({ where: { taskId: child.id }, orderBy: { id: 'asc' }, take: 1 });
      expect(created).toMatchObject({ type: 'CREATED', fromStatus: null, toStatus: 'SCHEDULED' });
      expect(created!.message).toMatch(new RegExp(`^occurrence \\S+ of ${parent.id}$`));
    }
    const runs = await t.app.db.prisma.taskRun.findMany({
      where: { taskId: { in: children.map((c) => c.id) } },
      orderBy: { startedAt: 'asc' },
    });
    // the second occurrence started while the first was still running
    expect(runs[1]!.startedAt.getTime()).toBeLessThan(runs[0]!.finishedAt!.getTime());
    expect(await runsOf(parent.id)).toEqual([]);
  });

  it('fires the other ALLOW-overlap tasks, and runs the rest, while one of them cannot be fired; that one fires once it can', async () => {
    const at = soon(2500);
    const recurring = {
      funcName: 'chronograph.noop',
      repeatType: 'INTERVAL',
      intervalSeconds: 1,
      maxRuns: 2,
      overlapPolicy: 'ALLOW',
      startTime: at,
    };
    const refused = await create(recurring);
    const fine = await create(recurring);
    // The database refuses the occurrences of `refused` (as a constraint or a concurrent change would).
    const prisma = t.app.db.prisma;
    await prisma.$executeRawUnsafe(`CREATE FUNCTION test_refuse_occurrence() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.parent_id = '${refused.id}'::uuid THEN RAISE EXCEPTION 'test: occurrence refused'; END IF;
        RETURN NEW;
      END $$`);
    await prisma.$executeRawUnsafe(
      'CREATE TRIGGER test_refuse_occurrence BEFORE INSERT ON task_state FOR EACH ROW EXECUTE FUNCTION test_refuse_occurrence()',
    );
    try {
      const oneOff = await create({ funcName: 'chronograph.noop', startTime: at });
      expect((await svc.waitForTask(fine.id, { timeoutMs: 15_000 })).status).toBe('SUCCEEDED');
      expect(await prisma.task.count({ where: { parentId: fine.id } })).toBe(2);
      expect((await svc.waitForTask(oneOff.id, { timeoutMs: 15_000 })).status).toBe('SUCCEEDED');
      expect(await prisma.task.findUniqueOrThrow({ where: { id: refused.id } })).toMatchObject({ status: 'SCHEDULED', runCount: 0 });
      expect(await prisma.task.count({ where: { parentId: refused.id } })).toBe(0);
    } finally {
      await prisma.$executeRawUnsafe('DROP TRIGGER test_refuse_occurrence ON task_state');
      await prisma.$executeRawUnsafe('DROP FUNCTION test_refuse_occurrence()');
    }
    // Tried again after a short backoff: both of its occurrences fire.
    expect((await svc.waitForTask(refused.id, { timeoutMs: 20_000 })).status).toBe('SUCCEEDED');
    expect(await prisma.task.count({ where: { parentId: refused.id } })).toBe(2);
  });

  it('runs the retry of an ALLOW-overlap task (a run it made before it became ALLOW), then fires its next occurrence', async () => {
    const task = await create({
      funcName: 'chronograph.noop',
      repeatType: 'INTERVAL',
      intervalSeconds: 3600,
      overlapPolicy: 'ALLOW',
      startTime: '2099-01-01T00:00:00Z',
    });
    // Where updateTask switching a running task to ALLOW, then a failed attempt, leaves it.
    await t.app.db.prisma.$executeRawUnsafe(
      `UPDATE task SET status = 'RETRYING', attempts = 1, next_run_at = now() WHERE id = $1::uuid`,
      task.id,
    );
    t.app.scheduler.wake();
    await waitFor(async () => (await runsOf(task.id)).length === 1, { timeoutMs: 10_000, what: 'the retry to run' });
    await waitFor(async () => (await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task.id } })).status === 'SCHEDULED', {
      what: 'the task back to its schedule',
    });
    const after = await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
    expect(after.nextRunAt!.getTime()).toBeGreaterThan(Date.now() + 3_000_000);
    expect((await runsOf(task.id))[0]).toMatchObject({ status: 'SUCCEEDED', attempt: 2 });
  });

  it("fires a date-field task's ALLOW-overlap occurrences as children, while the record keeps its one task", async () => {
    await createDateFieldTemplate(
      t,
      { intervalSeconds: 1, overlapPolicy: 'ALLOW', funcName: 'chronograph.sleep', argDict: { ms: 1500 } },
      { offset: { amount: 0, unit: 'DAYS', direction: 'BEFORE' }, timeOfDay: null, maxRuns: 2 },
    );
    const record = { id: 'c-allow', expireDate: new Date().toISOString().slice(0, 10) };
    const saved = ok(await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: record } })).saveDateFieldTask;
    const parentId = saved.changes[0].task.id as string;
    expect(saved.changes[0].task).toMatchObject({ source: 'DATE_FIELD', sourceRowId: 'c-allow' });
    // Both occurrences fire while the first still runs (before, each collided with its live parent on
    // task_date_field_live_key and the task never fired).
    await waitFor(async () => (await t.app.db.prisma.task.count({ where: { parentId, status: 'RUNNING' } })) === 2, {
      timeoutMs: 15_000,
      what: 'two occurrences running at once',
    });
    // Saved again meanwhile with the same date, the record still has one task: its parent, unchanged.
    const again = ok(await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: record, prevData: record } })).saveDateFieldTask;
    expect(again).toMatchObject({ created: 0, rescheduled: 0, unchanged: 1 });
    expect(await t.app.db.prisma.task.findMany({ where: { sourceRowId: 'c-allow', parentId: null }, select: { id: true } })).toEqual([
      { id: parentId },
    ]);
    expect((await svc.waitForTask(parentId, { timeoutMs: 15_000 })).status).toBe('SUCCEEDED');
    const children = await t.app.db.prisma.task.findMany({ where: { parentId }, orderBy: { id: 'asc' } });
    expect(children).toHaveLength(2);
    for (const child of children) {
      expect(child).toMatchObject({ source: 'DATE_FIELD', sourceRowId: 'c-allow', repeatType: 'ONCE' });
      expect((await svc.waitForTask(child.id, { timeoutMs: 15_000 })).status).toBe('SUCCEEDED');
    }
  });

  it("cancels a date-field ALLOW-overlap task's waiting occurrences with it when its record is deleted", async () => {
    await createDateFieldTemplate(
      t,
      {
        fullName: 'tasks.ContractOccurrences',
        intervalSeconds: 3600,
        overlapPolicy: 'ALLOW',
        funcName: 'test.flaky',
        argDict: { key: 'occurrences', failTimes: 99 },
        maxAttempts: 3,
        retryBackoffMs: 600_000,
      },
      { offset: { amount: 0, unit: 'DAYS', direction: 'BEFORE' }, timeOfDay: null },
    );
    const record = { id: 'c-occurrences', expireDate: new Date().toISOString().slice(0, 10) };
    const saved = ok(await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: record } })).saveDateFieldTask;
    const parentId = saved.changes.find((c: { template: string }) => c.template === 'tasks.ContractOccurrences').task.id as string;
    const prisma = t.app.db.prisma;
    // Its first occurrence fails and waits for its retry.
    await waitFor(async () => (await prisma.task.count({ where: { parentId, status: 'RETRYING' } })) === 1, {
      timeoutMs: 15_000,
      what: 'the occurrence waiting for its retry',
    });
    const deleted = ok(await t.gql(DELETE, { rowObj: { model: 'models.Contract', prevData: record } })).deleteDateFieldTask;
    expect(deleted.changes.find((c: { template: string }) => c.template === 'tasks.ContractOccurrences')).toMatchObject({
      action: 'CANCELLED',
    });
    const [occurrence] = await prisma.task.findMany({ where: { parentId }, include: { events: { orderBy: { id: 'asc' } } } });
    expect(occurrence).toMatchObject({ status: 'CANCELLED' });
    expect(occurrence!.events.at(-1)!.message).toContain(`an occurrence of ${parentId}`);
    expect((await prisma.task.findUniqueOrThrow({ where: { id: parentId } })).status).toBe('CANCELLED');
  });

  it('runs tasks through their task type (an app type wraps the handler)', async () => {
    const task = await create({ funcName: 'chronograph.echo', taskType: 'tasks.WrappedType', argDict: { x: 1 } });
    await svc.waitForTask(task.id);
    const [run] = await runsOf(task.id);
    expect(run!.result).toEqual({ wrapped: { x: 1 } });
    expect(run!.logs.map((l) => l.message)).toEqual(['wrapped before']);
  });

  it('pauses, resumes, runs now, reschedules and cancels, refusing invalid transitions', async () => {
    const task = await create({ funcName: 'chronograph.noop', startTime: '2099-01-01T00:00:00Z' });
    const call = (name: string, extra = '') =>
      t.gql(`mutation($id: ID!) { ${name}(taskId: $id${extra}) { status nextRunAt } }`, { id: task.id });
    expect(ok(await call('pauseTask')).pauseTask.status).toBe('PAUSED');
    expect(errorCode(await call('pauseTask'))).toBe('CONFLICT');
    expect(ok(await call('rescheduleTask', ', startTime: "2098-01-01T00:00:00Z"')).rescheduleTask).toEqual({
      status: 'PAUSED',
      nextRunAt: '2098-01-01T00:00:00.000Z',
    });
    expect(ok(await call('resumeTask')).resumeTask.status).toBe('SCHEDULED');
    expect(errorCode(await call('resumeTask'))).toBe('CONFLICT');
    expect(errorCode(await call('rescheduleTask', ', startTime: "2098-02-30"'))).toBe('INVALID_START_TIME');
    ok(await call('runTaskNow'));
    expect((await svc.waitForTask(task.id)).status).toBe('SUCCEEDED');
    expect(await eventsOf(task.id)).toEqual([
      'CREATED:->SCHEDULED',
      'STATUS_CHANGED:SCHEDULED>PAUSED',
      'RESCHEDULED:PAUSED>PAUSED',
      'STATUS_CHANGED:PAUSED>SCHEDULED',
      'RESCHEDULED:SCHEDULED>SCHEDULED',
      'STATUS_CHANGED:SCHEDULED>RUNNING',
      'STATUS_CHANGED:RUNNING>SUCCEEDED',
    ]);
    expect(errorCode(await call('cancelTask'))).toBe('CONFLICT');
    const other = await create({ funcName: 'chronograph.noop', startTime: '2099-01-01T00:00:00Z' });
    expect(
      ok(await t.gql(`mutation($id: ID!) { cancelTask(taskId: $id, reason: "no longer needed") { status } }`, { id: other.id })).cancelTask
        .status,
    ).toBe('CANCELLED');
  });

  it('refuses to pause or resume a running task', async () => {
    const task = await create({ funcName: 'test.untilAborted' });
    await svc.waitForTask(task.id, { statuses: ['RUNNING'] });
    expect(errorCode(await t.gql(`mutation($id: ID!) { pauseTask(taskId: $id) { status } }`, { id: task.id }))).toBe('CONFLICT');
    expect(errorCode(await t.gql(`mutation($id: ID!) { resumeTask(taskId: $id) { status } }`, { id: task.id }))).toBe('CONFLICT');
    await svc.forcedEnd(task.id);
  });

  it('keeps one live task per uniqueKey, also under concurrent creation', async () => {
    const input = { funcName: 'chronograph.noop', startTime: '2099-01-01T00:00:00Z', uniqueKey: `nightly-${backend}` };
    const results = await Promise.all(Array.from({ length: 8 }, () => create(input)));
    const ids = new Set(results.map((r) => r.id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => !r.deduplicated)).toHaveLength(1);
    const again = ok(
      await t.gql(`mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id deduplicated } }`, {
        input: { fullName: 'tasks.DataSync', ...input },
      }),
    ).createTimerTask;
    expect(again).toEqual({ id: [...ids][0], deduplicated: true });
    await svc.cancelTask(again.id);
    const fresh = await create(input);
    expect(fresh.deduplicated).toBe(false);
    expect(fresh.id).not.toBe(again.id);
  });

  it('starts due tasks in priority order and respects queue limits', async () => {
    await t.app.scheduler.stop(1000);
    try {
      const names = ['low', 'high', 'mid'];
      const priorities = { low: -5, high: 10, mid: 0 } as Record<string, number>;
      const past = new Date(Date.now() - 1000).toISOString();
      for (const name of names)
        await create({ funcName: 'test.order', argDict: { name }, priority: priorities[name], queue: 'serial', startTime: past });
      order.length = 0;
      await t.app.scheduler.start();
      await waitFor(() => order.length === 3, { what: 'three runs' });
      expect(order).toEqual(['high', 'mid', 'low']);
      const runs = await t.app.db.prisma.taskRun.findMany({ where: { task: { queue: 'serial' } }, orderBy: { startedAt: 'asc' } });
      for (let i = 1; i < runs.length; i++) expect(runs[i]!.startedAt.getTime()).toBeGreaterThanOrEqual(runs[i - 1]!.finishedAt!.getTime());
    } finally {
      await t.app.scheduler.start();
    }
  });

  it('recovers a task whose worker died holding it: the attempt counts, the retry follows the backoff', async () => {
    const task = await create({ funcName: 'chronograph.echo', startTime: '2099-01-01T00:00:00Z', maxAttempts: 2, retryBackoffMs: 10 });
    // What a crashed instance leaves behind: RUNNING, an open run, a lease that has run out.
    const prisma = t.app.db.prisma;
    await holdTask(prisma, { taskId: task.id, attempt: 1, workerId: 'dead-worker', leaseMs: -1000 });
    await prisma.$executeRawUnsafe(`SELECT pg_notify('chronograph_wake', '')`);
    const done = await svc.waitForTask(task.id, { timeoutMs: 10_000 });
    expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
    const runs = await runsOf(task.id);
    expect(runs.map((r) => [r.workerId, r.status, r.recovered])).toEqual([
      ['dead-worker', 'ABANDONED', false],
      [t.app.config.WORKER_ID, 'SUCCEEDED', true],
    ]);
    expect(await eventsOf(task.id)).toContain('RECOVERED:RUNNING>RETRYING');
  });

  it('while every slot is taken, still recovers a lease that ran out and fires an ALLOW-overlap task when it is due', async () => {
    // The next-due look-up runs at most every 250 ms while the slots are full (Scheduler.tick): what only
    // it would notice must still happen, and soon.
    const prisma = t.app.db.prisma;
    const blockers = await Promise.all(Array.from({ length: 8 }, () => create({ funcName: 'test.untilAborted' })));
    const slotsFull = async () =>
      (await prisma.task.count({ where: { status: 'RUNNING', lockedBy: t.app.config.WORKER_ID } })) >= Number(t.app.config.CONCURRENCY);
    const stranded = await create({
      funcName: 'chronograph.echo',
      startTime: '2099-01-01T00:00:00Z',
      maxAttempts: 2,
      retryBackoffMs: 600_000,
    });
    try {
      await waitFor(slotsFull, { what: 'every slot taken' });
      // A check now, with the slots full, finds no lease of another worker and no ALLOW-overlap task due.
      await sleep(300);
      t.app.scheduler.wake();
      await sleep(50);
      await holdTask(prisma, { taskId: stranded.id, attempt: 1, workerId: 'dead-worker', leaseMs: 400 });
      const allow = await create({
        funcName: 'chronograph.noop',
        repeatType: 'INTERVAL',
        intervalSeconds: 3600,
        startTime: soon(700),
        overlapPolicy: 'ALLOW',
        maxRuns: 1,
      });
      await waitFor(async () => (await prisma.task.findUniqueOrThrow({ where: { id: stranded.id } })).status === 'RETRYING', {
        timeoutMs: 5_000,
        what: 'the lease that ran out recovered',
      });
      await waitFor(async () => (await prisma.task.count({ where: { parentId: allow.id } })) === 1, {
        timeoutMs: 5_000,
        what: 'the ALLOW-overlap occurrence fired',
      });
      expect(await slotsFull()).toBe(true);
      for (const id of blockers.map((b) => b.id)) await svc.forcedEnd(id, 'test over');
      const [child] = await prisma.task.findMany({ where: { parentId: allow.id } });
      expect((await svc.waitForTask(child!.id, { timeoutMs: 10_000 })).status).toBe('SUCCEEDED');
    } finally {
      for (const id of [...blockers.map((b) => b.id), stranded.id]) await svc.forcedEnd(id, 'test over').catch(() => {});
    }
  });

  it('follows misfire policies after downtime', async () => {
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const skipped = await create({ funcName: 'chronograph.noop', startTime: hourAgo, misfirePolicy: 'SKIP', misfireToleranceMs: 500 });
    const once = await create({
      funcName: 'chronograph.noop',
      repeatType: 'INTERVAL',
      intervalSeconds: 600,
      startTime: hourAgo,
      maxRuns: 2,
    });
    const all = await create({
      funcName: 'chronograph.noop',
      repeatType: 'INTERVAL',
      intervalSeconds: 1,
      startTime: new Date(Date.now() - 4_500).toISOString(),
      misfirePolicy: 'RUN_ALL',
      maxRuns: 4,
    });

    expect((await svc.waitForTask(skipped.id, { timeoutMs: 10_000 })).status).toBe('CANCELLED');
    expect(await runsOf(skipped.id)).toEqual([]);
    // The event says why, with the tolerance as set (500 ms read "1 s").
    const cancelled = await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: skipped.id, toStatus: 'CANCELLED' } });
    expect(cancelled.message).toMatch(/missed its \S+ run by \d+ s \(tolerance 500 ms\)/);

    // RUN_ONCE: six missed 10-minute occurrences run once, then the schedule continues in the future.
    const onceAfter = await waitFor(async () => {
      const x = await svc.getTask(once.id);
      return x.runCount === 1 && x.status === 'SCHEDULED' ? x : null;
    });
    expect(onceAfter.nextRunAt!.getTime()).toBeGreaterThan(Date.now());

    // RUN_ALL: each missed second runs, back to back.
    expect((await svc.waitForTask(all.id, { timeoutMs: 10_000 })).runCount).toBe(4);
  });
});
