import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXTEND_LEASES_SQL } from '../src/scheduler/sql.js';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { createTestApp, createTestDatabase, ok, type TestApp, type TestDatabase, withClient } from './support/testApp.js';

/** The tables a plan must never read whole on the hot path: they hold every task and its history. */
const LARGE = ['task_state', 'task_spec', 'task_event'];

/** The generic plan of `sql` (as a prepared statement's cached plan), whatever its parameters. */
async function genericPlan(c: pg.Client, sql: string): Promise<string> {
  const params = Math.max(0, ...[...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
  await c.query('DEALLOCATE ALL');
  await c.query(`PREPARE probe AS ${sql}`);
  const args = params ? `(${Array(params).fill('NULL').join(', ')})` : '';
  const { rows } = await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN EXECUTE probe${args}`);
  return rows.map((r) => r['QUERY PLAN']).join('\n');
}

const seqScans = (plan: string) => LARGE.filter((table) => new RegExp(`Seq Scan on ${table}\\b(?!_)`).test(plan));

/**
 * Every statement the scheduler and the task service send, and the queries behind taskStats, the task
 * list's total count and the history pruner's tenant scan, planned as a cached generic plan is on a
 * database of 30,000 tasks in 20 tenants with a run and an event each: none reads a large table whole. (Migration 20261206000000
 * left task without an index led by tenant_id; three statements that took min(tenant_id) or walked the
 * tenants of task became sequential scans of it, the claim's among them, which cut the drain on PGlite
 * to half. They read task_spec now.)
 */
describe.skipIf(!process.env.TEST_DATABASE_URL)('the hot path reads large tables through their indexes (postgres)', () => {
  let db: TestDatabase;
  let t: TestApp;
  const statements = new Map<string, string>();
  const prismaQueries: string[] = [];
  const original = pg.Client.prototype.query;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    // Every named (prepared) statement sent on the pg driver.
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const config = args[0] as { name?: string; text?: string } | string;
      if (typeof config === 'object' && config?.name && config.text) statements.set(config.name, config.text);
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof original;
    t = await createTestApp('postgres', {
      database: db,
      env: { HISTORY_RETENTION_DAYS: '1' },
      onQuery: (event) => void prismaQueries.push(event.query),
    });
    await withClient(db.url!, async (c) => {
      await c.query(`
        INSERT INTO task (id, tenant_id, full_name, task_type, func_name, start_time, next_run_at, updated_at, created_at, status)
        SELECT gen_random_uuid(), 't' || (i % 20), 'tasks.DataSync', 'tasks.NormalType', 'f', now() - interval '3 days', NULL,
               now() - interval '3 days', now() - interval '3 days',
               (CASE WHEN i % 3 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END)::"TaskStatus"
          FROM generate_series(1, 30000) i`);
      await c.query(`
        INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, attempt, worker_id, recovered, created_at)
        SELECT tenant_id, id, id, 'STATUS_CHANGED', 'SCHEDULED', 'RUNNING', 1, 'w', false, created_at FROM task`);
      await c.query(`
        INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, run_status, duration_ms, created_at)
        SELECT tenant_id, id, id, 'STATUS_CHANGED', 'RUNNING', status, 'SUCCEEDED', 0, created_at FROM task`);
      await c.query('ANALYZE');
    });
    const svc = t.app.getElement('services.TaskSvc') as TaskSvc;
    // Due now: claimed by the insert or by the scheduler, run, completed; one that fails and retries.
    const tasks = await svc.createTimerTasks(
      Array.from({ length: 30 }, () => ({ fullName: 'tasks.DataSync', startTime: new Date().toISOString() })),
    );
    for (const task of tasks) await svc.waitForTask(task.id, { timeoutMs: 20_000 });
    ok(await t.gql('{ taskStats { total succeeded } tasks(first: 5) { totalCount } }'));
    await t.app.history.pruneByRetention();
  }, 120_000);

  afterAll(async () => {
    pg.Client.prototype.query = original;
    await t?.close();
    // close() drops only a database the app created itself, not one passed in as here.
    await db?.drop();
  });

  it("plans none of the scheduler's and task service's statements as a scan of a whole large table", async () => {
    expect(statements.size).toBeGreaterThan(5);
    expect([...statements.keys()]).toEqual(expect.arrayContaining(['chronograph_claim', 'chronograph_complete', 'chronograph_next_due']));
    const found: Record<string, string[]> = {};
    await withClient(db.url!, async (c) => {
      await c.query(`SET plan_cache_mode = force_generic_plan`);
      for (const [name, text] of statements) {
        const scans = seqScans(await genericPlan(c, text));
        if (scans.length) found[name] = scans;
      }
    });
    expect(found).toEqual({});
  });

  it('plans the statements that find their tasks by id as look-ups by primary key, never a scan of the status index', async () => {
    // The status index keeps an entry for every ended run's RUNNING version until a vacuum, and a bitmap
    // scan reads them all: with RUNNING tasks few in the statistics, the completion and the heartbeat
    // were planned that way, and a completion of 24 read 20,000 dead entries after 20,000 runs.
    const byId = { chronograph_complete: statements.get('chronograph_complete')!, heartbeat: EXTEND_LEASES_SQL };
    expect(byId.chronograph_complete).toBeDefined();
    const plans: Record<string, { primaryKey: boolean; statusIndex: boolean }> = {};
    await withClient(db.url!, async (c) => {
      await c.query(`SET plan_cache_mode = force_generic_plan`);
      for (const [name, text] of Object.entries(byId)) {
        const plan = await genericPlan(c, text);
        plans[name] = { primaryKey: plan.includes('task_state_pkey'), statusIndex: plan.includes('task_status_tenant_id_idx') };
      }
    });
    expect(plans).toEqual({
      chronograph_complete: { primaryKey: true, statusIndex: false },
      heartbeat: { primaryKey: true, statusIndex: false },
    });
  });

  it('plans none of them as a scan of a whole large table on a backlog of due tasks of one tenant and one queue either', async () => {
    // 5,000 tasks, all due, fresh in the statistics: one tenant and one queue, as most installations have.
    // The claim's `queue <> ALL($4)` was estimated to pass no row (the list is a parameter: `<>` an unknown
    // value, on a column with one value), and the claim was planned as a scan of the whole task_state; its
    // update and its read of the claimed tasks' task_spec rows were hash joins with scans of both tables.
    const smallDb = await createTestDatabase('postgres');
    const small = await createTestApp('postgres', { database: smallDb, env: { SCHEDULER_ENABLED: 'false' } });
    const found: Record<string, string[]> = {};
    let claimPlan = '';
    try {
      await withClient(smallDb.url!, async (c) => {
        await c.query(`
          INSERT INTO task (id, tenant_id, full_name, task_type, func_name, start_time, next_run_at, updated_at, created_at, status)
          SELECT gen_random_uuid(), 'default', 'tasks.DataSync', 'tasks.NormalType', 'f', now(), now(), now(), now(), 'SCHEDULED'
            FROM generate_series(1, 5000)`);
        await c.query(`
          INSERT INTO task_event (tenant_id, task_id, type, to_status, created_at)
          SELECT tenant_id, task_id, 'CREATED', 'SCHEDULED', now() FROM task_state`);
        await c.query('ANALYZE');
        await c.query(`SET plan_cache_mode = force_generic_plan`);
        for (const [name, text] of statements) {
          const plan = await genericPlan(c, text);
          if (name === 'chronograph_claim') claimPlan = plan;
          // A create's "no task waits to be claimed" (NOT EXISTS) may read task_state in order when the
          // statistics say that most tasks wait: the scan stops at the first one that does.
          if (name.startsWith('chronograph_insert_tasks')) continue;
          const scans = seqScans(plan);
          if (scans.length) found[name] = scans;
        }
      });
    } finally {
      await small.close();
      await smallDb.drop();
    }
    expect(found).toEqual({});
    expect(claimPlan).toContain('task_spec_pkey');
  });

  it('plans the task statistics, the task count and the pruner tenant scan through indexes', async () => {
    const wanted = [
      (q: string) => /UNION ALL/.test(q) && /FROM task_spec WHERE tenant_id/.test(q),
      (q: string) => /SELECT COUNT/i.test(q) && /FROM "public"\."task"/.test(q),
      (q: string) => /WITH RECURSIVE t AS/.test(q),
    ];
    const found: Record<string, string[]> = {};
    await withClient(db.url!, async (c) => {
      await c.query(`SET plan_cache_mode = force_generic_plan`);
      for (const matches of wanted) {
        const query = prismaQueries.find(matches);
        expect(query).toBeDefined();
        const scans = seqScans(await genericPlan(c, query!));
        if (scans.length) found[query!] = scans;
      }
    });
    expect(found).toEqual({});
  });
});

/**
 * The example app (./app) as shipped: its backup reads every task of one tenant (`where: { tenantId }`),
 * through task_spec's tenant-first index since the view task reads tenant_id from task_spec (migration
 * 20261208000000_runs_as_events), and each task's state by its key. With 200 tenants: when one tenant
 * holds a large share of the tasks (20 tenants here), reading task_state whole in a hash join is the
 * cheaper plan, and the planner rightly takes it.
 */
describe.skipIf(!process.env.TEST_DATABASE_URL)("the example app's backup reads a tenant's tasks through an index (postgres)", () => {
  let t: TestApp | undefined;
  let db: TestDatabase | undefined;
  let scratch: string | undefined;

  afterAll(async () => {
    await t?.close();
    await db?.drop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it("plans its query of the tenant's tasks without a scan of the whole table", async () => {
    db = await createTestDatabase('postgres');
    scratch = mkdtempSync(path.join(os.tmpdir(), 'chronograph-plans-'));
    const queries: string[] = [];
    t = await createTestApp('postgres', {
      database: db,
      env: { APP_DIR: 'app', BACKUP_DIR: scratch },
      onQuery: (event) => void queries.push(event.query),
    });
    await withClient(db.url!, async (c) => {
      await c.query(`
        INSERT INTO task (id, tenant_id, full_name, task_type, func_name, start_time, next_run_at, updated_at, created_at, status)
        SELECT gen_random_uuid(), 't' || (i % 200), 'tasks.Echo', 'tasks.NormalType', 'chronograph.echo', now(), NULL, now(), now(),
               'SUCCEEDED'::"TaskStatus"
          FROM generate_series(1, 30000) i`);
      await c.query('ANALYZE');
    });
    const task = await t.app.taskSvc.createTimerTask({ fullName: 'tasks.DataBackup', startTime: new Date().toISOString() });
    expect((await t.app.taskSvc.waitForTask(task.id, { timeoutMs: 20_000 })).status).toBe('SUCCEEDED');
    // Its findMany: every column of the tenant's tasks, not one task by id.
    const query = queries.find((q) => /FROM "public"\."task" WHERE/.test(q) && /"arg_dict"/.test(q) && !/"task"\."id" =/.test(q));
    expect(query).toBeDefined();
    await withClient(db.url!, async (c) => {
      await c.query(`SET plan_cache_mode = force_generic_plan`);
      expect(seqScans(await genericPlan(c, query!))).toEqual([]);
    });
  });
});
