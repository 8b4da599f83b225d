import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { Chronograph } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { TaskSvc, TimerTaskInput } from '../../src/tasks/TaskSvc.js';
import { type InstanceProcess, startInstance } from './instanceProcess.js';

/**
 * A chaos run (issue 11): several real `npm start` processes on one PostgreSQL database, a steady stream
 * of one-off tasks and per-second crons, poison tasks (process.exit), memory-hungry thread tasks and
 * unstorable results in the mix, while random instances are SIGKILLed, frozen (SIGSTOP longer than the
 * lease, then SIGCONT) or stopped with SIGTERM, and restarted. Counted from the handlers' own execution
 * log (chaos_log, written by test/fixtures/chaosApp), not from Chronograph's run records.
 *
 * Used by test/chaos.test.ts (about a minute, in the suite) and bench/chaos.ts (`npm run chaos --
 * --minutes 10`, prints the figures).
 */
export interface ChaosOptions {
  databaseUrl: string;
  durationMs: number;
  instances: number;
  leaseMs: number;
  /** One-off tasks created per second. */
  rate: number;
  crons: number;
  seed: number;
  log?: (line: string) => void;
}

export interface ChaosAction {
  kind: 'SIGKILL' | 'SIGSTOP' | 'SIGTERM';
  worker: string;
  at: number;
  /** Runs the instance held then. */
  held: number;
  /** Other instances serving (started, not frozen) at that moment: with none, nobody can take over yet. */
  others: number;
  /** Until the last of them was taken up again (recovered / handed over and running elsewhere), in ms; null if none. */
  recoveryMs: number | null;
  frozenMs?: number;
}

export interface ChaosReport {
  durationMs: number;
  oneOffs: number;
  cronRuns: number;
  /** Occurrences with no lease-valid entry in the handlers' log. */
  lost: string[];
  duplicates: {
    /** The earlier attempt wrote, then its worker stopped before recording it (at-least-once). */
    workerStoppedAfterWrite: number;
    /** Written when the lease was no longer valid. */
    writtenWithoutLease: number;
    /** Two lease-valid writes whose attempts overlapped in time: must never happen. */
    bothHeldValidLease: number;
  };
  /** Tasks still RUNNING after everything settled. */
  leftRunning: number;
  poison: { id: string; status: string; lastError: string | null }[];
  hogs: { id: string; status: string; runStatuses: string[] }[];
  unstorable: { id: string; status: string; errors: (string | null)[] }[];
  actions: ChaosAction[];
  /** Instances that exited on their own (poison tasks), by worker. */
  poisonDeaths: string[];
  errors: string[];
}

