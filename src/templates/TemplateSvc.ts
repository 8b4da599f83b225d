import { type DateFieldSvc, LONG_TRANSACTION } from '../dateFields/DateFieldSvc.js';
import { lockDateFieldModels } from '../dateFields/dateFieldSql.js';
import { configOf, configToInput, type DateFieldRuleInput, dateFieldColumns, validateDateFieldInput } from '../dateFields/dateRule.js';
import { type RequestScope, scopedDeps } from '../db/requestScope.js';
import { badInput, ChronographError, conflict, notFound } from '../errors.js';
import type { PrismaClient, TaskTemplate } from '../generated/prisma/client.js';
import { MisfirePolicy, OverlapPolicy, type Prisma, RepeatType, TemplateOrigin } from '../generated/prisma/client.js';
import type { HandlerRegistry } from '../handlers/HandlerRegistry.js';
import { LIVE_STATUSES } from '../tasks/statusMachine.js';
import { assertThreadCapable } from '../tasks/TaskSvc.js';
import type { TaskTypeRegistry } from '../tasks/TaskTypeRegistry.js';
import {
  assertArgDict,
  assertIntRange,
  assertName,
  assertQueue,
  assertText,
  isUniqueViolation,
  MAX_LABEL_LENGTH,
  MAX_NAME_LENGTH,
  MAX_TEXT_LENGTH,
  MAX_TITLE_LENGTH,
} from '../tasks/validate.js';
import { QuotaGuard } from '../tenants/QuotaGuard.js';
import { lockTemplateSync } from '../tenants/tenantSql.js';
import { CronExpression, MAX_CRON_LENGTH } from '../time/CronExpression.js';
import { assertTimezone } from '../time/parseTime.js';
import type { TemplateBindingSvc } from './TemplateBindingSvc.js';

export interface TemplateInput {
  fullName: string;
  title: string;
  description?: string | null;
  taskType?: string | null;
  repeatType?: RepeatType | null;
  funcName?: string | null;
  argDict?: unknown;
  cronExpression?: string | null;
  intervalSeconds?: number | null;
  timezone?: string | null;
  maxAttempts?: number | null;
  timeoutMs?: number | null;
  /** Heap limit in MB of the worker thread its tasks' runs get; setting it runs them in threads. */
  memoryLimitMb?: number | null;
  priority?: number | null;
  queue?: string | null;
  enabled?: boolean | null;
  /** DATE_FIELD templates: the model, date field, offset, condition and end (src/dateFields/dateRule.ts). */
  dateField?: DateFieldRuleInput | null;
  misfirePolicy?: MisfirePolicy | null;
  misfireToleranceMs?: number | null;
  overlapPolicy?: OverlapPolicy | null;
  retryBackoffMs?: number | null;
}

export type TemplatePatch = { [K in Exclude<keyof TemplateInput, 'fullName'>]?: TemplateInput[K] | null };

export interface TemplateDeps {
  prisma: PrismaClient;
  handlers: HandlerRegistry;
  taskTypes: TaskTypeRegistry;
  defaultTimezone: string;
  /** Largest default argDict (as JSON); MAX_JSON_BYTES. */
  maxJsonBytes: number;
  /** The model-event layer: date-field templates' tasks follow template changes. */
  dateFields: DateFieldSvc;
  /** Platform templates bound to tenants: the bound tenants' tasks follow template changes. */
  bindings: TemplateBindingSvc;
}

/** Task templates of one tenant: the named task elements (`tasks.DataBackup`) tasks are created from. */
export class TemplateSvc {
  constructor(
    private readonly deps: TemplateDeps,
    readonly tenantId = 'default',
    /** TaskEvent.actor of the task changes that template changes cause. */
    readonly actor: string | null = null,
  ) {}

  forTenant(tenantId: string, actor: string | null = this.actor): TemplateSvc {
    return new TemplateSvc(this.deps, tenantId, actor);
  }

  /** This service for work done in `scope` (a request's operation): its statements check the scope first. */
  withScope(scope: RequestScope): TemplateSvc {
    return new TemplateSvc(scopedDeps(this.deps, scope), this.tenantId, this.actor);
  }

  private get dateFields(): DateFieldSvc {
    return this.deps.dateFields.forTenant(this.tenantId, this.actor);
  }

  private get bindings(): TemplateBindingSvc {
    return this.deps.bindings.as(this.actor);
  }

