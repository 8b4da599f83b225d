import type { Prisma } from '../generated/prisma/client.js';

/**
 * The date-field layer's raw statements: Prisma cannot express `FOR UPDATE`, `DISTINCT ON` or
 * anti-joins against another model's rows. One function per statement.
 */

const LIVE = `('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED')`;

/**
 * Locks the live date-field tasks of these (template, record) pairs, in id order so that two hooks
 * over overlapping records always lock in the same order and cannot deadlock. The scheduler claims with
 * SKIP LOCKED, so it passes over a task a hook is changing instead of running its old schedule.
 */
export async function lockLiveDateFieldTasks(tx: Prisma.TransactionClient, tenantId: string, templateIds: string[], rowIds: string[]): Promise<string[]> {
  const rows = await tx.$queryRawUnsafe<{ id: string }[]>(
    `SELECT id FROM task
      WHERE tenant_id = $1 AND source = 'DATE_FIELD' AND template_id = ANY($2::uuid[]) AND source_row_id = ANY($3::text[])
        AND status IN ${LIVE}
      ORDER BY id
        FOR UPDATE`,
    tenantId,
    templateIds,
    rowIds,
  );
  return rows.map((r) => r.id);
}

/**
 * (template, record, first run) of the finished date-field tasks of these records, except cancelled
 * ones: a date whose task already ran (or failed, or was force-ended) is not run again when the record
 * is saved with the same date. A cancelled task (record deleted, condition no longer met) does not count.
 */
export async function finishedDateFieldRuns(
  tx: Prisma.TransactionClient,
  tenantId: string,
  model: string,
  templateIds: string[],
  rowIds: string[],
): Promise<{ templateId: string; rowId: string; startTime: Date }[]> {
  return tx.$queryRawUnsafe(
    `SELECT template_id::text AS "templateId", source_row_id AS "rowId", start_time AS "startTime" FROM task
      WHERE tenant_id = $1 AND source = 'DATE_FIELD' AND source_model = $2 AND source_row_id = ANY($3::text[])
        AND template_id = ANY($4::uuid[]) AND status IN ('SUCCEEDED', 'FAILED', 'FORCED_END')`,
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
  const recordExists = args.lowCode
    ? `EXISTS (SELECT 1 FROM model_record r WHERE r.tenant_id = t.tenant_id AND r.model = t.source_model AND r.id::text = t.source_row_id)`
    : `EXISTS (SELECT 1 FROM date_field_source s WHERE s.tenant_id = t.tenant_id AND s.model = t.source_model AND s.row_id = t.source_row_id)`;
  const rows = await tx.$queryRawUnsafe<{ id: string }[]>(
    `SELECT t.id FROM task t
      WHERE t.tenant_id = $1 AND t.source = 'DATE_FIELD' AND t.source_model = $2 AND t.status IN ${LIVE}
        AND ($4::uuid IS NULL OR t.template_id = $4::uuid)
        AND (t.template_id IS NULL OR NOT (t.template_id = ANY($3::uuid[])) OR NOT ${recordExists})
      ORDER BY t.id
        FOR UPDATE OF t`,
    args.tenantId,
    args.model,
    args.keepTemplateIds,
    args.templateId ?? null,
  );
  return rows.map((r) => r.id);
}

/**
 * Remembers the latest version of external records (one statement for a whole batch). A batch that
 * names one record twice keeps its last version: ON CONFLICT cannot touch a row twice in one statement.
 */
export async function upsertDateFieldSources(tx: Prisma.TransactionClient, tenantId: string, model: string, records: { rowId: string; data: unknown }[]): Promise<void> {
  if (records.length === 0) return;
  const last = new Map(records.map((r) => [r.rowId, JSON.stringify(r.data)]));
  await tx.$executeRawUnsafe(
    `INSERT INTO date_field_source (tenant_id, model, row_id, data, updated_at)
     SELECT $1, $2, u.row_id, u.data, now() FROM unnest($3::text[], $4::jsonb[]) AS u(row_id, data)
     ON CONFLICT (tenant_id, model, row_id) DO UPDATE SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at`,
    tenantId,
    model,
    [...last.keys()],
    [...last.values()],
  );
}

/** Every live task of one template, locked in id order. */
export async function lockLiveTemplateTasks(tx: Prisma.TransactionClient, tenantId: string, templateId: string): Promise<string[]> {
  const rows = await tx.$queryRawUnsafe<{ id: string }[]>(
    `SELECT id FROM task WHERE tenant_id = $1 AND template_id = $2::uuid AND source = 'DATE_FIELD' AND status IN ${LIVE} ORDER BY id FOR UPDATE`,
    tenantId,
    templateId,
  );
  return rows.map((r) => r.id);
}
