import type { DateFieldResult } from '../dateFields/applyDateFields.js';
import type { DateFieldSvc } from '../dateFields/DateFieldSvc.js';
import type { Database } from '../db/Database.js';
import { isLockTimeout } from '../db/dbErrors.js';
import { type RequestScope, scopedDeps } from '../db/requestScope.js';
import type { SqlRunner } from '../db/SqlPool.js';
import { badInput, ChronographError, conflict, notFound } from '../errors.js';
import type { PrismaClient, Task, TaskTemplate } from '../generated/prisma/client.js';
import {
  MisfirePolicy,
  type OverlapPolicy,
  type Prisma,
  RepeatType,
  TaskEventType,
  TaskSource,
  TaskStatus,
} from '../generated/prisma/client.js';
import type { HandlerRegistry } from '../handlers/HandlerRegistry.js';
import type { TaskStarter } from '../scheduler/Scheduler.js';
import { type ClaimedTask, runElapsedMsSql, type StartClaim } from '../scheduler/sql.js';
import type { TemplateSvc } from '../templates/TemplateSvc.js';
import { checkArgDictQuota, QuotaGuard } from '../tenants/QuotaGuard.js';
import { parseTime } from '../time/parseTime.js';
import {
  firstOccurrence,
  nextOccurrence,
  type ResolvedSchedule,
  resolveSchedule,
  type ScheduledTime,
  upcomingRuns,
} from '../time/schedule.js';
import { insertNewTasks, type NewTaskRow, newTask, prismaRunner, type ReadVersions, TaskIds } from './bulkInsert.js';
import { CreateCache, type TemplateDefaults, type TenantRead, type Versioned } from './createCache.js';
import {
  CANCEL_CHANNEL,
  LIVE_STATUSES,
  type RunEnd,
  TASK_EVENT_CHANNEL,
  TERMINAL_STATUSES,
  transition,
  WAKE_CHANNEL,
} from './statusMachine.js';
import type { TaskTypeRegistry } from './TaskTypeRegistry.js';
import {
  assertArgDict,
  assertId,
  assertIntRange,
  assertQueue,
  assertText,
  MAX_LABEL_LENGTH,
  MAX_NAME_LENGTH,
  MAX_TEXT_LENGTH,
} from './validate.js';

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
  /** Heap limit in MB of the worker thread the run gets; setting it runs the handler in a thread. */
  memoryLimitMb?: number | null;
  priority?: number | null;
  queue?: string | null;
  /** At most one live task per key (and tenant): creating another returns the live one instead. */
  uniqueKey?: string | null;
  misfirePolicy?: MisfirePolicy | null;
  misfireToleranceMs?: number | null;
  overlapPolicy?: OverlapPolicy | null;
  retryBackoffMs?: number | null;
}

/** What updateTask can change. */
const PATCH_FIELDS = [
  'funcName',
  'taskType',
  'argDict',
  'timezone',
  'repeatType',
  'cronExpression',
  'intervalSeconds',
  'startTime',
  'endTime',
  'maxRuns',
  'maxAttempts',
  'timeoutMs',
  'memoryLimitMb',
  'priority',
  'queue',
  'misfirePolicy',
  'misfireToleranceMs',
  'overlapPolicy',
  'retryBackoffMs',
] as const satisfies readonly (keyof TimerTaskInput)[];

/**
 * updateTask's patch: an omitted field keeps its value; `endTime`, `maxRuns`, `timeoutMs` and
 * `memoryLimitMb` are cleared by null. `argDict` replaces the task's arguments as a whole.
 */
export type TaskPatch = Partial<Pick<TimerTaskInput, (typeof PATCH_FIELDS)[number]>>;
const CLEARABLE: readonly (keyof TaskPatch)[] = ['endTime', 'maxRuns', 'timeoutMs', 'memoryLimitMb'];
const SCHEDULE_FIELDS: readonly (keyof TaskPatch)[] = [
  'timezone',
  'repeatType',
  'cronExpression',
  'intervalSeconds',
  'startTime',
  'endTime',
  'maxRuns',
];

/** Which columns and relations of a task to read (Prisma's select or include). */
export type TaskSelection = Pick<Prisma.TaskFindFirstArgs, 'select' | 'include'>;

/** The statuses of a task that lists upcoming runs (upcomingRuns); a paused or finished one lists none. */
export const UPCOMING_STATUSES: readonly TaskStatus[] = [TaskStatus.SCHEDULED, TaskStatus.RETRYING, TaskStatus.RUNNING];

/** What upcomingRuns reads of a task. */
export type UpcomingTask = Pick<
  Task,
  | 'status'
  | 'nextRunAt'
  | 'runCount'
  | 'maxRuns'
  | 'endTime'
  | 'misfirePolicy'
  | 'repeatType'
  | 'cronExpression'
  | 'intervalSeconds'
  | 'timezone'
>;

/** previewSchedule's input: a schedule as createTimerTask takes it, with no template to default from. */
export interface SchedulePreviewInput {
  /** Default: CRON with a cronExpression, INTERVAL with intervalSeconds, else ONCE. */
  repeatType?: RepeatType | null;
  cronExpression?: string | null;
  intervalSeconds?: number | null;
  /** Default: DEFAULT_TIMEZONE. */
  timezone?: string | null;
  startTime?: string | null;
  endTime?: string | null;
  maxRuns?: number | null;
}

/** What buildTask keeps across the inputs of one createTimerTasks call. */
interface BuildCache {
  /** The instant a schedule without startTime starts from, the same for the whole batch. */
  now: Date;
  /** resolveSchedule's result per distinct schedule input. */
  schedules: Map<string, ResolvedSchedule>;
}

/** A task as createTimerTask returns it: `deduplicated` when its uniqueKey matched a live task. */
export type CreatedTask = Task & { deduplicated: boolean };

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
  /** The model-event layer behind saveDateFieldTask / deleteDateFieldTask. */
  dateFields: DateFieldSvc;
  db: Pick<Database, 'listen' | 'sql'>;
  defaultTimezone: string;
  /** Largest argDict (as JSON, template defaults merged in); MAX_JSON_BYTES. */
  maxJsonBytes: number;
  now?: () => Date;
  /** This instance's scheduler: a create whose tasks are due now may claim them for it in its insert. */
  starter?: TaskStarter;
}

/**
 * `services.TaskSvc`: the seed's task service, bound to one tenant and to the actor its events are
 * recorded for. GraphQL resolvers (bound to the caller's credential), handlers (`ctx.taskSvc`, bound to
 * their task's tenant) and code that calls `app.getElement("services.TaskSvc")` all come here; there is
 * one implementation of each rule.
 */
