import type { Prisma, TaskStatus } from '../generated/prisma/client.js';
import { TASK_TABLES, taskColumn } from '../tasks/taskTables.js';

/**
 * The date-field layer's raw statements: Prisma cannot express `FOR UPDATE`, `DISTINCT ON` or
 * anti-joins against another model's rows. One function per statement.
 */

const LIVE = `('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED')`;

/**
 * Locks the live date-field tasks of these (template, record) pairs and returns their `fields`: the
 * record's own tasks, not the occurrences an ALLOW-overlap task fired (children, which carry its template
 * and record: see fireOverlappingTasks). In id order, so that two hooks over overlapping records always
 * lock in the same order and cannot deadlock. The scheduler claims with SKIP LOCKED, so it passes over a
 * task a hook is changing instead of running its old schedule. One statement that locks and reads: a raw
 * lock followed by Prisma's findMany with `id IN (…1000 ids…)` spent ~450 ms per thousand tasks in the
 * client (bench/dateFields.ts, reconcile).
 */
export async function lockLiveDateFieldTasks<F extends string>(
  tx: Prisma.TransactionClient,
  tenantId: string,
  templateIds: string[],
  rowIds: string[],
  fields: readonly F[],
): Promise<Record<F, unknown>[]> {
  return tx.$queryRawUnsafe(
    `SELECT ${fields.map((f) => `${taskColumn(columnOf(f))} AS "${f}"`).join(', ')} FROM ${TASK_TABLES}
      WHERE s.tenant_id = $1 AND s.source = 'DATE_FIELD' AND s.template_id = ANY($2::uuid[]) AND s.source_row_id = ANY($3::text[])
        AND s.parent_id IS NULL AND s.status IN ${LIVE}
      ORDER BY s.task_id
        FOR UPDATE OF s`,
    tenantId,
    templateIds,
    rowIds,
  );
}

/**
 * The occurrences of ALLOW-overlap tasks `parentIds` that wait to run (SCHEDULED, RETRYING or PAUSED),
 * locked in id order: cancelled with their record's task. One that is running ends on its own.
 */
export async function lockWaitingOccurrences(
  tx: Prisma.TransactionClient,
  tenantId: string,
  parentIds: string[],
): Promise<{ id: string; tenantId: string; status: TaskStatus; parentId: string }[]> {
  if (parentIds.length === 0) return [];
  return tx.$queryRawUnsafe(
    `SELECT task_id AS id, tenant_id AS "tenantId", status, parent_id::text AS "parentId" FROM task_state
      WHERE tenant_id = $1 AND parent_id = ANY($2::uuid[]) AND status IN ('SCHEDULED', 'RETRYING', 'PAUSED')
      ORDER BY task_id
        FOR UPDATE`,
    tenantId,
    parentIds,
  );
}

/**
 * The most records one call locks one by one (lockDateFieldRecords). A batch of more records of a model
 * (the Prisma extension's createMany / updateMany / deleteMany) takes its model's lock exclusively
 * instead (lockDateFieldModels), which keeps every other writer of the model's records out until it
 * commits, and no record locks: one lock per record made a batch of ~100,000 records exhaust
 * PostgreSQL's shared lock table (max_locks_per_transaction × max_connections, "out of shared memory").
 * deleteModel does the same. Not a batch in a transaction that holds the model's lock shared already
 * (holdsDateFieldModelShared).
 */
export const RECORD_LOCKS_MAX = 1000;

/**
 * Transaction-level advisory locks on records (tenant, model, row id), taken in one statement and in a
 * fixed (hash) order so that two transactions over overlapping records cannot deadlock on them; a batch
 * takes all of its records' locks at once, before its first chunk. Released at commit or rollback. A
 * hash collision only makes two unrelated records wait for each other. Hooks take them before they look
 * at a record's tasks; reconcile takes them before it reads the records, so it reads what the last
 * hook of each record left (see LOCK ORDER in DateFieldSvc.ts).
 */
export async function lockDateFieldRecords(tx: Prisma.TransactionClient, tenantId: string, model: string, rowIds: string[]): Promise<void> {
  if (rowIds.length === 0) return;
  await tx.$queryRawUnsafe(
    `SELECT count(pg_advisory_xact_lock(h)) FROM (
       SELECT DISTINCT hashtextextended($1 || '/' || $2 || '/' || k, 7274) AS h FROM unnest($3::text[]) AS k ORDER BY 1
     ) locks`,
    tenantId,
    model,
    rowIds,
  );
}

