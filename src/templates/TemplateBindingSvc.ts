import { v7 as uuidv7 } from 'uuid';
import { PLATFORM_TENANT } from '../auth/Identity.js';
import { cancelWaitingOccurrences } from '../dateFields/applyDateFields.js';
import { stableStringify } from '../dateFields/condition.js';
import { type RequestScope, scopedDeps } from '../db/requestScope.js';
import { badInput, ChronographError, notFound } from '../errors.js';
import type { PrismaClient, Task, TaskTemplate, TemplateBinding } from '../generated/prisma/client.js';
import { Prisma, RepeatType, TaskEventType, TaskSource, TaskStatus } from '../generated/prisma/client.js';
import type { HandlerRegistry } from '../handlers/HandlerRegistry.js';
import { HELD, insertNewTasks, type NewTaskRow, newTask, prismaRunner } from '../tasks/bulkInsert.js';
import { LIVE_STATUSES, transition } from '../tasks/statusMachine.js';
import { endTask, wake } from '../tasks/TaskSvc.js';
import { assertArgDict, assertIntRange, assertTenantId, assertText, MAX_LABEL_LENGTH } from '../tasks/validate.js';
import { QuotaGuard } from '../tenants/QuotaGuard.js';
import { insertTenant } from '../tenants/TenantSvc.js';
import { CronExpression, MAX_CRON_LENGTH } from '../time/CronExpression.js';
import { assertTimezone } from '../time/parseTime.js';
import { nextOccurrence } from '../time/schedule.js';
import { assertNameLength } from './TemplateSvc.js';

/** What a tenant changes in a bound template; null or absent inherits the template's value. */
export interface BindingOverrides {
  enabled?: boolean | null;
  cronExpression?: string | null;
  intervalSeconds?: number | null;
  timezone?: string | null;
  /** Merged key by key over the template's argDict. */
  argDict?: unknown;
  funcName?: string | null;
}

/** The schedule and arguments a bound tenant's task runs with. */
export interface EffectiveBinding {
  enabled: boolean;
  repeatType: RepeatType;
  cronExpression: string | null;
  intervalSeconds: number | null;
  timezone: string;
  argDict: Record<string, unknown>;
  funcName: string | null;
}

export interface BindingView {
  binding: TemplateBinding;
  template: TaskTemplate;
  effective: EffectiveBinding;
  /** The binding's live task (its next run), if it has one. */
  task: Task | null;
}

export interface TemplateBindingDeps {
  prisma: PrismaClient;
  handlers: HandlerRegistry;
  now?: () => Date;
}

/** The task columns a binding decides; a difference in any of them updates the live task. */
const COMPARED = [
  'fullName',
  'taskType',
  'funcName',
  'argDict',
  'repeatType',
  'cronExpression',
  'intervalSeconds',
  'timezone',
  'priority',
  'queue',
  'maxAttempts',
  'timeoutMs',
  'misfirePolicy',
  'misfireToleranceMs',
  'overlapPolicy',
  'retryBackoffMs',
] as const satisfies readonly (keyof Task)[];
const SCHEDULE = new Set<string>(['repeatType', 'cronExpression', 'intervalSeconds', 'timezone']);

type TaskRow = NewTaskRow & { nextRunAt: Date };

/**
 * Shared definitions: a CRON or INTERVAL template of the `platform` tenant bound to tenants. Each bound
 * tenant gets one recurring task of its own (source TEMPLATE, unique per binding by the partial index
 * task_binding_live_key) on its effective schedule — the template's, with the binding's overrides —
 * and with its effective arguments. Binding, changing the binding and changing the template all end in
 * `sync`, in the transaction of the change: the live task is created, updated in place (a RESCHEDULED
 * event; a new schedule moves its next run) or, when the binding or template is disabled, removed or no
 * longer recurring, cancelled (a RUNNING one is force-ended, so no further occurrence starts).
 */
export class TemplateBindingSvc {
  constructor(
    private readonly deps: TemplateBindingDeps,
    /** TaskEvent.actor of the task changes made through this service. */
    readonly actor: string | null = null,
  ) {}

  as(actor: string | null): TemplateBindingSvc {
    return new TemplateBindingSvc(this.deps, actor);
  }

