import { type SqlPool, type SqlRunner, statement } from '../db/SqlPool.js';
import type { MisfirePolicy, OverlapPolicy, RepeatType, TaskStatus } from '../generated/prisma/client.js';
import { WAKE_CHANNEL } from '../tasks/statusMachine.js';
import { SPEC_COLUMNS } from '../tasks/taskTables.js';

/**
 * The scheduler's SQL: one exported function per statement, each a single round trip, run on the
 * database's SqlPool (named prepared statements on PostgreSQL: parsed and planned once per connection,
 * not at every call as Prisma's raw queries are). Prisma cannot express `FOR UPDATE SKIP LOCKED` or
 * data-modifying CTEs anyway.
 *
 * Every statement that changes a task's status also inserts its TaskEvent rows and NOTIFYs them in the
 * same statement (so in the same transaction), exactly as src/tasks/statusMachine.ts does for the API.
 *
 * The fence: a RUNNING task's lease belongs to one run (`locked_run_id`, the attempt's run id). Every
 * statement that acts on a lease — heartbeat, lease check, completion — matches that run id, so an
 * attempt that lost its lease can change nothing, even on the instance that holds the task again.
 */

/** A task as the scheduler claimed it, with the run started for this attempt. */
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
  /** When it was due: the occurrence, or the retry's time. */
  nextRunAt: Date;
  /** The occurrence this attempt belongs to (a retry's is its first attempt's; Task.occurrenceAt). */
  scheduledFor: Date;
  priority: number;
  queue: string;
  attempts: number;
  maxAttempts: number;
  timeoutMs: number | null;
  memoryLimitMb: number | null;
  misfirePolicy: MisfirePolicy;
  misfireToleranceMs: number;
  overlapPolicy: OverlapPolicy;
  retryBackoffMs: number;
  prevStatus: TaskStatus;
  /** The run created for this attempt; it holds the lease (the fence). */
  runId: string;
  /** The previous attempt's worker stopped; this one takes over. */
  recovered: boolean;
  /** Database time at the claim; lateness is measured against it, not against this process' clock. */
  claimedAt: Date;
  /** The task's revision (updateTask's edits) when it was claimed. */
  revision: number;
}

/**
 * A claimed task as the scheduler runs it (ClaimedTask), from a row `c` of the claimed task plus
 * `prev_status` and `recovered`: the one description of a claimed row, for the scheduler's claim and for
 * a create that claims its own due-now tasks (src/tasks/bulkInsert.ts, Scheduler.reserveStart).
 */
export const CLAIMED_COLUMNS = `
  c.id, c.tenant_id AS "tenantId", c.full_name AS "fullName", c.task_type AS "taskType", c.func_name AS "funcName",
  c.arg_dict AS "argDict", c.repeat_type::text AS "repeatType", c.cron_expression AS "cronExpression",
  c.interval_seconds AS "intervalSeconds", c.timezone, c.end_time AS "endTime", c.max_runs AS "maxRuns",
  c.run_count AS "runCount", c.next_run_at AS "nextRunAt", coalesce(c.occurrence_at, c.next_run_at) AS "scheduledFor", c.priority, c.queue, c.attempts, c.max_attempts AS "maxAttempts",
  c.timeout_ms AS "timeoutMs", c.memory_limit_mb AS "memoryLimitMb", c.misfire_policy::text AS "misfirePolicy",
  c.misfire_tolerance_ms AS "misfireToleranceMs", c.overlap_policy::text AS "overlapPolicy", c.retry_backoff_ms AS "retryBackoffMs",
  c.prev_status::text AS "prevStatus", c.locked_run_id AS "runId", c.recovered, now() AS "claimedAt", c.revision`;

/**
 * "`key` is one of the ids `ids` (a query of one column) gives", for a statement that joins a batch of
 * rows it has in hand (its input, the tasks it claimed) to a large table by primary key. Beside the join
 * condition it makes the key look-up the plan whatever the statistics say: the planner takes
 * `= ANY(ARRAY(…))` for a few rows, and an index serves it. A join alone was planned on estimates that
 * went wrong: the completion as a bitmap scan of the status index (see runningByIdSql); the claim's update
 * and its read of task_spec, as generic plans take `LIMIT $2` for a tenth of the rows before it, as hash
 * joins reading task_state and task_spec whole once a backlog was fresh in the statistics (on PGlite the
 * scan of task_spec was most of the claim; test/hotPathPlans.test.ts plans every statement on such a backlog).
 */
function byKeySql(key: string, ids: string): string {
  return `${key} = ANY(ARRAY(${ids}))`;
}

/**
 * A relation of claimed task_state rows `c` (with `id`) joined to their task_spec rows, as `c` with the
 * columns CLAIMED_COLUMNS reads from task_spec: what the claim answers.
 */
