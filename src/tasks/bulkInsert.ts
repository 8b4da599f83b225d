import { randomFillSync } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { type SqlRunner, type Statement, statement } from '../db/SqlPool.js';
import type { Prisma, Task } from '../generated/prisma/client.js';
import {
  CLAIMED_COLUMNS,
  type ClaimedTask,
  claimableSql,
  claimedFromJson,
  RUNNING_EVENT_COLUMNS,
  runningEventSql,
  type StartClaim,
} from '../scheduler/sql.js';
import { WAKE_CHANNEL } from './statusMachine.js';
import { SHARED_COLUMNS, SPEC_COLUMNS } from './taskTables.js';

/**
 * A new task as the bulk insert writes it: every column it sets (the others take the defaults of a new
 * task, see `newTask`). Every new task is one of these and goes through insertNewTasks:
 * createTimerTask(s) builds it from a template and the input (TaskSvc.buildTask); an ALLOW-overlap
 * task's occurrence from its parent (fireOverlappingTasks: `parentId` and the parent's provenance,
 * `sourceModel`/`sourceRowId`/`sourceField`, set); a date-field task from its template and record
 * (applyDateFields' `plan`); a bound platform template's task from the template and its binding
 * (TemplateBindingSvc: `bindingId` set).
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
  | 'sourceModel'
  | 'sourceRowId'
  | 'sourceField'
  | 'parentId'
  | 'bindingId'
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
  ['sourceModel', 'source_model', 'text'],
  ['sourceRowId', 'source_row_id', 'text'],
  ['sourceField', 'source_field', 'text'],
  ['parentId', 'parent_id', 'uuid'],
  ['bindingId', 'binding_id', 'uuid'],
];

/** task_spec's columns the insert sets (created_at besides; src/tasks/taskTables.ts). */
const SPEC_INSERTED = COLUMNS.map(([, column]) => column).filter((c) => c === 'id' || SHARED_COLUMNS.has(c) || SPEC_COLUMNS.has(c));
/** task_state's columns the insert sets, `id` written as its task_id (updated_at besides). */
const STATE_INSERTED = COLUMNS.map(([, column]) => column).filter((c) => c === 'id' || SHARED_COLUMNS.has(c) || !SPEC_COLUMNS.has(c));
/** The two tables' column lists as the inserts name them. */
const SPEC_LIST = SPEC_INSERTED.join(', ');
const STATE_LIST = STATE_INSERTED.map((c) => (c === 'id' ? 'task_id' : c)).join(', ');
/** The spec columns of a task claimed as it is inserted (CLAIMED_COLUMNS reads them). */
const CLAIMED_SPEC = COLUMNS.map(([, column]) => column).filter((c) => SPEC_COLUMNS.has(c));

type Column = keyof NewTaskRow | 'message';

/**
 * What the rows were built from, as read (and possibly cached) before the insert: each template by id and
 * the version of its row (`xmin`), and, when the caller checked the tenant's quotas from a cached copy,
 * the tenant's row version too. The insert writes nothing unless every one of them is still current, so
 * a create never acts on a template or quota that changed since it was read.
 */
export interface ReadVersions {
  templates: readonly { id: string; version: string }[];
  /**
   * The tenant's row as read: `version` null when it had none, which this insert then creates with the
   * tenant's first tasks (every tenant that gets tasks gets its row, so the scheduler's claim can read its
   * quota). Null when a transaction around the insert reads and creates it (QuotaGuard).
   */
  tenant: { id: string; version: string | null } | null;
}

/**
 * Nothing to re-check: for the inserts of the date-field and binding paths, which build their rows inside
 * the transaction that inserts them (the tenant's quotas under QuotaGuard's lock) and, as before they
 * shared this insert, do not compare template versions.
 */
export const HELD: ReadVersions = { templates: [], tenant: null };

/** Every column the insert takes from a row: the task's, then its CREATED event's message. */
const INSERT_COLUMNS: readonly (readonly [Column, string, string])[] = [...COLUMNS, ['message', 'message', 'text']];

