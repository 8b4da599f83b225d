// Scheduler benchmark: `npm run bench -- scheduler [pglite|postgres]`.
// PostgreSQL uses BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test; a scratch
// database is created and dropped). Sizes: BENCH_TASKS (throughput, default 20000),
// BENCH_LATENCY (sequential tasks, default 1000), BENCH_FUTURE (future rows, default 1000000).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Chronograph } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { claimTasks, msUntilNextDue } from '../src/scheduler/sql.js';
import { ADMIN_URL, insertTasksSql, scratchDatabase } from './support.js';

const N = Number(process.env.BENCH_TASKS ?? 20_000);
const LATENCY_N = Number(process.env.BENCH_LATENCY ?? 1000);
const FUTURE_N = Number(process.env.BENCH_FUTURE ?? 1_000_000);
const which = process.argv[2];

function stats(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  const avg = s.reduce((a, b) => a + b, 0) / s.length;
  return `min ${s[0]!.toFixed(1)} / avg ${avg.toFixed(1)} / p50 ${at(0.5).toFixed(1)} / p99 ${at(0.99).toFixed(1)} / max ${s[s.length - 1]!.toFixed(1)} ms`;
}

function config(env: Record<string, string | undefined>) {
  return loadConfig({ APP_DIR: '/nonexistent', LOG_LEVEL: 'warn', DATA_DIR: 'memory://', CONCURRENCY: '50', ...env });
}

/** Bulk rows straight in SQL: the benchmark measures the scheduler, not task creation. */
async function insertNoops(app: Chronograph, count: number, nextRunAt: string) {
  await app.db.prisma.$executeRawUnsafe(
    insertTasksSql(
      ['id', 'full_name', 'task_type', 'func_name', 'start_time', 'next_run_at', 'updated_at'],
      `SELECT gen_random_uuid(), 'bench.Noop', 'tasks.NormalType', 'chronograph.noop', t, t, now()
         FROM (SELECT ${nextRunAt} AS t FROM generate_series(1, $1) g) s`,
    ),
    count,
  );
}

async function ensureTemplate(app: Chronograph) {
  if (!(await app.templateSvc.find('bench.Noop')))
    await app.templateSvc.create({ fullName: 'bench.Noop', title: 'No-op', funcName: 'chronograph.noop' });
}

/**
 * Throughput: N tasks are created far in the future, the workers are started and ready, then one
 * UPDATE makes them all due at once (and NOTIFY wakes the workers). Rate = N / (last finish − due time),
 * both by the database clock.
 */
async function throughput(admin: Chronograph, label: string, runWorkers: () => Promise<() => Promise<void>>) {
  const prisma = admin.db.prisma;
  await insertNoops(admin, N, "now() + interval '1 day'");
  const stop = await runWorkers();
  const [{ due }] = (await prisma.$queryRawUnsafe<{ due: Date }[]>(
    `WITH u AS (UPDATE task_state SET next_run_at = now() + interval '300 milliseconds' WHERE status = 'SCHEDULED' RETURNING next_run_at)
     SELECT min(next_run_at) AS due FROM u`,
  )) as [{ due: Date }];
  await sleep(400);
  await prisma.$executeRawUnsafe(`SELECT pg_notify('chronograph_wake', '')`);
  for (;;) {
    const left = await prisma.task.count({ where: { status: { not: 'SUCCEEDED' }, fullName: 'bench.Noop' } });
    if (left === 0) break;
    await sleep(100);
  }
  const [row] = await prisma.$queryRawUnsafe<{ last: Date }[]>(
    `SELECT max(created_at) AS last FROM task_event WHERE run_status IS NOT NULL`,
  );
  const seconds = (row!.last.getTime() - due.getTime()) / 1000;
  console.log(`throughput ${label}: ${N} no-op tasks in ${seconds.toFixed(2)} s = ${Math.round(N / seconds)} tasks/s`);
  await stop();
  await prisma.taskEvent.deleteMany({});
  await prisma.task.deleteMany({});
}

function spawnWorkers(url: string, count: number, concurrency: number) {
  return async () => {
    const children = Array.from({ length: count }, (_, i) =>
      spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, '_schedulerWorker.ts')], {
        env: { ...process.env, DATABASE_URL: url, WORKER_ID: `bench-${i}`, CONCURRENCY: String(concurrency), LEASE_MS: '30000' },
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
    await Promise.all(
      children.map((c) => new Promise<void>((resolve) => c.stdout!.on('data', (d) => String(d).includes('ready') && resolve()))),
    );
    return async () => {
      await Promise.all(children.map((c) => new Promise((resolve) => (c.kill('SIGTERM'), c.on('exit', resolve)))));
    };
  };
}

/**
 * Due-to-start latency: one task at a time, created due now. Measured two ways: from the
 * createTimerTask call (includes creating the task: template lookup, insert, event, commit) and from
 * the moment createTimerTask returned (the task is committed; negative when it started before the
 * answer came back).
 */
