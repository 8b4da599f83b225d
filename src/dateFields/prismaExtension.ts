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

/** Called with each result of the layer for a write (once per tenant and model, again for rows that changed meanwhile); errors propagate. */
export type DateFieldListener = (model: string, result: DateFieldResult) => void;

/** One row as the layer is told of it (see `run`). */
interface Entry {
  tenantId: string;
  model: string;
  rowId: string;
  /** The row's key as Prisma has it (a number, a string), to read it again. */
  id: unknown;
  data: Row | null;
}

/** How often a write's rows are planned again because they kept changing (see `run`) before it leaves them to later writes. */
const MAX_SETTLE_ROUNDS = 10;

const entryKey = (entry: Entry) => `${entry.tenantId}\u0000${entry.model}\u0000${entry.rowId}`;

/** Whether two records hold the same values: JSON with object keys sorted, bigints and dates as text. */
function sameRecord(a: Row | null, b: Row | null): boolean {
  return canonical(a) === canonical(b);
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return `${v}n`;
    if (v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date) && Object.getPrototypeOf(v) === Object.prototype) {
      return Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
    }
    return v;
  });
}

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
 *   `where` matches first and the rows after; delete / deleteMany cancel the rows' tasks. When a source's
 *   `model` or `tenantId` is a function, updates read their rows before the write too: a row moved to
 *   another model or tenant has its tasks there cancelled, as if deleted there.
 * - The layer runs after the write, in its own transaction, as afterSave hooks do: a hook that fails (a
 *   date that does not parse) fails the call after the row was written; `reconcileDateFieldTasks(model)`
 *   repairs that. Prisma gives query extensions no handle on a caller's transaction, so a registered
 *   write inside `$transaction` is refused (CONFLICT) rather than run half outside it; code that needs
 *   both in one transaction calls `dateFieldSvc.saveExternal(tx, model, records)` itself.
 * - The layer plans from the rows as the write left them, then reads them again after its commit and
 *   applies what changed until the two agree (see `run`): two writes of one row whose layers finish in
 *   the reverse order still leave its tasks where the row is. A row that changes while its layer runs
 *   may briefly have a task planned from the version before (moved or cancelled again in the next
 *   round, with its events). Another writer's refused data, or a row still changing after 10 rounds,
 *   ends the looking again without failing this call: the other writes' own runs carry on.
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

    /** One row as the layer sees it: its tenant, model and id, and the record. */
    const entryOf = (source: DateFieldSource, row: Row): Entry => {
      const rowId = String(row[source.idField ?? 'id']);
      return {
        tenantId: typeof source.tenantId === 'function' ? source.tenantId(row) : (source.tenantId ?? 'default'),
        model: typeof source.model === 'function' ? source.model(row) : source.model,
        rowId,
        id: row[source.idField ?? 'id'],
        data: { ...(source.toRecord ? source.toRecord(row) : row), id: rowId },
      };
    };

    /** One saveRecords per tenant and model, as one transaction each. */
    async function apply(entries: Entry[]): Promise<void> {
      const groups = new Map<string, { tenantId: string; model: string; records: { rowId: string; data: Row | null }[] }>();
      for (const entry of entries) {
        const key = `${entry.tenantId}\u0000${entry.model}`;
        const group = groups.get(key) ?? { tenantId: entry.tenantId, model: entry.model, records: [] };
        group.records.push({ rowId: entry.rowId, data: entry.data });
        groups.set(key, group);
      }
      for (const group of groups.values()) {
        const result = await dateFields.forTenant(group.tenantId).saveRecords(group.model, group.records);
        onResult?.(group.model, result);
      }
    }

    /**
     * Runs the layer for the rows a write touched, as the write left them (deleted: as gone), then reads
     * them again after each run of the layer and applies what changed, until what it applied is what the
     * rows hold. The layer runs after the write, in a transaction of its own, so two writes of one row
     * (two requests, two processes) can reach it in the reverse of the order they wrote in: planned only
     * from the row the write returned, the earlier write's layer committed last and left the task planned
     * from a version the row no longer held (or a live task for a row deleted meanwhile). Checked after
     * each commit, whichever run commits last has read the rows after every earlier layer commit, and a
     * write after that read has a run of its own that commits later still.
     *
     * The first run is this write's: its errors (a date that does not parse) are the call's, as before.
     * What later rounds read is other writers' data; a refusal of it (their bad date) is theirs to report
     * through their own run, and this call stops there. So it does after MAX_SETTLE_ROUNDS rounds of a row
     * that keeps changing: each write through the extension has its run, and the last one settles it
     * (writes that bypass the extension are for reconcileDateFieldTasks to catch up with, as ever).
     */
    async function run(
      source: DateFieldSource,
      model: string,
      rows: Row[],
      options: { before?: Row[]; deleted?: boolean } = {},
    ): Promise<void> {
      const idField = source.idField ?? 'id';
      // The rows the write touched: under the tenant and model it left them in (or had them in, deleted),
      // and under those they had before an update (see `moves`): a row it moved to another tenant or model
      // has its tasks cancelled in the one it left.
      const touched = new Map<string, Entry>();
      const add = (row: Row, gone: boolean) => {
        const entry = entryOf(source, row);
        touched.set(entryKey(entry), gone ? { ...entry, data: null } : entry);
      };
      for (const row of options.before ?? []) add(row, true);
      for (const row of rows) add(row, options.deleted === true);
      let next = [...touched.values()];
      const applied = new Map<string, Entry>();
      for (let round = 0; ; round++) {
        try {
          await apply(next);
        } catch (error) {
          // The first round's errors are this write's; a refusal in a later one is another writer's data (see above).
          if (round === 0 || !(error instanceof ChronographError)) throw error;
          return;
        }
        for (const entry of next) applied.set(entryKey(entry), entry);
        if (round === MAX_SETTLE_ROUNDS) return;
        const ids = [...new Map([...touched.values()].map((e) => [e.rowId, e.id])).values()];
        const now = (await delegate(model).findMany!({ where: { [idField]: { in: ids } } })) as Row[];
        const current = new Map(now.map((row) => [String(row[idField]), entryOf(source, row)]));
        for (const row of current.values()) if (!touched.has(entryKey(row))) touched.set(entryKey(row), row);
        next = [];
        for (const [key, entry] of touched) {
          const present = current.get(entry.rowId);
          // Gone, or now of another tenant or model: none of its tasks here.
          const wanted = present && entryKey(present) === key ? present : { ...entry, data: null };
          const told = applied.get(key);
          if (!told || !sameRecord(told.data, wanted.data)) next.push(wanted);
        }
        if (next.length === 0) return;
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
            // An update may move a row to another tenant or model only when a function decides them: the
            // rows are then read before it too (run), so their tasks leave the tenant and model they leave.
            const moves = typeof source.model === 'function' || typeof source.tenantId === 'function';
            const { select, include, omit, ...rest } = (args ?? {}) as Row;
            const full = rest as typeof args;
            const projected = select !== undefined || include !== undefined || omit !== undefined;
            const reread = async (rows: Row[]) =>
              projected ? db.findMany!({ where: { [idField]: { in: rows.map((r) => r[idField]) } }, select, include, omit }) : rows;

            switch (operation) {
              case 'create':
              case 'update':
              case 'upsert': {
                const where = (args as { where?: unknown }).where;
                const before = moves && operation !== 'create' ? ((await db.findUnique!({ where })) as Row | null) : null;
                const row = (await query(full)) as Row;
                await run(source, model, [row], { before: before ? [before] : [] });
                return projected ? db.findUniqueOrThrow!({ where: { [idField]: row[idField] }, select, include, omit }) : row;
              }
              case 'createManyAndReturn':
              case 'updateManyAndReturn': {
                const a = args as { where?: unknown; limit?: number };
                const before =
                  moves && operation === 'updateManyAndReturn' ? ((await db.findMany!({ where: a.where, take: a.limit })) as Row[]) : [];
                const rows = (await query(full)) as Row[];
                await run(source, model, rows, { before });
                return reread(rows);
              }
              case 'createMany': {
                const rows = (await db.createManyAndReturn!(args)) as Row[];
                await run(source, model, rows);
                return { count: rows.length };
              }
              case 'updateMany': {
                const a = args as { where?: unknown; limit?: number };
                const ids = (await db.findMany!({
                  where: a.where,
                  ...(!moves && { select: { [idField]: true } }),
                  take: a.limit,
                })) as Row[];
                const result = await query(args);
                const rows = (await db.findMany!({ where: { [idField]: { in: ids.map((r) => r[idField]) } } })) as Row[];
                await run(source, model, rows, { before: moves ? ids : [] });
                return result;
              }
              case 'delete': {
                const shown = projected
                  ? await db.findUnique!({ where: (args as { where: unknown }).where, select, include, omit })
                  : undefined;
                const row = (await query(full)) as Row;
                await run(source, model, [row], { deleted: true });
                return shown ?? row;
              }
              case 'deleteMany': {
                const a = args as { where?: unknown; limit?: number };
                const rows = (await db.findMany!({ where: a.where, take: a.limit })) as Row[];
                const result = await query(args);
                await run(source, model, rows, { deleted: true });
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