/**
 * One statement for the whole batch. Columns whose value differs between rows travel as one jsonb
 * parameter (an array of arrays: the row's position, then those columns); a column with one value for
 * the whole batch (most of them: a batch usually repeats one template and schedule) is one parameter of
 * its own. The rows are inserted with ON CONFLICT DO NOTHING (a row whose uniqueKey a live task holds is
 * skipped: the partial unique index task_live_unique_key decides), and every inserted task gets its
 * CREATED TaskEvent in the same statement, in input order (announced by task_event's trigger, on commit,
 * as every event is). It answers with the ids
 * that were skipped, the transaction's now() (created_at and updated_at of the new tasks) and whether
 * what the rows were built from is still current (`fresh`: otherwise nothing was written), and wakes the
 * schedulers (one NOTIFY on WAKE_CHANNEL when it inserted anything).
 *
 * The text depends only on which columns vary and on whether there is one row (oneRowText) or more
 * (insertText), so a single create (only id and argDict vary) and the usual batch are each always the
 * same text, prepared once per connection (see `named`).
 */
function insertStatement(
  rows: readonly NewTaskRow[],
  messages: ReadonlyMap<string, string>,
  actor: string | null,
  read: ReadVersions,
  claim?: StartClaim,
) {
  const cell = (row: NewTaskRow, column: Column) => (column === 'message' ? (messages.get(row.id) ?? 'created') : row[column]);
  const first = rows[0]!;
  const varying = INSERT_COLUMNS.filter(
    ([key]) => key === 'id' || key === 'argDict' || rows.some((row) => !sameValue(cell(row, key), cell(first, key))),
  );
  const params: unknown[] = [JSON.stringify(rows.map((row, n) => [n, ...varying.map(([key]) => cell(row, key))])), actor];
  // $3-$5: what to re-check (ReadVersions); nothing for HELD, whose statement is then shorter to plan
  // (the date-field and binding paths run it unprepared, inside Prisma's transaction).
  const checked = read !== HELD;
  if (checked) {
    params.push(JSON.stringify(read.templates.map((t) => [t.id, t.version])), read.tenant?.id ?? null, read.tenant?.version ?? null);
  } else if (claim) throw new Error('a claiming insert re-checks what it was built from');
  // $6-$10 when this instance's scheduler has slots for the batch's due tasks (see `parts` in insertText).
  if (claim) params.push(claim.workerId, claim.leaseMs, claim.limit, claim.excludedQueues, claim.tenantRoom);
  // The batch's constants: one parameter each, in column order after the fixed ones (see insertText).
  for (const [key] of INSERT_COLUMNS) {
    if (varying.some(([k]) => k === key)) continue;
    const value = cell(first, key);
    params.push(
      value == null
        ? null
        : value instanceof Date
          ? value.toISOString()
          : typeof value === 'object'
            ? JSON.stringify(value)
            : String(value),
    );
  }
  const text = rows.length === 1 ? oneRowText(varying, checked, claim !== undefined) : insertText(varying, checked, claim !== undefined);
  // A batch of more than PREPARED_ROWS rows is planned for its own size, each time.
  // HELD's callers run it in Prisma's transaction, unprepared: their texts must not take the shapes' places.
  return { statement: rows.length > PREPARED_ROWS || !checked ? text : named(text), params };
}

/** The texts built so far, by shape (insertText); a client sending ever new shapes has the rest built each time. */
const texts = new Map<string, string>();
const MAX_TEXTS = 64;

/**
 * The insert's text for a shape: which columns vary between rows, whether what the rows were built from
 * is re-checked, and whether it claims. Built once per shape: a single create is the same text each
 * time, and building it (about 5 KB of SQL) cost more than the rest of the statement's preparation.
 * Parameters: $1 the varying columns, $2 the actor, $3-$5 the re-check, $6-$10 the claim, then one per
 * constant column in INSERT_COLUMNS order.
 */