function withSpec(c: string): string {
  return `(SELECT ${c}.*, ${[...SPEC_COLUMNS].map((column) => `p.${column}`).join(', ')} FROM ${c} JOIN task_spec p ON p.id = ${c}.id WHERE ${byKeySql('p.id', `SELECT id FROM ${c}`)}) ${c}`;
}

/**
 * Whether `t` is an ALLOW-overlap recurring task waiting for its next occurrence: fireOverlappingTasks
 * fires those (each occurrence is a child task), the claim never takes them. One RETRYING (the retry of a
 * run it made before it became ALLOW) is claimed like any task; its next occurrence is then fired.
 */
export function firedSql(t: string): string {
  return `(${t}.status = 'SCHEDULED' AND ${t}.overlap_policy = 'ALLOW' AND ${t}.repeat_type IN ('CRON', 'INTERVAL'))`;
}

/**
 * "Task `t` is RUNNING", for the statements that find their tasks by id (a completion, the lease checks),
 * written so that no index can serve it; those statements also name their ids with byKeySql, which the
 * primary key serves whatever the statistics say. The status index (task_status_tenant_id_idx) keeps
 * an entry for the RUNNING version of every run that ended since the table was last vacuumed, and bitmap
 * scans do not skip dead entries: with few RUNNING tasks in the statistics, the completion was planned as
 * a bitmap scan of that index, and a completion of 24 runs on PGlite read 20,000 entries and 800 pages
 * once 20,000 runs had ended (2.5 ms per completion after 5,000 runs, 4.0 ms after 20,000). With only the
 * status hidden, a hash join with a scan of the whole table took its place on a smaller table.
 */
export function runningByIdSql(t: string): string {
  return `${t}.status::text = 'RUNNING'`;
}

/**
 * "`value` is not in the text[] `list`", written so that the planner's estimate stays sane. Written as
 * `value <> ALL(list)` with the list a parameter of a generic plan, PostgreSQL estimates it with `<>`
 * against an unknown value, 1 − 1/(distinct values of the column): on a column with one value (every task
 * in the `default` queue, or of one tenant) no row passes. The claim of a backlog was then planned as a
 * scan of the whole task_state table, for the index scan that gives the rows in order saves nothing under
 * a LIMIT when one row is expected; the next-due look-up was planned on the same estimate. `@>` on an array
 * is estimated without the column's statistics (0.5 %), so "not in" passes 99.5 %.
 */
export function notInSql(value: string, list: string): string {
  return `NOT (${list} @> ARRAY[${value}])`;
}

/**
 * Whether the waiting task `t` may be claimed now: due, not in one of the excluded queues (`queues`, a
 * text[] expression), not one that is fired instead (firedSql), and not a SKIP-policy task later than its
 * tolerance (skipMisfiredTasks decides those first; a task handed back by a
 * stopped worker is not one: that occurrence did start on time).
 */
export function claimableSql(t: string, queues: string): string {
  return `${t}.status IN ('SCHEDULED', 'RETRYING') AND ${t}.next_run_at <= now()
            AND ${notInSql(`${t}.queue`, queues)}
            AND NOT ${firedSql(t)}
            AND NOT (${t}.misfire_policy = 'SKIP' AND ${t}.attempts = 0 AND NOT ${t}.last_run_abandoned
                     AND ${t}.next_run_at < now() - ${t}.misfire_tolerance_ms * interval '1 millisecond')`;
}

/**
 * The columns of task_event that the event starting a run fills (runningEventSql gives their values).
 * The run is kept in its events (migration 20261208000000_runs_as_events; TaskRun is a view of them):
 * this one carries its attempt, worker and whether it took over from a stopped worker.
 */
export const RUNNING_EVENT_COLUMNS =
  'tenant_id, task_id, run_id, type, from_status, to_status, next_run_at, message, attempt, worker_id, recovered, created_at';

/**
 * The STATUS_CHANGED event that starts the run of each task in `c` claimed for `worker`: the values of
 * RUNNING_EVENT_COLUMNS, typed so that they can also stand in a UNION. `c` has the task's columns after
 * the claim plus `prev_status` and `recovered`. A run starts when the claiming statement runs
 * (statement_timestamp), not when its transaction began (now()): a capped tenant's claim counts its
 * running tasks in a statement after taking its lock, and a run that ended meanwhile must not seem to
 * overlap the one that took its slot. A create that claims its own tasks (src/tasks/bulkInsert.ts, never
 * for a capped tenant) passes now(): the CREATED event's time, which its run follows in the same commit.
 */
