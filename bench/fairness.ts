// Fair scheduling: `npm run bench -- fairness [postgres|pglite]`. Tenant A holds BENCH_HOG_TASKS (200)
// due, long-running tasks at the top priority — more than every slot of the instance; tenant B then
// creates due-now tasks one at a time (BENCH_PROBES, 100). Prints how long B's tasks waited: from the
// task's insert to its claim, both by the database's clock. Without fair claims B would wait for one of
// A's tasks to end (BENCH_HOG_MS, 10 minutes); with them it waits at most one claim cycle. A second
// part does the same with A's tasks limited by maxConcurrentRuns (the claim's cross-instance path).
import { Chronograph } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { scratchDatabase } from './support.js';

const HOG_TASKS = Number(process.env.BENCH_HOG_TASKS ?? 200);
const PROBES = Number(process.env.BENCH_PROBES ?? 100);
const HOG_MS = Number(process.env.BENCH_HOG_MS ?? 600_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 10);
const backend = process.argv[2] === 'pglite' ? 'pglite' : 'postgres';

function stats(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return `p50 ${at(0.5).toFixed(1)} ms, p99 ${at(0.99).toFixed(1)} ms, max ${s[s.length - 1]!.toFixed(1)} ms`;
}

async function part(title: string, hogQuota: number | null) {
  const database = backend === 'postgres' ? await scratchDatabase() : undefined;
  const config = loadConfig({
    APP_DIR: '/nonexistent',
    LOG_LEVEL: 'warn',
    DATA_DIR: 'memory://',
    DATABASE_URL: database?.url,
    CONCURRENCY: String(CONCURRENCY),
  });
  const app = await Chronograph.create({ config });
  try {
    for (const tenant of ['hog', 'probe']) {
      await app.templateSvc.forTenant(tenant).create({ fullName: 'bench.Sleep', title: 'Sleep', funcName: 'chronograph.sleep' });
    }
    if (hogQuota != null) await app.tenantSvc.setQuota('hog', { maxConcurrentRuns: hogQuota });
    const hog = app.taskSvc.forTenant('hog');
    const probe = app.taskSvc.forTenant('probe');
    const now = () => new Date().toISOString();
    // A multi-tenant installation: B already has a task (next year's), as tenants of a platform do.
    await probe.createTimerTask({ fullName: 'bench.Sleep', startTime: new Date(Date.now() + 365 * 86_400_000).toISOString() });
    await hog.createTimerTasks(
      Array.from({ length: HOG_TASKS }, () => ({ fullName: 'bench.Sleep', startTime: now(), priority: 1000, argDict: { ms: HOG_MS } })),
    );
    const prisma = app.db.prisma;
    const expected = Math.min(hogQuota ?? Infinity, Math.max(1, Math.floor(CONCURRENCY * config.TENANT_SLOT_SHARE)));
    for (;;) {
      const running = await prisma.task.count({ where: { tenantId: 'hog', status: 'RUNNING' } });
      if (running >= expected) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const waits: number[] = [];
    for (let i = 0; i < PROBES; i++) {
      const task = await probe.createTimerTask({ fullName: 'bench.Sleep', startTime: now(), priority: -1000, argDict: { ms: 0 } });
      await probe.waitForTask(task.id, { timeoutMs: 60_000 });
      const [row] = await prisma.$queryRawUnsafe<{ ms: number }[]>(
        `SELECT EXTRACT(EPOCH FROM (r.started_at - t.created_at)) * 1000 AS ms FROM task t JOIN task_run r ON r.task_id = t.id WHERE t.id = $1::uuid`,
        task.id,
      );
      waits.push(Number(row!.ms));
    }
    const hogRunning = await prisma.task.count({ where: { tenantId: 'hog', status: 'RUNNING' } });
    const hogDue = await prisma.task.count({ where: { tenantId: 'hog', status: 'SCHEDULED' } });
    console.log(`${title}`);
    console.log(
      `  A: ${hogRunning} running (${HOG_MS / 1000} s each), ${hogDue} more due at priority 1000; CONCURRENCY ${CONCURRENCY}, TENANT_SLOT_SHARE ${config.TENANT_SLOT_SHARE}`,
    );
    console.log(`  B's due-now task, insert → claim (database clock), ${PROBES} tasks one after another: ${stats(waits)}`);
  } finally {
    await app.stop();
    await database?.drop();
  }
}

async function main() {
  console.log(`fairness on ${backend}`);
  await part('A without quota (fair claim: tenants take turns, A holds at most its share of the slots)', null);
  await part('A with maxConcurrentRuns 5 (the capped claim: advisory lock, count, claim)', 5);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