function insertText(varying: readonly (readonly [Column, string, string])[], checked: boolean, claiming: boolean): string {
  const shape = `n${checked ? 1 : 0}${claiming ? 1 : 0}${varying.map(([k]) => k).join(',')}`;
  const known = texts.get(shape);
  if (known !== undefined) return known;
  let next = 2 + (checked ? 3 : 0) + (claiming ? 5 : 0);
  // The batch's constants are cast once, in the one-row `fresh`, not once per row.
  const constants: string[] = [];
  const select = INSERT_COLUMNS.map(([key, column, type]) => {
    const at = varying.findIndex(([k]) => k === key);
    if (at >= 0) return type === 'jsonb' ? `r.value -> ${at + 1} AS ${column}` : `(r.value ->> ${at + 1})::${type} AS ${column}`;
    constants.push(`$${++next}::text::${type} AS ${column}`);
    return `f.${column}`;
  });
  const stateValues = STATE_INSERTED.join(', ');
  // The state rows go first: ON CONFLICT DO NOTHING skips a row whose live key (unique key, date-field
  // record, binding) a live task holds, and only the tasks whose state was inserted get their spec row.
  const spec = `, spec AS (
  INSERT INTO task_spec (${SPEC_LIST}, created_at)
  SELECT ${SPEC_INSERTED.map((c) => `i.${c}`).join(', ')}, now() FROM input i WHERE i.id IN (SELECT id FROM inserted) ORDER BY i.n
)`;
  // With `claim`: the due tasks this instance can start right away (at most $8, or $10 once tasks of
  // another tenant exist, as the claim counts a tenant's share; in claim order; and only while no other
  // task waits to be claimed, so none is overtaken) are inserted already claimed, exactly
  // as the scheduler's claim leaves a task: RUNNING under a lease of worker $6 held by a new run, attempt
  // 1 counted, and the STATUS_CHANGED event that starts the run after the CREATED one. The caller runs
  // them after the commit (Scheduler.reserveStart); a crash before that leaves a lease that runs out and
  // is recovered like any other.
  const parts = claiming
    ? {
        cte: `, claim AS (
  SELECT i.n, gen_random_uuid() AS run_id FROM (SELECT *, 0 AS attempts, false AS last_run_abandoned FROM input) i
   WHERE ${claimableSql('i', '$9::text[]')}
     AND NOT EXISTS (SELECT 1 FROM task_state w WHERE ${claimableSql('w', '$9::text[]')})
   ORDER BY i.priority DESC, i.next_run_at, i.n
   LIMIT ${CLAIM_ROOM}
)`,
        insert: `INSERT INTO task_state (${STATE_LIST}, updated_at, locked_by, locked_run_id, locked_until, attempts)
  SELECT ${stateValues.replace(/\bstatus\b/, `CASE WHEN c.run_id IS NULL THEN status ELSE 'RUNNING' END`)}, now(),
         CASE WHEN c.run_id IS NOT NULL THEN $6::text END, c.run_id,
         CASE WHEN c.run_id IS NOT NULL THEN now() + $7::int * interval '1 millisecond' END, CASE WHEN c.run_id IS NULL THEN 0 ELSE 1 END
    FROM input LEFT JOIN claim c USING (n) ORDER BY n
  ON CONFLICT DO NOTHING
  RETURNING *, task_id AS id`,
        events: `, claimed AS (
  SELECT t.*, i.status AS prev_status, false AS recovered, ${CLAIMED_SPEC.map((c) => `i.${c}`).join(', ')}
    FROM inserted t JOIN input i ON i.id = t.id WHERE t.locked_run_id IS NOT NULL
), events AS (
  INSERT INTO task_event (${RUNNING_EVENT_COLUMNS}, actor)
  SELECT ${RUNNING_EVENT_COLUMNS}, actor FROM (
    SELECT i.n, 0 AS k, t.tenant_id, t.id AS task_id, NULL::uuid AS run_id, 'CREATED'::"TaskEventType" AS type, NULL::"TaskStatus" AS from_status,
           i.status AS to_status, t.next_run_at, i.message, NULL::int AS attempt, NULL::text AS worker_id, NULL::boolean AS recovered,
           now() AS created_at, $2::text AS actor
      FROM inserted t JOIN input i ON i.id = t.id
    UNION ALL
    SELECT i.n, 1, ${runningEventSql('c', '$6::text', 'now()')}, NULL FROM claimed c JOIN input i ON i.id = c.id
  ) e ORDER BY n, k
)`,
        woken: 'SELECT 1 FROM inserted WHERE locked_run_id IS NULL',
        result: `,
       (SELECT coalesce(json_agg(x), '[]'::json) FROM (SELECT ${CLAIMED_COLUMNS} FROM claimed c) x)::text AS claimed`,
      }
    : null;
  const text = `
WITH fresh AS (
  SELECT ${
    checked
      ? `(SELECT count(*) FROM jsonb_array_elements($3::jsonb) AS v(value)
            JOIN task_template tt ON tt.id = (v.value ->> 0)::uuid AND tt.xmin::text = v.value ->> 1) = jsonb_array_length($3::jsonb)
         AND ${TENANT_CURRENT}`
      : 'true'
  } AS ok
         ${constants.map((c) => `, ${c}`).join('')}
), input AS (
  SELECT (r.value ->> 0)::int AS n, ${select.join(', ')}
    FROM fresh f CROSS JOIN jsonb_array_elements($1::jsonb) AS r(value) WHERE f.ok
)${parts?.cte ?? ''}${checked ? TENANT_ROW : ''}, inserted AS (
  ${
    parts?.insert ??
    `INSERT INTO task_state (${STATE_LIST}, updated_at)
  SELECT ${stateValues}, now() FROM input ORDER BY n
  ON CONFLICT DO NOTHING
  RETURNING task_id AS id, tenant_id, status, next_run_at`
  }
)${spec}${
    parts?.events ??
    `, events AS (
  INSERT INTO task_event (tenant_id, task_id, type, from_status, to_status, next_run_at, message, actor)
  SELECT t.tenant_id, t.id, 'CREATED', NULL, t.status, t.next_run_at, i.message, $2::text
    FROM inserted t JOIN input i ON i.id = t.id ORDER BY i.n
)`
  }, ${woken(parts?.woken ?? 'SELECT 1 FROM inserted')}
SELECT (SELECT ok FROM fresh) AS fresh, (SELECT n FROM woken)::int AS woken,
       now()::timestamptz(3) AS now,
       (SELECT coalesce(json_agg(i.id ORDER BY i.n), '[]'::json) FROM input i
         WHERE NOT EXISTS (SELECT 1 FROM inserted t WHERE t.id = i.id))::text AS skipped${parts?.result ?? ''}`;
  if (texts.size < MAX_TEXTS) texts.set(shape, text);
  return text;
}