export function runningEventSql(c: string, worker: string, startedAt = 'statement_timestamp()'): string {
  return `${c}.tenant_id, ${c}.id, ${c}.locked_run_id, 'STATUS_CHANGED'::"TaskEventType", ${c}.prev_status::"TaskStatus", 'RUNNING'::"TaskStatus", ${c}.next_run_at,
              'attempt ' || ${c}.attempts || ' on ' || ${worker} || CASE WHEN ${c}.recovered THEN ' (taking over from a worker that stopped)' ELSE '' END,
              ${c}.attempts, ${worker}::text, ${c}.recovered, ${startedAt}`;
}

/**
 * A run's duration so far by the database clock, in whole ms, from `startedAt` (its starting event's
 * created_at): what the event that ends a run records when nothing timed it (recovery, a forced end).
 */
export function runElapsedMsSql(startedAt: string): string {
  return `GREATEST(0, (EXTRACT(EPOCH FROM (now() - ${startedAt})) * 1000)::int)`;
}

/** What a statement claiming its own tasks needs: for whom, for how long, how many at most, which queues not. */
export interface StartClaim {
  workerId: string;
  leaseMs: number;
  /** Slots reserved for it: at most this many of its tasks are claimed. */
  limit: number;
  /** Queues with a per-process limit: their tasks go the scheduler's way (one claim at a time). */
  excludedQueues: string[];
  /** Slots the tenant may still take here once more than one tenant has tasks (ClaimRequest's tenantSlots less what it holds). */
  tenantRoom: number;
}

/** ClaimedTasks that a statement returned as JSON (json_agg of CLAIMED_COLUMNS). */
export function claimedFromJson(text: string): ClaimedTask[] {
  type Wire = Omit<ClaimedTask, 'nextRunAt' | 'scheduledFor' | 'endTime' | 'claimedAt'> &
    Record<'nextRunAt' | 'scheduledFor' | 'claimedAt', string | Date> & { endTime: string | Date | null };
  // The parsed objects are revived in place: `{ ...t, nextRunAt: … }` takes a slow path on Node 20's V8
  // (about 1 µs per field written after the spread; see recurrence.ts), per claimed task.
  return (JSON.parse(text) as Wire[]).map((t) => {
    t.nextRunAt = new Date(t.nextRunAt);
    t.scheduledFor = new Date(t.scheduledFor);
    t.endTime = t.endTime == null ? null : new Date(t.endTime);
    t.claimedAt = new Date(t.claimedAt);
    return t as ClaimedTask;
  });
}

/** What one claim may take, and from whom. */
export interface ClaimRequest {
  workerId: string;
  /** Free slots: at most this many tasks in all. */
  limit: number;
  leaseMs: number;
  /** Queues whose per-process limit is reached. */
  excludedQueues: string[];
  /**
   * The most slots of this instance one tenant may hold once more than one tenant has tasks
   * (TENANT_SLOT_SHARE of CONCURRENCY), so that one tenant's long tasks cannot keep every slot.
   */
  tenantSlots: number;
  /** Tasks this instance is running now, by tenant. */
  held: Map<string, number>;
}

/** An arbitrary constant naming the claim locks of tenants with maxConcurrentRuns (first half of the two-key advisory lock). */
const CLAIM_LOCK_CLASS = 0x636c6169; // 'clai'

/**
 * Claims up to `limit` due tasks for `workerId`, shared fairly between tenants, then marks them RUNNING
 * under a lease held by a new run id, counts the attempt, and writes the events that start their runs —
 * all in one statement (graphile-worker's get_job pattern: one statement instead of an interactive
 * transaction saves the round trips that dominate no-op throughput).
 *
 * Fairness: the tenants that have waiting tasks are found by a loose index scan of task_tenant_due_idx
 * (one index probe per tenant, whatever their backlogs); each tenant's due tasks are taken in its own
 * priority then due-time order (priority orders tasks within a tenant, never across tenants), skipping
 * rows another instance is claiming (SKIP LOCKED, so instances never wait on each other); the batch then
 * takes the tenants' first tasks, then their second ones, and so on (round robin). Once more than one
 * tenant has tasks, a tenant holds at most `tenantSlots` of this instance's slots, so another tenant's
 * due task finds a free slot at the next claim even while one tenant's long tasks run.
 *
 * `capped` claims for tenants with `maxConcurrentRuns` instead (claimCappedTasks); without it those
 * tenants are left out.
 *
 * SKIP-policy tasks that are later than their tolerance are left for skipMisfiredTasks (but not a task
 * handed back by a stopped worker: that occurrence did start on time).
 */
