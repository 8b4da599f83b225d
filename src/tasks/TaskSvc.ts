import { ChronographError, badInput, notFound } from '../errors.js';
import type { PrismaClient, Task, TaskTemplate } from '../generated/prisma/client.js';
import { RepeatType, TaskSource, TaskStatus, type Prisma } from '../generated/prisma/client.js';
import type { HandlerRegistry } from '../handlers/HandlerRegistry.js';
import type { TemplateSvc } from '../templates/TemplateSvc.js';
import { TERMINAL_STATUSES, WAKE_CHANNEL, recordEvents, transition } from './statusMachine.js';
import { assertCron, assertTimezone, nextCronOccurrence, parseTime } from './time.js';
import type { TaskTypeRegistry } from './TaskTypeRegistry.js';
import { assertArgDict, assertId, assertIntRange } from './validate.js';

/** The seed's createTimerTask arguments, plus the schedule and policy fields that default from the template. */
export interface TimerTaskInput {
  fullName: string;
  startTime?: string | null;
  funcName?: string | null;
  taskType?: string | null;
  argDict?: unknown;
  timezone?: string | null;
  repeatType?: RepeatType | null;
  cronExpression?: string | null;
  intervalSeconds?: number | null;
  endTime?: string | null;
  maxRuns?: number | null;
  maxAttempts?: number | null;
  timeoutMs?: number | null;
  priority?: number | null;
  queue?: string | null;
}

export interface TaskFilter {
  status?: TaskStatus[] | null;
  fullName?: string | null;
  funcName?: string | null;
  source?: TaskSource | null;
  /** Inclusive bounds on startTime, as date-time strings. */
  startTimeFrom?: string | null;
  startTimeTo?: string | null;
}

export interface TaskSvcDeps {
  prisma: PrismaClient;
  handlers: HandlerRegistry;
  taskTypes: TaskTypeRegistry;
  templates: TemplateSvc;
  defaultTimezone: string;
  now?: () => Date;
}

/**
 * `services.TaskSvc`: the seed's task service, bound to one tenant. GraphQL resolvers and code that
 * calls `app.getElement("services.TaskSvc")` both come here; there is one implementation of each rule.
 */
export class TaskSvc {
  private readonly templates: TemplateSvc;

  constructor(
    private readonly deps: TaskSvcDeps,
    readonly tenantId = 'default',
  ) {
    this.templates = deps.templates.forTenant(tenantId);
  }

