import { afterEach, describe, expect, it } from 'vitest';
import { Chronograph } from '../src/app.js';
import { createLogger } from '../src/logger.js';
import { LeaseKeeper } from '../src/scheduler/LeaseKeeper.js';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { backends, createTestApp, createTestDatabase, type TestDatabase, testConfig, withClient } from './support/testApp.js';

const HEARTBEAT = 'chronograph-heartbeat:%';

/** The heartbeat threads' connections to `url`'s database (their application_name names them). */
async function heartbeatConnections(url: string): Promise<number> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE $1',
      [HEARTBEAT],
    );
    return rows[0]!.n;
  });
}

async function until(what: string, done: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * On PostgreSQL the heartbeat runs in a thread with its own connection, whose start (loading the driver,
 * connecting) used to follow the rest of an instance's start. It now starts first thing in
 * Chronograph.create (Scheduler.warmUp), while the rest loads, and a start that fails after it leaves
 * neither the thread nor its connection behind.
 */
describe.skipIf(!process.env.TEST_DATABASE_URL)('the heartbeat thread starts with the instance (postgres)', () => {
  let db: TestDatabase | undefined;
  afterEach(async () => {
    await db?.drop();
    db = undefined;
  });

  it('is connected before the app modules finish loading, and a failed start closes it', async () => {
    db = await createTestDatabase('postgres');
    const url = db.url!;
    let connectedDuringSetup = false;
    await expect(
      Chronograph.create({
        config: testConfig({ DATABASE_URL: url }),
        // Runs before the scheduler starts: the thread is already there (it was not, before warmUp).
        setup: async () => {
          await until('the heartbeat thread to connect', async () => (await heartbeatConnections(url)) === 1);
          connectedDuringSetup = true;
          throw new Error('an app module that cannot load');
        },
      }),
    ).rejects.toThrow('an app module that cannot load');
    expect(connectedDuringSetup).toBe(true);
    await until('the heartbeat connection to close', async () => (await heartbeatConnections(url)) === 0);
  });

  it('runs and stops as before once started', async () => {
    db = await createTestDatabase('postgres');
    const url = db.url!;
    const app = await Chronograph.create({ config: testConfig({ DATABASE_URL: url }) });
    try {
      expect(await heartbeatConnections(url)).toBe(1);
      const task = await app.taskSvc.createTimerTask({ fullName: 'tasks.DataSync', startTime: new Date().toISOString() });
      await app.taskSvc.waitForTask(task.id, { timeoutMs: 20_000 });
    } finally {
      await app.stop();
    }
    await until('the heartbeat connection to close', async () => (await heartbeatConnections(url)) === 0);
  });
});

/**
 * A stop that comes while another is under way (the first gives running handlers their grace period)
 * must not end the heartbeat of those handlers: their leases are extended until the first stop is done
 * with them.
 */
describe.each(backends)('a second stop during the grace period of the first (%s)', (backend) => {
  it('keeps extending the leases of the handlers still running', async () => {
    let aborted: unknown;
    const t = await createTestApp(backend, {
      env: { LEASE_MS: '400', SHUTDOWN_GRACE_MS: '3000' },
      setup(app) {
        app.handlers.register('test.slow', (_args, ctx) => {
          ctx.signal.addEventListener('abort', () => (aborted = ctx.signal.reason));
          return new Promise((resolve) => setTimeout(() => resolve('done'), 1_500));
        });
      },
    });
    try {
      const svc = t.app.getElement('services.TaskSvc') as TaskSvc;
      const task = await svc.createTimerTask({ fullName: 'tasks.DataSync', funcName: 'test.slow', startTime: new Date().toISOString() });
      await svc.waitForTask(task.id, { statuses: ['RUNNING'], timeoutMs: 10_000 });
      // The first waits for the handler (3 s of grace); the second joins it and must not end its heartbeat.
      await Promise.all([t.app.scheduler.stop(3_000), t.app.scheduler.stop(3_000)]);
      expect(aborted).toBeUndefined();
      expect((await svc.waitForTask(task.id, { timeoutMs: 5_000 })).status).toBe('SUCCEEDED');
    } finally {
      await t.close();
    }
  });
});

describe('a heartbeat thread that cannot connect', () => {
  it('hands the heartbeat to the main thread at once, not after the 30 s start limit', { timeout: 15_000 }, async () => {
    const lines: string[] = [];
    const keeper = new LeaseKeeper({
      workerId: 'w-unreachable',
      leaseMs: 1_000,
      watchdogMs: 10_000,
      // Nothing listens on port 1: the thread's first connection is refused.
      databaseUrl: 'postgresql://postgres@127.0.0.1:1/none',
      sql: { query: async () => [] },
      logger: createLogger('warn', { write: (line: string) => void lines.push(line) }),
      onBeat: () => {},
    });
    try {
      // Waited the full 30 s before (the thread reported the failure, but only 'ready' ended the wait).
      await keeper.start();
      expect(lines.some((line) => line.includes('heartbeats run on the main thread'))).toBe(true);
    } finally {
      await keeper.stop();
    }
  });
});

/**
 * app.stop() while an earlier app.scheduler.stop(grace) still waits for a handler: the second stop joins
 * the first instead of returning at once, so the database stays open until the handler's end is recorded.
 * Before, app.stop() closed the database under the running handler, whose end was then lost (the task
 * stayed RUNNING until its lease ran out).
 */
describe.skipIf(!process.env.TEST_DATABASE_URL)('app.stop() during an earlier scheduler stop (postgres)', () => {
  let db: TestDatabase | undefined;
  afterEach(async () => {
    await db?.drop();
    db = undefined;
  });

  it('waits for the handler that stop gives its grace period, and records its end', async () => {
    db = await createTestDatabase('postgres');
    let finished = false;
    const t = await createTestApp('postgres', {
      database: db,
      env: { SHUTDOWN_GRACE_MS: '5000' },
      setup(app) {
        app.handlers.register('test.slow', () => new Promise((resolve) => setTimeout(() => resolve((finished = true)), 1_000)));
      },
    });
    const svc = t.app.getElement('services.TaskSvc') as TaskSvc;
    const task = await svc.createTimerTask({ fullName: 'tasks.DataSync', funcName: 'test.slow', startTime: new Date().toISOString() });
    await svc.waitForTask(task.id, { statuses: ['RUNNING'], timeoutMs: 10_000 });
    const first = t.app.scheduler.stop(5_000);
    await t.app.stop();
    expect(finished).toBe(true);
    await first;
    const status = await withClient(
      db.url!,
      async (c) => (await c.query<{ status: string }>('SELECT status FROM task WHERE id = $1', [task.id])).rows[0]?.status,
    );
    expect(status).toBe('SUCCEEDED');
  });

  it('ends the grace period at the sooner of the two deadlines', async () => {
    db = await createTestDatabase('postgres');
    let aborted: unknown;
    const t = await createTestApp('postgres', {
      database: db,
      env: { SHUTDOWN_GRACE_MS: '300' },
      setup(app) {
        app.handlers.register('test.endless', (_args, ctx) => {
          return new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject((aborted = ctx.signal.reason))));
        });
      },
    });
    const svc = t.app.getElement('services.TaskSvc') as TaskSvc;
    const task = await svc.createTimerTask({ fullName: 'tasks.DataSync', funcName: 'test.endless', startTime: new Date().toISOString() });
    await svc.waitForTask(task.id, { statuses: ['RUNNING'], timeoutMs: 10_000 });
    const started = Date.now();
    const first = t.app.scheduler.stop(60_000);
    await t.app.stop();
    await first;
    // app.stop()'s 300 ms, not the first stop's minute (the handler takes the abort grace on top).
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(aborted).toBeDefined();
    const status = await withClient(
      db.url!,
      async (c) => (await c.query<{ status: string }>('SELECT status FROM task WHERE id = $1', [task.id])).rows[0]?.status,
    );
    // Handed back at shutdown: due again for another instance, not counted as an attempt.
    expect(status).toBe('SCHEDULED');
  });
});