/** "The tenant is as read" ($4 its id, $5 the version of its row as read, null when it had none; $4 null: not checked here). */
const TENANT_CURRENT = `($4::text IS NULL OR CASE WHEN $5::text IS NULL THEN NOT EXISTS (SELECT 1 FROM tenant q WHERE q.id = $4::text)
              ELSE EXISTS (SELECT 1 FROM tenant q WHERE q.id = $4::text AND q.xmin::text = $5::text) END)`;

/** The tenant's row, inserted with its first tasks when it had none ($5 null). */
const TENANT_ROW = `, tenant_row AS (
  INSERT INTO tenant (id, updated_at) SELECT $4::text, now() FROM fresh WHERE fresh.ok AND $4::text IS NOT NULL AND $5::text IS NULL
  ON CONFLICT (id) DO NOTHING
)`;

/**
 * How many of the due tasks a creating statement may claim: the slots reserved for it ($8), or, once
 * another tenant's tasks exist (the first and last tenant_id of task_spec differ from this one), no
 * more than the tenant may still take here ($10).
 */
const CLAIM_ROOM = `CASE WHEN coalesce((SELECT min(tenant_id) FROM task_spec) = $4::text AND (SELECT max(tenant_id) FROM task_spec) = $4::text, true)
              THEN $8::int ELSE LEAST($8::int, $10::int) END`;

/** One NOTIFY on WAKE_CHANNEL when `waiting` (a query) finds a row: a new task some scheduler has to claim. */
function woken(waiting: string): string {
  return `woken AS (
  SELECT count(pg_notify('${WAKE_CHANNEL}', '')) AS n WHERE EXISTS (${waiting})
)`;
}

/**
 * The insert's text for one row, with the parameters of insertText's (the same shape of `params`): what
 * insertText does for a batch, written for a row given by parameters. The batch's form turns the rows
 * into a relation (`input`, a CTE its other parts read, sorted and hash-joined for thousands of rows),
 * and a single create, the common case and the one whose latency counts, spent a tenth of its round
 * trip starting and ending that plan's many nodes: replayed 15 ms apart on PostgreSQL 15 (2-vCPU VM),
 * 2.48 ms for the batch's text against 2.23 for this one. Here each column is its parameter's expression
 * wherever it is used, and the claim, spec, events and answer read the one inserted row: a plan of a few
 * nodes. It writes and answers what insertText's does for a one-row batch (test/startOnCreate.test.ts
 * compares the two, claimed and not).
 */