  /**
   * The seed's getTaskTmplList: templates whose title or fullName contains `query`; "" lists all. With
   * a `selection` (GraphQL passes its own) only those columns are read.
   */
  list(query = '', selection: Pick<Prisma.TaskTemplateFindManyArgs, 'select' | 'include'> = {}): Promise<TaskTemplate[]> {
    const q = query.trim();
    return this.deps.prisma.taskTemplate.findMany({
      ...selection,
      where: {
        tenantId: this.tenantId,
        ...(q && {
          OR: [{ title: { contains: q, mode: 'insensitive' } }, { fullName: { contains: q, mode: 'insensitive' } }],
        }),
      },
      orderBy: { fullName: 'asc' },
    }) as Promise<TaskTemplate[]>;
  }

  find(fullName: string): Promise<TaskTemplate | null> {
    assertNameLength(fullName, 'fullName');
    return this.deps.prisma.taskTemplate.findUnique({ where: { tenantId_fullName: { tenantId: this.tenantId, fullName } } });
  }

  async get(fullName: string): Promise<TaskTemplate> {
    const template = await this.find(fullName);
    if (!template)
      throw new ChronographError('UNKNOWN_TEMPLATE', `No task template is named ${JSON.stringify(fullName)}`, { field: 'fullName' });
    return template;
  }

  async create(input: TemplateInput, origin: TemplateOrigin = TemplateOrigin.API): Promise<TaskTemplate> {
    const data = this.validate(input);
    const exists = () => conflict(`A task template named ${input.fullName} already exists`, { field: 'fullName' });
    if (await this.find(input.fullName)) throw exists();
    await this.checkDateField(data);
    try {
      return await this.deps.prisma.$transaction(async (tx) => {
        const created = await tx.taskTemplate.create({ data: { ...data, tenantId: this.tenantId, origin } });
        await this.dateFields.templateChanged(tx, null, created);
        return created;
      }, LONG_TRANSACTION);
    } catch (error) {
      // A concurrent create of the same name committed between the check above and this insert.
      if (isUniqueViolation(error, 'task_template_tenant_id_full_name_key')) throw exists();
      throw error;
    }
  }

  async update(fullName: string, patch: TemplatePatch): Promise<TaskTemplate> {
    const current = await this.find(fullName);
    if (!current) throw notFound('Task template', fullName);
    this.assertEditable(current);
    const merge = (template: TaskTemplate) => {
      const merged = { ...templateToInput(template), ...stripUndefined(patch), fullName } as TemplateInput;
      if (patch.repeatType && patch.repeatType !== RepeatType.DATE_FIELD && patch.dateField === undefined) merged.dateField = null;
      // A queue stored before queues had to be names stays as it is until a patch changes it: refusing
      // every patch (even enabled: false) for a field it does not touch left such a template stuck.
      return this.validate(merged, patch.queue === undefined ? { keepQueue: template.queue } : {});
    };
    // Checked before the transaction too, so that bad input is refused without waiting for any lock.
    await this.checkDateField(merge(current));
    // Pending date-field tasks follow the new offset, condition or handler, and the tasks of tenants a
    // platform template is bound to follow what their bindings do not override, in the same transaction.
    return this.deps.prisma.$transaction(async (tx) => {
      // The patch applies to the template as it is now, locked: merged over the row read before the
      // transaction, an update that committed in between was undone (its fields written back), and its
      // tasks, compared with that stale row, were left where that update had put them.
      const locked = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM task_template WHERE id = ${current.id}::uuid FOR NO KEY UPDATE`;
      const before = locked.length ? await tx.taskTemplate.findUnique({ where: { id: current.id } }) : null;
      if (!before) throw notFound('Task template', fullName);
      this.assertEditable(before);
      const data = merge(before);
      await this.checkDateField(data, tx);
      const updated = await tx.taskTemplate.update({ where: { id: current.id }, data });
      await this.dateFields.templateChanged(tx, before, updated);
      await this.bindings.templateChanged(tx, before, updated);
      return updated;
    }, LONG_TRANSACTION);
  }

  /**
   * Deletes a template that no tenant is bound to and no live task came from. The row is locked first and
   * both are counted in the same transaction: a bind or a create from it (a share lock on the row, or
   * its foreign key's) either committed before, and is counted, or waits and then finds the template
   * gone. Counted before the transaction, a bind in between was deleted with the template (the binding
   * cascades), leaving its tenant a live task that neither a binding nor a template reaches.
   */
  async delete(fullName: string): Promise<TaskTemplate> {
    const current = await this.find(fullName);
    if (!current) throw notFound('Task template', fullName);
    this.assertEditable(current);
    return this.deps.prisma.$transaction(async (tx) => {
      const locked = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM task_template WHERE id = ${current.id}::uuid FOR UPDATE`;
      if (locked.length === 0) throw notFound('Task template', fullName);
      const bound = await tx.templateBinding.count({ where: { templateId: current.id } });
      if (bound > 0)
        throw conflict(`Task template ${fullName} is bound to ${bound} tenant(s); unbind it first (unbindTemplate)`, { bindings: bound });
      const live = await tx.task.count({ where: { templateId: current.id, status: { in: LIVE_STATUSES } } });
      if (live > 0) {
        throw conflict(`Task template ${fullName} still has ${live} live task(s); force-end or cancel them first`, { liveTasks: live });
      }
      return tx.taskTemplate.delete({ where: { id: current.id } });
    });
  }