  /** This service for work done in `scope` (a request's operation): its statements check the scope first. */
  withScope(scope: RequestScope): TemplateBindingSvc {
    return new TemplateBindingSvc(scopedDeps(this.deps, scope), this.actor);
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  async list(template: Pick<TaskTemplate, 'id'>): Promise<BindingView[]> {
    const rows = await this.deps.prisma.templateBinding.findMany({
      where: { templateId: template.id },
      orderBy: { tenantId: 'asc' },
      include: { template: true, tasks: { where: { status: { in: LIVE_STATUSES } }, take: 1 } },
    });
    return rows.map(({ template: t, tasks, ...binding }) => ({
      binding,
      template: t,
      effective: effectiveOf(t, binding),
      task: tasks[0] ?? null,
    }));
  }

  /** Binds the platform template `fullName` to `tenantId` with exactly these overrides (creates or replaces the binding). */
  async bind(fullName: string, tenantId: string, overrides: BindingOverrides = {}): Promise<BindingView> {
    const tenant = assertTenantId(tenantId, 'tenantId');
    if (tenant === PLATFORM_TENANT)
      throw badInput(
        `Templates of the ${PLATFORM_TENANT} tenant are bound to other tenants; its own tasks are created directly`,
        'tenantId',
      );
    this.checkBindable(await this.platformTemplate(fullName), overrides);
    return this.deps.prisma.$transaction(async (tx) => {
      // The template as it is now, held (FOR SHARE) until this commits: a concurrent update of it either
      // committed first (read here) or waits for this binding and then moves its task (templateChanged).
      const template = await lockTemplate(tx, fullName);
      const data = this.checkBindable(template, overrides);
      if (!(await tx.tenant.findUnique({ where: { id: tenant } }))) await insertTenant(tx, tenant);
      const binding = await tx.templateBinding.upsert({
        where: { templateId_tenantId: { templateId: template.id, tenantId: tenant } },
        create: { templateId: template.id, tenantId: tenant, ...data },
        update: data,
      });
      const task = await this.sync(tx, template, binding);
      return { binding, template, effective: effectiveOf(template, binding), task };
    });
  }

  /** Removes the binding; the tenant's pending task is cancelled (a running one force-ended) and kept in its history. */
  async unbind(fullName: string, tenantId: string): Promise<BindingView> {
    const tenant = assertTenantId(tenantId, 'tenantId');
    await this.platformTemplate(fullName);
    return this.deps.prisma.$transaction(async (tx) => {
      const template = await lockTemplate(tx, fullName);
      const binding = await tx.templateBinding.findUnique({
        where: { templateId_tenantId: { templateId: template.id, tenantId: tenant } },
      });
      if (!binding) throw notFound(`Binding of ${template.fullName} to tenant`, tenant);
      await this.end(tx, await lockLiveTask(tx, binding.id), `unbound from tenant ${tenant}`);
      await tx.templateBinding.delete({ where: { id: binding.id } });
      return { binding, template, effective: effectiveOf(template, binding), task: null };
    });
  }

  /**
   * The quota locks (QuotaGuard.beforeCreateAll: one statement, one global order) of every tenant that the
   * platform templates `templates` (as they will be, their rows locked by the caller) may create a task
   * for: those bound to an enabled CRON or INTERVAL one. A transaction that changes several platform
   * templates (the template-file sync) calls it once for all of them before its first task lock (LOCK
   * ORDER, step 3, in DateFieldSvc.ts); templateChanged calls it for its own template.
   */
  async lockQuotas(
    tx: Prisma.TransactionClient,
    templates: Pick<TaskTemplate, 'id' | 'tenantId' | 'enabled' | 'repeatType'>[],
  ): Promise<void> {
    const creating = templates
      .filter((t) => t.tenantId === PLATFORM_TENANT && t.enabled)
      .filter((t) => t.repeatType === RepeatType.CRON || t.repeatType === RepeatType.INTERVAL)
      .map((t) => t.id);
    if (creating.length === 0) return;
    // Every bound tenant, whether its binding needs a new task now or not: one whose live task ends
    // after a narrower read would have its lock taken later, by sync, out of this order (the deadlock
    // this prevents). A change that creates no task still holds these tenants' creates until it commits.
    const tenants = await tx.$queryRaw<{ tenantId: string }[]>`
      SELECT DISTINCT tenant_id AS "tenantId" FROM template_binding WHERE template_id = ANY(${creating}::uuid[])`;
    await QuotaGuard.beforeCreateAll(
      tx,
      tenants.map((t) => t.tenantId),
    );
  }

  /**
   * A platform template changed (`after` null: it is being deleted) in `tx`: every binding's task follows,
   * in the same transaction. The quota locks of the tenants that may get a task are taken first, all at
   * once (lockQuotas), before any task is locked.
   */
  async templateChanged(tx: Prisma.TransactionClient, before: TaskTemplate | null, after: TaskTemplate | null): Promise<void> {
    const template = after ?? before;
    if (!template || template.tenantId !== PLATFORM_TENANT) return;
    // Locked (FOR UPDATE), so a binding changed or created concurrently is read as committed, not as it was.
    const ids = await tx.$queryRaw<{ id: string }[]>`
      SELECT id FROM template_binding WHERE template_id = ${template.id}::uuid ORDER BY tenant_id FOR UPDATE`;
    const bindings = ids.length
      ? await tx.templateBinding.findMany({ where: { id: { in: ids.map((b) => b.id) } }, orderBy: { tenantId: 'asc' } })
      : [];
    if (after && bindings.length) await this.lockQuotas(tx, [after]);
    for (const binding of bindings) {
      if (after) await this.sync(tx, after, binding);
      else await this.end(tx, await lockLiveTask(tx, binding.id), `template ${template.fullName} was removed`);
    }
  }

  /** Makes the binding's live task what the template and the binding say; returns it (null when there is none). */
  private async sync(tx: Prisma.TransactionClient, template: TaskTemplate, binding: TemplateBinding): Promise<Task | null> {
    const live = await lockLiveTask(tx, binding.id);
    const effective = effectiveOf(template, binding);
    const why = !template.enabled
      ? `template ${template.fullName} is disabled`
      : !binding.enabled
        ? 'the binding is disabled'
        : effective.repeatType !== RepeatType.CRON && effective.repeatType !== RepeatType.INTERVAL
          ? `template ${template.fullName} is no longer CRON or INTERVAL`
          : !effective.funcName
            ? `template ${template.fullName} names no handler`
            : null;
    if (why) {
      await this.end(tx, live, why);
      return null;
    }
    const now = this.now();
    // The first run is the schedule's next occurrence after now (an INTERVAL one interval later).
    const nextRunAt = nextOccurrence(effective, now, now);
    if (!nextRunAt) {
      await this.end(tx, live, `the schedule of ${template.fullName} has no next occurrence`);
      return null;
    }
    const desired = this.taskRow(template, binding, effective, now, nextRunAt);
    if (!live) {
      const quota = await QuotaGuard.of(tx, binding.tenantId);
      quota.checkArgDict(desired.argDict, 'overrides.argDict');
      await quota.beforeCreate();
      // With its CREATED event. ON CONFLICT DO NOTHING: a concurrent change of the same binding created
      // its task first (task_binding_live_key decides); that task is then updated below instead.
      const message = new Map([[desired.id, `bound from ${PLATFORM_TENANT} template ${template.fullName}`]]);
      const { skipped, now: createdAt } = await insertNewTasks(prismaRunner(tx), [desired], message, this.actor, HELD);
      if (!skipped.has(desired.id)) {
        await quota.created(1);
        return newTask(desired, createdAt);
      }
    }
    const task = live ?? (await lockLiveTask(tx, binding.id));
    if (!task)
      throw new ChronographError(
        'CONFLICT',
        `The task of binding ${template.fullName} → ${binding.tenantId} kept changing concurrently; retry`,
      );
    const differs = COMPARED.filter((field) => stableStringify(task[field] ?? null) !== stableStringify(desired[field] ?? null));
    if (differs.length === 0) return task;
    (await QuotaGuard.of(tx, binding.tenantId)).checkArgDict(desired.argDict, 'overrides.argDict');
    const data: Prisma.TaskUncheckedUpdateManyInput = Object.fromEntries(COMPARED.map((field) => [field, desired[field]]));
    // A new schedule moves the next run; a running task keeps its run and follows the new schedule after it.
    const moved = differs.some((field) => SCHEDULE.has(field)) && task.status !== TaskStatus.RUNNING;
    if (moved) data.nextRunAt = desired.nextRunAt;
    const updated = await transition(tx, {
      task,
      to: task.status,
      type: TaskEventType.RESCHEDULED,
      data,
      message: `binding or template changed (${differs.join(', ')})${moved ? `; next run ${desired.nextRunAt.toISOString()}` : ''}`,
      actor: this.actor,
    });
    if (moved) await wake(tx);
    return updated;
  }

  /**
   * Cancels the binding's live task; a running one is force-ended at once, as forcedEnd does. Its
   * occurrences (an ALLOW-overlap task's children) that have not started go with it, as when a date-field
   * task is cancelled; a running occurrence finishes its run.
   */
  private async end(tx: Prisma.TransactionClient, task: Task | null, why: string): Promise<void> {
    if (!task) return;
    await endTask(tx, task, {
      to: task.status === TaskStatus.RUNNING ? TaskStatus.FORCED_END : TaskStatus.CANCELLED,
      message: why,
      actor: this.actor,
    });
    await cancelWaitingOccurrences(tx, task.tenantId, new Map([[task.id, why]]), this.actor);
  }

  private taskRow(template: TaskTemplate, binding: TemplateBinding, effective: EffectiveBinding, now: Date, nextRunAt: Date): TaskRow {
    return {
      id: uuidv7(),
      tenantId: binding.tenantId,
      templateId: template.id,
      bindingId: binding.id,
      fullName: template.fullName,
      taskType: template.taskType,
      funcName: effective.funcName!,
      argDict: effective.argDict as Record<string, unknown>,
      repeatType: effective.repeatType,
      cronExpression: effective.cronExpression,
      intervalSeconds: effective.intervalSeconds,
      timezone: effective.timezone,
      startTime: now,
      endTime: null,
      maxRuns: null,
      nextRunAt,
      status: TaskStatus.SCHEDULED,
      priority: template.priority,
      queue: template.queue,
      maxAttempts: template.maxAttempts,
      timeoutMs: template.timeoutMs,
      misfirePolicy: template.misfirePolicy,
      misfireToleranceMs: template.misfireToleranceMs,
      overlapPolicy: template.overlapPolicy,
      retryBackoffMs: template.retryBackoffMs,
      // Null: a run takes the template's limit or the handler's, as for any task without its own.
      memoryLimitMb: null,
      uniqueKey: null,
      source: TaskSource.TEMPLATE,
      sourceModel: null,
      sourceRowId: null,
      sourceField: null,
      parentId: null,
    };
  }

  /** Refuses a template that cannot be bound, or bad overrides (nothing is written); returns the binding's columns. */
  private checkBindable(template: TaskTemplate, overrides: BindingOverrides) {
    if (template.repeatType !== RepeatType.CRON && template.repeatType !== RepeatType.INTERVAL) {
      throw badInput(`Only CRON and INTERVAL templates can be bound; ${template.fullName} is ${template.repeatType}`, 'fullName');
    }
    return this.validate(template, overrides);
  }

  private async platformTemplate(fullName: string): Promise<TaskTemplate> {
    assertNameLength(fullName, 'fullName');
    const template =
      typeof fullName === 'string'
        ? await this.deps.prisma.taskTemplate.findUnique({ where: { tenantId_fullName: { tenantId: PLATFORM_TENANT, fullName } } })
        : null;
    if (!template) {
      throw new ChronographError(
        'UNKNOWN_TEMPLATE',
        `The ${PLATFORM_TENANT} tenant has no task template named ${JSON.stringify(fullName)}`,
        { field: 'fullName' },
      );
    }
    return template;
  }

  private validate(template: TaskTemplate, overrides: BindingOverrides) {
    const o = overrides ?? {};
    const field = (name: string) => `overrides.${name}`;
    // Capped before they are parsed, looked up or stored (an error quoting one would echo it whole).
    for (const name of ['cronExpression', 'timezone', 'funcName'] as const) {
      const value = o[name];
      if (value != null) assertText(value, field(name), name === 'cronExpression' ? MAX_CRON_LENGTH : MAX_LABEL_LENGTH);
    }
    const cronExpression = o.cronExpression?.trim() || null;
    if (cronExpression !== null) {
      if (template.repeatType !== RepeatType.CRON)
        throw badInput(
          `${template.fullName} is ${template.repeatType}: only a CRON template takes a cronExpression`,
          field('cronExpression'),
        );
      CronExpression.parse(cronExpression, field('cronExpression'));
    }
    const intervalSeconds = o.intervalSeconds ?? null;
    if (intervalSeconds !== null) {
      if (template.repeatType !== RepeatType.INTERVAL)
        throw badInput(
          `${template.fullName} is ${template.repeatType}: only an INTERVAL template takes intervalSeconds`,
          field('intervalSeconds'),
        );
      assertIntRange(intervalSeconds, field('intervalSeconds'), 1, 10 * 365 * 86_400);
    }
    const timezone = o.timezone?.trim() || null;
    if (timezone !== null) assertTimezone(timezone, field('timezone'));
    const funcName = o.funcName?.trim() || null;
    if (funcName !== null && !this.deps.handlers.has(funcName)) {
      throw new ChronographError('UNKNOWN_FUNC', `No handler is registered as ${JSON.stringify(funcName)}`, { field: field('funcName') });
    }
    if (!funcName && !template.funcName)
      throw badInput(`Template ${template.fullName} names no handler: the binding needs a funcName`, field('funcName'));
    const argDict = o.argDict == null ? null : assertArgDict(o.argDict, field('argDict'));
    return {
      enabled: o.enabled ?? true,
      cronExpression,
      intervalSeconds,
      timezone,
      argDict: argDict === null ? Prisma.DbNull : (argDict as Prisma.InputJsonObject),
      funcName,
    };
  }
}

export function effectiveOf(template: TaskTemplate, binding: TemplateBinding): EffectiveBinding {
  const repeatType = template.repeatType;
  return {
    enabled: template.enabled && binding.enabled,
    repeatType,
    cronExpression: repeatType === RepeatType.CRON ? (binding.cronExpression ?? template.cronExpression) : null,
    intervalSeconds: repeatType === RepeatType.INTERVAL ? (binding.intervalSeconds ?? template.intervalSeconds) : null,
    timezone: binding.timezone ?? template.timezone,
    argDict: { ...(template.argDict as Record<string, unknown>), ...((binding.argDict as Record<string, unknown> | null) ?? {}) },
    funcName: binding.funcName ?? template.funcName,
  };
}

/**
 * The platform template `fullName`, read in `tx` with a row lock (FOR SHARE) that waits for a concurrent
 * update of it to commit and then reads the updated row; the update waits for this transaction in turn.
 */
async function lockTemplate(tx: Prisma.TransactionClient, fullName: string): Promise<TaskTemplate> {
  const rows = await tx.$queryRaw<{ id: string }[]>`
    SELECT id FROM task_template WHERE tenant_id = ${PLATFORM_TENANT} AND full_name = ${fullName} FOR SHARE`;
  const template = rows.length ? await tx.taskTemplate.findUnique({ where: { id: rows[0]!.id } }) : null;
  if (!template) {
    throw new ChronographError('UNKNOWN_TEMPLATE', `The ${PLATFORM_TENANT} tenant has no task template named ${JSON.stringify(fullName)}`, {
      field: 'fullName',
    });
  }
  return template;
}

/** The binding's live task, locked (FOR UPDATE: the scheduler's claim skips it meanwhile). */
async function lockLiveTask(tx: Prisma.TransactionClient, bindingId: string): Promise<Task | null> {
  const rows = await tx.$queryRaw<{ id: string }[]>`
    SELECT task_id AS id FROM task_state
     WHERE binding_id = ${bindingId}::uuid AND status IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED') FOR UPDATE`;
  return rows.length ? tx.task.findUnique({ where: { id: rows[0]!.id } }) : null;
}