  forTenant(tenantId: string): TaskSvc {
    return new TaskSvc(this.deps, tenantId);
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** Task templates whose title or fullName contains `queryStr`; "" lists every template. */
  getTaskTmplList(queryStr = ''): Promise<TaskTemplate[]> {
    return this.templates.list(queryStr);
  }

  /** Creates one task in status SCHEDULED, with its first TaskEvent. */
  async createTimerTask(input: TimerTaskInput): Promise<Task> {
    const [task] = await this.createTimerTasks([input]);
    return task!;
  }

  /** Creates many tasks in one transaction: either all of them exist afterwards or none does. */
  async createTimerTasks(inputs: TimerTaskInput[]): Promise<Task[]> {
    if (inputs.length === 0) return [];
    if (inputs.length > 10_000) throw badInput('At most 10000 tasks can be created in one call', 'inputs');
    const templates = new Map<string, TaskTemplate>();
    const rows: Prisma.TaskCreateManyInput[] = [];
    for (const [index, input] of inputs.entries()) {
      try {
        let template = templates.get(input.fullName);
        if (!template) {
          template = await this.templates.get(input.fullName);
          templates.set(input.fullName, template);
        }
        rows.push(this.buildTask(input, template));
      } catch (error) {
        if (error instanceof ChronographError && inputs.length > 1) {
          throw new ChronographError(error.code, `inputs[${index}]: ${error.message}`, { ...error.details, index });
        }
        throw error;
      }
    }
    return this.deps.prisma.$transaction(async (tx) => {
      const tasks = await tx.task.createManyAndReturn({ data: rows });
      await recordEvents(
        tx,
        tasks.map((t) => ({ taskId: t.id, tenantId: t.tenantId, fromStatus: null, toStatus: TaskStatus.SCHEDULED, nextRunAt: t.nextRunAt, message: 'created' })),
      );
      await wake(tx);
      return tasks;
    });
  }

  async getTask(id: string): Promise<Task> {
    const task = await this.findTask(id);
    if (!task) throw notFound('Task', id);
    return task;
  }

  findTask(id: string): Promise<Task | null> {
    return this.deps.prisma.task.findFirst({ where: { id: assertId(id, 'id'), tenantId: this.tenantId } });
  }

  /** The Prisma `where` for a task filter of this tenant; GraphQL's connection pages over it. */
  taskWhere(filter: TaskFilter = {}): Prisma.TaskWhereInput {
    const where: Prisma.TaskWhereInput = { tenantId: this.tenantId };
    if (filter.status?.length) where.status = { in: filter.status };
    if (filter.fullName) where.fullName = filter.fullName;
    if (filter.funcName) where.funcName = filter.funcName;
    if (filter.source) where.source = filter.source;
    if (filter.startTimeFrom || filter.startTimeTo) {
      where.startTime = {
        ...(filter.startTimeFrom && { gte: parseTime(filter.startTimeFrom, this.deps.defaultTimezone, 'startTimeFrom') }),
        ...(filter.startTimeTo && { lte: parseTime(filter.startTimeTo, this.deps.defaultTimezone, 'startTimeTo') }),
      };
    }
    return where;
  }

  listTasks(filter: TaskFilter = {}, page: { take?: number; skip?: number } = {}): Promise<Task[]> {
    return this.deps.prisma.task.findMany({ where: this.taskWhere(filter), orderBy: { id: 'desc' }, take: page.take ?? 100, skip: page.skip });
  }

  /** Status changes after the cursor `after` (an event id), oldest first. */
  async listEvents(
    args: { after?: string | null; taskId?: string | number | null; first?: number | null } & Pick<Prisma.TaskEventFindManyArgs, 'include' | 'select'>,
  ) {
    const { after, taskId, first, ...query } = args;
    if (after != null && !/^\d{1,19}$/.test(after)) throw badInput(`after ${JSON.stringify(after)} is not an event cursor`, 'after');
    const take = assertIntRange(first ?? 100, 'first', 1, 1000);
    return this.deps.prisma.taskEvent.findMany({
      ...query,
      where: {
        tenantId: this.tenantId,
        ...(after != null && { id: { gt: BigInt(after) } }),
        ...(taskId != null && { taskId: assertId(String(taskId), 'taskId') }),
      },
      orderBy: { id: 'asc' },
      take,
    });
  }

  /** How many tasks are in each status. */
  async stats(): Promise<Record<string, number>> {
    const groups = await this.deps.prisma.task.groupBy({ by: ['status'], where: { tenantId: this.tenantId }, _count: { _all: true } });
    const counts: Record<string, number> = Object.fromEntries(Object.values(TaskStatus).map((s) => [s.toLowerCase(), 0]));
    let total = 0;
    for (const g of groups) {
      counts[g.status.toLowerCase()] = g._count._all;
      total += g._count._all;
    }
    return { ...counts, total };
  }

  /** Ends a task that has not finished: FORCED_END, with an event; it will not run again. */
  async forcedEnd(taskId: string, reason?: string | null): Promise<Task> {
    const id = assertId(taskId, 'taskId');
    return this.deps.prisma.$transaction(async (tx) => {
      const task = await tx.task.findFirst({ where: { id, tenantId: this.tenantId } });
      if (!task) throw notFound('Task', taskId);
      if (TERMINAL_STATUSES.includes(task.status)) {
        throw new ChronographError('CONFLICT', `Task ${task.id} has already ended (${task.status}); there is nothing to force-end`, {
          status: task.status,
        });
      }
      if (task.status === TaskStatus.RUNNING) {
        throw new ChronographError('CONFLICT', `Task ${task.id} is running; ending a running task needs the scheduler`, { status: task.status });
      }
      return transition(tx, {
        task,
        to: TaskStatus.FORCED_END,
        data: { nextRunAt: null, lockedBy: null, lockedUntil: null },
        message: reason?.trim() || 'forced end requested',
      });
    });
  }

  saveDateFieldTask(_rowObj: unknown): never {
    throw new ChronographError('NOT_IMPLEMENTED', 'saveDateFieldTask is not implemented yet: date-field templates arrive with the model-event layer');
  }

  deleteDateFieldTask(_rowObj: unknown): never {
    throw new ChronographError('NOT_IMPLEMENTED', 'deleteDateFieldTask is not implemented yet: date-field templates arrive with the model-event layer');
  }

  /** Resolves defaults from the template and validates everything; throws before anything is written. */
  private buildTask(input: TimerTaskInput, template: TaskTemplate): Prisma.TaskCreateManyInput {
    if (!template.enabled) {
      throw new ChronographError('CONFLICT', `Task template ${template.fullName} is disabled`, { field: 'fullName' });
    }
    const funcName = input.funcName ?? template.funcName;
    if (!funcName) throw badInput(`funcName is required: template ${template.fullName} names no default handler`, 'funcName');
    if (!this.deps.handlers.has(funcName)) {
      throw new ChronographError('UNKNOWN_FUNC', `No handler is registered as ${JSON.stringify(funcName)}; see the handlers query`, {
        field: 'funcName',
      });
    }
    const taskType = input.taskType ?? template.taskType;
    if (!this.deps.taskTypes.has(taskType)) {
      throw new ChronographError('UNKNOWN_TASK_TYPE', `Task type ${JSON.stringify(taskType)} is not registered (known: ${this.deps.taskTypes.names().join(', ')})`, {
        field: 'taskType',
      });
    }
    const args = { ...(template.argDict as Record<string, unknown>), ...assertArgDict(input.argDict ?? {}) };
    const timezone = input.timezone ?? template.timezone;
    assertTimezone(timezone);

    const repeatType = input.repeatType ?? (template.repeatType === RepeatType.DATE_FIELD ? RepeatType.ONCE : template.repeatType);
    if (repeatType === RepeatType.DATE_FIELD) {
      throw badInput('DATE_FIELD tasks are created by saveDateFieldTask, not createTimerTask', 'repeatType');
    }
    const cronExpression = repeatType === RepeatType.CRON ? (input.cronExpression ?? template.cronExpression)?.trim() : null;
    if (repeatType === RepeatType.CRON) {
      if (!cronExpression) throw new ChronographError('INVALID_CRON', 'A CRON task needs a cronExpression', { field: 'cronExpression' });
      assertCron(cronExpression);
    }
    const intervalSeconds = repeatType === RepeatType.INTERVAL ? (input.intervalSeconds ?? template.intervalSeconds) : null;
    if (repeatType === RepeatType.INTERVAL) {
      if (intervalSeconds == null) throw badInput('An INTERVAL task needs intervalSeconds', 'intervalSeconds');
      assertIntRange(intervalSeconds, 'intervalSeconds', 1, 10 * 365 * 86_400);
    }

    const now = this.now();
    let startTime: Date;
    if (input.startTime != null) startTime = parseTime(input.startTime, timezone, 'startTime');
    else if (repeatType === RepeatType.ONCE) throw new ChronographError('INVALID_START_TIME', 'startTime is required for a one-off task', { field: 'startTime' });
    else startTime = now;
    const endTime = input.endTime != null ? parseTime(input.endTime, timezone, 'endTime') : null;
    if (endTime && endTime <= startTime) throw badInput('endTime must be after startTime', 'endTime');

    // A cron task's first run is its first occurrence at or after startTime.
    const nextRunAt = cronExpression ? nextCronOccurrence(cronExpression, timezone, new Date(startTime.getTime() - 1)) : startTime;
    if (endTime && nextRunAt > endTime) throw badInput('The schedule has no occurrence before endTime', 'endTime');

    const timeoutMs = input.timeoutMs ?? template.timeoutMs;
    return {
      tenantId: this.tenantId,
      templateId: template.id,
      fullName: template.fullName,
      taskType,
      funcName,
      argDict: args as Prisma.InputJsonObject,
      repeatType,
      cronExpression: cronExpression ?? null,
      intervalSeconds,
      timezone,
      startTime,
      endTime,
      maxRuns: input.maxRuns != null ? assertIntRange(input.maxRuns, 'maxRuns', 1, 2_147_483_647) : null,
      nextRunAt,
      status: TaskStatus.SCHEDULED,
      priority: assertIntRange(input.priority ?? template.priority, 'priority', -1000, 1000),
      queue: input.queue?.trim() || template.queue,
      maxAttempts: assertIntRange(input.maxAttempts ?? template.maxAttempts, 'maxAttempts', 1, 1000),
      timeoutMs: timeoutMs != null ? assertIntRange(timeoutMs, 'timeoutMs', 1, 2_147_483_647) : null,
      source: TaskSource.API,
    };
  }
}

/** Tells every scheduler that something may be due earlier than it planned; delivered on commit. */
export async function wake(tx: Prisma.TransactionClient): Promise<void> {
  await tx.$executeRaw`SELECT pg_notify(${WAKE_CHANNEL}, '')`;
}
