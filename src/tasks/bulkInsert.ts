import type { Prisma, Task } from '../generated/prisma/client.js';
import { TASK_EVENT_CHANNEL } from './statusMachine.js';

/**
 * A task as createTimerTasks inserts it: every column it sets (the others take the defaults of a new
 * task, see `newTask`), plus the message of its CREATED event.
 */
export type NewTaskRow = Pick<
  Task,
  | 'id'
  | 'tenantId'
  | 'templateId'
  | 'fullName'
  | 'taskType'
  | 'funcName'
  | 'repeatType'
  | 'cronExpression'
  | 'intervalSeconds'
  | 'timezone'
  | 'startTime'
  | 'endTime'
  | 'maxRuns'
  | 'nextRunAt'
  | 'status'
  | 'priority'
  | 'queue'
  | 'maxAttempts'
  | 'timeoutMs'
  | 'memoryLimitMb'
  | 'uniqueKey'
  | 'misfirePolicy'
  | 'misfireToleranceMs'
  | 'overlapPolicy'
  | 'retryBackoffMs'
  | 'source'
> & { argDict: Record<string, unknown> };

/** The columns of `NewTaskRow` with their SQL names and types, in the order of the insert. */
const COLUMNS: readonly [keyof NewTaskRow, string, string][] = [
  ['id', 'id', 'uuid'],
  ['tenantId', 'tenant_id', 'text'],
  ['templateId', 'template_id', 'uuid'],
  ['fullName', 'full_name', 'text'],
  ['taskType', 'task_type', 'text'],
  ['funcName', 'func_name', 'text'],
  ['argDict', 'arg_dict', 'jsonb'],
  ['repeatType', 'repeat_type', '"RepeatType"'],
  ['cronExpression', 'cron_expression', 'text'],
  ['intervalSeconds', 'interval_seconds', 'int'],
  ['timezone', 'timezone', 'text'],
  ['startTime', 'start_time', 'timestamptz'],
  ['endTime', 'end_time', 'timestamptz'],
  ['maxRuns', 'max_runs', 'int'],
  ['nextRunAt', 'next_run_at', 'timestamptz'],
  ['status', 'status', '"TaskStatus"'],
  ['priority', 'priority', 'int'],
  ['queue', 'queue', 'text'],
  ['maxAttempts', 'max_attempts', 'int'],
  ['timeoutMs', 'timeout_ms', 'int'],
  ['memoryLimitMb', 'memory_limit_mb', 'int'],
  ['uniqueKey', 'unique_key', 'text'],
  ['misfirePolicy', 'misfire_policy', '"MisfirePolicy"'],
  ['misfireToleranceMs', 'misfire_tolerance_ms', 'int'],
  ['overlapPolicy', 'overlap_policy', '"OverlapPolicy"'],
  ['retryBackoffMs', 'retry_backoff_ms', 'int'],
  ['source', 'source', '"TaskSource"'],
];

/**
 * One statement for the whole batch: the rows travel as one jsonb parameter (an array of arrays, in
 * COLUMNS order, then the event message), are inserted with ON CONFLICT DO NOTHING (a row whose uniqueKey
 * a live task holds is skipped: the partial unique index task_live_unique_key decides), and every
 * inserted task gets its CREATED TaskEvent in the same statement, in input order, each announced on
 * TASK_EVENT_CHANNEL with the payload recordEvents sends (`{"id","taskId","tenantId"}`, delivered on
 * commit). It answers with the ids that were skipped and the transaction's now() (created_at/updated_at).
 */
const INSERT_SQL = `
WITH input AS (
  SELECT (r.value ->> 0)::int AS n, ${COLUMNS.map(([, column, type], i) =>
    type === 'jsonb' ? `r.value -> ${i + 1} AS ${column}` : `(r.value ->> ${i + 1})::${type} AS ${column}`,
  ).join(', ')}, r.value ->> ${COLUMNS.length + 1} AS message
    FROM jsonb_array_elements($1::jsonb) AS r(value)
), inserted AS (
  INSERT INTO task (${COLUMNS.map(([, column]) => column).join(', ')}, created_at, updated_at)
  SELECT ${COLUMNS.map(([, column]) => column).join(', ')}, now(), now() FROM input ORDER BY n
  ON CONFLICT DO NOTHING
  RETURNING id, tenant_id, status, next_run_at
), events AS (
  INSERT INTO task_event (tenant_id, task_id, type, from_status, to_status, next_run_at, message, actor)
  SELECT t.tenant_id, t.id, 'CREATED', NULL, t.status, t.next_run_at, i.message, $2::text
    FROM inserted t JOIN input i ON i.id = t.id ORDER BY i.n
  RETURNING id, task_id, tenant_id
), announced AS (
  SELECT count(pg_notify($3::text, '{"id":"' || e.id || '","taskId":"' || e.task_id || '","tenantId":' || to_json(e.tenant_id)::text || '}')) AS n
    FROM events e
)
SELECT (SELECT n FROM announced)::int AS events, now() AS now,
       (SELECT coalesce(json_agg(i.id ORDER BY i.n), '[]'::json) FROM input i WHERE NOT EXISTS (SELECT 1 FROM inserted t WHERE t.id = i.id))::text AS skipped`;

export interface InsertedTasks {
  /** Ids of rows that were not inserted because a live task holds their uniqueKey. */
  skipped: Set<string>;
  /** created_at and updated_at of the inserted tasks (the transaction's start). */
  now: Date;
}

/**
 * Inserts new tasks with their CREATED events and NOTIFYs in one statement (see INSERT_SQL). Call it
 * inside the transaction that checked quotas. Works alike on PostgreSQL and PGlite: one text parameter,
 * no per-row work in the ORM.
 */
export async function insertNewTasks(
  tx: Prisma.TransactionClient,
  rows: readonly NewTaskRow[],
  messages: ReadonlyMap<string, string>,
  actor: string | null,
): Promise<InsertedTasks> {
  const json = JSON.stringify(
    rows.map((row, n) => {
      const values: unknown[] = [n];
      for (const [key] of COLUMNS) values.push(row[key]);
      values.push(messages.get(row.id) ?? 'created');
      return values;
    }),
  );
  const [result] = await tx.$queryRawUnsafe<{ events: number; now: Date; skipped: string }[]>(INSERT_SQL, json, actor, TASK_EVENT_CHANNEL);
  return { skipped: new Set(JSON.parse(result!.skipped) as string[]), now: new Date(result!.now) };
}

/** The task as the database holds it right after the insert: the row's columns plus a new task's defaults. */
export function newTask(row: NewTaskRow, now: Date): Task {
  return {
    ...row,
    argDict: row.argDict as Prisma.JsonValue,
    startTime: new Date(row.startTime),
    endTime: row.endTime && new Date(row.endTime),
    nextRunAt: row.nextRunAt && new Date(row.nextRunAt),
    runCount: 0,
    attempts: 0,
    sourceModel: null,
    sourceRowId: null,
    sourceField: null,
    lockedBy: null,
    lockedUntil: null,
    lastError: null,
    lockedRunId: null,
    lastRunAbandoned: false,
    revision: 0,
    parentId: null,
    bindingId: null,
    createdAt: new Date(now),
    updatedAt: new Date(now),
  };
}
