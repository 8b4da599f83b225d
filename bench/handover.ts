// Hand-over benchmark: `npm run bench -- handover [rounds]`. Two `npm start` processes on a scratch
// PostgreSQL database (BENCH_DATABASE_URL, default the local one), LEASE_MS 30000:
// - SIGTERM: from the signal to each task it was running starting again on the other instance;
// - forcedEnd of a task whose instance was SIGKILLed (its lease still valid for ~30 s), and of one whose
//   instance is frozen (SIGSTOP): how long the call takes.
import { setTimeout as sleep } from 'node:timers/promises';
import { Chronograph } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import type { TaskSvc } from '../src/tasks/TaskSvc.js';
import { type InstanceProcess, startInstance } from '../test/support/instanceProcess.js';
import { scratchDatabase } from './support.js';

const ROUNDS = Number(process.argv[2] ?? 3);
const TASKS = 5;

function summary(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  return `median ${s[Math.floor(s.length / 2)]!.toFixed(0)} ms, max ${s.at(-1)!.toFixed(0)} ms (${s.length} samples)`;
}

const database = await scratchDatabase();
const env = {
  DATABASE_URL: database.url,
  LEASE_MS: '30000',
  SHUTDOWN_GRACE_MS: '0',
  ABORT_GRACE_MS: '200',
  APP_DIR: 'test/fixtures/app',
  LOG_LEVEL: 'info',
};
const admin = await Chronograph.create({
  config: loadConfig({
    ...env,
    SCHEDULER_ENABLED: 'false',
    WORKER_ID: 'bench-admin',
    DATA_DIR: 'memory://',
    PORT: '0',
    LOG_LEVEL: 'silent',
  }),
});
const svc = admin.getElement('services.TaskSvc') as TaskSvc;
const prisma = admin.db.prisma;
const processes: InstanceProcess[] = [];
let n = 0;
const start = async () => {
  const p = startInstance(`h${++n}`, env);
  processes.push(p);
  await p.listening;
  return p;
};
const running = async (worker: string, count: number) => {
  for (;;) {
    if ((await prisma.task.count({ where: { status: 'RUNNING', lockedBy: worker } })) >= count) return;
    await sleep(20);
  }
};
const longTasks = () =>
  svc.createTimerTasks(
    Array.from({ length: TASKS }, () => ({
      fullName: 'tasks.DataSync',
      funcName: 'test.work',
      argDict: { ms: 600_000 },
      startTime: new Date().toISOString(),
    })),
  );

const handover: number[] = [];
const afterKill: number[] = [];
const afterFreeze: number[] = [];
try {
  for (let round = 0; round < ROUNDS; round++) {
    // SIGTERM hand-over: only `a` runs while the tasks are claimed; `b` starts before the signal.
    const a = await start();
    const tasks = await longTasks();
    await running(a.workerId, TASKS);
    const b = await start();
    const signalled = Date.now();
    a.child.kill('SIGTERM');
    for (const task of tasks) {
      for (;;) {
        const run = await prisma.taskRun.findFirst({ where: { taskId: task.id, workerId: b.workerId } });
        if (run) {
          handover.push(run.startedAt.getTime() - signalled);
          break;
        }
        await sleep(5);
      }
    }
    await a.exited;
    // forcedEnd against a SIGKILLed holder, then against a frozen one: `b` holds the tasks now.
    const victims = await prisma.task.findMany({ where: { id: { in: tasks.map((t) => t.id) } } });
    b.child.kill('SIGSTOP');
    for (const task of victims.slice(0, 2)) {
      const t0 = performance.now();
      await svc.forcedEnd(task.id, 'bench: instance frozen');
      afterFreeze.push(performance.now() - t0);
    }
    b.child.kill('SIGKILL');
    await b.exited;
    for (const task of victims.slice(2)) {
      const t0 = performance.now();
      await svc.forcedEnd(task.id, 'bench: instance killed');
      afterKill.push(performance.now() - t0);
    }
  }
  console.log(`SIGTERM → the other instance runs each task (SHUTDOWN_GRACE_MS 0): ${summary(handover)}`);
  console.log(`forcedEnd, instance SIGKILLed with its lease still valid: ${summary(afterKill)}`);
  console.log(`forcedEnd, instance frozen (SIGSTOP): ${summary(afterFreeze)}`);
} finally {
  for (const p of processes) p.child.kill('SIGKILL');
  await admin.stop();
  await database.drop();
}
