import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { type InstanceProcess, startInstance } from './support/instanceProcess.js';
import { createTestApp, createTestDatabase, type TestApp, type TestDatabase } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const onPostgres = Boolean(process.env.TEST_DATABASE_URL);

describe.runIf(onPostgres)('several instances on one PostgreSQL', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('postgres');
  });
  afterAll(() => database?.drop());

  it('force-ends a task running on another instance', async () => {
    const a = await createTestApp('postgres', { database, env: { WORKER_ID: 'a', LEASE_MS: '1000' } });
    const b = await createTestApp('postgres', { database, env: { WORKER_ID: 'b', SCHEDULER_ENABLED: 'false' } });
    try {
      const svcB = b.app.getElement('services.TaskSvc') as TaskSvc;
      const task = await svcB.createTimerTask({
        fullName: 'tasks.DataSync',
        funcName: 'test.work',
        argDict: { ms: 60_000 },
        startTime: new Date().toISOString(),
      });
      const running = await svcB.waitForTask(task.id, { statuses: ['RUNNING'] });
      expect(running.lockedBy).toBe('a');
      const ended = await svcB.forcedEnd(task.id);
      expect(ended.status).toBe('FORCED_END');
      const runs = await b.app.db.prisma.taskRun.findMany({ where: { taskId: task.id } });
      expect(runs.map((r) => [r.workerId, r.status])).toEqual([['a', 'CANCELLED']]);
    } finally {
      await b.close();
      await a.close();
    }
  });

  it('hands running tasks to another instance when one shuts down', async () => {
    const a = await createTestApp('postgres', { database, env: { WORKER_ID: 'a', LEASE_MS: '1000', SHUTDOWN_GRACE_MS: '200' } });
    const b = await createTestApp('postgres', { database, env: { WORKER_ID: 'b', LEASE_MS: '1000' } });
    const svc = b.app.getElement('services.TaskSvc') as TaskSvc;
    try {
      await b.app.scheduler.stop(0);
      const task = await svc.createTimerTask({
        fullName: 'tasks.DataSync',
        funcName: 'test.work',
        // Long enough to be still running when a stops, on a loaded machine too (it once finished first).
        argDict: { ms: 4000 },
        startTime: new Date().toISOString(),
      });
      await svc.waitForTask(task.id, { statuses: ['RUNNING'] });
      await b.app.scheduler.start();
      await a.close(); // gives up after 200 ms and releases the lease
      const done = await svc.waitForTask(task.id, { timeoutMs: 15_000 });
      // Handed back, not crashed: the attempt a gave up does not count.
      expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
      const runs = await b.app.db.prisma.taskRun.findMany({ where: { taskId: task.id }, orderBy: { startedAt: 'asc' } });
      expect(runs.map((r) => [r.workerId, r.status, r.recovered, r.attempt])).toEqual([
        ['a', 'ABANDONED', false, 1],
        ['b', 'SUCCEEDED', true, 1],
      ]);
      const events = await b.app.db.prisma.taskEvent.findMany({ where: { taskId: task.id }, orderBy: { id: 'asc' } });
      expect(events.map((e) => `${e.type}:${e.fromStatus}>${e.toStatus}`)).toContain('RECOVERED:RUNNING>SCHEDULED');
      expect(events.find((e) => e.type === 'RECOVERED')!.message).toContain('handed back by worker a');
    } finally {
      await b.close();
    }
  });
});