function claimSql(capped: boolean): string {
  // $1 worker, $2 limit, $3 lease ms, $4 excluded queues, $5 tenant slots, $6/$7 held (tenants, counts), $8 capped tenants (capped only)
  // Once more than one tenant has tasks (the first and last tenant_id of an index differ), a tenant holds at
  // most $5 of this instance's slots; an installation with one tenant uses every slot. Read from
  // task_spec (a row per task, indexed by tenant first), where task has no index led by tenant_id.
  const room = `CASE WHEN (SELECT min(tenant_id) FROM task_spec) <> (SELECT max(tenant_id) FROM task_spec) THEN GREATEST(0, $5::int - coalesce(h.held, 0)) ELSE $2::int END`;
  const tenants = capped
    ? // Locked by claimCappedTasks in this transaction: the count of RUNNING tasks below sees every
      // claim of these tenants that committed before (each statement reads a fresh snapshot).
      `active AS (
         SELECT q.id AS tenant_id,
                LEAST(${room}, q.max_concurrent_runs - (SELECT count(*) FROM task_state r WHERE r.tenant_id = q.id AND r.status = 'RUNNING'))::int AS room
           FROM tenant q LEFT JOIN unnest($6::text[], $7::int[]) AS h(tenant_id, held) ON h.tenant_id = q.id
          WHERE q.id = ANY($8::text[]) AND q.max_concurrent_runs IS NOT NULL
       )`
    : `tenants AS (
         (SELECT tenant_id FROM task_state WHERE status IN ('SCHEDULED', 'RETRYING') ORDER BY tenant_id LIMIT 1)
         UNION ALL
         SELECT (SELECT w.tenant_id FROM task_state w WHERE w.status IN ('SCHEDULED', 'RETRYING') AND w.tenant_id > tenants.tenant_id
                  ORDER BY w.tenant_id LIMIT 1)
           FROM tenants WHERE tenants.tenant_id IS NOT NULL
       ),
       active AS (
         SELECT tenant_id, room FROM (
           SELECT tenants.tenant_id, ${room} AS room,
                  EXISTS (SELECT 1 FROM tenant q WHERE q.id = tenants.tenant_id AND q.max_concurrent_runs IS NOT NULL) AS capped
             FROM tenants LEFT JOIN unnest($6::text[], $7::int[]) AS h(tenant_id, held) USING (tenant_id)
            WHERE tenants.tenant_id IS NOT NULL
         ) every_tenant WHERE NOT capped
       )`;
  return `WITH RECURSIVE ${tenants},
     candidates AS (
       SELECT x.* FROM active a CROSS JOIN LATERAL (
         SELECT task_id AS id, tenant_id, priority, next_run_at, status AS prev_status, last_run_abandoned AS recovered FROM task_state s
          WHERE s.tenant_id = a.tenant_id AND ${claimableSql('s', '$4::text[]')}
          ORDER BY priority DESC, next_run_at
          LIMIT GREATEST(0, LEAST(a.room, $2::int))
          FOR UPDATE SKIP LOCKED
       ) x WHERE a.room > 0
     ),
     due AS (
       SELECT id, prev_status, recovered FROM (
         SELECT *, row_number() OVER (PARTITION BY tenant_id ORDER BY priority DESC, next_run_at) AS turn FROM candidates
       ) ranked
        ORDER BY turn, priority DESC, next_run_at
        LIMIT $2
     ),
     c AS (
       UPDATE task_state t SET status = 'RUNNING', locked_by = $1, locked_run_id = gen_random_uuid(),
              locked_until = now() + $3::int * interval '1 millisecond',
              attempts = t.attempts + 1, last_run_abandoned = false, updated_at = now()
         FROM due WHERE t.task_id = due.id AND ${byKeySql('t.task_id', 'SELECT id FROM due')}
       RETURNING t.*, t.task_id AS id, due.prev_status, due.recovered
     ),
     events AS (
       INSERT INTO task_event (${RUNNING_EVENT_COLUMNS})
       SELECT ${runningEventSql('c', '$1')} FROM c
     )
     SELECT coalesce(json_agg(x), '[]'::json)::text AS claimed
       FROM (SELECT ${CLAIMED_COLUMNS} FROM ${withSpec('c')}) x`;
}

const CLAIM_OPEN = statement('chronograph_claim', claimSql(false));
const CLAIM_CAPPED = statement('chronograph_claim_capped', claimSql(true));

function claimParams(req: ClaimRequest, capped: string[] | null): unknown[] {
  const params: unknown[] = [
    req.workerId,
    req.limit,
    req.leaseMs,
    req.excludedQueues,
    req.tenantSlots,
    [...req.held.keys()],
    [...req.held.values()],
  ];
  return capped ? [...params, capped] : params;
}

/** Claims for every tenant without `maxConcurrentRuns` (see claimSql). */
export async function claimTasks(db: SqlRunner, req: ClaimRequest): Promise<ClaimedTask[]> {
  if (req.limit <= 0) return [];
  return claimed(await db.query<{ claimed: string }>(CLAIM_OPEN, claimParams(req, null)));
}