export class TaskSvc {
  private readonly templates: TemplateSvc;

  constructor(
    private readonly deps: TaskSvcDeps,
    readonly tenantId = 'default',
    /** Written to TaskEvent.actor for every change made through this service. */
    readonly actor: string | null = null,
    /** Templates and quotas as last read, shared by every TaskSvc of the process (see createTimerTasks). */
    private readonly cache = new CreateCache(),
  ) {
    this.templates = deps.templates.forTenant(tenantId, actor);
  }

  forTenant(tenantId: string, actor: string | null = this.actor): TaskSvc {
    return new TaskSvc(this.deps, tenantId, actor, this.cache);
  }

  /** This service for work done in `scope` (a request's operation): its statements check the scope first. */
  withScope(scope: RequestScope): TaskSvc {
    return new TaskSvc(scopedDeps(this.deps, scope), this.tenantId, this.actor, this.cache);
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** Task templates whose title or fullName contains `queryStr`; "" lists every template. */
  getTaskTmplList(queryStr = ''): Promise<TaskTemplate[]> {
    return this.templates.list(queryStr);
  }

  /**
   * Creates one task in status SCHEDULED, with its first TaskEvent. With a `uniqueKey` that a live task
   * already holds, nothing is created and that task is returned with `deduplicated: true`.
   */
  async createTimerTask(input: TimerTaskInput): Promise<CreatedTask> {
    const [task] = await this.createTimerTasks([input]);
    return task!;
  }

  /**
   * Creates many tasks, all or none. Inputs are checked one by one (the first bad one is reported with
   * its index, before anything is written); templates are read and schedules resolved once per distinct
   * value in the batch. The rows, their CREATED events and the events' NOTIFYs go to the database in one
   * statement (insertNewTasks).
   *
   * Templates and the tenant's quotas come from the process' CreateCache, and the insert checks in the
   * same statement that each row it was built from is unchanged; when one changed (any instance may
   * change them) nothing was written, and the batch is built again from what is read afresh. An input
   * refused on cached data is checked again on fresh data before it is refused. So the usual create —
   * no uniqueKey, a tenant without count quotas — is that one statement, prepared, in a transaction of
   * its own. With a uniqueKey (the live task holding it is read back) or a tenant with maxLiveTasks or
   * maxTasksCreatedPerMinute (its creates are serialised and counted, QuotaGuard), the statement runs in a
   * transaction that does that too.
   */
  async createTimerTasks(inputs: TimerTaskInput[]): Promise<CreatedTask[]> {
    if (inputs.length === 0) return [];
    if (inputs.length > 10_000) throw badInput('At most 10000 tasks can be created in one call', 'inputs');
    const sql = this.deps.db.sql;
    for (let attempt = 0; ; attempt++) {
      // The first attempt may use what is cached; an input refused on cached data, or a row that changed
      // before the insert, makes the next attempt read everything afresh.
      const fresh = attempt > 0;
      if (attempt > MAX_CREATE_ATTEMPTS) {
        throw conflict('The task templates or the tenant quotas of this request kept changing while it was written; retry');
      }
      const read = { cached: false };
      const tenant = await this.cache.tenant(sql, this.tenantId, fresh, read);
      const counted = tenant.value.maxLiveTasks != null || tenant.value.maxTasksCreatedPerMinute != null;
      if (!counted && !inputs.some((input) => input.uniqueKey != null)) {
        // The quota as read; the insert confirms the tenant's row has not changed since.
        let created: CreatedTask[] | null;
        try {
          created =
            inputs.length > CHUNK_ROWS
              ? await this.insertInChunks(inputs, tenant, fresh, read)
              : await this.insertAtOnce(inputs, sql, tenant, fresh, read);
        } catch (error) {
          if (error instanceof ChronographError && read.cached) continue;
          throw error;
        }
        if (!created) continue;
        if (tenant.version == null) this.cache.forgetTenant(this.tenantId);
        return created;
      }
      let built: Awaited<ReturnType<TaskSvc['buildBatch']>>;
      try {
        built = await this.buildBatch(inputs, sql, fresh, read);
      } catch (error) {
        if (error instanceof ChronographError && read.cached) continue;
        throw error;
      }
      const { rows, messages, templates } = built;
      const versions = { templates: templateVersions(templates) };
      try {
        return await this.deps.prisma.$transaction(
          async (tx) => {
            // Quotas are checked in the transaction that inserts (QuotaGuard): over a limit, the whole batch
            // rolls back. Deduplicated rows are not inserted, so they do not count.
            const quota = await QuotaGuard.of(tx, this.tenantId);
            rows.forEach((row, index) => quota.checkArgDict(row.argDict, inputs.length > 1 ? `inputs[${index}].argDict` : 'argDict'));
            await quota.beforeCreate();
            // ON CONFLICT DO NOTHING: a row whose uniqueKey a live task holds (the partial unique index
            // task_live_unique_key decides, so concurrent creators cannot both win) is simply not inserted.
            const {
              fresh: current,
              skipped,
              now,
            } = await insertNewTasks(prismaRunner(tx), rows, messages, this.actor, {
              ...versions,
              tenant: null,
            });
            if (!current) throw STALE;
            // The insert also woke the schedulers (one NOTIFY on WAKE_CHANNEL when it inserted anything).
            await quota.created(rows.length - skipped.size);
            const skippedKeys = rows.filter((r) => skipped.has(r.id)).map((r) => r.uniqueKey!);
            const existing = skippedKeys.length
              ? await tx.task.findMany({
                  where: { tenantId: this.tenantId, uniqueKey: { in: skippedKeys }, status: { in: LIVE_STATUSES } },
                })
              : [];
            const byKey = new Map(existing.map((t) => [t.uniqueKey!, t]));
            return rows.map((row) => {
              if (!skipped.has(row.id)) return newTask(row, now);
              const live = byKey.get(row.uniqueKey!);
              if (!live) throw conflict(`uniqueKey ${row.uniqueKey} is taken by a task that is changing right now; retry`);
              return { ...live, deduplicated: true };
            });
            // Prisma's default 5 s limit for an interactive transaction is too short for the largest batches.
          },
          { timeout: 120_000 },
        );
      } catch (error) {
        if (error === STALE) continue;
        throw error;
      }
    }
  }

  /**
   * The usual create and a batch of up to CHUNK_ROWS: built and checked whole, then one statement, which
   * is its own transaction. Null when a row it was built from changed (nothing was written).
   */
  private async insertAtOnce(
    inputs: TimerTaskInput[],
    sql: SqlRunner,
    tenant: TenantRead,
    fresh: boolean,
    read: { cached: boolean },
  ): Promise<CreatedTask[] | null> {
    const builder = this.batchBuilder(inputs, sql, fresh, read);
    const { rows, messages } = await builder.build(0, inputs.length);
    this.checkArgDicts(inputs, rows, 0, tenant.value);
    // Tasks due now start on this instance as the insert commits, when its scheduler has free slots (and
    // nothing limits the tenant's runs across instances: that is the capped claim's to enforce).
    const now = Date.now();
    const due =
      tenant.value.maxConcurrentRuns == null
        ? rows.filter((row) => row.status === TaskStatus.SCHEDULED && row.nextRunAt != null && row.nextRunAt.getTime() <= now).length
        : 0;
    const reservation = due > 0 ? (this.deps.starter?.reserveStart(this.tenantId, due) ?? null) : null;
    let inserted: Awaited<ReturnType<typeof insertNewTasks>>;
    try {
      inserted = await insertNewTasks(
        sql,
        rows,
        messages,
        this.actor,
        { templates: templateVersions(builder.templates), tenant: { id: this.tenantId, version: tenant.version } },
        reservation?.claim,
      );
    } catch (error) {
      reservation?.release();
      throw error;
    }
    if (!inserted.fresh) {
      reservation?.release();
      return null;
    }
    reservation?.start(inserted.claimed);
    const claimed = new Map(inserted.claimed.map((task) => [task.id, task]));
    return rows.map((row) => {
      const task = newTask(row, inserted.now);
      const run = claimed.get(row.id);
      // Claimed in the insert: the task as the commit left it.
      return run ? Object.assign(task, claimedState(run, reservation!.claim)) : task;
    });
  }

  /**
   * A batch of more than CHUNK_ROWS: one transaction of one statement per CHUNK_ROWS inputs, each sent as
   * soon as its rows are built, so that the database writes one part while the next is built and
   * checked (on PostgreSQL; PGlite runs them one after the other). An input refused in a later part, or a
   * row the rows were built from that changed, rolls the whole transaction back: all or nothing, as one
   * statement. The first statement checks the tenant's row version (and creates its row when it had
   * none), every statement the templates'. Null when one of them changed.
   */
  private async insertInChunks(
    inputs: TimerTaskInput[],
    tenant: TenantRead,
    fresh: boolean,
    read: { cached: boolean },
  ): Promise<CreatedTask[] | null> {
    // Templates are read before the transaction, so that its connection only ever runs the inserts.
    const builder = this.batchBuilder(inputs, this.deps.db.sql, fresh, read);
    await builder.readTemplates();
    try {
      return await this.deps.db.sql.transaction(async (tx) => {
        const parts: Promise<CreatedTask[] | null>[] = [];
        // Each statement is sent as the previous one ends (one connection runs one at a time).
        let previous: Promise<unknown> = Promise.resolve();
        try {
          for (let from = 0; from < inputs.length; from += CHUNK_ROWS) {
            const { rows, messages } = await builder.build(from, Math.min(from + CHUNK_ROWS, inputs.length));
            this.checkArgDicts(inputs, rows, from, tenant.value);
            const versions: ReadVersions = {
              templates: templateVersions(builder.templates),
              tenant: from === 0 ? { id: this.tenantId, version: tenant.version } : null,
            };
            const insert = previous.then(() => insertNewTasks(tx, rows, messages, this.actor, versions));
            previous = insert;
            const part = insert.then((inserted) => (inserted.fresh ? rows.map((row) => newTask(row, inserted.now)) : null));
            // Its failure is taken up below (Promise.all); meanwhile it must not count as unhandled.
            part.catch(() => {});
            parts.push(part);
            // Lets the previous statement's answer in, and this one go out, before the next part is built.
            await new Promise((resolve) => setImmediate(resolve));
          }
        } catch (error) {
          // A statement already sent ends before the transaction rolls back; its outcome no longer matters.
          await Promise.allSettled(parts);
          throw error;
        }
        const created = await Promise.all(parts);
        if (created.some((part) => part === null)) throw STALE;
        return (created as CreatedTask[][]).flat();
      });
    } catch (error) {
      if (error === STALE) return null;
      throw error;
    }
  }

  /** The argDict quota of the tenant as read, for `rows` built from `inputs[from…]`. */
  private checkArgDicts(inputs: TimerTaskInput[], rows: NewTaskRow[], from: number, quota: TenantRead['value']): void {
    rows.forEach((row, k) =>
      checkArgDictQuota(this.tenantId, quota, row.argDict, inputs.length > 1 ? `inputs[${from + k}].argDict` : 'argDict'),
    );
  }

  /**
   * createTimerTasks' rows, built and checked, with the templates they were built from (cached unless
   * `fresh`; `read.cached` tells whether any was).
   */
  private async buildBatch(inputs: TimerTaskInput[], sql: SqlRunner, fresh: boolean, read: { cached: boolean }) {
    const builder = this.batchBuilder(inputs, sql, fresh, read);
    const { rows, messages } = await builder.build(0, inputs.length);
    return { rows, messages, templates: builder.templates };
  }

  /**
   * Builds and checks the rows of `inputs[from…to)`, part after part of one batch: templates are read
   * (cached unless `fresh`; `read.cached` tells whether any was) and schedules resolved once per distinct
   * value in the batch, ids increase across the parts. `templates`: what the rows built so far came from.
   */
  private batchBuilder(inputs: TimerTaskInput[], sql: SqlRunner, fresh: boolean, read: { cached: boolean }) {
    const templates = new Map<string, Versioned<TemplateDefaults>>();
    const cache: BuildCache = { now: this.now(), schedules: new Map() };
    const ids = new TaskIds(inputs.length);
    const seen = new Map<string, Versioned<TemplateDefaults> | null>();
    const readTemplate = async (fullName: string) => {
      if (!seen.has(fullName)) seen.set(fullName, await this.cache.template(sql, this.tenantId, fullName, fresh, read));
      return seen.get(fullName) ?? null;
    };
    const build = async (from: number, to: number) => {
      const rows: NewTaskRow[] = [];
      const messages = new Map<string, string>();
      for (let index = from; index < to; index++) {
        const input = inputs[index]!;
        try {
          // Before it is looked up (and named in UNKNOWN_TEMPLATE).
          assertText(input.fullName, 'fullName', MAX_NAME_LENGTH);
          let template = templates.get(input.fullName);
          if (!template) {
            const found = await readTemplate(input.fullName);
            if (!found) {
              throw new ChronographError('UNKNOWN_TEMPLATE', `No task template is named ${JSON.stringify(input.fullName)}`, {
                field: 'fullName',
              });
            }
            // Its own copy of the default argDict: the rows share it, the cache must not.
            template = { ...found, value: { ...found.value, argDict: structuredClone(found.value.argDict) } };
            templates.set(input.fullName, template);
          }
          const { row, notes } = this.buildTask(input, template.value, { cache, id: ids.next() });
          rows.push(row);
          // A wall-clock time that DST made ambiguous: the CREATED event says which occurrence was taken.
          if (notes.length) messages.set(row.id, `created; ${notes.join('; ')}`);
        } catch (error) {
          if (error instanceof ChronographError && inputs.length > 1) {
            throw new ChronographError(error.code, `inputs[${index}]: ${error.message}`, { ...error.details, index });
          }
          throw error;
        }
      }
      return { rows, messages };
    };
    /** Reads the templates the inputs name, in their order, up to an unknown one (build refuses that input). */
    const readTemplates = async () => {
      for (const input of inputs) {
        if (input.fullName.length > MAX_NAME_LENGTH || (await readTemplate(input.fullName)) === null) return;
      }
    };
    return { templates, build, readTemplates };
  }

  /**
   * Resolves with the task once it is in one of `statuses` (default: any final status), checking on
   * every event of the task; rejects with TIMEOUT after `timeoutMs`.
   */
  async waitForTask(taskId: string, options: { statuses?: TaskStatus[]; timeoutMs?: number } = {}): Promise<Task> {
    const id = assertTaskId(taskId);
    const wanted = new Set(options.statuses?.length ? options.statuses : TERMINAL_STATUSES);
    const timeoutMs = options.timeoutMs ?? 30_000;
    let settle!: (task: Task | Error) => void;
    const outcome = new Promise<Task | Error>((resolve) => (settle = resolve));
    let checking = Promise.resolve();
    const check = () => {
      checking = checking
        .then(async () => {
          const task = await this.findTask(id);
          if (!task) settle(notFound('Task', taskId));
          else if (wanted.has(task.status)) settle(task);
        })
        .catch((error: unknown) => settle(error as Error));
    };
    const unlisten = await this.deps.db.listen(TASK_EVENT_CHANNEL, (payload) => {
      if (payload === '' || payload.includes(id)) check();
    });
    const timer = setTimeout(
      () =>
        settle(
          new ChronographError('TIMEOUT', `Task ${id} did not reach ${[...wanted].join(' or ')} within ${timeoutMs} ms`, { taskId: id }),
        ),
      timeoutMs,
    );
    check();
    try {
      const result = await outcome;
      if (result instanceof Error) throw result;
      return result;
    } finally {
      clearTimeout(timer);
      await unlisten();
    }
  }

  async getTask(id: string, selection?: TaskSelection): Promise<Task> {
    const task = await this.findTask(id, selection);
    if (!task) throw notFound('Task', id);
    return task;
  }

  /**
   * The task with this id in this tenant, or null. With a `selection` (GraphQL passes the one its
   * query needs) only those columns and relations are read, and only they are present on the result.
   */
  findTask(id: string, selection: TaskSelection = {}): Promise<Task | null> {
    return this.deps.prisma.task.findFirst({
      ...selection,
      where: { id: assertTaskId(id, 'id'), tenantId: this.tenantId },
    }) as Promise<Task | null>;
  }

  /** The Prisma `where` for a task filter of this tenant; GraphQL's connection pages over it. */
  taskWhere(filter: TaskFilter = {}): Prisma.TaskWhereInput {
    // The view task reads tenant_id from task_spec, whose indexes are led by it: a tenant's tasks of every
    // status are read through them; a status filter starts from task_status_tenant_id_idx instead.
    const where: Prisma.TaskWhereInput = { tenantId: this.tenantId, ...(filter.status?.length && { status: { in: filter.status } }) };
    if (filter.fullName) where.fullName = filter.fullName;
    if (filter.funcName) where.funcName = filter.funcName;
    if (filter.source) where.source = filter.source;
    if (filter.startTimeFrom || filter.startTimeTo) {
      where.startTime = {
        ...(filter.startTimeFrom && { gte: parseTime(filter.startTimeFrom, this.deps.defaultTimezone, 'startTimeFrom').at }),
        ...(filter.startTimeTo && { lte: parseTime(filter.startTimeTo, this.deps.defaultTimezone, 'startTimeTo').at }),
      };
    }
    return where;
  }

  /** How many tasks are in each status. */
  async stats(): Promise<Record<string, number>> {
    // In one statement (one snapshot), without joining the task tables: the tenant's tasks counted in
    // task_spec (an index led by tenant_id), those in each status but SUCCEEDED in task_state's status
    // index, which leaves succeeded tasks out (migration 20261208000000_runs_as_events); the succeeded
    // ones are the rest.
    const rows = await this.deps.prisma.$queryRaw<{ status: string; n: number }[]>`
      SELECT status::text AS status, count(*)::int AS n FROM task_state
       WHERE tenant_id = ${this.tenantId} AND status <> 'SUCCEEDED' GROUP BY status
      UNION ALL
      SELECT 'TOTAL', count(*)::int FROM task_spec WHERE tenant_id = ${this.tenantId}`;
    const counts: Record<string, number> = Object.fromEntries(Object.values(TaskStatus).map((s) => [s.toLowerCase(), 0]));
    let others = 0;
    let total = 0;
    for (const r of rows) {
      if (r.status === 'TOTAL') total = Number(r.n);
      else {
        counts[r.status.toLowerCase()] = Number(r.n);
        others += Number(r.n);
      }
    }
    counts.succeeded = total - others;
    return { ...counts, total };
  }

  /**
   * Ends a task for good: FORCED_END, with an event carrying `reason`, at once. A RUNNING task's run is
   * closed CANCELLED with the reason and its lease taken away here, in one transaction, so this does not
   * wait for the instance running it — which may be dead, frozen or busy: that instance is told through
   * NOTIFY (or its next heartbeat) to abort the handler, and whatever the handler does afterwards is
   * fenced off (its result is discarded, `ctx.assertLease()` throws).
   */
  async forcedEnd(taskId: string, reason?: string | null): Promise<Task> {
    const id = assertTaskId(taskId);
    const message = reasonText(reason) || 'forced end requested';
    return this.deps.prisma
      .$transaction(async (tx) => {
        // A row locked by a transaction that does not finish (an instance frozen mid-transaction) must not
        // hold this call for long.
        await setLockTimeout(tx, FORCED_END_LOCK_TIMEOUT_MS);
        const task = await this.lockTask(tx, id, taskId);
        if (TERMINAL_STATUSES.includes(task.status)) {
          throw conflict(`Task ${task.id} has already ended (${task.status}); there is nothing to force-end`, { status: task.status });
        }
        return endTask(tx, task, { to: TaskStatus.FORCED_END, message, actor: this.actor });
      })
      .catch((error: unknown) => {
        if (isLockTimeout(error)) {
          throw new ChronographError(
            'TIMEOUT',
            `Task ${id} is locked by a transaction that did not finish within ${FORCED_END_LOCK_TIMEOUT_MS} ms (an instance may be frozen); try again`,
            { taskId: id },
          );
        }
        throw error;
      });
  }

  /** PAUSED: it keeps its place (nextRunAt) but does not run until resumed. */
  pauseTask(taskId: string): Promise<Task> {
    return this.change(taskId, [TaskStatus.SCHEDULED, TaskStatus.RETRYING], (task, tx) =>
      transition(tx, { task, to: TaskStatus.PAUSED, message: 'paused', actor: this.actor }),
    );
  }

  /** Back to SCHEDULED (RETRYING if it was between attempts); a time that passed meanwhile is a misfire. */
  resumeTask(taskId: string): Promise<Task> {
    return this.change(taskId, [TaskStatus.PAUSED], async (task, tx) => {
      const resumed = await transition(tx, {
        task,
        to: task.attempts > 0 ? TaskStatus.RETRYING : TaskStatus.SCHEDULED,
        message: 'resumed',
        actor: this.actor,
      });
      await wake(tx);
      return resumed;
    });
  }

  /** Makes the task due now; a recurring task then continues its schedule. */
  runTaskNow(taskId: string): Promise<Task> {
    return this.change(taskId, [TaskStatus.SCHEDULED, TaskStatus.RETRYING, TaskStatus.PAUSED], async (task, tx) => {
      const due = await transition(tx, {
        task,
        to: task.status === TaskStatus.PAUSED ? TaskStatus.SCHEDULED : task.status,
        type: TaskEventType.RESCHEDULED,
        data: { nextRunAt: this.now() },
        message: 'run now requested',
        actor: this.actor,
      });
      await wake(tx);
      return due;
    });
  }

  /**
   * Moves the next run to `startTime` (for a cron task: its first occurrence at or after it). A wall-clock
   * time is read in the task's zone by the same rules as createTimerTask. Tasks that follow a record's
   * date field or a template binding keep their schedule (CONFLICT, as in updateTask).
   */
  rescheduleTask(taskId: string, startTime: string): Promise<Task> {
    assertText(startTime, 'startTime', MAX_LABEL_LENGTH);
    return this.change(taskId, [TaskStatus.SCHEDULED, TaskStatus.RETRYING, TaskStatus.PAUSED], async (task, tx) => {
      assertOwnSchedule(task, 'startTime');
      const { at, note } = parseTime(startTime, task.timezone, 'startTime');
      const nextRunAt = firstOccurrence(task, at);
      if (!nextRunAt)
        throw new ChronographError('INVALID_START_TIME', `${task.cronExpression} has no occurrence after startTime before the year 3000`, {
          field: 'startTime',
        });
      if (task.endTime && nextRunAt > task.endTime) throw badInput("The new time is after the task's endTime", 'startTime');
      const moved = await transition(tx, {
        task,
        to: task.status,
        type: TaskEventType.RESCHEDULED,
        data: { nextRunAt, ...(task.repeatType === RepeatType.ONCE && { startTime: nextRunAt }) },
        message: `rescheduled to ${nextRunAt.toISOString()}${note ? `; ${note}` : ''}`,
        actor: this.actor,
      });
      await wake(tx);
      return moved;
    });
  }

  /**
   * The next `count` times a schedule would run, without creating anything: the same input and the same
   * checks (and error codes) as createTimerTask, with the same DST rules as the scheduler.
   */
  previewSchedule(input: SchedulePreviewInput, count = 10): ScheduledTime[] {
    assertIntRange(count, 'count', 1, 1000);
    const inferredFrom = input.cronExpression?.trim() ? 'cronExpression' : input.intervalSeconds != null ? 'intervalSeconds' : null;
    const repeatType =
      input.repeatType ??
      (inferredFrom === 'cronExpression' ? RepeatType.CRON : inferredFrom === 'intervalSeconds' ? RepeatType.INTERVAL : RepeatType.ONCE);
    const schedule = resolveSchedule(
      {
        ...input,
        repeatType,
        timezone: input.timezone ?? this.deps.defaultTimezone,
        repeatTypeFrom: input.repeatType == null && inferredFrom ? `repeatType is ${repeatType} (from ${inferredFrom})` : undefined,
      },
      this.now(),
    );
    return upcomingRuns(schedule, { first: schedule.nextRunAt, endTime: schedule.endTime, runsLeft: schedule.maxRuns, count });
  }

  /**
   * The next `count` runs of a task: its nextRunAt, then its schedule's occurrences within endTime and
   * maxRuns. Empty for a task that will not run unless someone acts (PAUSED) or that has ended.
   */
  upcomingRuns(task: UpcomingTask, count = 5): ScheduledTime[] {
    assertIntRange(count, 'count', 1, 1000);
    if (!UPCOMING_STATUSES.includes(task.status) || !task.nextRunAt) return [];
    const now = this.now();
    const done = task.runCount + (task.status === TaskStatus.RUNNING ? 1 : 0);
    const runsLeft = task.maxRuns == null ? null : Math.max(0, task.maxRuns - done);
    if (task.status === TaskStatus.RUNNING) {
      // The occurrence in progress is not upcoming; the next one follows it as the scheduler will pick it.
      const first = nextOccurrence(
        task,
        task.misfirePolicy === MisfirePolicy.RUN_ALL || task.nextRunAt > now ? task.nextRunAt : now,
        task.nextRunAt,
      );
      return first ? upcomingRuns(task, { first, endTime: task.endTime, runsLeft, count }) : [];
    }
    // An overdue run starts at once; after it, RUN_ONCE and SKIP continue from now, RUN_ALL catches up.
    const continueAfter = task.misfirePolicy === MisfirePolicy.RUN_ALL ? undefined : now;
    return upcomingRuns(task, { first: task.nextRunAt, continueAfter, endTime: task.endTime, runsLeft, count });
  }

  /** CANCELLED: it will not run again; kept in history. A running task is stopped with forcedEnd. */
  cancelTask(taskId: string, reason?: string | null): Promise<Task> {
    const message = reasonText(reason) || 'cancelled';
    return this.change(taskId, [TaskStatus.SCHEDULED, TaskStatus.RETRYING, TaskStatus.PAUSED], (task, tx) =>
      transition(tx, {
        task,
        to: TaskStatus.CANCELLED,
        data: { nextRunAt: null },
        message,
        actor: this.actor,
      }),
    );
  }

  /**
   * Edits a live task's settings with createTimerTask's checks, recording an UPDATED event that names the
   * changed fields. A waiting or paused task whose schedule changed gets its next run recomputed (from
   * `startTime` when given, else from now, never before the task's own startTime); a running task keeps
   * its current attempt, and its next run comes from the edited schedule (the run completes against the
   * task's revision, and its scheduler reads the edit when the revision moved on). Tasks that follow a
   * record's date field or a template binding keep their schedule (CONFLICT).
   */
  updateTask(taskId: string, patch: TaskPatch): Promise<Task> {
    const fields = PATCH_FIELDS.filter((f) => patch[f] !== undefined);
    for (const f of fields) {
      if (patch[f] === null && !CLEARABLE.includes(f)) throw badInput(`${f} cannot be cleared; omit it to keep its value`, f);
    }
    if (fields.length === 0) throw badInput('The patch changes nothing: give at least one field', 'patch');
    return this.change(taskId, [TaskStatus.SCHEDULED, TaskStatus.RETRYING, TaskStatus.PAUSED, TaskStatus.RUNNING], async (task, tx) => {
      const scheduleChanged = fields.some((f) => SCHEDULE_FIELDS.includes(f));
      if (scheduleChanged) assertOwnSchedule(task, fields.find((f) => SCHEDULE_FIELDS.includes(f))!);
      const given = (f: keyof TaskPatch) => patch[f] !== undefined;
      const now = this.now();
      const iso = (d: Date | null) => d?.toISOString() ?? null;
      // The task as it stands, in the shape of a template: buildTask takes what the patch leaves out from here.
      const current = {
        id: task.templateId,
        fullName: task.fullName,
        enabled: true,
        funcName: task.funcName,
        taskType: task.taskType,
        argDict: {},
        repeatType: task.repeatType,
        cronExpression: task.cronExpression,
        intervalSeconds: task.intervalSeconds,
        timezone: task.timezone,
        timeoutMs: given('timeoutMs') ? null : task.timeoutMs,
        memoryLimitMb: given('memoryLimitMb') ? null : task.memoryLimitMb,
        priority: task.priority,
        queue: task.queue,
        maxAttempts: task.maxAttempts,
        misfirePolicy: task.misfirePolicy,
        misfireToleranceMs: task.misfireToleranceMs,
        overlapPolicy: task.overlapPolicy,
        retryBackoffMs: task.retryBackoffMs,
      } as unknown as TaskTemplate;
      const repeatType = patch.repeatType ?? task.repeatType;
      const startTime = given('startTime')
        ? patch.startTime
        : repeatType === RepeatType.ONCE
          ? iso(task.nextRunAt ?? task.startTime)
          : task.startTime && task.startTime > now
            ? iso(task.startTime)
            : iso(now);
      const input: TimerTaskInput = {
        fullName: task.fullName,
        // repeatType only when the patch gives it: buildTask takes the task's from `current` (and says so).
        ...patch,
        argDict: given('argDict') ? patch.argDict : task.argDict,
        startTime,
        endTime: given('endTime') ? patch.endTime : iso(task.endTime),
        maxRuns: given('maxRuns') ? patch.maxRuns : task.maxRuns,
        uniqueKey: null,
      };
      const { row, notes } = this.buildTask(input, current, { defaultsFrom: 'task' });
      if (row.maxRuns != null && row.maxRuns <= task.runCount) {
        throw badInput(`maxRuns must be more than the ${task.runCount} run(s) the task has done`, 'maxRuns');
      }
      const quota = await QuotaGuard.of(tx, this.tenantId);
      if (given('argDict')) quota.checkArgDict(row.argDict, 'argDict');
      const data: Prisma.TaskUncheckedUpdateManyInput = {
        funcName: row.funcName,
        taskType: row.taskType,
        argDict: row.argDict as Prisma.InputJsonObject,
        repeatType: row.repeatType,
        cronExpression: row.cronExpression ?? null,
        intervalSeconds: row.intervalSeconds ?? null,
        timezone: row.timezone,
        endTime: row.endTime ?? null,
        maxRuns: row.maxRuns ?? null,
        priority: row.priority,
        queue: row.queue,
        maxAttempts: row.maxAttempts,
        timeoutMs: row.timeoutMs ?? null,
        memoryLimitMb: row.memoryLimitMb ?? null,
        misfirePolicy: row.misfirePolicy,
        misfireToleranceMs: row.misfireToleranceMs,
        overlapPolicy: row.overlapPolicy,
        retryBackoffMs: row.retryBackoffMs,
        revision: { increment: 1 },
      };
      // A running task's current occurrence stays; the next one comes from the edited schedule.
      if (scheduleChanged && task.status !== TaskStatus.RUNNING) {
        // A new first occurrence: a retry pending on the old schedule no longer has one to continue from.
        Object.assign(data, { nextRunAt: row.nextRunAt, occurrenceAt: null, ...(given('startTime') && { startTime: row.startTime }) });
      }
      const updated = await transition(tx, {
        task,
        to: task.status,
        type: TaskEventType.UPDATED,
        data,
        message: `updated: ${fields.join(', ')}${task.status === TaskStatus.RUNNING ? ' (from the next occurrence)' : ''}${notes.length ? `; ${notes.join('; ')}` : ''}`,
        actor: this.actor,
      });
      if (scheduleChanged) await wake(tx);
      return updated;
    });
  }

  /**
   * Removes a finished task (SUCCEEDED, FAILED, FORCED_END, CANCELLED) with its runs, logs and events.
   * A live one must be cancelled (or force-ended) first: CONFLICT.
   */
  async deleteTask(taskId: string): Promise<string> {
    const id = assertTaskId(taskId);
    return this.deps.prisma.$transaction(async (tx) => {
      const task = await this.lockTask(tx, id, taskId);
      if (!TERMINAL_STATUSES.includes(task.status)) {
        throw conflict(`Task ${task.id} is ${task.status}; cancel it (or force-end it) before deleting it`, { status: task.status });
      }
      // Runs, their logs and the events go with it (the trigger task_deleted).
      await tx.task.delete({ where: { id } });
      return id;
    });
  }

  /** Locks the task row, checks its status is one of `from`, and applies `fn` in the same transaction. */
  private change(taskId: string, from: TaskStatus[], fn: (task: Task, tx: Prisma.TransactionClient) => Promise<Task>): Promise<Task> {
    const id = assertTaskId(taskId);
    return this.deps.prisma.$transaction(async (tx) => {
      const task = await this.lockTask(tx, id, taskId);
      if (!from.includes(task.status)) {
        const hint = task.status === TaskStatus.RUNNING ? '; it is running (forcedEnd stops a running task)' : '';
        throw conflict(`Task ${task.id} is ${task.status}${hint}; this needs ${from.join(' or ')}`, { status: task.status });
      }
      return fn(task, tx);
    });
  }

  private async lockTask(tx: Prisma.TransactionClient, id: string, asGiven: string): Promise<Task> {
    // FOR UPDATE of its state (src/tasks/taskTables.ts): the scheduler's claim skips a row we hold, and we
    // wait for a claim in progress.
    const locked = await tx.$queryRaw<
      { id: string }[]
    >`SELECT task_id AS id FROM task_state WHERE task_id = ${id}::uuid AND tenant_id = ${this.tenantId} FOR UPDATE`;
    if (locked.length === 0) throw notFound('Task', asGiven);
    return tx.task.findUniqueOrThrow({ where: { id } });
  }

  /**
   * The seed's afterSave hook, `rowObj = { model, postData, prevData }`: for every date-field template
   * of the model the record has exactly one live task, rescheduled (same task) when its date changes,
   * cancelled when the date is cleared or the record stops matching the template's condition.
   */
  saveDateFieldTask(rowObj: unknown): Promise<DateFieldResult> {
    return this.deps.dateFields.forTenant(this.tenantId, this.actor).saveDateFieldTask(rowObj);
  }

  /** The seed's afterDelete hook, `rowObj = { model, prevData }`: the record's live tasks are CANCELLED. */
  deleteDateFieldTask(rowObj: unknown): Promise<DateFieldResult> {
    return this.deps.dateFields.forTenant(this.tenantId, this.actor).deleteDateFieldTask(rowObj);
  }

  /**
   * Resolves defaults from the template and validates everything; throws before anything is written.
   * `defaultsFrom: 'task'`: `template` is the task updateTask edits, as errors say.
   */
  private buildTask(
    input: TimerTaskInput,
    template: TemplateDefaults,
    {
      cache = { now: this.now(), schedules: new Map() },
      id = '',
      defaultsFrom = 'template',
    }: { cache?: BuildCache; id?: string; defaultsFrom?: 'template' | 'task' } = {},
  ): { row: NewTaskRow; notes: readonly string[] } {
    if (!template.enabled) {
      throw new ChronographError('CONFLICT', `Task template ${template.fullName} is disabled`, { field: 'fullName' });
    }
    if (input.funcName != null) assertText(input.funcName, 'funcName', MAX_NAME_LENGTH);
    if (input.taskType != null) assertText(input.taskType, 'taskType', MAX_NAME_LENGTH);
    const funcName = input.funcName ?? template.funcName;
    if (!funcName) throw badInput(`funcName is required: template ${template.fullName} names no default handler`, 'funcName');
    if (!this.deps.handlers.has(funcName)) {
      throw new ChronographError('UNKNOWN_FUNC', `No handler is registered as ${JSON.stringify(funcName)}; see the handlers query`, {
        field: 'funcName',
      });
    }
    const taskType = input.taskType ?? template.taskType;
    if (!this.deps.taskTypes.has(taskType)) {
      throw new ChronographError(
        'UNKNOWN_TASK_TYPE',
        `Task type ${JSON.stringify(taskType)} is not registered (known: ${this.deps.taskTypes.names().join(', ')})`,
        {
          field: 'taskType',
        },
      );
    }
    const args = assertArgDict(
      { ...(template.argDict as Record<string, unknown>), ...assertArgDict(input.argDict ?? {}) },
      'argDict',
      this.deps.maxJsonBytes,
    );
    this.deps.handlers.checkArgs(funcName, args);
    const repeatType = input.repeatType ?? (template.repeatType === RepeatType.DATE_FIELD ? RepeatType.ONCE : template.repeatType);
    // The input's repeatType overrides the template's. A cron expression or interval the input gives for
    // another repeat type is refused (resolveSchedule); the template's own are used only by the repeat
    // type they belong to.
    const scheduleInput = {
      repeatType,
      cronExpression: input.cronExpression ?? (repeatType === RepeatType.CRON ? template.cronExpression : null),
      intervalSeconds: input.intervalSeconds ?? (repeatType === RepeatType.INTERVAL ? template.intervalSeconds : null),
      timezone: input.timezone ?? template.timezone,
      startTime: input.startTime,
      endTime: input.endTime,
      maxRuns: input.maxRuns,
      repeatTypeFrom:
        input.repeatType != null
          ? undefined
          : defaultsFrom === 'task'
            ? `the task's repeatType is ${repeatType}`
            : `template ${template.fullName} gives repeatType ${template.repeatType}${repeatType === template.repeatType ? '' : ` (a ${repeatType} task here)`}`,
    };
    // A batch mostly repeats a few schedules: each distinct one is parsed and checked once (a bad one
    // throws, and is not kept).
    const key = JSON.stringify(Object.values(scheduleInput));
    let schedule = cache.schedules.get(key);
    if (!schedule) {
      schedule = resolveSchedule(scheduleInput, cache.now);
      cache.schedules.set(key, schedule);
    }

    const timeoutMs = input.timeoutMs ?? template.timeoutMs;
    const memoryLimitMb = input.memoryLimitMb ?? template.memoryLimitMb;
    if (memoryLimitMb != null) {
      assertIntRange(memoryLimitMb, 'memoryLimitMb', 16, 1_048_576);
      assertThreadCapable(this.deps.handlers, funcName, 'memoryLimitMb');
    }
    if (this.deps.taskTypes.get(taskType)?.options.isolation === 'thread') assertThreadCapable(this.deps.handlers, funcName, 'taskType');
    const row: NewTaskRow = {
      id,
      tenantId: this.tenantId,
      templateId: template.id,
      fullName: template.fullName,
      taskType,
      funcName,
      argDict: args,
      repeatType,
      cronExpression: schedule.cronExpression,
      intervalSeconds: schedule.intervalSeconds,
      timezone: schedule.timezone,
      startTime: schedule.startTime,
      endTime: schedule.endTime,
      maxRuns: schedule.maxRuns,
      nextRunAt: schedule.nextRunAt,
      status: TaskStatus.SCHEDULED,
      priority: assertIntRange(input.priority ?? template.priority, 'priority', -1000, 1000),
      queue: (input.queue != null ? assertQueue(input.queue) : null) ?? template.queue,
      maxAttempts: assertIntRange(input.maxAttempts ?? template.maxAttempts, 'maxAttempts', 1, 1000),
      timeoutMs: timeoutMs != null ? assertIntRange(timeoutMs, 'timeoutMs', 1, 2_147_483_647) : null,
      memoryLimitMb: memoryLimitMb ?? null,
      uniqueKey: input.uniqueKey != null ? assertUniqueKey(input.uniqueKey) : null,
      misfirePolicy: input.misfirePolicy ?? template.misfirePolicy,
      misfireToleranceMs: assertIntRange(input.misfireToleranceMs ?? template.misfireToleranceMs, 'misfireToleranceMs', 0, 2_147_483_647),
      overlapPolicy: input.overlapPolicy ?? template.overlapPolicy,
      retryBackoffMs: assertIntRange(input.retryBackoffMs ?? template.retryBackoffMs, 'retryBackoffMs', 0, 3_600_000),
      source: TaskSource.API,
      sourceModel: null,
      sourceRowId: null,
      sourceField: null,
      parentId: null,
      bindingId: null,
    };
    return { row, notes: schedule.notes };
  }
}

/**
 * Ends a task (locked by the caller) for good, at once, whatever it is doing: a RUNNING task's run is
 * closed CANCELLED with `message` and its lease taken away in this transaction, and its instance is told
 * through NOTIFY to abort the handler — it does not have to answer (it may be dead or frozen); anything
 * it does later is fenced off by the lease. forcedEnd and the removal of a template binding use it.
 */
export async function endTask(
  tx: Prisma.TransactionClient,
  task: Task,
  end: { to: typeof TaskStatus.FORCED_END | typeof TaskStatus.CANCELLED; message: string; actor: string | null },
): Promise<Task> {
  let runEnd: RunEnd | null = null;
  if (task.status === TaskStatus.RUNNING && task.lockedRunId) {
    // The run's duration by the database clock, from the event that started it.
    const [started] = await tx.$queryRawUnsafe<{ ms: number }[]>(
      `SELECT ${runElapsedMsSql('created_at')} AS ms FROM task_event WHERE run_id = $1::uuid AND attempt IS NOT NULL`,
      task.lockedRunId,
    );
    runEnd = {
      status: 'CANCELLED',
      durationMs: started?.ms ?? 0,
      error: `${end.to === TaskStatus.FORCED_END ? 'forced end' : 'cancelled'}: ${end.message}`,
    };
    await tx.$executeRaw`SELECT pg_notify(${CANCEL_CHANNEL}, ${task.id})`;
  }
  return transition(tx, {
    task,
    to: end.to,
    data: { nextRunAt: null, lockedBy: null, lockedUntil: null, lockedRunId: null },
    runId: task.status === TaskStatus.RUNNING ? task.lockedRunId : null,
    runEnd,
    message: end.message,
    actor: end.actor,
  });
}

/** The templates rows were built from, with the row versions read, for insertNewTasks to check. */
function templateVersions(templates: ReadonlyMap<string, Versioned<TemplateDefaults>>): ReadVersions['templates'] {
  return [...templates.values()].map((t) => ({ id: t.value.id, version: t.version }));
}

/**
 * Inputs per statement of a large createTimerTasks batch (see insertInChunks). Smaller parts let the
 * database start sooner; each statement has a fixed cost of its own.
 */
const CHUNK_ROWS = 2_000;

/** A run in a worker thread loads its handler from a module; a handler registered as a function cannot go there. */
export function assertThreadCapable(handlers: HandlerRegistry, funcName: string, field: string): void {
  if (!handlers.canRunInThread(funcName)) {
    throw badInput(
      `${field} asks for a worker thread, but handler ${funcName} is registered as a function and runs in-process; register it by module to run it in a thread`,
      field,
    );
  }
}

const FORCED_END_LOCK_TIMEOUT_MS = 800;

/** The columns a claim sets on a task (see the scheduler's claim), for a task its create claimed. */
function claimedState(run: ClaimedTask, claim: StartClaim): Pick<Task, 'status' | 'attempts' | 'lockedBy' | 'lockedRunId' | 'lockedUntil'> {
  return {
    status: TaskStatus.RUNNING,
    attempts: run.attempts,
    lockedBy: claim.workerId,
    lockedRunId: run.runId,
    lockedUntil: new Date(run.claimedAt.getTime() + claim.leaseMs),
  };
}

/** Thrown inside createTimerTasks' transaction when its insert found a template changed since it was read. */
const STALE = new Error('a template changed since it was read');

/** Reads afresh after a changed template or quota before createTimerTasks gives up with CONFLICT. */
const MAX_CREATE_ATTEMPTS = 5;

/** PostgreSQL only: PGlite has one connection, so nothing else can hold a lock there. */
async function setLockTimeout(tx: Prisma.TransactionClient, ms: number): Promise<void> {
  await tx.$executeRawUnsafe(`SET LOCAL lock_timeout = ${Math.floor(ms)}`);
}

function assertUniqueKey(key: string): string {
  const trimmed = assertText(key, 'uniqueKey', MAX_LABEL_LENGTH).trim();
  if (!trimmed) throw badInput(`uniqueKey must be 1-${MAX_LABEL_LENGTH} characters`, 'uniqueKey');
  return trimmed;
}

/** A reason given to cancelTask or forcedEnd (kept as the event's message), trimmed; '' when none. */
function reasonText(reason: string | null | undefined): string {
  return reason == null ? '' : assertText(reason, 'reason', MAX_TEXT_LENGTH).trim();
}

/** A task id argument; one too long to be a UUID is refused by its length, without repeating it. */
function assertTaskId(value: string, field = 'taskId'): string {
  if (value.length > 36) throw badInput(`${field} is ${value.length} characters long; a task id is a UUID of 36`, field);
  return assertId(value, field);
}

/**
 * A task created by a date field or a template binding follows its source: its schedule is the source's
 * to change (a record write, a template change), not updateTask's or rescheduleTask's (CONFLICT naming
 * `field`, the schedule field the caller gave).
 */
function assertOwnSchedule(task: Pick<Task, 'id' | 'source'>, field: string): void {
  if (task.source === TaskSource.API) return;
  throw conflict(
    `Task ${task.id} follows its ${task.source === TaskSource.DATE_FIELD ? "record's date field" : 'template binding'}; its schedule cannot be edited`,
    { field },
  );
}

/** Tells every scheduler that something may be due earlier than it planned; delivered on commit. */
export async function wake(tx: Prisma.TransactionClient): Promise<void> {
  await tx.$executeRaw`SELECT pg_notify(${WAKE_CHANNEL}, '')`;
}