function oneRowText(varying: readonly (readonly [Column, string, string])[], checked: boolean, claiming: boolean): string {
  const shape = `1${checked ? 1 : 0}${claiming ? 1 : 0}${varying.map(([k]) => k).join(',')}`;
  const known = texts.get(shape);
  if (known !== undefined) return known;
  let next = 2 + (checked ? 3 : 0) + (claiming ? 5 : 0);
  // Each column as an expression of its parameter: from the row in $1 ([[0, ...varying]]) or its own.
  const value = new Map(
    INSERT_COLUMNS.map(([key, column, type]) => {
      const at = varying.findIndex(([k]) => k === key);
      if (at >= 0) return [column, type === 'jsonb' ? `($1::jsonb -> 0 -> ${at + 1})` : `($1::jsonb -> 0 ->> ${at + 1})::${type}`];
      return [column, `$${++next}::text::${type}`];
    }),
  );
  const of = (column: string) => value.get(column)!;
  // The one row as the claim's filter reads a task (claimableSql), before it is inserted (the planner
  // drops the columns the filter does not read).
  const row = `(SELECT ${[...value].map(([c, expression]) => `${expression} AS ${c}`).join(', ')}, 0 AS attempts, false AS last_run_abandoned) i`;
  // The inserted row if it was claimed, with what the claim's event and answer read (as insertText's `claimed`).
  const claimed = `(SELECT t.*, ${of('status')} AS prev_status, false AS recovered, ${CLAIMED_SPEC.map((c) => `${of(c)} AS ${c}`).join(', ')}
      FROM inserted t WHERE t.locked_run_id IS NOT NULL) c`;
  const inserted = claiming
    ? `INSERT INTO task_state (${STATE_LIST}, updated_at, locked_by, locked_run_id, locked_until, attempts)
  SELECT ${STATE_INSERTED.map((c) => (c === 'status' ? `CASE WHEN c.run_id IS NULL THEN ${of(c)} ELSE 'RUNNING' END` : of(c))).join(', ')}, now(),
         CASE WHEN c.run_id IS NOT NULL THEN $6::text END, c.run_id,
         CASE WHEN c.run_id IS NOT NULL THEN now() + $7::int * interval '1 millisecond' END, CASE WHEN c.run_id IS NULL THEN 0 ELSE 1 END
    FROM fresh LEFT JOIN LATERAL (
      SELECT gen_random_uuid() AS run_id FROM ${row}
       WHERE ${claimableSql('i', '$9::text[]')}
         AND NOT EXISTS (SELECT 1 FROM task_state w WHERE ${claimableSql('w', '$9::text[]')})
         AND ${CLAIM_ROOM} > 0
    ) c ON true
   WHERE fresh.ok
  ON CONFLICT DO NOTHING
  RETURNING *, task_id AS id`
    : `INSERT INTO task_state (${STATE_LIST}, updated_at)
  SELECT ${STATE_INSERTED.map(of).join(', ')}, now() FROM fresh WHERE fresh.ok
  ON CONFLICT DO NOTHING
  RETURNING task_id AS id, tenant_id, status, next_run_at`;
  const created = `SELECT 0 AS k, t.tenant_id, t.id AS task_id, NULL::uuid AS run_id, 'CREATED'::"TaskEventType" AS type, NULL::"TaskStatus" AS from_status,
           ${of('status')} AS to_status, t.next_run_at, ${of('message')} AS message, NULL::int AS attempt, NULL::text AS worker_id, NULL::boolean AS recovered,
           now() AS created_at, $2::text AS actor
      FROM inserted t`;
  const events = claiming
    ? `INSERT INTO task_event (${RUNNING_EVENT_COLUMNS}, actor)
  SELECT ${RUNNING_EVENT_COLUMNS}, actor FROM (
    ${created}
    UNION ALL
    SELECT 1, ${runningEventSql('c', '$6::text', 'now()')}, NULL FROM ${claimed}
  ) e ORDER BY k`
    : `INSERT INTO task_event (tenant_id, task_id, type, from_status, to_status, next_run_at, message, actor)
  SELECT t.tenant_id, t.id, 'CREATED', NULL, t.status, t.next_run_at, ${of('message')}, $2::text FROM inserted t`;
  const text = `
WITH fresh AS (
  SELECT ${
    checked
      ? `NOT EXISTS (SELECT 1 FROM jsonb_array_elements($3::jsonb) AS v(value)
                          WHERE NOT EXISTS (SELECT 1 FROM task_template tt WHERE tt.id = (v.value ->> 0)::uuid AND tt.xmin::text = v.value ->> 1))
         AND ${TENANT_CURRENT}`
      : 'true'
  } AS ok
)${checked ? TENANT_ROW : ''}, inserted AS (
  ${inserted}
), spec AS (
  INSERT INTO task_spec (${SPEC_LIST}, created_at)
  SELECT ${SPEC_INSERTED.map((c) => (c === 'id' ? 't.id' : of(c))).join(', ')}, now() FROM inserted t
), events AS (
  ${events}
), ${woken(claiming ? 'SELECT 1 FROM inserted WHERE locked_run_id IS NULL' : 'SELECT 1 FROM inserted')}
SELECT (SELECT ok FROM fresh) AS fresh, (SELECT n FROM woken)::int AS woken,
       now()::timestamptz(3) AS now,
       CASE WHEN (SELECT ok FROM fresh) AND NOT EXISTS (SELECT 1 FROM inserted) THEN json_build_array(${of('id')}) ELSE '[]'::json END::text AS skipped${
         claiming
           ? `,
       (SELECT coalesce(json_agg(x), '[]'::json) FROM (SELECT ${CLAIMED_COLUMNS} FROM ${claimed}) x)::text AS claimed`
           : ''
       }`;
  if (texts.size < MAX_TEXTS) texts.set(shape, text);
  return text;
}

