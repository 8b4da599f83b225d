// Date-field benchmark: `npm run bench -- dateFields [pglite|postgres]` (both when omitted).
// PostgreSQL uses BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test; a scratch
// database is created and dropped). Sizes: BENCH_HOOK_RECORDS (records per hook pass, default 2000),
// BENCH_IMPORT (records in the bulk import, default 100000), BENCH_HOOK_CONCURRENCY (hooks in flight in
// the concurrent pass on PostgreSQL, default 8).
//
// Hook throughput goes through TaskSvc.saveDateFieldTask, one record per call (each call is its own
// transaction, as an afterSave hook would be): the first save of each record (creates its task), a save
// whose date did not change (a no-op) and a save that moves the date (reschedules the same task).
// The bulk import is ModelSvc.importRecords: records of a low-code model and their tasks in one
// transaction. The scheduler is off: this measures the layer, not task execution.
import { Chronograph } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { scratchDatabase } from './support.js';

const HOOK_RECORDS = Number(process.env.BENCH_HOOK_RECORDS ?? 2000);
const IMPORT = Number(process.env.BENCH_IMPORT ?? 100_000);
const CONCURRENCY = Number(process.env.BENCH_HOOK_CONCURRENCY ?? 8);
const which = process.argv[2];

const rate = (n: number, ms: number) =>
  `${Math.round((n / ms) * 1000).toLocaleString('en-US')} records/s (${n} in ${(ms / 1000).toFixed(2)} s)`;

/** Runs `fn` for 0..n-1 with at most `width` calls in flight; resolves with the elapsed ms. */
async function timed(n: number, width: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
  return performance.now() - started;
}

async function hooks(app: Chronograph, width: number) {
  const taskSvc = app.getElement('services.TaskSvc') as TaskSvc;
  const model = `models.Hook${width}`;
  await app.templateSvc.create({
    fullName: `bench.HookReminder${width}`,
    title: 'Reminder',
    repeatType: 'DATE_FIELD',
    funcName: 'chronograph.noop',
    dateField: {
      model,
      field: 'expireDate',
      offset: { amount: 3, unit: 'DAYS', direction: 'BEFORE' },
      timeOfDay: '09:00',
      condition: { status: 'active' },
    },
  });
  const day = (i: number, shift = 0) => new Date(Date.UTC(2031, 0, 1 + (i % 365) + shift)).toISOString().slice(0, 10);
  const save = (i: number, shift: number) =>
    taskSvc.saveDateFieldTask({ model, postData: { id: `r-${i}`, status: 'active', expireDate: day(i, shift) } });
  const label = width === 1 ? 'one hook at a time' : `${width} hooks in flight`;
  console.log(`  hooks, ${label}:`);
  console.log(`    first save (creates the task)   ${rate(HOOK_RECORDS, await timed(HOOK_RECORDS, width, (i) => save(i, 0)))}`);
  console.log(`    same date again (no-op)         ${rate(HOOK_RECORDS, await timed(HOOK_RECORDS, width, (i) => save(i, 0)))}`);
  console.log(`    date changed (reschedule)       ${rate(HOOK_RECORDS, await timed(HOOK_RECORDS, width, (i) => save(i, 1)))}`);
  const live = await app.db.prisma.task.count({ where: { sourceModel: model, status: 'SCHEDULED' } });
  const all = await app.db.prisma.task.count({ where: { sourceModel: model } });
  console.log(`    tasks: ${live} live, ${all} in all (one per record)`);
}

async function bulkImport(app: Chronograph) {
  await app.modelSvc.saveModel({
    name: 'models.Contract',
    fields: [
      { name: 'title', type: 'TEXT' },
      { name: 'status', type: 'TEXT' },
      { name: 'expireDate', type: 'DATE' },
    ],
  });
  await app.templateSvc.create({
    fullName: 'bench.ContractReminder',
    title: 'Contract reminder',
    repeatType: 'DATE_FIELD',
    funcName: 'chronograph.noop',
    dateField: {
      model: 'models.Contract',
      field: 'expireDate',
      offset: { amount: 3, unit: 'DAYS', direction: 'BEFORE' },
      timeOfDay: '09:00',
    },
  });
  // Every tenth record has no date, so not every record gets a task.
  const records = Array.from({ length: IMPORT }, (_, i) => ({
    title: `Contract ${i}`,
    status: 'active',
    expireDate: i % 10 === 9 ? null : new Date(Date.UTC(2031, 0, 1 + (i % 1000))).toISOString().slice(0, 10),
  }));
  const heapBefore = process.memoryUsage().heapUsed;
  const started = performance.now();
  const { count, dateFields } = await app.modelSvc.importRecords('models.Contract', records);
  const ms = performance.now() - started;
  const tasks = await app.db.prisma.task.count({ where: { sourceModel: 'models.Contract', status: 'SCHEDULED' } });
  console.log(`  bulk import into a low-code model with one date-field template:`);
  console.log(`    ${rate(count, ms)}; ${dateFields.created} tasks created, ${tasks} live tasks in the database`);
  console.log(`    heap grew by ${((process.memoryUsage().heapUsed - heapBefore) / 1e6).toFixed(0)} MB during the import`);
  const reconcileStarted = performance.now();
  const reconciled = await app.dateFieldSvc.reconcile('models.Contract');
  console.log(
    `    reconcile afterwards: ${rate(count, performance.now() - reconcileStarted)}; changed ${reconciled.created + reconciled.rescheduled + reconciled.cancelled}, unchanged ${reconciled.unchanged}`,
  );
}

async function run(kind: 'pglite' | 'postgres') {
  const scratch = kind === 'postgres' ? await scratchDatabase() : undefined;
  const app = await Chronograph.create({
    config: loadConfig({
      APP_DIR: '/nonexistent',
      LOG_LEVEL: 'warn',
      DATA_DIR: 'memory://',
      SCHEDULER_ENABLED: 'false',
      DATABASE_URL: scratch?.url,
    }),
  });
  try {
    console.log(`\n${kind}:`);
    await hooks(app, 1);
    if (kind === 'postgres') await hooks(app, CONCURRENCY);
    await bulkImport(app);
  } finally {
    await app.stop();
    await scratch?.drop();
  }
}

for (const kind of which ? [which as 'pglite' | 'postgres'] : (['pglite', 'postgres'] as const)) await run(kind);