/**
 * Transaction-level advisory locks on the date-field layer of models (tenant, model): shared by every
 * transaction that plans records of the model against its templates (hooks, record writes, imports,
 * reconcile), exclusive for a change of a template that follows it (templateChanged), for a batch of
 * more than RECORD_LOCKS_MAX records and for deleteModel (which then take no record locks). A template change
 * thus sees every record write that committed before it, and a hook that comes after it plans with the
 * changed template, even a template created or moved to this model, which the hook could not have
 * locked (see LOCK ORDER in DateFieldSvc.ts). In hash order, so two template changes cannot deadlock.
 */
export async function lockDateFieldModels(
  tx: Prisma.TransactionClient,
  tenantId: string,
  models: string[],
  mode: 'shared' | 'exclusive',
): Promise<void> {
  if (models.length === 0) return;
  const lock = mode === 'shared' ? 'pg_advisory_xact_lock_shared' : 'pg_advisory_xact_lock';
  await tx.$queryRawUnsafe(
    `SELECT count(${lock}(h)) FROM (
       SELECT DISTINCT ${modelLockKeySql('$1', 'm')} AS h FROM unnest($2::text[]) AS m ORDER BY 1
     ) locks`,
    tenantId,
    models,
  );
}

/** The SQL expression of a model's date-field lock key (lockDateFieldModels), from SQL expressions of its tenant and model. */
function modelLockKeySql(tenantId: string, model: string): string {
  return `hashtextextended(${tenantId} || '/' || ${model}, 7275)`;
}