/**
 * The largest batch that runs as a prepared statement. After five runs a prepared statement may keep one
 * generic plan for every size, which can be far off for thousands of rows: on PGlite, which keeps no
 * statistics of its tables, batches of 2,000 went from 7,000 to 400 tasks/s under the generic plan.
 * Planning costs a batch little beside its rows; it is the single create that gains from the cached plan.
 */
const PREPARED_ROWS = 100;

/**
 * Names (prepares) the insert's texts: a few shapes cover what clients send (a single create, a batch
 * varying by argDict and start time, …). Past MAX_SHAPES distinct texts, further ones run unnamed, so a
 * client sending ever new shapes cannot make every connection keep ever more prepared statements.
 */
const shapes = new Map<string, Statement>();
const MAX_SHAPES = 32;

function named(text: string): Statement | string {
  const known = shapes.get(text);
  if (known) return known;
  if (shapes.size >= MAX_SHAPES) return text;
  const prepared = statement(`chronograph_insert_tasks_${shapes.size}`, text);
  shapes.set(text, prepared);
  return prepared;
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (a instanceof Date && b instanceof Date && a.getTime() === b.getTime());
}

export interface InsertedTasks {
  /** False when a template or the tenant changed since it was read: then nothing was written. */
  fresh: boolean;
  /** Ids of rows that were not inserted because a live task holds their uniqueKey. */
  skipped: Set<string>;
  /** created_at and updated_at of the inserted tasks: the transaction's start, rounded to milliseconds as the columns are. */
  now: Date;
  /** The tasks inserted already claimed (only with a `claim`), to be run by the scheduler that reserved them. */
  claimed: ClaimedTask[];
}

/**
 * Inserts new tasks with their CREATED events and NOTIFYs in one statement (see insertStatement), on
 * its own (one statement is one transaction) or inside a transaction that also checks quotas. Works
 * alike on PostgreSQL and PGlite (text parameters only), with no per-row work in the ORM. With `claim`
 * (slots that this instance's scheduler reserved, Scheduler.reserveStart) its due tasks may be inserted
 * already claimed; only on its own, never in a transaction that could still roll back, since the claimed
 * tasks are run as soon as it returns.
 */
export async function insertNewTasks(
  db: SqlRunner,
  rows: readonly NewTaskRow[],
  messages: ReadonlyMap<string, string>,
  actor: string | null,
  read: ReadVersions,
  claim?: StartClaim,
): Promise<InsertedTasks> {
  if (rows.length === 0) return { fresh: true, skipped: new Set(), now: new Date(), claimed: [] };
  const { statement, params } = insertStatement(rows, messages, actor, read, claim);
  const [result] = await db.query<{ fresh: boolean; now: Date; skipped: string; claimed?: string }>(statement, params);
  return {
    fresh: result!.fresh,
    skipped: new Set(JSON.parse(result!.skipped) as string[]),
    now: new Date(result!.now),
    claimed: result!.claimed ? claimedFromJson(result!.claimed) : [],
  };
}