/** Deterministic choices from a seed (mulberry32), so a failing run can be replayed. */
function random(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => {});
  const rnd = random(options.seed);
  const pick = <T>(items: T[]) => items[Math.floor(rnd() * items.length)]!;
  const env = {
    DATABASE_URL: options.databaseUrl,
    LEASE_MS: String(options.leaseMs),
    CONCURRENCY: '20',
    APP_DIR: 'test/fixtures/chaosApp',
    LOG_LEVEL: 'info',
    ABORT_GRACE_MS: '500',
    SHUTDOWN_GRACE_MS: '300',
  };
  const admin = await Chronograph.create({
    config: loadConfig({
      ...env,
      SCHEDULER_ENABLED: 'false',
      WORKER_ID: 'chaos-admin',
      DATA_DIR: 'memory://',
      PORT: '0',
      LOG_LEVEL: 'silent',
    }),
  });
  const db = new pg.Client({ connectionString: options.databaseUrl });
  await db.connect();
  const report: ChaosReport = {
    durationMs: options.durationMs,
    oneOffs: 0,
    cronRuns: 0,
    lost: [],
    duplicates: { workerStoppedAfterWrite: 0, writtenWithoutLease: 0, bothHeldValidLease: 0 },
    leftRunning: 0,
    poison: [],
    hogs: [],
    unstorable: [],
    actions: [],
    poisonDeaths: [],
    errors: [],
  };
  const live = new Map<string, InstanceProcess>();
  /** Instances that have started serving: only those are picked, so a restart gets to run before it is hit again. */
  const up = new Set<string>();
  const frozen = new Set<string>();
  let generation = 0;
  const launch = (base: string) => {
    const workerId = `${base}.${++generation}`;
    const p = startInstance(workerId, { ...env, WORKER_ID: workerId });
    live.set(workerId, p);
    p.listening.then(
      () => up.add(workerId),
      () => {},
    );
    void p.exited.then((code) => {
      up.delete(workerId);
      if (live.get(workerId) !== p) return;
      live.delete(workerId);
      // Exit code 13 is the poison handler's: an instance that died of a poison task is restarted too.
      if (code === 13) report.poisonDeaths.push(workerId);
      if (!stopping) setTimeout(() => !stopping && launch(base), 300);
    });
    return p;
  };
  let stopping = false;
  try {
    await db.query(`CREATE TABLE IF NOT EXISTS chaos_log (
      id bigserial PRIMARY KEY, task_id uuid NOT NULL, occurrence int NOT NULL, run_id uuid NOT NULL, attempt int NOT NULL,
      worker text NOT NULL, started_at timestamptz NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp(), lease_valid boolean NOT NULL)`);
    const bases = Array.from({ length: options.instances }, (_, i) => `w${i + 1}`);
    for (const base of bases) launch(base);
    await Promise.all([...live.values()].map((p) => p.listening));
    log(`${options.instances} instances up`);
    const svc = admin.getElement('services.TaskSvc') as TaskSvc;
    const job = (input: Partial<TimerTaskInput>): TimerTaskInput => ({
      fullName: 'chaos.Job',
      startTime: new Date(Date.now() + rnd() * 2000).toISOString(),
      ...input,
    });
    const seconds = Math.max(10, Math.round(options.durationMs / 1000));
    const crons = await svc.createTimerTasks(
      Array.from({ length: options.crons }, () =>
        job({ repeatType: 'CRON', cronExpression: '* * * * * *', maxRuns: seconds, argDict: { ms: 200 } }),
      ),
    );
    const special: { poison: string[]; hogs: string[]; unstorable: string[] } = { poison: [], hogs: [], unstorable: [] };
    const oneOffs: string[] = [];
    const started = Date.now();
    const end = started + options.durationMs;

    // The workload: a steady stream of one-offs, and the bad tasks at fixed points of the run.
    const workload = (async () => {
      let second = 0;
      while (Date.now() < end) {
        const batch = Array.from({ length: options.rate }, () => job({ argDict: { ms: 50 + Math.floor(rnd() * 1000) } }));
        const created = await svc.createTimerTasks(batch);
        oneOffs.push(...created.map((t) => t.id));
        const phase = second % 30;
        if (phase === 3) special.poison.push((await svc.createTimerTask(job({ funcName: 'chaos.poison', maxAttempts: 2 }))).id);
        // Three attempts each, so that an instance killed under one of them does not decide how it ends.
        if (phase === 7) special.hogs.push((await svc.createTimerTask(job({ funcName: 'chaos.hog', maxAttempts: 3 }))).id);
        if (phase === 11)
          special.unstorable.push(
            (
              await svc.createTimerTask(
                job({ funcName: 'chaos.unstorable', argDict: { kind: pick(['bigint', 'circular']) }, maxAttempts: 3 }),
              )
            ).id,
          );
        second++;
        await sleep(1000);
      }
    })();

    // The monkey: every few seconds, one running (not frozen) instance is killed, frozen or stopped.
    const monkey = (async () => {
      await sleep(3000);
      while (Date.now() < end - 3000) {
        await sleep(3000 + rnd() * 4000);
        const candidates = [...up].filter((w) => !frozen.has(w));
        if (candidates.length < 2) continue; // keep one instance working
        const worker = pick(candidates);
        const p = live.get(worker)!;
        const held = await heldBy(db, worker);
        // The first three are one of each, so even a short run exercises every kind.
        const order = ['SIGKILL', 'SIGSTOP', 'SIGTERM'] as const;
        const kind =
          report.actions.length < order.length
            ? order[report.actions.length]!
            : pick(['SIGKILL', 'SIGKILL', 'SIGSTOP', 'SIGTERM'] as const);
        const others = candidates.filter((w) => w !== worker).length;
        const action: ChaosAction = { kind, worker, at: Date.now(), held, others, recoveryMs: null };
        report.actions.push(action);
        log(`${kind} ${worker} (holding ${held})`);
        if (kind === 'SIGSTOP') {
          frozen.add(worker);
          p.child.kill('SIGSTOP');
          const frozenMs = Math.round(options.leaseMs * (1.5 + rnd()));
          action.frozenMs = frozenMs;
          void sleep(frozenMs).then(() => {
            p.child.kill('SIGCONT');
            frozen.delete(worker);
          });
        } else {
          p.child.kill(kind);
        }
      }
    })();

    await Promise.all([workload, monkey]);
    for (const worker of frozen) live.get(worker)?.child.kill('SIGCONT');
    log(`workload over after ${Math.round((Date.now() - started) / 1000)} s; waiting for every task to finish`);

    const all = [...oneOffs, ...crons.map((t) => t.id), ...special.poison, ...special.hogs, ...special.unstorable];
    const deadline = Date.now() + 120_000 + options.leaseMs * 10;
    for (;;) {
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM task WHERE id = ANY($1::uuid[]) AND status NOT IN ('SUCCEEDED', 'FAILED', 'FORCED_END', 'CANCELLED')`,
        [all],
      );
      if (rows[0]!.n === 0) break;
      if (Date.now() > deadline) {
        report.errors.push(`${rows[0]!.n} tasks did not finish`);
        break;
      }
      await sleep(500);
    }
    await sleep(options.leaseMs);
    stopping = true;
    report.leftRunning = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM task WHERE status = 'RUNNING'`)).rows[0]!.n;

    await analyse(db, report, { oneOffs, crons: crons.map((t) => t.id), ...special, seconds });
    return report;
  } finally {
    stopping = true;
    for (const p of live.values()) {
      p.child.kill('SIGCONT');
      p.child.kill('SIGTERM');
    }
    await Promise.all([...live.values()].map((p) => Promise.race([p.exited, sleep(10_000).then(() => p.child.kill('SIGKILL'))])));
    await db.end();
    await admin.stop();
  }
}

