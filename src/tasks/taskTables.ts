/**
 * A task is two rows (migration 20261207000000_task_state): its `task_spec` row, which a run never
 * writes (name, handler, arguments, schedule, limits, provenance, creation time), and its `task_state`
 * row, narrow and rewritten by every run (status, lease, attempts, next run, and the columns of every
 * index that names the status). The view `task` joins them for reading and for Prisma's writes; the
 * statements that lock tasks or write them in bulk name the tables, through these.
 */

/** task_spec's own columns (besides its key `id` and SHARED_COLUMNS); every other column of a task is task_state's. */
export const SPEC_COLUMNS: ReadonlySet<string> = new Set([
  'full_name',
  'task_type',
  'func_name',
  'arg_dict',
  'cron_expression',
  'interval_seconds',
  'timezone',
  'start_time',
  'end_time',
  'max_runs',
  'timeout_ms',
  'memory_limit_mb',
  'source_model',
  'source_field',
  'created_at',
]);

/**
 * Columns in both tables, written once when the task is created and never changed: the tenant, and a
 * date-field task's `source` and record (`source_row_id`), which the state's live key and the spec's
 * history index both read. The view reads `source` from task_state and `source_row_id` from task_spec.
 */
export const SHARED_COLUMNS: ReadonlySet<string> = new Set(['tenant_id', 'source', 'source_row_id']);

/** The tables of tasks as `s` (task_state) and `p` (task_spec), joined as the view joins them. */
export const TASK_TABLES = 'task_state s JOIN task_spec p ON p.id = s.task_id AND p.tenant_id = s.tenant_id';

/** A column of `task` (the view's name) as a column of TASK_TABLES: `id` is task_state's task_id. */
export function taskColumn(column: string): string {
  if (column === 'id') return 's.task_id';
  return SPEC_COLUMNS.has(column) ? `p.${column}` : `s.${column}`;
}