/**
 * A claim's answer is one JSON text, not a row per task: a driver decodes each field of each row on its
 * own (a claim of 24 has 720), which on PGlite, where that decoding runs in the thread the database
 * runs in, took about a tenth of a drain; one JSON.parse does it at once.
 */
function claimed(rows: { claimed: string }[]): ClaimedTask[] {
  return rows[0] ? claimedFromJson(rows[0].claimed) : [];
}

/** Whether any tenant has `maxConcurrentRuns` (then the scheduler also runs claimCappedTasks). */
export async function hasCappedTenants(db: SqlRunner): Promise<boolean> {
  const [row] = await db.query<{ capped: boolean }>(HAS_CAPPED);
  return row?.capped === true;
}

/**
 * Claims for the tenants with `maxConcurrentRuns`, which is enforced across instances here: in one
 * short transaction, each such tenant's claim lock is taken (an advisory lock; a tenant whose lock
 * another instance holds is being claimed for there and is skipped this time), then its RUNNING tasks
 * are counted and at most the difference is claimed. The count comes after the lock, in a statement of
 * its own, so it sees every claim that committed before — two instances cannot both take the last slot.
 */
export async function claimCappedTasks(pool: SqlPool, req: ClaimRequest): Promise<ClaimedTask[]> {
  if (req.limit <= 0) return [];
  return pool.transaction(async (tx) => {
    const locked = await tx.query<{ id: string }>(LOCK_CAPPED, [CLAIM_LOCK_CLASS]);
    if (locked.length === 0) return [];
    return claimed(
      await tx.query<{ claimed: string }>(
        CLAIM_CAPPED,
        claimParams(
          req,
          locked.map((t) => t.id),
        ),
      ),
    );
  });
}

const HAS_CAPPED = statement(
  'chronograph_has_capped',
  `SELECT EXISTS (SELECT 1 FROM tenant WHERE max_concurrent_runs IS NOT NULL) AS capped`,
);
const LOCK_CAPPED = statement(
  'chronograph_lock_capped',
  `SELECT id FROM tenant WHERE max_concurrent_runs IS NOT NULL AND pg_try_advisory_xact_lock($1::int, hashtext(id)) ORDER BY id`,
);

/**
 * Ends the attempts of RUNNING tasks whose lease ran out (their worker died, froze or lost the database)
 * and that this worker is not running itself (`ownRunIds`). The attempt counts like any other: the old
 * run is closed ABANDONED and the task
 * - FAILS when that was its last allowed attempt ("the worker running it stopped during attempt n of
 *   m"), so a task that kills its process (process.exit, out of memory) runs no more and cannot take
 *   down one instance after another;
 * - otherwise waits for its retry backoff as RETRYING (the same delay as retryDelayMs: exponential with
 *   equal jitter, capped at an hour), to be claimed like any retry, by any instance.
 * Nothing runs here; the next attempt is recorded `recovered`. Returns the tasks it ended.
 */
export async function recoverExpiredTasks(db: SqlRunner, limit: number, ownRunIds: string[]): Promise<{ id: string; queue: string }[]> {
  return db.query<{ id: string; queue: string }>(RECOVER, [limit, ownRunIds]);
}

const RECOVER = statement(
  'chronograph_recover',
  `WITH due AS (
       SELECT task_id AS id, locked_by AS prev_worker, locked_run_id AS prev_run FROM task_state
        WHERE status = 'RUNNING' AND locked_until < now() AND coalesce(locked_run_id <> ALL($2::uuid[]), true)
        ORDER BY locked_until
        LIMIT $1
        FOR UPDATE SKIP LOCKED
     ),
     c AS (
       UPDATE task_state t SET
              status = CASE WHEN t.attempts >= t.max_attempts THEN 'FAILED' ELSE 'RETRYING' END::"TaskStatus",
              next_run_at = CASE WHEN t.attempts >= t.max_attempts THEN NULL
                ELSE now() + LEAST(3600000, t.retry_backoff_ms * power(2, GREATEST(0, t.attempts - 1))) * (0.5 + random() / 2) * interval '1 millisecond' END,
              occurrence_at = CASE WHEN t.attempts >= t.max_attempts THEN NULL ELSE coalesce(t.occurrence_at, t.next_run_at) END,
              last_error = 'the worker running it stopped during attempt ' || t.attempts || ' of ' || t.max_attempts,
              locked_by = NULL, locked_until = NULL, locked_run_id = NULL, last_run_abandoned = true, updated_at = now()
         FROM due WHERE t.task_id = due.id
       RETURNING t.task_id AS id, t.tenant_id, t.queue, t.status, t.next_run_at, t.last_error, due.prev_run, due.prev_worker
     ),
     events AS (
       INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, next_run_at, message, run_status, duration_ms, error)
       SELECT c.tenant_id, c.id, c.prev_run, 'RECOVERED', 'RUNNING', c.status, c.next_run_at,
              c.last_error || CASE WHEN c.status = 'RETRYING' THEN '; retrying at ' || to_char(c.next_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') ELSE '' END
              || ' (worker ' || coalesce(c.prev_worker, 'unknown') || ')',
              'ABANDONED', ${runElapsedMsSql('coalesce(s.created_at, now())')},
              'worker ' || coalesce(s.worker_id, c.prev_worker, 'unknown') || ' stopped during this attempt (its lease expired: it died, froze or lost the database)'
         FROM c LEFT JOIN task_event s ON s.run_id = c.prev_run AND s.attempt IS NOT NULL
     ),
     woken AS (SELECT pg_notify('${WAKE_CHANNEL}', '') WHERE EXISTS (SELECT 1 FROM c WHERE c.status = 'RETRYING'))
     SELECT c.id, c.queue FROM c CROSS JOIN (SELECT count(*) FROM woken) w`,
);