describe.runIf(onPostgres)('three Chronograph processes, one killed mid-run', () => {
  let database: TestDatabase;
  let admin: TestApp;
  const processes: InstanceProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    admin = await createTestApp('postgres', { database, env: { SCHEDULER_ENABLED: 'false', WORKER_ID: 'admin' } });
  });
  afterAll(async () => {
    for (const p of processes) p.child.kill('SIGKILL');
    await admin?.close();
    await database?.drop();
  });

  function startProcess(workerId: string) {
    return startInstance(workerId, { DATABASE_URL: database.url!, LEASE_MS: '1500', CONCURRENCY: '20' });
  }

  it('runs every occurrence, none twice except recorded recoveries, and leaves nothing stuck', async () => {
    for (const id of ['w1', 'w2', 'w3']) processes.push(startProcess(id));
    await waitFor(() => processes.every((p) => p.output().includes('Chronograph is listening')), {
      timeoutMs: 90_000,
      intervalMs: 100,
      what: 'three processes',
    });

    const svc = admin.app.getElement('services.TaskSvc') as TaskSvc;
    const prisma = admin.app.db.prisma;
    const start = new Date(Date.now() + 500).toISOString();
    const once = await svc.createTimerTasks(
      Array.from({ length: 300 }, (_, i) => ({
        fullName: 'tasks.DataSync',
        funcName: 'test.work',
        argDict: { ms: 100 + (i % 5) * 100 },
        startTime: start,
        maxAttempts: 2,
        retryBackoffMs: 100,
      })),
    );
    const cron = await svc.createTimerTasks(
      Array.from({ length: 3 }, () => ({
        fullName: 'tasks.DataSync',
        funcName: 'test.work',
        argDict: { ms: 300 },
        repeatType: 'CRON' as const,
        cronExpression: '* * * * * *',
        maxRuns: 5,
      })),
    );

    // Kill w2 while it holds tasks.
    await waitFor(async () => (await prisma.task.count({ where: { status: 'RUNNING', lockedBy: 'w2' } })) >= 3, {
      what: 'w2 running tasks',
    });
    const victim = processes.find((p) => p.workerId === 'w2')!;
    victim.child.kill('SIGKILL');
    await victim.exited;

    const all = [...once, ...cron].map((t) => t.id);
    await waitFor(
      async () =>
        (await prisma.task.count({ where: { id: { in: all }, status: { notIn: ['SUCCEEDED', 'FAILED', 'FORCED_END', 'CANCELLED'] } } })) ===
        0,
      {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: 'every task to finish',
      },
    );

    const tasks = await prisma.task.findMany({ where: { id: { in: all } }, include: { runs: { orderBy: { startedAt: 'asc' } } } });
    let recoveries = 0;
    for (const task of tasks) {
      const succeeded = task.runs.filter((r) => r.status === 'SUCCEEDED');
      const expected = task.repeatType === 'CRON' ? 5 : 1;
      expect(task.status, task.id).toBe('SUCCEEDED');
      expect(succeeded, task.id).toHaveLength(expected);
      expect(task.runCount).toBe(expected);
      // Any extra run is one that w2 was holding when it died, followed by a recovered attempt.
      const extra = task.runs.filter((r) => r.status !== 'SUCCEEDED');
      for (const run of extra) expect([run.workerId, run.status]).toEqual(['w2', 'ABANDONED']);
      const recovered = task.runs.filter((r) => r.recovered);
      expect(recovered.length).toBe(extra.length);
      recoveries += recovered.length;
    }
    expect(recoveries).toBeGreaterThanOrEqual(3);
    expect(await prisma.taskRun.count({ where: { status: 'RUNNING' } })).toBe(0);
    const workers = new Set(tasks.flatMap((t) => t.runs.map((r) => r.workerId)));
    expect(workers).toEqual(new Set(['w1', 'w2', 'w3']));

    for (const p of processes.filter((p) => p !== victim)) {
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
    }
  }, 240_000);
});