async function heldBy(db: pg.Client, worker: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM task WHERE status = 'RUNNING' AND locked_by = $1`, [
    worker,
  ]);
  return rows[0]!.n;
}

async function analyse(
  db: pg.Client,
  report: ChaosReport,
  tasks: { oneOffs: string[]; crons: string[]; poison: string[]; hogs: string[]; unstorable: string[]; seconds: number },
): Promise<void> {
  report.oneOffs = tasks.oneOffs.length;
  const status = async (ids: string[]) =>
    (
      await db.query<{ id: string; status: string; lastError: string | null; runCount: number; maxRuns: number | null }>(
        `SELECT id, status::text, last_error AS "lastError", run_count AS "runCount", max_runs AS "maxRuns" FROM task WHERE id = ANY($1::uuid[])`,
        [ids],
      )
    ).rows;
  const runsOf = async (ids: string[]) =>
    (
      await db.query<{ taskId: string; status: string; error: string | null }>(
        `SELECT task_id AS "taskId", status::text, error FROM task_run WHERE task_id = ANY($1::uuid[]) ORDER BY started_at`,
        [ids],
      )
    ).rows;

  // Every occurrence must appear in the handlers' own log with a valid lease.
  const { rows: entries } = await db.query<{
    taskId: string;
    occurrence: number;
    runId: string;
    worker: string;
    startedAt: Date;
    writtenAt: Date;
    leaseValid: boolean;
  }>(
    `SELECT task_id AS "taskId", occurrence, run_id AS "runId", worker, started_at AS "startedAt", written_at AS "writtenAt", lease_valid AS "leaseValid" FROM chaos_log ORDER BY written_at`,
  );
  const byOccurrence = new Map<string, typeof entries>();
  for (const e of entries) byOccurrence.set(`${e.taskId}#${e.occurrence}`, [...(byOccurrence.get(`${e.taskId}#${e.occurrence}`) ?? []), e]);
  const expected: string[] = tasks.oneOffs.map((id) => `${id}#1`);
  for (const cron of await status(tasks.crons)) {
    for (let k = 1; k <= (cron.maxRuns ?? 0); k++) expected.push(`${cron.id}#${k}`);
    report.cronRuns += cron.runCount;
    if (cron.status !== 'SUCCEEDED') report.errors.push(`cron ${cron.id} ended ${cron.status} after ${cron.runCount} runs`);
  }
  for (const key of expected) if (!(byOccurrence.get(key) ?? []).some((e) => e.leaseValid)) report.lost.push(key);
  for (const task of await status(tasks.oneOffs))
    if (task.status !== 'SUCCEEDED') report.errors.push(`one-off ${task.id} ended ${task.status}: ${task.lastError}`);

  const runStatus = new Map(
    (
      await db.query<{ id: string; status: string }>(`SELECT id, status::text FROM task_run WHERE id = ANY($1::uuid[])`, [
        entries.map((e) => e.runId),
      ])
    ).rows.map((r) => [r.id, r.status]),
  );
  for (const list of byOccurrence.values()) {
    for (const [i, e] of list.entries()) {
      if (!e.leaseValid) {
        report.duplicates.writtenWithoutLease++;
        continue;
      }
      const earlier = list.slice(0, i).filter((x) => x.leaseValid);
      if (earlier.length === 0) continue;
      const overlapping = earlier.some((x) => x.writtenAt > e.startedAt && x.runId !== e.runId);
      if (overlapping) report.duplicates.bothHeldValidLease++;
      else if (earlier.every((x) => runStatus.get(x.runId) === 'ABANDONED')) report.duplicates.workerStoppedAfterWrite++;
      else report.duplicates.bothHeldValidLease++;
    }
  }

  report.poison = (await status(tasks.poison)).map((t) => ({ id: t.id, status: t.status, lastError: t.lastError }));
  const hogRuns = await runsOf(tasks.hogs);
  report.hogs = (await status(tasks.hogs)).map((t) => ({
    id: t.id,
    status: t.status,
    runStatuses: hogRuns.filter((r) => r.taskId === t.id).map((r) => r.status),
  }));
  const badRuns = await runsOf(tasks.unstorable);
  report.unstorable = (await status(tasks.unstorable)).map((t) => ({
    id: t.id,
    status: t.status,
    errors: badRuns.filter((r) => r.taskId === t.id).map((r) => r.error),
  }));

  // Recovery after each action: until every run the instance held was taken up again by another worker.
  for (const action of report.actions) {
    if (action.held === 0) continue;
    const { rows } = await db.query<{ ms: number | null }>(
      `SELECT EXTRACT(EPOCH FROM (max(next_start) - to_timestamp($2 / 1000.0))) * 1000 AS ms FROM (
         SELECT (SELECT min(n.started_at) FROM task_run n WHERE n.task_id = r.task_id AND n.started_at > r.started_at) AS next_start
           FROM task_run r WHERE r.worker_id = $1 AND r.status = 'ABANDONED'
            AND r.started_at < to_timestamp($2 / 1000.0) AND r.finished_at >= to_timestamp($2 / 1000.0)
       ) x`,
      [action.worker, action.at],
    );
    action.recoveryMs = rows[0]?.ms == null ? null : Math.round(Number(rows[0].ms));
  }
}