export interface Completion {
  taskId: string;
  /** The attempt's run: the completion applies only while this run still holds the task's lease. */
  runId: string;
  workerId: string;
  status: TaskStatus;
  nextRunAt: Date | null;
  /** RETRYING: the occurrence being retried (ClaimedTask.scheduledFor); null otherwise (Task.occurrenceAt). */
  occurrenceAt: Date | null;
  attempts: number;
  runCountDelta: number;
  lastError: string | null;
  runStatus: 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'CANCELLED' | 'ABANDONED' | 'MEMORY_LIMIT' | 'CRASHED';
  durationMs: number;
  /** Already normalised by toJson. */
  result: unknown;
  error: string | null;
  errorStack: string | null;
  eventType: 'STATUS_CHANGED' | 'RECOVERED';
  message: string;
  /** The worker gave the attempt up unfinished (shutdown): the next run is recorded `recovered`. */
  abandoned: boolean;
  logs: { level: string; message: string; data: unknown; createdAt: Date }[];
  /**
   * The task's revision the outcome was computed from (its next run, retries): the completion applies only
   * while the task is still at it. Null applies whatever was edited (hand-backs and forced ends, which
   * compute nothing from the schedule).
   */
  revision: number | null;
}

/**
 * Records the end of many attempts at once: task status, the events that end the runs, logs and NOTIFYs
 * in one statement. Each completion only applies while its run still holds the task's lease (status RUNNING,
 * locked_run_id = the run): a result that arrives after the task was force-ended, recovered or claimed
 * again is discarded. Its log lines are kept all the same (they are the run's own; a completion sent
 * again after an edit carries none). Returns, by run id (a lingering attempt of a task, taken over and
 * then claimed here again, can end in the same batch as its current attempt), the completions that
 * applied and those refused because the task was edited since the outcome was computed.
 *
 * An edit that commits while the statement waits for the task's row is seen by neither the update (its
 * re-check after the wait finds the new revision) nor the `edited` look-up (the statement's snapshot is
 * older): the completion looks lost. So the completions that look lost are looked up once more, in a
 * statement of their own: those whose run still holds its task were refused by an edit. A completion
 * that applies pays nothing for this (a row lock taken first would cost every completion a WAL record).
 *
 * Why a batch: every transaction commit waits for a WAL flush, and at high throughput one commit per
 * finished task was what limited the scheduler (measured with `npm run bench -- scheduler`). The
 * Scheduler groups whatever finished while the previous batch was being written.
 */
/** What became of a completion: applied; refused because the task was edited since the outcome was computed; or (absent) its lease is gone. */
export type CompletionResult = 'applied' | 'edited' | 'lost';

export async function completeRuns(db: SqlRunner, completions: Completion[]): Promise<Map<string, Exclude<CompletionResult, 'lost'>>> {
  if (completions.length === 0) return new Map();
  const input = completions.map((c) => ({
    task_id: c.taskId,
    run_id: c.runId,
    status: c.status,
    next_run_at: c.nextRunAt?.toISOString() ?? null,
    occurrence_at: c.occurrenceAt?.toISOString() ?? null,
    attempts: c.attempts,
    run_count_delta: c.runCountDelta,
    last_error: c.lastError,
    run_status: c.runStatus,
    duration_ms: c.durationMs,
    result: c.result === undefined ? null : c.result,
    error: c.error,
    error_stack: c.errorStack,
    event_type: c.eventType,
    message: c.message,
    abandoned: c.abandoned,
    revision: c.revision,
  }));
  const logs = completions.flatMap((c) =>
    c.logs.map((l) => ({
      run_id: c.runId,
      worker_id: c.workerId,
      level: l.level,
      message: l.message,
      data: l.data ?? null,
      created_at: l.createdAt.toISOString(),
    })),
  );
  const rows = await db.query<{ run_id: string; edited: boolean }>(COMPLETE, [JSON.stringify(input), JSON.stringify(logs)]);
  const results = new Map<string, Exclude<CompletionResult, 'lost'>>(rows.map((r) => [r.run_id, r.edited ? 'edited' : 'applied']));
  const unclear = completions.filter((c) => c.revision != null && !results.has(c.runId));
  if (unclear.length) {
    const held = await db.query<{ run_id: string }>(STILL_HELD, [unclear.map((c) => c.taskId), unclear.map((c) => c.runId)]);
    for (const r of held) results.set(r.run_id, 'edited');
  }
  return results;
}