/** Whether this transaction holds the date-field lock of (tenant, model) shared (lockDateFieldModels). */
export async function holdsDateFieldModelShared(tx: Prisma.TransactionClient, tenantId: string, model: string): Promise<boolean> {
  // A bigint advisory key is pg_locks' classid (high half) and objid (low half), objsubid 1.
  const [row] = await tx.$queryRawUnsafe<{ held: boolean }[]>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_locks, (SELECT ${modelLockKeySql('$1', '$2')} AS k) key
        WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND objsubid = 1 AND mode = 'ShareLock' AND granted
          AND classid::bigint = ((key.k >> 32) & 4294967295) AND objid::bigint = (key.k & 4294967295)
     ) AS held`,
    tenantId,
    model,
  );
  return row?.held === true;
}

/** Task fields map to snake_case columns (`sourceRowId` → `source_row_id`), as schema.prisma @maps them. */
function columnOf(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * (template, record, record date, first run) of the finished date-field tasks of these records, except
 * cancelled ones: a record date whose task already ran (or failed, or was force-ended) is not run again,
 * neither when the record is saved with the same date nor when the template's timing (offset,
 * timeOfDay, time zone) changes, which moves the first run but not the date. `date` is the record's date
 * as the task's argDict.source.date holds it (ISO 8601 in the zone of the task); null for a task without
 * one. A cancelled task (record deleted, condition no longer met) does not count.
 */
export async function finishedDateFieldRuns(
  tx: Prisma.TransactionClient,
  tenantId: string,
  model: string,
  templateIds: string[],
  rowIds: string[],
): Promise<{ templateId: string; rowId: string; date: string | null; startTime: Date }[]> {
  return tx.$queryRawUnsafe(
    `SELECT template_id::text AS "templateId", source_row_id AS "rowId", arg_dict #>> '{source,date}' AS date, start_time AS "startTime" FROM task
      WHERE tenant_id = $1 AND source = 'DATE_FIELD' AND source_model = $2 AND source_row_id = ANY($3::text[])
        AND template_id = ANY($4::uuid[]) AND parent_id IS NULL AND status IN ('SUCCEEDED', 'FAILED', 'FORCED_END')`,
    tenantId,
    model,
    rowIds,
    templateIds,
  );
}

/**
 * Live date-field tasks of a model that should not exist: their template is not among `keepTemplateIds`
 * (disabled, deleted, or following another model now) or their record is gone from the model's records
 * (`model_record` for a low-code model, `date_field_source` for an external one). With `templateId`,
 * only that template's tasks are considered. Locked, in id order.
 */
export async function lockOrphanDateFieldTasks(
  tx: Prisma.TransactionClient,
  args: { tenantId: string; model: string; keepTemplateIds: string[]; lowCode: boolean; templateId?: string },
): Promise<string[]> {
  // Each task looks its record up by primary key. Comparing r.id::text with source_row_id (no index) made
  // the planner, with the stale statistics a bulk import leaves, scan every record for every task: 7-14 s
  // for 5,000 tasks in bench/dateFields.ts. A row id that is not a UUID cannot be a low-code record's.
  const records = args.lowCode
    ? `model_record r ON r.id = (CASE WHEN s.source_row_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN s.source_row_id::uuid END)
                       AND r.tenant_id = s.tenant_id AND r.model = p.source_model`
    : `date_field_source r ON r.tenant_id = s.tenant_id AND r.model = p.source_model AND r.row_id = s.source_row_id`;
  const rows = await tx.$queryRawUnsafe<{ id: string }[]>(
    `SELECT s.task_id AS id FROM ${TASK_TABLES} LEFT JOIN ${records}
      WHERE s.tenant_id = $1 AND s.source = 'DATE_FIELD' AND p.source_model = $2 AND s.status IN ${LIVE}
        AND ($4::uuid IS NULL OR s.template_id = $4::uuid)
        AND (s.template_id IS NULL OR NOT (s.template_id = ANY($3::uuid[])) OR r.tenant_id IS NULL)
      ORDER BY s.task_id
        FOR UPDATE OF s`,
    args.tenantId,
    args.model,
    args.keepTemplateIds,
    args.templateId ?? null,
  );
  return rows.map((r) => r.id);
}

/** Every live task of one template, locked in id order. */
export async function lockLiveTemplateTasks(tx: Prisma.TransactionClient, tenantId: string, templateId: string): Promise<string[]> {
  const rows = await tx.$queryRawUnsafe<{ id: string }[]>(
    `SELECT task_id AS id FROM task_state WHERE tenant_id = $1 AND template_id = $2::uuid AND source = 'DATE_FIELD' AND status IN ${LIVE}
      ORDER BY task_id FOR UPDATE`,
    tenantId,
    templateId,
  );
  return rows.map((r) => r.id);
}

/**
 * Remembers the latest version of records of an external model (one statement for a whole batch); a
 * low-code model (one with a model_definition) keeps its records itself, so nothing is stored for it. A
 * batch that names one record twice keeps its last version: ON CONFLICT cannot touch a row twice.
 */
export async function upsertDateFieldSources(
  tx: Prisma.TransactionClient,
  tenantId: string,
  model: string,
  records: { rowId: string; data: unknown }[],
): Promise<void> {
  if (records.length === 0) return;
  const last = new Map(records.map((r) => [r.rowId, JSON.stringify(r.data)]));
  await tx.$executeRawUnsafe(
    `INSERT INTO date_field_source (tenant_id, model, row_id, data, updated_at)
     SELECT $1, $2, u.row_id, u.data, now() FROM unnest($3::text[], $4::jsonb[]) AS u(row_id, data)
      WHERE NOT EXISTS (SELECT 1 FROM model_definition d WHERE d.tenant_id = $1 AND d.name = $2)
        -- a record saved unchanged writes nothing (ON CONFLICT would still lock and log the row)
        AND NOT EXISTS (SELECT 1 FROM date_field_source s WHERE s.tenant_id = $1 AND s.model = $2 AND s.row_id = u.row_id AND s.data = u.data)
     ON CONFLICT (tenant_id, model, row_id) DO UPDATE SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at`,
    tenantId,
    model,
    [...last.keys()],
    [...last.values()],
  );
}

/**
 * Inserts low-code records in one statement (the bulk import): raw and batched rather than Prisma's
 * createMany, whose client-side work per row made a 100,000-record import ORM-bound.
 */
export async function insertModelRecords(
  tx: Prisma.TransactionClient,
  tenantId: string,
  model: string,
  rows: { id: string; data: unknown }[],
): Promise<void> {
  if (rows.length === 0) return;
  await tx.$executeRawUnsafe(
    `INSERT INTO model_record (id, tenant_id, model, data, updated_at)
     SELECT u.id, $1, $2, u.data, now() FROM unnest($3::uuid[], $4::jsonb[]) AS u(id, data)`,
    tenantId,
    model,
    rows.map((r) => r.id),
    rows.map((r) => JSON.stringify(r.data)),
  );
}

/**
 * Refreshes the planner's statistics after a bulk load. Until autovacuum gets to it, the planner
 * believes the tables it just grew are nearly empty and picks nested loops that scan all of them per
 * row: reconcile right after a 5,000-record import took 14 s instead of 40 ms (bench/dateFields.ts).
 */
export async function analyzeAfterBulkLoad(db: Prisma.TransactionClient): Promise<void> {
  await db.$executeRawUnsafe('ANALYZE model_record, task');
}