/**
 * The last of start() and stop() decides: a start that waits for a stop under way does not start once
 * another stop came meanwhile (that stop joins the first and resolves with it; app.stop() would close
 * the database under the scheduler the start then opened), and a stop during a start ends what the
 * start opens, not only what it had opened when the stop came.
 */
describe.each(backends)('start() and stop() interleaved (%s)', (backend) => {
  it('stays stopped when a stop follows a start that waits for an earlier stop', async () => {
    const t = await createTestApp(backend, {
      setup(app) {
        app.handlers.register('test.slow', () => new Promise((resolve) => setTimeout(() => resolve('done'), 500)));
      },
    });
    try {
      const svc = t.app.getElement('services.TaskSvc') as TaskSvc;
      const task = await svc.createTimerTask({ fullName: 'tasks.DataSync', funcName: 'test.slow', startTime: new Date().toISOString() });
      await svc.waitForTask(task.id, { statuses: ['RUNNING'], timeoutMs: 10_000 });
      const first = t.app.scheduler.stop(5_000);
      const restart = t.app.scheduler.start();
      const last = t.app.scheduler.stop(5_000);
      await Promise.all([first, restart, last]);
      expect(t.app.scheduler.isRunning).toBe(false);
      expect((await svc.waitForTask(task.id, { timeoutMs: 5_000 })).status).toBe('SUCCEEDED');
    } finally {
      await t.close();
    }
  });
});

describe.skipIf(!process.env.TEST_DATABASE_URL)('a stop during a start (postgres)', () => {
  let db: TestDatabase | undefined;
  afterEach(async () => {
    await db?.drop();
    db = undefined;
  });

  it('ends the heartbeat thread that the start opens after the stop came', async () => {
    db = await createTestDatabase('postgres');
    const url = db.url!;
    const t = await createTestApp('postgres', { database: db });
    try {
      await t.app.scheduler.stop(0);
      await until('the heartbeat connection to close', async () => (await heartbeatConnections(url)) === 0);
      // The start is still looking up capped tenants and listening when the stop comes.
      await Promise.all([t.app.scheduler.start(), t.app.scheduler.stop(0)]);
      expect(t.app.scheduler.isRunning).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await heartbeatConnections(url)).toBe(0);
    } finally {
      await t.close();
    }
  });
});
