import { getDatamodel } from '../generated/pothos-types.js';

/**
 * The stream's read of new events (readEventsAfter) also carries each event's own columns and its
 * task's, so that a subscription selecting only those (the usual case: the dashboard, the README's
 * loop) is answered from that one statement, without reading the event again. A selection reaching
 * further (the event's run, the task's template, a Json column such as argDict) is read as before.
 */
export interface EventRow {
  event: Record<string, unknown>;
  task: Record<string, unknown>;
}

interface Field {
  name: string;
  kind: string;
  type: string;
}

const models = getDatamodel().datamodel.models as unknown as Record<string, { fields: Field[] }>;

/**
 * Columns carried: scalars and enums, except Json (an argDict can be 100 KB; a batch of a thousand
 * events must stay small) and types JSON cannot carry exactly.
 */
function carried(model: string): Map<string, Field> {
  const fields = models[model]!.fields.filter(
    (f) => (f.kind === 'scalar' || f.kind === 'enum') && !['Json', 'Bytes', 'Decimal'].includes(f.type),
  );
  return new Map(fields.map((f) => [f.name, f]));
}

const EVENT_FIELDS = carried('TaskEvent');
const TASK_FIELDS = carried('Task');
/** Every scalar of the model is carried, so "all scalars" (`true`, `include`) can be served. */
const scalarCount = (model: string) => models[model]!.fields.filter((f) => f.kind !== 'object').length;
const EVENT_COMPLETE = EVENT_FIELDS.size === scalarCount('TaskEvent');
const TASK_COMPLETE = TASK_FIELDS.size === scalarCount('Task');

/** Column names follow the schema's @map convention (camelCase field, snake_case column); a mismatch fails the statement loudly. */
const column = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** json_build_object of `alias`'s carried columns; BigInt as text (JSON numbers lose precision past 2^53). */
function jsonObject(alias: string, fields: Map<string, Field>): string {
  return `json_build_object(${[...fields.values()]
    .map((f) => `'${f.name}', ${alias}.${column(f.name)}${f.type === 'BigInt' ? '::text' : ''}`)
    .join(', ')})`;
}

/** For readEventsAfter's select list: the event (alias `e`) and its task (alias `t`). */
export const EVENT_ROW_SQL = `json_build_object('event', ${jsonObject('e', EVENT_FIELDS)}, 'task', ${jsonObject('t', TASK_FIELDS)})`;

function revive(values: Record<string, unknown>, fields: Map<string, Field>): Record<string, unknown> {
  for (const [name, field] of fields) {
    const value = values[name];
    if (value == null) continue;
    if (field.type === 'DateTime') values[name] = new Date(value as string);
    else if (field.type === 'BigInt') values[name] = BigInt(value as string);
  }
  return values;
}

/** The row as readEventsAfter's JSON carries it → the values Prisma would have returned. */
export function reviveEventRow(row: { event: Record<string, unknown>; task: Record<string, unknown> }): EventRow {
  return { event: revive(row.event, EVENT_FIELDS), task: revive(row.task, TASK_FIELDS) };
}

/**
 * The event as `findUnique({ ...query })` would return it, when `query` (Pothos's selection for the
 * subscriber's document) asks only for carried columns of the event and of its task; otherwise
 * undefined, and the caller reads it.
 */
export function eventFromRow(row: EventRow, query: unknown): Record<string, unknown> | undefined {
  if (!selectsOnly(query, EVENT_FIELDS, true)) return undefined;
  // Not `{ ...row.event, task }`: a field after a spread is a slow path on Node 20's V8 (recurrence.ts).
  return Object.assign({ task: row.task }, row.event);
}

/**
 * Whether `query` (`true`, `{}`, `{ select }` or `{ include }`) asks only for carried columns: a
 * `select` naming carried fields (and, for the event, `task` with the same rule), or all scalars
 * (`true`, `{}`, `include`) of a model whose scalars are all carried.
 */
function selectsOnly(query: unknown, fields: Map<string, Field>, allowTask: boolean): boolean {
  const complete = fields === EVENT_FIELDS ? EVENT_COMPLETE : TASK_COMPLETE;
  if (query === true) return complete;
  if (!query || typeof query !== 'object') return false;
  const { select, include, ...rest } = query as { select?: unknown; include?: unknown };
  if (Object.keys(rest).length > 0) return false;
  const relation = (name: string, wanted: unknown) => allowTask && name === 'task' && selectsOnly(wanted, TASK_FIELDS, false);
  if (select == null) {
    if (!complete) return false;
    return Object.entries((include ?? {}) as object).every(([name, wanted]) => !wanted || relation(name, wanted));
  }
  if (include != null || typeof select !== 'object') return false;
  return Object.entries(select).every(([name, wanted]) => !wanted || (fields.has(name) ? wanted === true : relation(name, wanted)));
}
