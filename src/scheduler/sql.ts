import type { PrismaClient } from '../generated/prisma/client.js';
import type { Prisma } from '../generated/prisma/client.js';
import type { MisfirePolicy, OverlapPolicy, RepeatType, TaskStatus } from '../generated/prisma/client.js';
import { TASK_EVENT_CHANNEL, WAKE_CHANNEL } from '../tasks/statusMachine.js';

/**
 * The scheduler's SQL: one exported function per statement, each a single round trip. Prisma cannot
 * express `FOR UPDATE SKIP LOCKED` or data-modifying CTEs, which is why these are raw.
 *
 * Every statement that changes a task's status also inserts its TaskEvent rows and NOTIFYs them in the
 * same statement (so in the same transaction), exactly as src/tasks/statusMachine.ts does for the API.
 */
type Db = PrismaClient | Prisma.TransactionClient;

/** A task as the scheduler claimed it, with the run row created for this attempt. */
export interface ClaimedTask {
  id: string;
  tenantId: string;
  fullName: string;
  taskType: string;
  funcName: string;
  argDict: Record<string, unknown>;
  repeatType: RepeatType;
  cronExpression: string | null;
  intervalSeconds: number | null;
  timezone: string;
  endTime: Date | null;
  maxRuns: number | null;
  runCount: number;
  nextRunAt: Date;
  priority: number;
  queue: string;
  attempts: number;
  maxAttempts: number;
  timeoutMs: number | null;
  misfirePolicy: MisfirePolicy;
  misfireToleranceMs: number;
  overlapPolicy: OverlapPolicy;
  retryBackoffMs: number;
  cancelRequested: boolean;
  prevStatus: TaskStatus;
  runId: string;
  recovered: boolean;
  /** Database time at the claim; lateness is measured against it, not against this process' clock. */
  claimedAt: Date;
}

const NOTIFY_EVENTS = `SELECT count(pg_notify('${TASK_EVENT_CHANNEL}', json_build_object('id', e.id::text, 'taskId', e.task_id, 'tenantId', e.tenant_id)::text)) AS n FROM events e`;

const CLAIMED_COLUMNS = `
  c.id, c.tenant_id AS "tenantId", c.full_name AS "fullName", c.task_type AS "taskType", c.func_name AS "funcName",
  c.arg_dict AS "argDict", c.repeat_type::text AS "repeatType", c.cron_expression AS "cronExpression",
  c.interval_seconds AS "intervalSeconds", c.timezone, c.end_time AS "endTime", c.max_runs AS "maxRuns",
  c.run_count AS "runCount", c.next_run_at AS "nextRunAt", c.priority, c.queue, c.attempts, c.max_attempts AS "maxAttempts",
  c.timeout_ms AS "timeoutMs", c.misfire_policy::text AS "misfirePolicy", c.misfire_tolerance_ms AS "misfireToleranceMs",
  c.overlap_policy::text AS "overlapPolicy", c.retry_backoff_ms AS "retryBackoffMs",
  (c.cancel_requested_at IS NOT NULL) AS "cancelRequested", c.prev_status::text AS "prevStatus",
  r.id AS "runId", r.recovered, now() AS "claimedAt"`;

/**
 * Claims up to `limit` due tasks for `workerId`: runnable rows in priority then due-time order (the
 * partial index task_due_idx serves exactly this order), skipping rows another instance is claiming
 * (SKIP LOCKED, so instances never wait on each other), then marks them RUNNING under a lease, counts the
 * attempt, and creates their run and event rows — all in one statement. This is graphile-worker's
 * get_job pattern; one statement instead of an interactive transaction saves the round trips that
 * dominate no-op throughput.
 *
 * SKIP-policy tasks that are later than their tolerance are left for skipMisfiredTasks.
 */
export async function claimTasks(db: Db, workerId: string, limit: number, leaseMs: number, excludedQueues: string[]): Promise<ClaimedTask[]> {
  return db.$queryRawUnsafe<ClaimedTask[]>(
    `WITH due AS (
       SELECT id, status AS prev_status FROM task
        WHERE status IN ('SCHEDULED', 'RETRYING') AND next_run_at <= now()
          AND queue <> ALL($4::text[])
          AND NOT (overlap_policy = 'ALLOW' AND repeat_type IN ('CRON', 'INTERVAL'))
          AND NOT (misfire_policy = 'SKIP' AND attempts = 0 AND next_run_at < now() - misfire_tolerance_ms * interval '1 millisecond')
        ORDER BY priority DESC, next_run_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
     ),
     c AS (
       UPDATE task t SET status = 'RUNNING', locked_by = $1, locked_until = now() + $3::int * interval '1 millisecond',
              attempts = t.attempts + 1, updated_at = now()
         FROM due WHERE t.id = due.id
       RETURNING t.*, due.prev_status
     ),
     r AS (
       INSERT INTO task_run (id, tenant_id, task_id, attempt, status, worker_id, recovered, started_at)
       SELECT gen_random_uuid(), c.tenant_id, c.id, c.attempts, 'RUNNING', $1, false, now() FROM c
       RETURNING id, task_id, recovered
     ),
     events AS (
       INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, next_run_at, message)
       SELECT c.tenant_id, c.id, r.id, 'STATUS_CHANGED', c.prev_status, 'RUNNING', c.next_run_at, 'attempt ' || c.attempts || ' on ' || $1
         FROM c JOIN r ON r.task_id = c.id
       RETURNING id, task_id, tenant_id
     ),
     notified AS (${NOTIFY_EVENTS})
     SELECT ${CLAIMED_COLUMNS} FROM c JOIN r ON r.task_id = c.id CROSS JOIN notified`,
    workerId,
    limit,
    leaseMs,
    excludedQueues,
  );
}