/** The runs among these that still hold their task (see completeRuns). */
const STILL_HELD = statement(
  'chronograph_still_held',
  `SELECT locked_run_id::text AS run_id FROM task_state
    WHERE task_id = ANY($1::uuid[]) AND (task_id, locked_run_id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))
      AND ${runningByIdSql('task_state')}`,
);

const COMPLETE = statement(
  'chronograph_complete',
  `WITH input AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
         task_id uuid, run_id uuid, status "TaskStatus", next_run_at timestamptz, occurrence_at timestamptz, attempts int,
         run_count_delta int, last_error text, run_status "RunStatus", duration_ms int, result jsonb, error text,
         error_stack text, event_type "TaskEventType", message text, abandoned boolean, revision int)
     ),
     t AS (
       UPDATE task_state s SET status = i.status, next_run_at = i.next_run_at, occurrence_at = i.occurrence_at, attempts = i.attempts,
              run_count = s.run_count + i.run_count_delta, last_error = i.last_error, last_run_abandoned = i.abandoned,
              locked_by = NULL, locked_until = NULL, locked_run_id = NULL, updated_at = now()
         FROM input i
        WHERE ${byKeySql('s.task_id', 'SELECT task_id FROM input')} AND s.task_id = i.task_id AND s.locked_run_id = i.run_id
          AND ${runningByIdSql('s')}
          AND (i.revision IS NULL OR s.revision = i.revision)
       RETURNING s.task_id AS id, s.tenant_id, s.next_run_at, i.run_id, i.status AS new_status, i.event_type, i.message,
                 i.run_status, i.duration_ms, i.result, i.error, i.error_stack
     ),
     edited AS (
       SELECT i.run_id FROM task_state s JOIN input i ON s.task_id = i.task_id AND s.locked_run_id = i.run_id
        WHERE ${byKeySql('s.task_id', 'SELECT task_id FROM input')} AND ${runningByIdSql('s')} AND i.revision IS NOT NULL AND s.revision <> i.revision
     ),
     logs AS (
       INSERT INTO task_run_log (tenant_id, task_id, run_id, level, message, data, created_at)
       SELECT r.tenant_id, r.task_id, l.run_id, l.level, l.message, l.data, l.created_at
         FROM ROWS FROM (jsonb_to_recordset($2::jsonb) AS (run_id uuid, worker_id text, level text, message text, data jsonb, created_at timestamptz))
              WITH ORDINALITY AS l(run_id, worker_id, level, message, data, created_at, n)
         JOIN task_event r ON r.run_id = l.run_id AND r.attempt IS NOT NULL AND r.worker_id = l.worker_id
        ORDER BY l.n
       RETURNING 1
     ),
     events AS (
       INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, next_run_at, message,
                               run_status, duration_ms, result, error, error_stack)
       SELECT t.tenant_id, t.id, t.run_id, t.event_type, 'RUNNING', t.new_status, t.next_run_at, t.message,
              t.run_status, t.duration_ms, t.result, t.error, t.error_stack FROM t
     ),
     woken AS (
       SELECT pg_notify('${WAKE_CHANNEL}', '') WHERE EXISTS (SELECT 1 FROM t WHERE t.new_status IN ('SCHEDULED', 'RETRYING'))
     )
     SELECT t.run_id, false AS edited FROM t
       CROSS JOIN (SELECT count(*) FROM logs) l
       CROSS JOIN (SELECT count(*) FROM woken) w
     UNION ALL
     SELECT run_id, true FROM edited`,
);

/**
 * The heartbeat: extends the leases this worker's runs still hold and returns their run ids. A run
 * missing from the answer has lost its lease (force-ended, or recovered by another instance after it
 * ran out), and its handler must stop. An expired lease that nobody took over is still ours to extend.
 *
 * Exported as text too: on PostgreSQL the heartbeat runs in its own thread with its own connection
 * (src/scheduler/LeaseKeeper.ts), where Prisma is not loaded. Parameters: worker id, task ids, their
 * run ids (same order), lease in ms.
 */