/** The figures, as `npm run chaos` prints them. */
export function formatChaosReport(r: ChaosReport): string {
  const lines = [
    `duration ${Math.round(r.durationMs / 1000)} s: ${r.oneOffs} one-off tasks, ${r.cronRuns} cron runs`,
    `lost occurrences: ${r.lost.length}${r.lost.length ? ` (${r.lost.slice(0, 5).join(', ')}…)` : ''}`,
    `duplicates: ${r.duplicates.workerStoppedAfterWrite} after a worker stopped between its side effect and recording it (at-least-once), ` +
      `${r.duplicates.writtenWithoutLease} written without a valid lease, ${r.duplicates.bothHeldValidLease} by two attempts that both held a valid lease`,
    `tasks left RUNNING: ${r.leftRunning}`,
    `poison tasks: ${r.poison.map((p) => `${p.status} (${p.lastError})`).join('; ')}; instances they took down: ${r.poisonDeaths.length}`,
    `memory hogs: ${r.hogs.map((h) => `${h.status} [${h.runStatuses.join(', ')}]`).join('; ')}`,
    `unstorable results: ${r.unstorable.map((u) => `${u.status} (${u.errors[0]?.slice(0, 40)}…)`).join('; ')}`,
    ...recoverySummary(r.actions),
    'actions (recovery = until the last task the instance held ran again elsewhere):',
    ...r.actions.map(
      (a) =>
        `  ${a.kind.padEnd(7)} ${a.worker.padEnd(8)} held ${String(a.held).padStart(2)}, ${a.others} other(s) serving${a.frozenMs ? `, frozen ${a.frozenMs} ms` : ''}: ` +
        `recovery ${a.recoveryMs == null ? '-' : `${a.recoveryMs} ms`}`,
    ),
  ];
  if (r.errors.length) lines.push(`errors: ${r.errors.join('; ')}`);
  return lines.join('\n');
}

/** Recovery times by kind of action, over the actions that left held tasks behind. */
function recoverySummary(actions: ChaosAction[]): string[] {
  return (['SIGKILL', 'SIGSTOP', 'SIGTERM'] as const).map((kind) => {
    const times = actions
      .filter((a) => a.kind === kind && a.recoveryMs != null)
      .map((a) => a.recoveryMs!)
      .sort((a, b) => a - b);
    if (times.length === 0) return `${kind}: ${actions.filter((a) => a.kind === kind).length} actions, none left tasks behind`;
    const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
    return `${kind}: ${actions.filter((a) => a.kind === kind).length} actions, ${times.length} left tasks behind; recovery median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${times.at(-1)} ms`;
  });
}