/** Runs statements (by their text) in a Prisma interactive transaction. */
export function prismaRunner(tx: Prisma.TransactionClient): SqlRunner {
  return {
    query: <Row>(s: Statement | string, params: unknown[] = []) => tx.$queryRawUnsafe<Row[]>(typeof s === 'string' ? s : s.text, ...params),
  };
}

/**
 * The task as the database holds it right after the insert: the row's columns plus a new task's defaults.
 * Written out field by field: spreading a 27-field object and adding more costs V8 ~100 µs per object,
 * which at 10,000 tasks was more than the whole insert.
 */
export function newTask(row: NewTaskRow, now: Date): Task & { deduplicated: false } {
  return {
    id: row.id,
    tenantId: row.tenantId,
    templateId: row.templateId,
    fullName: row.fullName,
    taskType: row.taskType,
    funcName: row.funcName,
    argDict: row.argDict as Prisma.JsonObject,
    repeatType: row.repeatType,
    cronExpression: row.cronExpression,
    intervalSeconds: row.intervalSeconds,
    timezone: row.timezone,
    startTime: new Date(row.startTime),
    endTime: row.endTime && new Date(row.endTime),
    maxRuns: row.maxRuns,
    runCount: 0,
    nextRunAt: row.nextRunAt && new Date(row.nextRunAt),
    occurrenceAt: null,
    status: row.status,
    priority: row.priority,
    queue: row.queue,
    attempts: 0,
    maxAttempts: row.maxAttempts,
    timeoutMs: row.timeoutMs,
    uniqueKey: row.uniqueKey,
    source: row.source,
    sourceModel: row.sourceModel,
    sourceRowId: row.sourceRowId,
    sourceField: row.sourceField,
    lockedBy: null,
    lockedUntil: null,
    lastError: null,
    misfirePolicy: row.misfirePolicy,
    misfireToleranceMs: row.misfireToleranceMs,
    overlapPolicy: row.overlapPolicy,
    retryBackoffMs: row.retryBackoffMs,
    lockedRunId: null,
    lastRunAbandoned: false,
    revision: 0,
    memoryLimitMb: row.memoryLimitMb,
    parentId: row.parentId,
    bindingId: row.bindingId,
    createdAt: new Date(now),
    updatedAt: new Date(now),
    deduplicated: false,
  };
}

/** The UUIDv7 clock shared by every TaskIds: ids handed out later sort after earlier ones, as uuid's own v7 does. */
const clock = { msecs: -Infinity, seq: 0 };

/** Random bytes for the ids of small batches, filled 256 ids at a time (as Node's randomUUID keeps its own). */
const pool = { bytes: Buffer.alloc(16 * 256), used: 16 * 256 };

/** `length` random bytes, not shared with any earlier caller: from the pool when it is a small part of it. */
function randomBytesFor(length: number): Buffer {
  if (length > pool.bytes.length / 4) return randomFillSync(Buffer.alloc(length));
  if (pool.used + length > pool.bytes.length) {
    pool.bytes = randomFillSync(Buffer.alloc(pool.bytes.length));
    pool.used = 0;
  }
  pool.used += length;
  return pool.bytes.subarray(pool.used - length, pool.used);
}

/**
 * UUIDv7 ids for a batch of new tasks, in increasing order. uuid's `v7()` reads 16 random bytes from
 * WebCrypto per call (10-40 µs each); here a batch takes its randomness at once: a large one fills its
 * own, a small one (the usual create of one task) takes its part of a pool filled 256 ids at a time.
 */
export class TaskIds {
  private readonly random: Buffer;
  private next_ = 0;

  constructor(count: number) {
    this.random = randomBytesFor(16 * Math.max(1, count));
  }

  next(): string {
    const offset = 16 * (this.next_++ % (this.random.length / 16));
    const random = this.random.subarray(offset, offset + 16);
    const now = Date.now();
    if (now > clock.msecs) {
      // A new millisecond starts its sequence at a random 31-bit value (uuid's v7Sequence).
      clock.msecs = now;
      clock.seq = random.readUInt32BE(6) & 0x7fffffff;
    } else {
      clock.seq = (clock.seq + 1) | 0;
      if (clock.seq === 0) clock.msecs++;
    }
    return uuidv7({ msecs: clock.msecs, seq: clock.seq, random });
  }
}
