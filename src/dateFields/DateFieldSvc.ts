import { isLockTimeout } from '../db/dbErrors.js';
import { type RequestScope, scopedDeps } from '../db/requestScope.js';
import { badInput, ChronographError } from '../errors.js';
import type { PrismaClient, TaskTemplate } from '../generated/prisma/client.js';
import { type Prisma, RepeatType, TaskStatus } from '../generated/prisma/client.js';
import { transition } from '../tasks/statusMachine.js';
import { assertJson, assertName } from '../tasks/validate.js';
import { QuotaGuard } from '../tenants/QuotaGuard.js';
import {
  addCounts,
  applyDateFields,
  type DateFieldResult,
  emptyResult,
  type PreparedTemplate,
  type RecordChange,
} from './applyDateFields.js';
import { isPlainObject, stableStringify } from './condition.js';
import {
  holdsDateFieldModelShared,
  lockDateFieldModels,
  lockDateFieldRecords,
  lockLiveTemplateTasks,
  lockOrphanDateFieldTasks,
  RECORD_LOCKS_MAX,
  upsertDateFieldSources,
} from './dateFieldSql.js';
import { configOf } from './dateRule.js';
import type { ModelField } from './modelFields.js';

export interface DateFieldSvcDeps {
  prisma: PrismaClient;
  /** Largest record (as JSON) the layer remembers; MAX_JSON_BYTES. */
  maxJsonBytes: number;
  now?: () => Date;
  /** How long a hook waits for each lock of the date-field layer (the setting HOOK_LOCK_WAIT_MS); HOOK_LOCK_WAIT_MS below when not given. */
  lockWaitMs?: number;
}

/** The seed's rowObj: `{ model, postData, prevData }` (afterSave) or `{ model, prevData }` (afterDelete). */
export interface RowObj {
  model?: unknown;
  postData?: unknown;
  prevData?: unknown;
}

/** Interactive transactions that may walk every record of a model (reconcile, template changes). */
export const LONG_TRANSACTION = { maxWait: 10_000, timeout: 30 * 60_000 } as const;

const PAGE = 1000;

/**
 * How long a hook (saveDateFieldTask, deleteDateFieldTask, a low-code record write) waits for each lock
 * it takes (LOCK ORDER): a template change of its model holds the model lock exclusively, and the quota
 * lock, for its whole transaction, which re-plans every record of the model. Past it the hook fails with
 * TIMEOUT (nothing written; retry). Its transaction's time limit covers the waits (hookTransaction).
 */
export const HOOK_LOCK_WAIT_MS = 10_000;

/*
 * LOCK ORDER. Every transaction of the date-field layer takes its locks in this order, and only in it,
 * so that no two of them wait for each other's locks in opposite orders (a deadlock):
 *
 *   0. the template-file sync only (TemplateSvc.syncFromFiles): the tenant's sync lock (lockTemplateSync),
 *      before anything else, so that instances starting together sync one after the other;
 *   1. template rows: a template change updates (or inserts) its row; hooks and reconcile lock the
 *      model's DATE_FIELD templates FOR SHARE (templatesOf), so they wait for an update to commit;
 *   2. the model lock (lockDateFieldModels): exclusive for a template change (every model the template
 *      followed or follows), for a batch of more than RECORD_LOCKS_MAX records and for deleteModel (they
 *      then take no record locks), shared for hooks, record writes, imports and reconcile. Never shared then
 *      exclusive in one transaction (it would wait for the other holders while holding it): a large batch
 *      in a transaction that holds the lock shared already locks its records one by one;
 *   3. the tenant's quota lock (QuotaGuard.beforeCreate; tenants with count quotas only): before any
 *      record lock, by any transaction that may create a task (a batch: before its first chunk;
 *      reconcile and template changes: always). A change of platform templates then takes the quota
 *      locks of every tenant they are bound to, all in one statement in one global order
 *      (TemplateBindingSvc.lockQuotas, QuotaGuard.beforeCreateAll), before any task lock;
 *   4. record locks (lockDateFieldRecords), all of a batch's records in one statement;
 *   5. task rows (FOR UPDATE), in id order.
 *
 * Before 1, a low-code record write writes its record's row (an insert takes a key-share lock on its
 * model's definition row), and deleteModel locks its model's definition row and deletes the records' rows.
 *
 * A transaction that changes several templates (the template-file sync, TemplateSvc.syncFromFiles) takes
 * 0-3 for all of them before its other writes (it inserts its new templates' rows in 1). Hooks bound their waits (hookTransaction, TIMEOUT).
 *
 * Records are read after the locks that guard them: a template change reads them under the exclusive
 * model lock (no hook of the model is under way), reconcile under the record locks (a hook of the record
 * has committed, or waits for reconcile to commit and then plans after it). The last writer wins.
 */