describe.runIf(onPostgres)('handlers that crash or block their instance, across processes', () => {
  let database: TestDatabase;
  let admin: TestApp;
  let svc: TaskSvc;
  const processes: InstanceProcess[] = [];
  const start = (workerId: string, env: Record<string, string> = {}) => {
    const p = startInstance(workerId, { DATABASE_URL: database.url!, LEASE_MS: '1000', ...env });
    processes.push(p);
    return p;
  };
  const create = (funcName: string, argDict: Record<string, unknown> = {}) =>
    svc.createTimerTask({ fullName: 'tasks.DataSync', funcName, argDict, startTime: new Date().toISOString(), maxAttempts: 1 });

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    // The test's own instance recovers expired leases once started; it never claims the poison tasks,
    // because they are RUNNING elsewhere before its scheduler starts and end FAILED when recovered.
    admin = await createTestApp('postgres', { database, env: { SCHEDULER_ENABLED: 'false', WORKER_ID: 'admin', LEASE_MS: '1000' } });
    svc = admin.app.getElement('services.TaskSvc') as TaskSvc;
  });
  afterAll(async () => {
    for (const p of processes) p.child.kill('SIGKILL');
    await admin?.close();
    await database?.drop();
  });

  it('keeps the lease of a handler that blocks the event loop longer than LEASE_MS (the heartbeat has its own thread)', async () => {
    const p = start('blocker');
    await p.listening;
    const task = await create('test.busy', { ms: 3000 });
    await svc.waitForTask(task.id, { statuses: ['RUNNING'] });
    await admin.app.scheduler.start();
    try {
      const done = await svc.waitForTask(task.id, { timeoutMs: 30_000 });
      expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
      const runs = await admin.app.db.prisma.taskRun.findMany({ where: { taskId: task.id } });
      expect(runs.map((r) => [r.workerId, r.status])).toEqual([['blocker', 'SUCCEEDED']]);
    } finally {
      await admin.app.scheduler.stop(0);
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
    }
  }, 90_000);

  it('lets a hung instance lose its leases (watchdog), and ends the task on its last attempt instead of bouncing it', async () => {
    const p = start('hung', { LEASE_WATCHDOG_MS: '1500' });
    await p.listening;
    const task = await create('test.hang');
    await svc.waitForTask(task.id, { statuses: ['RUNNING'] });
    await admin.app.scheduler.start();
    try {
      const failed = await svc.waitForTask(task.id, { timeoutMs: 30_000 });
      expect(failed).toMatchObject({ status: 'FAILED', lastError: 'the worker running it stopped during attempt 1 of 1' });
      const runs = await admin.app.db.prisma.taskRun.findMany({ where: { taskId: task.id } });
      expect(runs.map((r) => [r.workerId, r.status])).toEqual([['hung', 'ABANDONED']]);
    } finally {
      await admin.app.scheduler.stop(0);
      p.child.kill('SIGKILL');
      await p.exited;
    }
  }, 90_000);

  it('ends a handler that kills its process FAILED after one death: no other instance runs it', async () => {
    const [a, b] = [start('poison-a'), start('poison-b')];
    await Promise.all([a.listening, b.listening]);
    const task = await create('test.exit');
    const victim = await Promise.race([a.exited.then(() => a), b.exited.then(() => b)]);
    const survivor = victim === a ? b : a;
    const failed = await svc.waitForTask(task.id, { timeoutMs: 30_000 });
    expect(failed).toMatchObject({ status: 'FAILED', lastError: 'the worker running it stopped during attempt 1 of 1' });
    const events = await admin.app.db.prisma.taskEvent.findMany({ where: { taskId: task.id }, orderBy: { id: 'asc' } });
    expect(events.at(-1)!.message).toContain('the worker running it stopped during attempt 1 of 1');
    const runs = await admin.app.db.prisma.taskRun.findMany({ where: { taskId: task.id } });
    expect(runs.map((r) => [r.workerId, r.status])).toEqual([[victim.workerId, 'ABANDONED']]);
    // A fresh instance starts fine and the survivor still answers: nobody runs the poison task again.
    const fresh = start('poison-c');
    await fresh.listening;
    const after = await create('chronograph.echo', { ok: true });
    expect((await svc.waitForTask(after.id, { timeoutMs: 15_000 })).status).toBe('SUCCEEDED');
    expect(await admin.app.db.prisma.taskRun.count({ where: { taskId: task.id } })).toBe(1);
    for (const p of [survivor, fresh]) {
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
    }
  }, 120_000);
});