/**
 * Takes over RUNNING tasks whose lease expired (their instance died or lost the database): the old run
 * is closed as ABANDONED, a new attempt starts under this worker's lease, recorded as a RECOVERED event
 * and a run with `recovered = true`.
 */
export async function recoverExpiredTasks(db: Db, workerId: string, limit: number, leaseMs: number): Promise<ClaimedTask[]> {
  return db.$queryRawUnsafe<ClaimedTask[]>(
    `WITH due AS (
       SELECT id, status AS prev_status, locked_by AS prev_worker FROM task
        WHERE status = 'RUNNING' AND locked_until < now()
        ORDER BY locked_until
        LIMIT $2
        FOR UPDATE SKIP LOCKED
     ),
     abandoned AS (
       UPDATE task_run SET status = 'ABANDONED', finished_at = now(),
              error = 'worker ' || worker_id || ' lost its lease (crashed or disconnected); the task was recovered'
        WHERE task_id IN (SELECT id FROM due) AND status = 'RUNNING'
       RETURNING id
     ),
     c AS (
       UPDATE task t SET locked_by = $1, locked_until = now() + $3::int * interval '1 millisecond',
              attempts = t.attempts + 1, updated_at = now()
         FROM due WHERE t.id = due.id
       RETURNING t.*, due.prev_status, due.prev_worker
     ),
     r AS (
       INSERT INTO task_run (id, tenant_id, task_id, attempt, status, worker_id, recovered, started_at)
       SELECT gen_random_uuid(), c.tenant_id, c.id, c.attempts, 'RUNNING', $1, true, now() FROM c
       RETURNING id, task_id, recovered
     ),
     events AS (
       INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, next_run_at, message)
       SELECT c.tenant_id, c.id, r.id, 'RECOVERED', 'RUNNING', 'RUNNING', c.next_run_at,
              'recovered from ' || coalesce(c.prev_worker, 'unknown worker') || ' by ' || $1 || ' (attempt ' || c.attempts || ')'
         FROM c JOIN r ON r.task_id = c.id
       RETURNING id, task_id, tenant_id
     ),
     notified AS (${NOTIFY_EVENTS})
     SELECT ${CLAIMED_COLUMNS} FROM c JOIN r ON r.task_id = c.id CROSS JOIN notified CROSS JOIN (SELECT count(*) FROM abandoned) a`,
    workerId,
    limit,
    leaseMs,
  );
}

export interface Completion {
  taskId: string;
  runId: string;
  workerId: string;
  status: TaskStatus;
  nextRunAt: Date | null;
  attempts: number;
  runCountDelta: number;
  lastError: string | null;
  runStatus: 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'CANCELLED' | 'ABANDONED';
  durationMs: number;
  result: unknown;
  error: string | null;
  errorStack: string | null;
  message: string;
  logs: { level: string; message: string; data: unknown; createdAt: Date }[];
}

/**
 * Records the end of many attempts at once: task status, run rows, logs, events and NOTIFYs in one
 * statement. Each completion only applies while its worker still holds the task (status RUNNING,
 * locked_by = worker): a result that arrives after the task was force-ended or recovered elsewhere is
 * discarded. Returns the ids of the tasks whose completion applied.
 *
 * Why a batch: every transaction commit waits for a WAL flush, and at high throughput one commit per
 * finished task was what limited the scheduler (measured with `npm run bench -- scheduler`). The
 * Scheduler's CompletionWriter groups whatever finished while the previous batch was being written.
 */