/**
 * The model-event layer of one tenant: date-field templates turn record dates into tasks. The hooks
 * (`saveDateFieldTask` / `deleteDateFieldTask`), low-code record writes, the Prisma extension,
 * template changes and reconcile all end in `applyDateFields`; this class finds the templates and the
 * records and owns the transactions. Methods that take a `tx` run inside the caller's transaction and
 * only ever use `tx`: on PGlite (one connection) a query on the base client would wait for that
 * transaction forever.
 */
export class DateFieldSvc {
  constructor(
    private readonly deps: DateFieldSvcDeps,
    readonly tenantId = 'default',
    /** TaskEvent.actor of the changes made through this service. */
    readonly actor: string | null = null,
  ) {}

  forTenant(tenantId: string, actor: string | null = this.actor): DateFieldSvc {
    return new DateFieldSvc(this.deps, tenantId, actor);
  }

  /** This service for work done in `scope` (a request's operation): its statements check the scope first. */
  withScope(scope: RequestScope): DateFieldSvc {
    return new DateFieldSvc(scopedDeps(this.deps, scope), this.tenantId, this.actor);
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** afterSave hook: the record's tasks follow `postData` (merged over `prevData`, for partial payloads). */
  async saveDateFieldTask(rowObj: unknown): Promise<DateFieldResult> {
    const { model, rowId, data } = parseRowObj(rowObj, 'save');
    return this.hookTransaction(model, (tx) => this.saveChanges(tx, model, [{ rowId, data, prefix: 'rowObj.postData' }], 'rowObj.model'));
  }

  /** afterDelete hook: the record's live tasks are CANCELLED. */
  async deleteDateFieldTask(rowObj: unknown): Promise<DateFieldResult> {
    const { model, rowId } = parseRowObj(rowObj, 'delete');
    return this.hookTransaction(model, (tx) => this.saveChanges(tx, model, [{ rowId, data: null }], 'rowObj.model'));
  }

  /**
   * The transaction of a hook or a single record write of `model`. Its lock waits are bounded
   * (lock_timeout, HOOK_LOCK_WAIT_MS each) and its time limit covers them: a hook that comes while a
   * template of its model is being created, changed or moved (which holds the model lock until it
   * commits) waits for it and then plans with the changed template; one that would wait longer fails
   * with TIMEOUT and a message that says why, with nothing written. Prisma's default limit (5 s) made
   * a hook that waited longer fail on its expired transaction, with an error that named the request's
   * budget, not the lock.
   */
  async hookTransaction<T>(
    model: string,
    fn: (tx: Prisma.TransactionClient) => Promise<T>,
    /** What its lock waits are for, in the TIMEOUT message; default: what a hook waits for. */
    busy = `a change of a template that follows ${model} (or a reconcile or import of its records) is in progress`,
  ): Promise<T> {
    const waitMs = this.deps.lockWaitMs ?? HOOK_LOCK_WAIT_MS;
    const timeoutMs = 5 * waitMs + 30_000;
    try {
      return await this.deps.prisma.$transaction(
        async (tx) => {
          // SET LOCAL: for this transaction only, so the pooled connection goes back as it was.
          await tx.$queryRaw`SELECT set_config('lock_timeout', ${`${waitMs}ms`}, true)`;
          return fn(tx);
        },
        // Five lock statements (templates, model, quota, records, tasks) may each wait up to waitMs.
        { timeout: timeoutMs },
      );
    } catch (error) {
      if (isLockTimeout(error)) {
        const message = `Waited more than ${waitMs} ms for a lock of the date-field work of ${model}: ${busy}. Nothing was written; retry.`;
        throw new ChronographError('TIMEOUT', message, { model, lockWaitMs: waitMs });
      }
      if (isExpiredTransaction(error)) {
        const message = `The date-field work of ${model} took longer than ${timeoutMs} ms, waiting for locks (${busy}?) or for the database. Nothing was written; retry.`;
        throw new ChronographError('TIMEOUT', message, { model, timeoutMs });
      }
      throw error;
    }
  }

  /**
   * Hooks for many records of one model in one transaction (the Prisma extension's createMany etc.).
   * `data: null` means deleted.
   */
  async saveRecords(model: string, records: { rowId: string; data: Record<string, unknown> | null }[]): Promise<DateFieldResult> {
    assertName(model, 'model');
    return this.deps.prisma.$transaction((tx) => this.saveExternal(tx, model, records), LONG_TRANSACTION);
  }

  /**
   * Runs the layer for records written in the caller's transaction. Records of an external model are
   * also remembered (date_field_source) so that template changes and reconcile can recompute their
   * tasks; low-code records are their own memory (model_record).
   */
  async saveExternal(tx: Prisma.TransactionClient, model: string, changes: RecordChange[]): Promise<DateFieldResult> {
    return this.saveChanges(tx, model, changes, 'model');
  }

  /** saveExternal, naming the caller's argument that holds the model (`field`) when it refuses one. */
  private async saveChanges(tx: Prisma.TransactionClient, model: string, changes: RecordChange[], field: string): Promise<DateFieldResult> {
    const modelLocked = await this.mayHoldExclusively(tx, model, changes);
    const all = await this.templatesOf(tx, model, true, modelLocked ? 'exclusive' : 'shared');
    // Under the model lock (templatesOf), which saveModel takes exclusively to create a model: a model
    // created before this point is seen here, one created after waits for this transaction to commit.
    await this.refuseLowCode(tx, model, field);
    if (all.length === 0) return emptyResult();
    const enabled = all.filter((t) => t.template.enabled);
    for (const change of changes) if (change.data) assertJson(change.data, change.prefix ?? 'data', { maxBytes: this.deps.maxJsonBytes });
    // applyDateFields computes everything first: bad data throws before anything is written.
    const result = await applyDateFields(tx, enabled, changes, {
      tenantId: this.tenantId,
      now: this.now(),
      collect: true,
      actor: this.actor,
      modelLocked,
    });
    await rememberRecords(tx, this.tenantId, model, changes);
    return result;
  }

  /**
   * Hooks and saveExternal are for records Chronograph does not keep. A low-code model's records are
   * model_record rows, and its tasks follow them (applyToRecords, reconcile): a hook that reported
   * another version of such a record moved or cancelled its task while the record itself stayed as it
   * was (a deleteDateFieldTask cancelled the task of a record that still existed, dated), and remembered
   * a copy that nothing reads. CONFLICT naming `field`; nothing is written.
   */
  private async refuseLowCode(tx: Prisma.TransactionClient, model: string, field: string): Promise<void> {
    const lowCode = await tx.modelDefinition.findUnique({
      where: { tenantId_name: { tenantId: this.tenantId, name: model } },
      select: { id: true },
    });
    if (!lowCode) return;
    throw new ChronographError(
      'CONFLICT',
      `${model} is a low-code model of tenant ${this.tenantId} (defined with saveModel): Chronograph keeps its records, and their ` +
        'tasks follow them. Write its records with createModelRecord, updateModelRecord and deleteModelRecord (ModelSvc ' +
        'createRecord, updateRecord, deleteRecord) instead of saveDateFieldTask / deleteDateFieldTask, the Prisma extension or ' +
        'saveExternal, which are for records kept elsewhere. Nothing was written.',
      { field, model },
    );
  }

  /** The layer for low-code record writes (ModelSvc), inside the caller's transaction. */
  async applyToRecords(
    tx: Prisma.TransactionClient,
    model: string,
    changes: RecordChange[],
    options: { fresh?: boolean; collect?: boolean; exclusive?: boolean } = {},
  ): Promise<DateFieldResult> {
    // New records need no locks of their own; a large batch, or a caller that asks (deleteModel, whose
    // chunks would add up to one lock per record), holds the model exclusively instead.
    const modelLocked = !options.fresh && (await this.mayHoldExclusively(tx, model, changes, options.exclusive === true));
    const templates = await this.templatesOf(tx, model, false, modelLocked ? 'exclusive' : 'shared');
    return applyDateFields(tx, templates, changes, {
      tenantId: this.tenantId,
      now: this.now(),
      fresh: options.fresh,
      collect: options.collect ?? true,
      actor: this.actor,
      modelLocked,
    });
  }

  /**
   * Rebuilds the tasks of a model from its records (for missed hooks and after bulk imports): every
   * record × enabled template is brought in line, and live tasks whose template or record is gone are
   * cancelled. One transaction per page of records, so a large model does not hold one huge transaction.
   */
  async reconcile(model: string): Promise<DateFieldResult> {
    assertName(model, 'model');
    const result = emptyResult();
    let after: string | undefined;
    for (;;) {
      // Each page in its own transaction, under the locks the hooks take (LOCK ORDER): the records are
      // read after their locks, so a hook that changed one meanwhile has committed and is read as it
      // left the record. Read before the locks, a date a hook cleared in between came back as a task.
      const page = await this.deps.prisma.$transaction(async (tx) => {
        const { templates, lowCode } = await this.lockForReconcile(tx, model);
        const ids = (await readRecords(tx, this.tenantId, model, lowCode, after, PAGE)).map((r) => r.rowId);
        if (ids.length === 0) return null;
        await lockDateFieldRecords(tx, this.tenantId, model, ids);
        const current = new Map((await readRecords(tx, this.tenantId, model, lowCode, undefined, PAGE, ids)).map((r) => [r.rowId, r]));
        // A record deleted in between is planned as deleted: its live tasks are cancelled.
        const records = ids.map((rowId) => current.get(rowId) ?? { rowId, data: null });
        const counts = await applyDateFields(tx, templates, records, { tenantId: this.tenantId, now: this.now(), actor: this.actor });
        return { counts, last: ids.at(-1)!, full: ids.length === PAGE };
      }, LONG_TRANSACTION);
      if (!page) break;
      addCounts(result, page.counts);
      after = page.last;
      if (!page.full) break;
    }
    const cancelled = await this.deps.prisma.$transaction(async (tx) => {
      const { templates, lowCode } = await this.lockForReconcile(tx, model);
      const ids = await lockOrphanDateFieldTasks(tx, {
        tenantId: this.tenantId,
        model,
        keepTemplateIds: templates.map((t) => t.template.id),
        lowCode,
      });
      return cancelTasks(tx, ids, 'its record or template no longer exists (reconcile)', this.actor);
    }, LONG_TRANSACTION);
    result.cancelled += cancelled;
    return result;
  }

  /**
   * A reconcile transaction's locks before it reads records (LOCK ORDER): the model's templates, read
   * as committed (a template change that raced it has committed or waits), the model lock (shared), the
   * quota lock (it may create tasks).
   */
  private async lockForReconcile(
    tx: Prisma.TransactionClient,
    model: string,
  ): Promise<{ templates: PreparedTemplate[]; lowCode: boolean }> {
    const templates = await this.templatesOf(tx, model, false);
    if (templates.length > 0) await (await QuotaGuard.of(tx, this.tenantId)).beforeCreate();
    const lowCode = (await tx.modelDefinition.count({ where: { tenantId: this.tenantId, name: model } })) > 0;
    return { templates, lowCode };
  }

  /**
   * A template was created, updated or deleted (`after` null) in `tx`: its pending tasks follow. A
   * template that stops being an enabled DATE_FIELD template, or follows another model now, cancels
   * them; otherwise every record of its model is re-planned against it.
   */
  async templateChanged(tx: Prisma.TransactionClient, before: TaskTemplate | null, after: TaskTemplate | null): Promise<DateFieldResult> {
    const result = emptyResult();
    const wasDateField = before?.repeatType === RepeatType.DATE_FIELD;
    const isDateField = after?.repeatType === RepeatType.DATE_FIELD && after.enabled;
    if (!wasDateField && !isDateField) return result;
    if (before && after && relevant(before) === relevant(after)) return result;
    // LOCK ORDER: the template row is held (this transaction wrote it); then every model it followed or
    // follows, exclusively: the hooks of those models wait for this change, and a hook under way (which
    // planned without this template, e.g. one it could not see yet) commits before the records are read
    // below. Then the quota lock, before any record or task lock.
    const models = [before?.sourceModel, after?.sourceModel].filter((m): m is string => m != null);
    await lockDateFieldModels(tx, this.tenantId, models, 'exclusive');
    if (isDateField) await (await QuotaGuard.of(tx, this.tenantId)).beforeCreate();
    if (before && wasDateField && (!isDateField || before.sourceModel !== after?.sourceModel)) {
      const why = !after
        ? 'template deleted'
        : !after.enabled
          ? 'template disabled'
          : isDateField
            ? `template now follows ${after.sourceModel}`
            : 'template is no longer DATE_FIELD';
      result.cancelled += await cancelTasks(tx, await lockLiveTemplateTasks(tx, this.tenantId, before.id), why, this.actor);
    }
    if (!isDateField || !after) return result;
    const prepared: PreparedTemplate = { template: after, config: configOf(after) };
    const model = prepared.config.sourceModel;
    const lowCode = (await tx.modelDefinition.count({ where: { tenantId: this.tenantId, name: model } })) > 0;
    let cursor: string | undefined;
    for (;;) {
      const page = await readRecords(tx, this.tenantId, model, lowCode, cursor, PAGE);
      if (page.length === 0) break;
      cursor = page.at(-1)!.rowId;
      // Under the model's exclusive lock (above): no record locks, which added up to one per record of the
      // model over the pages of this one transaction.
      addCounts(
        result,
        await applyDateFields(tx, [prepared], page, { tenantId: this.tenantId, now: this.now(), actor: this.actor, modelLocked: true }),
      );
      if (page.length < PAGE) break;
    }
    // Tasks of this template whose record is gone; other templates' tasks are not this change's business.
    const orphans = await lockOrphanDateFieldTasks(tx, {
      tenantId: this.tenantId,
      model,
      keepTemplateIds: [after.id],
      lowCode,
      templateId: after.id,
    });
    result.cancelled += await cancelTasks(tx, orphans, 'its record no longer exists', this.actor);
    return result;
  }

  /** A DATE_FIELD template on a low-code model must name one of its DATE or DATETIME fields. */
  async checkTemplateModel(sourceModel: string, sourceField: string, db: Prisma.TransactionClient = this.deps.prisma): Promise<void> {
    const field = 'dateField';
    const definition = await db.modelDefinition.findUnique({ where: { tenantId_name: { tenantId: this.tenantId, name: sourceModel } } });
    if (!definition) return; // an external model: its records arrive through hooks
    const fields = definition.fields as unknown as ModelField[];
    const target = fields.find((f) => f.name === sourceField);
    if (!target || (target.type !== 'DATE' && target.type !== 'DATETIME')) {
      const dates = fields.filter((f) => f.type === 'DATE' || f.type === 'DATETIME').map((f) => f.name);
      throw badInput(
        `${field}.field: model ${sourceModel} has no DATE or DATETIME field ${sourceField} (its date fields: ${dates.join(', ') || 'none'})`,
        `${field}.field`,
      );
    }
  }

  /**
   * Whether a batch of `changes` holds its model's lock exclusively (LOCK ORDER, step 2) instead of one
   * lock per record: when it has more than RECORD_LOCKS_MAX records (or the caller `asked`), unless this transaction holds the
   * model's lock shared already (it wrote records of the model before): asking for it exclusively then
   * would wait for every other holder of it while holding it, and deadlock with any of them that waits
   * for this transaction; such a batch locks its records one by one, as a smaller one does.
   */
  private async mayHoldExclusively(tx: Prisma.TransactionClient, model: string, changes: RecordChange[], asked = false): Promise<boolean> {
    if (!asked && !isLargeBatch(changes)) return false;
    return !(await holdsDateFieldModelShared(tx, this.tenantId, model));
  }

  /**
   * The DATE_FIELD templates of a model (enabled ones, unless `withDisabled`), inside a transaction of the
   * date-field layer, taking its first locks (LOCK ORDER): the templates FOR SHARE, so that a concurrent
   * update of one of them is waited for and then read as committed (the update, in turn, waits for this
   * transaction and re-plans the records it committed); then the model lock (shared): a template created
   * for this model, or moved to it, holds it exclusively until it commits, so it is read too (the row
   * lock cannot wait for a template not visible yet).
   */
  private async templatesOf(
    db: Prisma.TransactionClient,
    model: string,
    withDisabled: boolean,
    mode: 'shared' | 'exclusive' = 'shared',
  ): Promise<PreparedTemplate[]> {
    await db.$queryRaw`SELECT id FROM task_template
      WHERE tenant_id = ${this.tenantId} AND source_model = ${model} AND repeat_type = 'DATE_FIELD'
      ORDER BY id FOR SHARE`;
    await lockDateFieldModels(db, this.tenantId, [model], mode);
    const templates = await db.taskTemplate.findMany({
      where: { tenantId: this.tenantId, sourceModel: model, repeatType: RepeatType.DATE_FIELD, ...(!withDisabled && { enabled: true }) },
      orderBy: { id: 'asc' },
    });
    return templates.map((template) => ({ template, config: configOf(template) }));
  }
}

/** Cancels live tasks by id (already locked), skipping RUNNING ones, which finish their run. */
async function cancelTasks(tx: Prisma.TransactionClient, ids: string[], reason: string, actor: string | null): Promise<number> {
  if (ids.length === 0) return 0;
  let cancelled = 0;
  const tasks = await tx.task.findMany({ where: { id: { in: ids } }, orderBy: { id: 'asc' } });
  for (const task of tasks) {
    if (task.status === TaskStatus.RUNNING) continue;
    await transition(tx, { task, to: TaskStatus.CANCELLED, data: { nextRunAt: null }, message: reason, actor });
    cancelled += 1;
  }
  return cancelled;
}

/** The template fields that shape its tasks; a change in anything else (title) leaves them alone. */
function relevant(t: TaskTemplate): string {
  const { title: _t, description: _d, createdAt: _c, updatedAt: _u, origin: _o, ...rest } = t;
  return stableStringify(rest);
}

async function readRecords(
  db: Prisma.TransactionClient,
  tenantId: string,
  model: string,
  lowCode: boolean,
  after: string | undefined,
  take: number,
  /** Only these records (a page read again after its locks). */
  ids?: string[],
): Promise<RecordChange[]> {
  if (lowCode) {
    const rows = await db.modelRecord.findMany({
      where: { tenantId, model, ...(after && { id: { gt: after } }), ...(ids && { id: { in: ids } }) },
      orderBy: { id: 'asc' },
      take,
      select: { id: true, data: true },
    });
    return rows.map((r) => ({ rowId: r.id, data: { ...(r.data as Record<string, unknown>), id: r.id }, prefix: `record ${r.id}` }));
  }
  const rows = await db.dateFieldSource.findMany({
    where: { tenantId, model, ...(after && { rowId: { gt: after } }), ...(ids && { rowId: { in: ids } }) },
    orderBy: { rowId: 'asc' },
    take,
    select: { rowId: true, data: true },
  });
  return rows.map((r) => ({ rowId: r.rowId, data: r.data as Record<string, unknown>, prefix: `record ${r.rowId}` }));
}

async function rememberRecords(tx: Prisma.TransactionClient, tenantId: string, model: string, changes: RecordChange[]): Promise<void> {
  // A record named twice in one batch is remembered as its last change, as applyDateFields plans it:
  // saved then deleted is deleted, deleted then saved is saved.
  const latest = [...new Map(changes.map((c) => [c.rowId, c])).values()];
  const deleted = latest.filter((c) => c.data === null).map((c) => c.rowId);
  if (deleted.length) await tx.dateFieldSource.deleteMany({ where: { tenantId, model, rowId: { in: deleted } } });
  await upsertDateFieldSources(
    tx,
    tenantId,
    model,
    latest.filter((c) => c.data !== null),
  );
}

/** Validates a hook's rowObj; nothing is written when it is bad. */
export function parseRowObj(rowObj: unknown, kind: 'save' | 'delete'): { model: string; rowId: string; data: Record<string, unknown> } {
  if (!isPlainObject(rowObj)) throw badInput('rowObj must be an object { model, postData, prevData }', 'rowObj');
  const { model, postData, prevData } = rowObj as RowObj;
  if (typeof model !== 'string' || !model.trim())
    throw badInput("rowObj.model must name the record's model, e.g. models.Contract", 'rowObj.model');
  assertName(model.trim(), 'rowObj.model');
  if (prevData != null && !isPlainObject(prevData))
    throw badInput('rowObj.prevData must be an object (the record before the change)', 'rowObj.prevData');
  if (kind === 'save') {
    if (!isPlainObject(postData)) throw badInput('rowObj.postData must be an object (the record after the change)', 'rowObj.postData');
  } else if (prevData == null && !isPlainObject(postData)) {
    throw badInput('rowObj.prevData must be the deleted record', 'rowObj.prevData');
  }
  const source = kind === 'save' ? 'postData' : prevData != null ? 'prevData' : 'postData';
  const data =
    kind === 'save'
      ? { ...(prevData as object | undefined), ...(postData as object) }
      : ((prevData ?? postData) as Record<string, unknown>);
  const id = (data as Record<string, unknown>).id;
  const rowId = typeof id === 'number' && Number.isSafeInteger(id) ? String(id) : typeof id === 'string' ? id.trim() : '';
  if (!rowId || rowId.length > 200)
    throw badInput(`rowObj.${source}.id must be the record's id (a string or an integer)`, `rowObj.${source}.id`);
  return { model: model.trim(), rowId, data: { ...(data as Record<string, unknown>), id: rowId } };
}

/** An interactive transaction past its time limit (P2028). */
function isExpiredTransaction(error: unknown): boolean {
  return error instanceof Error && (error as Error & { code?: unknown }).code === 'P2028';
}

/** More records than are locked one by one (RECORD_LOCKS_MAX): the batch holds its model's lock exclusively instead. */
function isLargeBatch(changes: RecordChange[]): boolean {
  return changes.length > RECORD_LOCKS_MAX && new Set(changes.map((c) => c.rowId)).size > RECORD_LOCKS_MAX;
}