export const EXTEND_LEASES_SQL = `UPDATE task_state SET locked_until = now() + $4::int * interval '1 millisecond'
  WHERE task_id = ANY($2::uuid[]) AND (task_id, locked_run_id) IN (SELECT * FROM unnest($2::uuid[], $3::uuid[])) AND locked_by = $1
    AND ${runningByIdSql('task_state')}
  RETURNING locked_run_id::text AS "runId"`;

const EXTEND_LEASES = statement('chronograph_extend_leases', EXTEND_LEASES_SQL);

export async function extendLeases(
  db: SqlRunner,
  workerId: string,
  runs: { taskId: string; runId: string }[],
  leaseMs: number,
): Promise<Set<string>> {
  if (runs.length === 0) return new Set();
  const rows = await db.query<{ runId: string }>(EXTEND_LEASES, [workerId, runs.map((r) => r.taskId), runs.map((r) => r.runId), leaseMs]);
  return new Set(rows.map((r) => r.runId));
}

/**
 * `ctx.assertLease()`: true when the run still holds an unexpired lease, which it then extends by a
 * whole lease, so a side effect right after a successful check has the full lease to happen in.
 */
export async function checkLease(db: SqlRunner, taskId: string, runId: string, leaseMs: number): Promise<boolean> {
  const rows = await db.query(CHECK_LEASE, [taskId, runId, leaseMs]);
  return rows.length > 0;
}

const CHECK_LEASE = statement(
  'chronograph_check_lease',
  `UPDATE task_state SET locked_until = GREATEST(locked_until, now() + $3::int * interval '1 millisecond')
    WHERE task_id = $1::uuid AND locked_run_id = $2::uuid AND ${runningByIdSql('task_state')} AND locked_until > now()
   RETURNING 1`,
);

/**
 * Milliseconds (by the database clock) until the next task is due to be claimed, until the next lease of
 * a run not among `ownRunIds` (the runs this worker is executing) runs out, when recovery is due, and
 * until the next ALLOW-overlap recurring task is due to be fired (fireOverlappingTasks), leaving out
 * `excludedOverlap` (tasks whose firing failed, not retried yet); null when there is none. Negative when
 * already due.
 */
export async function msUntilNextDue(
  db: SqlRunner,
  ownRunIds: string[],
  excludedQueues: string[],
  excludedTenants: string[],
  excludedOverlap: string[] = [],
): Promise<{ dueMs: number | null; leaseMs: number | null; overlapMs: number | null }> {
  // Due work this instance cannot take is left out, or the scheduler would look again at once, over and
  // over: tenants holding their share of this instance's slots (`excludedTenants`), tenants at their
  // maxConcurrentRuns, and ALLOW-overlap tasks, which are fired, not claimed (overlapMs says when). A run
  // ending frees a slot and wakes the scheduler that ran it.
  const [row] = await db.query<{ dueMs: number | null; leaseMs: number | null; overlapMs: number | null }>(NEXT_DUE, [
    ownRunIds,
    excludedQueues,
    excludedTenants,
    excludedOverlap,
  ]);
  const ms = (value: number | null | undefined) => (value == null ? null : Number(value));
  return { dueMs: ms(row?.dueMs), leaseMs: ms(row?.leaseMs), overlapMs: ms(row?.overlapMs) };
}

const NEXT_DUE = statement(
  'chronograph_next_due',
  `SELECT EXTRACT(EPOCH FROM ((SELECT min(next_run_at) FROM task_state WHERE status IN ('SCHEDULED', 'RETRYING') AND ${notInSql('queue', '$2::text[]')}
                 AND NOT ${firedSql('task_state')}
                 AND ${notInSql('tenant_id', '$3::text[]')}
                 AND ${notInSql(
                   'tenant_id',
                   `ARRAY(SELECT q.id FROM tenant q WHERE q.max_concurrent_runs IS NOT NULL
                     AND q.max_concurrent_runs <= (SELECT count(*) FROM task_state r WHERE r.tenant_id = q.id AND r.status = 'RUNNING'))`,
                 )})
              - clock_timestamp())) * 1000 AS "dueMs",
            EXTRACT(EPOCH FROM ((SELECT min(locked_until) FROM task_state WHERE status = 'RUNNING' AND coalesce(locked_run_id <> ALL($1::uuid[]), true)) - clock_timestamp())) * 1000 AS "leaseMs",
            EXTRACT(EPOCH FROM ((SELECT min(next_run_at) FROM task_state WHERE ${firedSql('task_state')} AND task_id <> ALL($4::uuid[]))
              - clock_timestamp())) * 1000 AS "overlapMs"`,
);