async function latency(app: Chronograph) {
  const fromCall: number[] = [];
  const fromCommit: number[] = [];
  for (let i = 0; i < LATENCY_N; i++) {
    const called = Date.now();
    const task = await app.taskSvc.createTimerTask({ fullName: 'bench.Noop', startTime: new Date(called).toISOString() });
    const returned = Date.now();
    await app.taskSvc.waitForTask(task.id);
    const run = await app.db.prisma.taskRun.findFirstOrThrow({ where: { taskId: task.id } });
    fromCall.push(run.startedAt.getTime() - called);
    fromCommit.push(run.startedAt.getTime() - returned);
  }
  console.log(`due-to-start latency over ${LATENCY_N} sequential tasks, from the createTimerTask call: ${stats(fromCall)}`);
  console.log(`  from createTimerTask's return (task committed): ${stats(fromCommit)}`);
}

/** Lateness: 500 tasks spread over the next 5 s; started_at − scheduled time. */
async function lateness(app: Chronograph) {
  const base = Date.now() + 1000;
  const inputs = Array.from({ length: 500 }, (_, i) => ({ fullName: 'bench.Noop', startTime: new Date(base + i * 10).toISOString() }));
  const tasks = await app.taskSvc.createTimerTasks(inputs);
  await app.taskSvc.waitForTask(tasks[tasks.length - 1]!.id, { timeoutMs: 60_000 });
  await sleep(200);
  const runs = await app.db.prisma.taskRun.findMany({ where: { taskId: { in: tasks.map((t) => t.id) } }, include: { task: true } });
  console.log(`lateness of 500 future tasks (10 ms apart): ${stats(runs.map((r) => r.startedAt.getTime() - r.task.startTime.getTime()))}`);
}

/** One million scheduled future rows: next-due and empty-claim query times, and process memory. */
async function futureRows(app: Chronograph) {
  const prisma = app.db.prisma;
  const started = performance.now();
  for (let done = 0; done < FUTURE_N; done += 100_000) {
    const n = Math.min(100_000, FUTURE_N - done);
    await prisma.$executeRawUnsafe(
      insertTasksSql(
        ['id', 'full_name', 'task_type', 'func_name', 'start_time', 'next_run_at', 'updated_at'],
        `SELECT gen_random_uuid(), 'bench.Noop', 'tasks.NormalType', 'chronograph.noop', t, t, now()
           FROM (SELECT now() + interval '1 day' + (g || ' seconds')::interval AS t FROM generate_series(1, $1) g) s`,
      ),
      n,
    );
  }
  await prisma.$executeRawUnsafe('ANALYZE task_spec, task_state');
  const insertSeconds = (performance.now() - started) / 1000;
  const next: number[] = [];
  const claim: number[] = [];
  for (let i = 0; i < 200; i++) {
    let t = performance.now();
    await msUntilNextDue(app.db.sql, [], [], []);
    next.push(performance.now() - t);
    t = performance.now();
    await claimTasks(app.db.sql, { workerId: 'bench', limit: 50, leaseMs: 30_000, excludedQueues: [], tenantSlots: 38, held: new Map() });
    claim.push(performance.now() - t);
  }
  if (global.gc) global.gc();
  const mem = process.memoryUsage();
  console.log(`${FUTURE_N} future tasks inserted in ${insertSeconds.toFixed(1)} s`);
  console.log(`  next-due query: ${stats(next)}`);
  console.log(`  claim with nothing due: ${stats(claim)}`);
  console.log(
    `  process memory with the scheduler running: rss ${(mem.rss / 2 ** 20).toFixed(0)} MiB, heap used ${(mem.heapUsed / 2 ** 20).toFixed(0)} MiB`,
  );
}

async function benchPostgres() {
  console.log(`\n--- PostgreSQL (${new URL(ADMIN_URL).host}) ---`);
  const db = await scratchDatabase();
  try {
    const admin = await Chronograph.create({ config: config({ DATABASE_URL: db.url, SCHEDULER_ENABLED: 'false' }) });
    await ensureTemplate(admin);
    await throughput(admin, '1 worker process (concurrency 50)', spawnWorkers(db.url, 1, 50));
    await throughput(admin, '4 worker processes (concurrency 50 each)', spawnWorkers(db.url, 4, 50));
    await admin.stop();
    const app = await Chronograph.create({ config: config({ DATABASE_URL: db.url }) });
    await latency(app);
    await lateness(app);
    await futureRows(app);
    await app.stop();
  } finally {
    await db.drop();
  }
}

async function benchPglite() {
  console.log('\n--- PGlite (embedded, in-process) ---');
  const app = await Chronograph.create({ config: config({ SCHEDULER_ENABLED: 'false' }) });
  await ensureTemplate(app);
  await throughput(app, 'in-process scheduler (concurrency 50)', async () => {
    await app.scheduler.start();
    return async () => app.scheduler.stop(1000);
  });
  await app.scheduler.start();
  await latency(app);
  await lateness(app);
  await futureRows(app);
  await app.stop();
}

if (!which || which === 'postgres') await benchPostgres();
if (!which || which === 'pglite') await benchPglite();
