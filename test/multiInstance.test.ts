import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { createTestApp, createTestDatabase, type TestApp, type TestDatabase } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const root = path.resolve(import.meta.dirname, '..');
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
      const task = await svcB.createTimerTask({ fullName: 'tasks.DataSync', funcName: 'test.work', argDict: { ms: 60_000 }, startTime: new Date().toISOString() });
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
      const task = await svc.createTimerTask({ fullName: 'tasks.DataSync', funcName: 'test.work', argDict: { ms: 1500 }, startTime: new Date().toISOString() });
      await svc.waitForTask(task.id, { statuses: ['RUNNING'] });
      await b.app.scheduler.start();
      await a.close(); // gives up after 200 ms and releases the lease
      const done = await svc.waitForTask(task.id, { timeoutMs: 15_000 });
      expect(done.status).toBe('SUCCEEDED');
      const runs = await b.app.db.prisma.taskRun.findMany({ where: { taskId: task.id }, orderBy: { startedAt: 'asc' } });
      expect(runs.map((r) => [r.workerId, r.status, r.recovered])).toEqual([
        ['a', 'ABANDONED', false],
        ['b', 'SUCCEEDED', true],
      ]);
    } finally {
      await b.close();
    }
  });
});

describe.runIf(onPostgres)('three Chronograph processes, one killed mid-run', () => {
  let database: TestDatabase;
  let admin: TestApp;
  const processes: ReturnType<typeof startProcess>[] = [];

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
    // node itself (not the tsx wrapper process), so that SIGKILL kills the instance, not a parent of it
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: root,
      env: {
        ...process.env,
        DATABASE_URL: database.url,
        PORT: '0',
        WORKER_ID: workerId,
        LEASE_MS: '1500',
        CONCURRENCY: '20',
        APP_DIR: 'test/fixtures/app',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return { workerId, child, exited, output: () => output };
  }

  it('runs every occurrence, none twice except recorded recoveries, and leaves nothing stuck', async () => {
    for (const id of ['w1', 'w2', 'w3']) processes.push(startProcess(id));
    await waitFor(() => processes.every((p) => p.output().includes('Chronograph is listening')), { timeoutMs: 90_000, intervalMs: 100, what: 'three processes' });

    const svc = admin.app.getElement('services.TaskSvc') as TaskSvc;
    const prisma = admin.app.db.prisma;
    const start = new Date(Date.now() + 500).toISOString();
    const once = await svc.createTimerTasks(
      Array.from({ length: 300 }, (_, i) => ({ fullName: 'tasks.DataSync', funcName: 'test.work', argDict: { ms: 100 + (i % 5) * 100 }, startTime: start, maxAttempts: 1 })),
    );
    const cron = await svc.createTimerTasks(
      Array.from({ length: 3 }, () => ({ fullName: 'tasks.DataSync', funcName: 'test.work', argDict: { ms: 300 }, repeatType: 'CRON' as const, cronExpression: '* * * * * *', maxRuns: 5 })),
    );

    // Kill w2 while it holds tasks.
    await waitFor(async () => (await prisma.task.count({ where: { status: 'RUNNING', lockedBy: 'w2' } })) >= 3, { what: 'w2 running tasks' });
    const victim = processes.find((p) => p.workerId === 'w2')!;
    victim.child.kill('SIGKILL');
    await victim.exited;

    const all = [...once, ...cron].map((t) => t.id);
    await waitFor(async () => (await prisma.task.count({ where: { id: { in: all }, status: { notIn: ['SUCCEEDED', 'FAILED', 'FORCED_END', 'CANCELLED'] } } })) === 0, {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: 'every task to finish',
    });

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