  /**
   * Makes the FILE-origin templates of this tenant exactly `inputs`: creates and updates them, and
   * deletes the file templates that are no longer declared. Templates created over the API are left
   * alone unless a file now declares the same name, in which case the file wins (it ships with the code).
   *
   * Every instance runs it at start-up, so instances started together run it at once: the syncs of one
   * tenant take turns (a lock of the tenant's sync, taken first). A createTaskTemplate of a name a file
   * declares can still insert it between this sync's read and its insert; the sync then fails on the
   * unique key and is run again (up to three times in all), which finds that template and takes it over.
   */
  async syncFromFiles(inputs: TemplateInput[]): Promise<{ upserted: number; removed: string[] }> {
    const rows = inputs.map((input) => ({ ...this.validate(input), tenantId: this.tenantId, origin: TemplateOrigin.FILE }));
    const names = rows.map((r) => r.fullName);
    const duplicate = names.find((name, i) => names.indexOf(name) !== i);
    if (duplicate) throw badInput(`Task template ${duplicate} is declared more than once`, 'fullName');
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.syncOnce(rows);
      } catch (error) {
        // Each retry finds (and takes over) the template a create inserted meanwhile; three creates of
        // names the files declare, each between a retry's read and its insert, are not worth waiting for.
        if (attempt >= 3 || !isUniqueViolation(error, 'task_template_tenant_id_full_name_key')) throw error;
      }
    }
  }

  private syncOnce(rows: SyncRow[]): Promise<{ upserted: number; removed: string[] }> {
    const names = rows.map((r) => r.fullName);
    return this.deps.prisma.$transaction(async (tx) => {
      // Before any lock of LOCK ORDER (DateFieldSvc.ts): the tenant's sync lock, so that two instances
      // starting at once sync one after the other (the second finds, locks and updates what the first
      // inserted). Only this method takes it, and it takes it first, so no one waits for it holding others.
      await lockTemplateSync(tx, this.tenantId);
      // LOCK ORDER, as one template change takes it, for the whole sync: first the rows of every template
      // this sync may write or delete (the tenant's FILE templates and any template a file now names), in
      // id order, and the rows of the new templates (inserted here, as createTaskTemplate inserts before
      // it takes the model lock); then the exclusive locks of every model they follow or will follow, in
      // one statement; then the quota locks; only then the other writes. Taken per template instead, the
      // sync held one template's model lock (and the quota lock, record and task locks) while it waited
      // for the next template's row, which a hook held FOR SHARE while it waited for one of those locks:
      // PostgreSQL aborted one of them (40P01), and App.create failed or the hook's caller saw an
      // unexpected error. An insert after the model lock likewise waited for a createTaskTemplate of the
      // same name that waited for the model lock.
      const locked = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM task_template
        WHERE tenant_id = ${this.tenantId} AND (origin = 'FILE'::"TemplateOrigin" OR full_name = ANY(${names}::text[]))
        ORDER BY id FOR NO KEY UPDATE`;
      // Read after their locks: "before" is each template as committed, not as it was before a change
      // that committed in between (which would be compared with a stale row).
      const current = locked.length ? await tx.taskTemplate.findMany({ where: { id: { in: locked.map((l) => l.id) } } }) : [];
      const byName = new Map(current.map((t) => [t.fullName, t]));
      const stale = current.filter((t) => t.origin === TemplateOrigin.FILE && !names.includes(t.fullName)).sort(byId);
      for (const row of rows) await this.checkDateField(row, tx);
      // A create of the same name that has not committed makes this insert wait for it, and then fail on
      // the unique key (syncFromFiles runs the sync again); one that comes later waits for this sync.
      const inserted = new Map<string, TaskTemplate>();
      for (const row of rows) if (!byName.has(row.fullName)) inserted.set(row.fullName, await tx.taskTemplate.create({ data: row }));
      const models = [...current, ...rows]
        .filter((t) => t.repeatType === RepeatType.DATE_FIELD && t.sourceModel)
        .map((t) => t.sourceModel!);
      await lockDateFieldModels(tx, this.tenantId, [...new Set(models)], 'exclusive');
      if (rows.some((r) => r.repeatType === RepeatType.DATE_FIELD && r.enabled))
        await (await QuotaGuard.of(tx, this.tenantId)).beforeCreate();
      // Platform templates: the quota locks of every tenant they are bound to, all at once (after this
      // tenant's own). Taken template by template in the loop below, in the order of the files, they
      // deadlocked with an update of another template bound to the same tenants (tenant order).
      await this.bindings.lockQuotas(
        tx,
        rows.flatMap((row) => {
          const before = byName.get(row.fullName);
          return before ? [{ ...row, id: before.id }] : [];
        }),
      );
      for (const row of rows) {
        const before = byName.get(row.fullName) ?? null;
        const after = before ? await tx.taskTemplate.update({ where: { id: before.id }, data: row }) : inserted.get(row.fullName)!;
        await this.dateFields.templateChanged(tx, before, after);
        await this.bindings.templateChanged(tx, before, after);
      }
      for (const template of stale) {
        await this.dateFields.templateChanged(tx, template, null);
        await this.bindings.templateChanged(tx, template, null);
      }
      if (stale.length) await tx.taskTemplate.deleteMany({ where: { id: { in: stale.map((s) => s.id) } } });
      return { upserted: rows.length, removed: stale.map((s) => s.fullName) };
    }, LONG_TRANSACTION);
  }

  private assertEditable(template: TaskTemplate) {
    if (template.origin === TemplateOrigin.FILE) {
      throw conflict(`Task template ${template.fullName} is declared in the app's template files; change it there`, {
        origin: 'FILE',
      });
    }
  }

  /** A DATE_FIELD template on a low-code model must follow one of its DATE or DATETIME fields. */
  private async checkDateField(
    data: { repeatType: RepeatType; sourceModel: string | null; sourceField: string | null },
    db?: Prisma.TransactionClient,
  ) {
    if (data.repeatType === RepeatType.DATE_FIELD && data.sourceModel && data.sourceField) {
      await this.dateFields.checkTemplateModel(data.sourceModel, data.sourceField, db);
    }
  }

  /** Checks a whole template and returns the row to store. */
  private validate(input: TemplateInput, stored: { keepQueue?: string } = {}) {
    const fullName = assertName(input.fullName, 'fullName');
    // Every text a template stores is capped (and the names it looks up, before they appear in an
    // error): they come back in every list of templates, which costs a query no more for a long one.
    const title = typeof input.title === 'string' ? assertText(input.title, 'title', MAX_TITLE_LENGTH).trim() : '';
    if (!title) throw badInput('title must not be empty', 'title');
    const description = input.description == null ? null : assertText(input.description, 'description', MAX_TEXT_LENGTH);
    const taskType = assertText(input.taskType ?? 'tasks.NormalType', 'taskType', MAX_LABEL_LENGTH);
    if (!this.deps.taskTypes.has(taskType)) {
      throw new ChronographError(
        'UNKNOWN_TASK_TYPE',
        `Task type ${JSON.stringify(taskType)} is not registered (known: ${this.deps.taskTypes.names().join(', ')})`,
        {
          field: 'taskType',
        },
      );
    }
    const repeatType = input.repeatType ?? RepeatType.ONCE;
    // DATE_FIELD: tasks are created from records, so the template must say which date and which handler;
    // after their first run they repeat by cronExpression or intervalSeconds, when one is given.
    const dateField = repeatType === RepeatType.DATE_FIELD ? validateDateFieldInput(input.dateField) : null;
    if (!dateField && input.dateField != null) throw badInput('dateField is only for DATE_FIELD templates', 'dateField');
    if (dateField && !input.funcName)
      throw badInput('A DATE_FIELD template needs a funcName: its tasks are created from records, with no caller to name one', 'funcName');
    if (dateField && input.cronExpression?.trim() && input.intervalSeconds != null) {
      throw badInput('A DATE_FIELD template repeats by cronExpression or by intervalSeconds, not both', 'intervalSeconds');
    }
    const funcName = input.funcName == null ? null : assertText(input.funcName, 'funcName', MAX_LABEL_LENGTH);
    if (funcName !== null && !this.deps.handlers.has(funcName)) {
      throw new ChronographError('UNKNOWN_FUNC', `No handler is registered as ${JSON.stringify(funcName)}`, { field: 'funcName' });
    }
    const timezone = assertText(input.timezone ?? this.deps.defaultTimezone, 'timezone', MAX_LABEL_LENGTH);
    assertTimezone(timezone);
    if (input.cronExpression != null) assertText(input.cronExpression, 'cronExpression', MAX_CRON_LENGTH);
    const cronExpression = input.cronExpression?.trim() || null;
    if (cronExpression !== null) CronExpression.parse(cronExpression);
    if (repeatType === RepeatType.CRON && cronExpression === null)
      throw new ChronographError('INVALID_CRON', 'A CRON template needs a cronExpression', { field: 'cronExpression' });
    const intervalSeconds = input.intervalSeconds ?? null;
    if (intervalSeconds !== null) assertIntRange(intervalSeconds, 'intervalSeconds', 1, 10 * 365 * 86_400);
    if (repeatType === RepeatType.INTERVAL && intervalSeconds === null)
      throw badInput('An INTERVAL template needs intervalSeconds', 'intervalSeconds');
    // A date-field task that does not repeat runs once: an end or a run limit would mean nothing (and was
    // accepted without a word).
    if (dateField && cronExpression === null && intervalSeconds === null) {
      const { endOffset, maxRuns } = dateField.dateRule;
      const unused = endOffset ? 'endOffset' : maxRuns != null ? 'maxRuns' : null;
      if (unused)
        throw badInput(
          `dateField.${unused} is only for repeating date-field tasks: give the template a cronExpression or intervalSeconds, or leave it out`,
          `dateField.${unused}`,
        );
    }
    const timeoutMs = input.timeoutMs ?? null;
    if (timeoutMs !== null) assertIntRange(timeoutMs, 'timeoutMs', 1, 2_147_483_647);
    // The same rule as a task's queue (a name QUEUE_CONCURRENCY can hold; a metrics label): its tasks take it.
    const queue =
      stored.keepQueue !== undefined && input.queue === stored.keepQueue
        ? stored.keepQueue
        : ((input.queue != null ? assertQueue(input.queue) : null) ?? 'default');
    const memoryLimitMb = input.memoryLimitMb ?? null;
    if (memoryLimitMb !== null) {
      assertIntRange(memoryLimitMb, 'memoryLimitMb', 16, 1_048_576);
      if (funcName !== null) assertThreadCapable(this.deps.handlers, funcName, 'memoryLimitMb');
    }
    return {
      fullName,
      title,
      description,
      taskType,
      repeatType,
      funcName,
      argDict: assertArgDict(input.argDict ?? {}, 'argDict', this.deps.maxJsonBytes) as Prisma.InputJsonObject,
      cronExpression,
      intervalSeconds,
      timezone,
      maxAttempts: assertIntRange(input.maxAttempts ?? 1, 'maxAttempts', 1, 1000),
      timeoutMs,
      memoryLimitMb,
      priority: assertIntRange(input.priority ?? 0, 'priority', -1000, 1000),
      queue,
      ...dateFieldColumns(dateField),
      enabled: input.enabled ?? true,
      misfirePolicy: input.misfirePolicy ?? MisfirePolicy.RUN_ONCE,
      misfireToleranceMs: assertIntRange(input.misfireToleranceMs ?? 60_000, 'misfireToleranceMs', 0, 2_147_483_647),
      overlapPolicy: input.overlapPolicy ?? OverlapPolicy.SKIP,
      retryBackoffMs: assertIntRange(input.retryBackoffMs ?? 1000, 'retryBackoffMs', 0, 3_600_000),
    };
  }
}

/**
 * A name that is looked up (and named in errors when nothing has it): one longer than any stored name can
 * be is BAD_USER_INPUT giving its length, not NOT_FOUND quoting it.
 */
export function assertNameLength(name: string, field: string): void {
  if (typeof name === 'string' && name.length > MAX_NAME_LENGTH) assertName(name, field);
}

function templateToInput(t: TaskTemplate): TemplateInput {
  const dateField = t.repeatType === RepeatType.DATE_FIELD && t.sourceModel ? configToInput(configOf(t)) : null;
  return { ...t, argDict: t.argDict, dateField };
}

type SyncRow = ReturnType<TemplateSvc['validate']> & { tenantId: string; origin: TemplateOrigin };

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