export async function completeRuns(db: Db, completions: Completion[]): Promise<Set<string>> {
  if (completions.length === 0) return new Set();
  const input = completions.map((c) => ({
    task_id: c.taskId,
    run_id: c.runId,
    worker_id: c.workerId,
    status: c.status,
    next_run_at: c.nextRunAt?.toISOString() ?? null,
    attempts: c.attempts,
    run_count_delta: c.runCountDelta,
    last_error: c.lastError,
    run_status: c.runStatus,
    duration_ms: c.durationMs,
    result: c.result === undefined ? null : c.result,
    error: c.error,
    error_stack: c.errorStack,
    message: c.message,
  }));
  const logs = completions.flatMap((c) =>
    c.logs.map((l) => ({ run_id: c.runId, level: l.level, message: l.message, data: l.data ?? null, created_at: l.createdAt.toISOString() })),
  );
  const rows = await db.$queryRawUnsafe<{ id: string }[]>(
    `WITH input AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
         task_id uuid, run_id uuid, worker_id text, status "TaskStatus", next_run_at timestamptz, attempts int,
         run_count_delta int, last_error text, run_status "RunStatus", duration_ms int, result jsonb, error text,
         error_stack text, message text)
     ),
     t AS (
       UPDATE task SET status = i.status, next_run_at = i.next_run_at, attempts = i.attempts,
              run_count = task.run_count + i.run_count_delta, last_error = i.last_error,
              locked_by = NULL, locked_until = NULL, cancel_requested_at = NULL, updated_at = now()
         FROM input i
        WHERE task.id = i.task_id AND task.status = 'RUNNING' AND task.locked_by = i.worker_id
       RETURNING task.id, task.tenant_id, task.next_run_at, i.run_id, i.status AS new_status, i.message,
                 -- a forced end was asked for by someone: its event names them (TaskEvent.actor)
                 CASE WHEN i.status = 'FORCED_END' THEN task.cancel_requested_by END AS actor
     ),
     run AS (
       UPDATE task_run SET status = i.run_status, finished_at = now(), duration_ms = i.duration_ms, result = i.result,
              error = i.error, error_stack = i.error_stack
         FROM input i JOIN t ON t.id = i.task_id
        WHERE task_run.id = i.run_id AND task_run.status = 'RUNNING'
       RETURNING task_run.id
     ),
     logs AS (
       INSERT INTO task_run_log (tenant_id, task_id, run_id, level, message, data, created_at)
       SELECT t.tenant_id, t.id, l.run_id, l.level, l.message, l.data, l.created_at
         FROM jsonb_to_recordset($2::jsonb) AS l(run_id uuid, level text, message text, data jsonb, created_at timestamptz)
         JOIN t ON t.run_id = l.run_id
       RETURNING 1
     ),
     events AS (
       INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, next_run_at, message, actor)
       SELECT t.tenant_id, t.id, t.run_id, 'STATUS_CHANGED', 'RUNNING', t.new_status, t.next_run_at, t.message, t.actor FROM t
       RETURNING id, task_id, tenant_id
     ),
     notified AS (${NOTIFY_EVENTS}),
     woken AS (
       SELECT pg_notify('${WAKE_CHANNEL}', '') WHERE EXISTS (SELECT 1 FROM t WHERE t.new_status IN ('SCHEDULED', 'RETRYING'))
     )
     SELECT t.id FROM t
       CROSS JOIN notified
       CROSS JOIN (SELECT count(*) FROM run) r
       CROSS JOIN (SELECT count(*) FROM logs) l
       CROSS JOIN (SELECT count(*) FROM woken) w`,
    JSON.stringify(input),
    JSON.stringify(logs),
  );
  return new Set(rows.map((r) => r.id));
}

/**
 * Extends the leases of the tasks this worker is running and reports, for each, whether a forced end was
 * requested. Tasks missing from the answer are no longer ours (force-ended while we were cut off, or
 * recovered by another instance after our lease ran out).
 */
export async function extendLeases(db: Db, workerId: string, taskIds: string[], leaseMs: number): Promise<{ id: string; cancelRequested: boolean }[]> {
  if (taskIds.length === 0) return [];
  return db.$queryRawUnsafe(
    `UPDATE task SET locked_until = now() + $3::int * interval '1 millisecond'
      WHERE id = ANY($2::uuid[]) AND locked_by = $1 AND status = 'RUNNING'
     RETURNING id, (cancel_requested_at IS NOT NULL) AS "cancelRequested"`,
    workerId,
    taskIds,
    leaseMs,
  );
}

/**
 * Milliseconds (by the database clock) until the next task is due, or until the next lease expires;
 * null when nothing is scheduled. Negative when something is already due.
 */
export async function msUntilNextDue(db: Db, excludedQueues: string[]): Promise<number | null> {
  const [row] = await db.$queryRawUnsafe<{ ms: number | null }[]>(
    `SELECT EXTRACT(EPOCH FROM (LEAST(
        (SELECT min(next_run_at) FROM task WHERE status IN ('SCHEDULED', 'RETRYING') AND queue <> ALL($1::text[])),
        (SELECT min(locked_until) FROM task WHERE status = 'RUNNING')
      ) - clock_timestamp())) * 1000 AS ms`,
    excludedQueues,
  );
  return row?.ms == null ? null : Number(row.ms);
}

/** Releases the leases of tasks this worker gives up at shutdown, so another instance recovers them at once. */
export async function releaseLeases(db: Db, workerId: string, taskIds: string[]): Promise<void> {
  if (taskIds.length === 0) return;
  await db.$executeRawUnsafe(
    `WITH t AS (
       UPDATE task SET locked_until = now() - interval '1 millisecond' WHERE id = ANY($2::uuid[]) AND locked_by = $1 AND status = 'RUNNING'
       RETURNING id
     )
     SELECT pg_notify('${WAKE_CHANNEL}', '') FROM (SELECT count(*) FROM t) n`,
    workerId,
    taskIds,
  );
}
