import { Prisma } from '@prisma/client/extension';
import { ChronographError } from '../errors.js';
import type { DateFieldResult } from './applyDateFields.js';
import type { DateFieldSvc } from './DateFieldSvc.js';

type Row = Record<string, unknown>;

/** How a Prisma model of an app feeds the date-field layer. */
export interface DateFieldSource<R = Row> {
  /** The model name its date-field templates follow (`models.Contract`), or one per row. */
  model: string | ((row: R) => string);
  /** The record as templates see it; default: the row's own fields. */
  toRecord?: (row: R) => Row;
  /** The tenant of a row; default "default". */
  tenantId?: string | ((row: R) => string);
  /** The primary key field; default `id`. */
  idField?: string;
}

/** Called once per write with the rows it affected, e.g. to see what the layer did; errors propagate. */
export type DateFieldListener = (model: string, result: DateFieldResult) => void;

const WRITES = new Set([
  'create',
  'createMany',
  'createManyAndReturn',
  'update',
  'updateMany',
  'updateManyAndReturn',
  'upsert',
  'delete',
  'deleteMany',
]);

/**
 * A Prisma client extension (query component) that runs the date-field layer after every write to the
 * Prisma models an app registers, as the seed's afterSave / afterDelete hooks would:
 *
 *   const db = prisma.$extends(dateFieldExtension(app.dateFieldSvc, { Contract: { model: 'models.Contract' } }));
 *   await db.contract.update({ where: { id }, data: { expireDate } });  // its task is rescheduled
 *
 * - create / update / upsert (and createManyAndReturn / updateManyAndReturn) save the written rows;
 *   createMany runs as createManyAndReturn so the new rows are known; updateMany reads the ids its
 *   `where` matches first and the rows after; delete / deleteMany cancel the rows' tasks.
 * - The layer runs after the write, in its own transaction, as afterSave hooks do: a hook that fails (a
 *   date that does not parse) fails the call after the row was written; `reconcileDateFieldTasks(model)`
 *   repairs that. Prisma gives query extensions no handle on a caller's transaction, so a registered
 *   write inside `$transaction` is refused (CONFLICT) rather than run half outside it; code that needs
 *   both in one transaction calls `dateFieldSvc.saveExternal(tx, model, records)` itself.
 * - A `select`, `include` or `omit` on a single-row write is applied by reading the row again, since
 *   the layer needs every field.
 * - A row whose model is a low-code model of its tenant (defined with saveModel) is refused (CONFLICT,
 *   after the write, writing nothing of the layer): Chronograph keeps that model's records, and its tasks
 *   follow them; write them with ModelSvc (createRecord, updateRecord, deleteRecord).
 */
export function dateFieldExtension(
  dateFields: Pick<DateFieldSvc, 'forTenant'>,
  // biome-ignore lint/suspicious/noExplicitAny: each model's source has its own record type.
  sources: Record<string, DateFieldSource<any>>,
  onResult?: DateFieldListener,
) {
  return Prisma.defineExtension((client) => {
    const delegate = (model: string) =>
      // biome-ignore lint/suspicious/noExplicitAny: Prisma's model delegates return each model's own row type.
      (client as unknown as Record<string, Record<string, (args: unknown) => Promise<any>>>)[
        model.charAt(0).toLowerCase() + model.slice(1)
      ]!;

    async function run(source: DateFieldSource, rows: Row[], deleted: boolean): Promise<void> {
      const idField = source.idField ?? 'id';
      const groups = new Map<string, { svc: string; model: string; records: { rowId: string; data: Row | null }[] }>();
      for (const row of rows) {
        const model = typeof source.model === 'function' ? source.model(row) : source.model;
        const tenantId = typeof source.tenantId === 'function' ? source.tenantId(row) : (source.tenantId ?? 'default');
        const rowId = String(row[idField]);
        const key = `${tenantId}\u0000${model}`;
        const group = groups.get(key) ?? { svc: tenantId, model, records: [] };
        group.records.push({ rowId, data: deleted ? null : { ...(source.toRecord ? source.toRecord(row) : row), id: rowId } });
        groups.set(key, group);
      }
      for (const group of groups.values()) {
        const result = await dateFields.forTenant(group.svc).saveRecords(group.model, group.records);
        onResult?.(group.model, result);
      }
    }

    return client.$extends({
      name: 'chronograph-date-fields',
      query: {
        $allModels: {
          async $allOperations(params) {
            const { model, operation, args, query } = params;
            const source = sources[model];
            if (!source || !WRITES.has(operation)) return query(args);
            if (insideTransaction(params)) {
              throw new ChronographError(
                'CONFLICT',
                `${model}.${operation} ran inside $transaction: the date-field extension cannot join it (and would wait on it on PGlite). ` +
                  'Write through the extended client outside transactions, or call dateFieldSvc.saveExternal(tx, model, records) in yours.',
              );
            }
            const idField = source.idField ?? 'id';
            const db = delegate(model);
            const { select, include, omit, ...rest } = (args ?? {}) as Row;
            const full = rest as typeof args;
            const projected = select !== undefined || include !== undefined || omit !== undefined;
            const reread = async (rows: Row[]) =>
              projected ? db.findMany!({ where: { [idField]: { in: rows.map((r) => r[idField]) } }, select, include, omit }) : rows;

            switch (operation) {
              case 'create':
              case 'update':
              case 'upsert': {
                const row = (await query(full)) as Row;
                await run(source, [row], false);
                return projected ? db.findUniqueOrThrow!({ where: { [idField]: row[idField] }, select, include, omit }) : row;
              }
              case 'createManyAndReturn':
              case 'updateManyAndReturn': {
                const rows = (await query(full)) as Row[];
                await run(source, rows, false);
                return reread(rows);
              }
              case 'createMany': {
                const rows = (await db.createManyAndReturn!(args)) as Row[];
                await run(source, rows, false);
                return { count: rows.length };
              }
              case 'updateMany': {
                const a = args as { where?: unknown; limit?: number };
                const ids = (await db.findMany!({ where: a.where, select: { [idField]: true }, take: a.limit })) as Row[];
                const result = await query(args);
                const rows = (await db.findMany!({ where: { [idField]: { in: ids.map((r) => r[idField]) } } })) as Row[];
                await run(source, rows, false);
                return result;
              }
              case 'delete': {
                const shown = projected
                  ? await db.findUnique!({ where: (args as { where: unknown }).where, select, include, omit })
                  : undefined;
                const row = (await query(full)) as Row;
                await run(source, [row], true);
                return shown ?? row;
              }
              case 'deleteMany': {
                const a = args as { where?: unknown; limit?: number };
                const rows = (await db.findMany!({ where: a.where, take: a.limit })) as Row[];
                const result = await query(args);
                await run(source, rows, true);
                return result;
              }
            }
            return query(args);
          },
        },
      },
    });
  });
}

/**
 * Whether the operation runs in an interactive or batch transaction. Prisma passes this to query
 * extensions only as an internal parameter, so this reads it defensively: if Prisma stops passing it,
 * the guard turns off and writes behave as documented above.
 */
function insideTransaction(params: object): boolean {
  const internal = (params as { __internalParams?: { transaction?: unknown } }).__internalParams;
  return internal?.transaction != null;
}
