import { badInput } from '../../errors.js';
import type { Prisma } from '../../generated/prisma/client.js';
import { RunStatus } from '../../generated/prisma/enums.js';
import { assertId } from '../../tasks/validate.js';
import type { Context } from '../builder.js';
import { builder, CONNECTION_PAGE } from '../builder.js';
import { keysetPage } from '../PagingPlugin.js';
import { RunStatusEnum, TaskEventTypeEnum, TaskStatusEnum } from './enums.js';

/**
 * History you can query: runs, events and run logs of the caller's tenant as Relay connections (oldest
 * first; `last` pages from the newest), each with `totalCount`, and run statistics grouped by handler,
 * template, queue or day. Every list is served by an index: task_event (tenant_id, id) and (task_id, id)
 * (runs are read from the events that started them: the view task_run), task_run_log (tenant_id, id) and
 * (run_id, id). A filter by time reads the list's index in id order, which follows creation.
 */

const TaskRunFilter = builder.inputType('TaskRunFilter', {
  fields: (t) => ({
    taskId: t.id(),
    status: t.field({ type: [RunStatusEnum], description: 'Any of these run statuses.' }),
    from: t.field({ type: 'DateTime', description: 'Started at or after.' }),
    to: t.field({ type: 'DateTime', description: 'Started before.' }),
    workerId: t.string(),
  }),
});

const TaskEventFilter = builder.inputType('EventHistoryFilter', {
  fields: (t) => ({
    taskId: t.id(),
    statuses: t.field({ type: [TaskStatusEnum], description: 'Events that moved a task into any of these statuses.' }),
    types: t.field({ type: [TaskEventTypeEnum] }),
    from: t.field({ type: 'DateTime', description: 'Recorded at or after.' }),
    to: t.field({ type: 'DateTime', description: 'Recorded before.' }),
  }),
});

const RunLogFilter = builder.inputType('RunLogFilter', {
  fields: (t) => ({
    taskId: t.id(),
    runId: t.id(),
    levels: t.stringList({ description: 'Any of these levels (debug, info, warn, error).' }),
    search: t.string({ description: 'Lines whose message contains this text (case-insensitive).' }),
    from: t.field({ type: 'DateTime', description: 'Logged at or after.' }),
    to: t.field({ type: 'DateTime', description: 'Logged before.' }),
  }),
});

type Range = { from?: Date | null; to?: Date | null };

function range({ from, to }: Range): { gte?: Date; lt?: Date } | undefined {
  if (from && to && from >= to) throw badInput('from must be before to', 'to');
  if (!from && !to) return undefined;
  return { ...(from && { gte: from }), ...(to && { lt: to }) };
}

/** A task id of the caller's tenant (NOT_FOUND otherwise, as for task(id:)). */
async function ownTask(ctx: Context, taskId: string | number | null | undefined, field = 'taskId'): Promise<string | undefined> {
  if (taskId == null) return undefined;
  const id = assertId(String(taskId), field);
  await ctx.taskSvc.getTask(id, { select: { id: true } });
  return id;
}

async function runWhere(
  ctx: Context,
  filter: { taskId?: string | number | null; status?: RunStatus[] | null; workerId?: string | null } & Range,
): Promise<Prisma.TaskRunWhereInput> {
  const startedAt = range(filter);
  return {
    tenantId: ctx.taskSvc.tenantId,
    ...(filter.taskId != null && { taskId: await ownTask(ctx, filter.taskId) }),
    ...(filter.status?.length && runStatusWhere(ctx.taskSvc.tenantId, filter.status, startedAt?.gte)),
    ...(filter.workerId != null && { workerId: filter.workerId }),
    ...(startedAt && { startedAt }),
  };
}

/**
 * Runs in any of `statuses`. A run's status is its ending event's (the view task_run): filtered on the
 * view, each run of the range would be read with its end to find the few that failed. So a finished
 * status is looked for among the tenant's ending events (at or after `from`: a run ends after it starts),
 * and the runs found through them, by run id; a RUNNING one is a run of a RUNNING task that has no ending
 * event.
 */
function runStatusWhere(tenantId: string, statuses: RunStatus[], from: Date | undefined): Prisma.TaskRunWhereInput {
  const ended = statuses.filter((status) => status !== 'RUNNING');
  const finished: Prisma.TaskRunWhereInput = {
    events: { some: { tenantId, runStatus: { in: ended }, ...(from && { createdAt: { gte: from } }) } },
  };
  const running: Prisma.TaskRunWhereInput = { task: { status: 'RUNNING' }, events: { none: { runStatus: { not: null } } } };
  if (ended.length === 0) return running;
  return ended.length === statuses.length ? finished : { OR: [finished, running] };
}

async function eventWhere(
  ctx: Context,
  filter: {
    taskId?: string | number | null;
    statuses?: Prisma.TaskEventWhereInput['toStatus'][] | null;
    types?: Prisma.TaskEventWhereInput['type'][] | null;
  } & Range,
): Promise<Prisma.TaskEventWhereInput> {
  const createdAt = range(filter);
  return {
    tenantId: ctx.taskSvc.tenantId,
    ...(filter.taskId != null && { taskId: await ownTask(ctx, filter.taskId) }),
    ...(filter.statuses?.length && { toStatus: { in: filter.statuses as never } }),
    ...(filter.types?.length && { type: { in: filter.types as never } }),
    ...(createdAt && { createdAt }),
  };
}

async function logWhere(
  ctx: Context,
  filter: { taskId?: string | number | null; runId?: string | number | null; levels?: string[] | null; search?: string | null } & Range,
): Promise<Prisma.TaskRunLogWhereInput> {
  const createdAt = range(filter);
  if (filter.search != null && filter.search.length > 200) throw badInput('search is at most 200 characters', 'search');
  return {
    tenantId: ctx.taskSvc.tenantId,
    ...(filter.taskId != null && { taskId: await ownTask(ctx, filter.taskId) }),
    ...(filter.runId != null && { runId: assertId(String(filter.runId), 'runId') }),
    ...(filter.levels?.length && { level: { in: filter.levels } }),
    ...(filter.search && { message: { contains: filter.search, mode: 'insensitive' } }),
    ...(createdAt && { createdAt }),
  };
}

const RunStatusCount = builder.objectRef<{ status: RunStatus; count: number }>('RunStatusCount').implement({
  fields: (t) => ({
    status: t.field({ type: RunStatusEnum, resolve: (c) => c.status }),
    count: t.exposeInt('count'),
  }),
});

interface RunStatsRow {
  key: string;
  total: number;
  counts: { status: RunStatus; count: number }[];
  p50DurationMs: number | null;
  p95DurationMs: number | null;
  failureRate: number | null;
}

const RunStatsRowRef = builder.objectRef<RunStatsRow>('RunStatsRow').implement({
  description: 'Runs of one handler, template, queue or day.',
  fields: (t) => ({
    key: t.exposeString('key', { description: 'The handler, template fullName, queue, or day (YYYY-MM-DD, UTC).' }),
    total: t.exposeInt('total'),
    counts: t.field({ type: [RunStatusCount], description: 'Runs by status (statuses with none left out).', resolve: (r) => r.counts }),
    p50DurationMs: t.exposeFloat('p50DurationMs', { nullable: true, description: 'Median duration of the finished runs.' }),
    p95DurationMs: t.exposeFloat('p95DurationMs', { nullable: true }),
    failureRate: t.exposeFloat('failureRate', {
      nullable: true,
      description: 'Finished runs that did not succeed, as a share of the finished runs (0-1).',
    }),
  }),
});

const RunStatsGroupBy = builder.enumType('RunStatsGroupBy', { values: ['HANDLER', 'TEMPLATE', 'QUEUE', 'DAY'] as const });

/**
 * The grouping runStats may use: fixed text, never built from input. A day is grouped as a date and
 * written out once per group (narrower rows to sort for the percentiles than text).
 */
const GROUP_KEY: Record<(typeof RunStatsGroupBy)['$inferType'], { key: string; shown: string }> = {
  HANDLER: { key: 't.func_name', shown: 'key' },
  TEMPLATE: { key: 't.full_name', shown: 'key' },
  QUEUE: { key: 't.queue', shown: 'key' },
  DAY: { key: `(r.started_at AT TIME ZONE 'UTC')::date`, shown: `to_char(key::timestamp, 'YYYY-MM-DD')` },
};

/** Run statuses that count as failures in runStats (CANCELLED is someone's decision, not a failure). */
const FAILED_RUNS: ReadonlySet<RunStatus> = new Set(['FAILED', 'TIMED_OUT', 'MEMORY_LIMIT', 'CRASHED', 'ABANDONED']);

/** Every run status, in the order runStats lists its counts (by name); RUNNING is a run without an end. */
const RUN_STATUSES = (Object.values(RunStatus) as RunStatus[]).sort();

async function runStats(ctx: Context, groupBy: keyof typeof GROUP_KEY, filter: Range): Promise<RunStatsRow[]> {
  const startedAt = range(filter);
  const { key, shown } = GROUP_KEY[groupBy];
  const rows = await ctx.prisma.$queryRawUnsafe<({ key: string; p50: number | null; p95: number | null } & Record<string, unknown>)[]>(
    // Runs are kept in their events (the view task_run): read here as two sets, the events that started
    // runs in the range and the events that ended runs (at or after the range's start, as a run ends after
    // it starts), joined by run id in one hash join instead of a look-up of each run's end. Both are found
    // by time through task_event's BRIN index on created_at. A run has at most one ending event: only the
    // statement that takes its task out of RUNNING under that run writes one (the completion and recovery
    // on the run's lease, a forced end on the locked task), so the join needs no DISTINCT ON. The counts by
    // status come from the same pass over the runs as the durations. With a DISTINCT ON (a sort of every
    // ending event) and the counts in a second pass, runStats by day over 1,000,000 runs took 2.7 s; as
    // here, 0.85 s (`npm run bench -- history`).
    `WITH started AS (
       SELECT run_id, task_id, created_at AS started_at FROM task_event
        WHERE tenant_id = $1 AND attempt IS NOT NULL
          AND ($2::timestamptz IS NULL OR created_at >= $2) AND ($3::timestamptz IS NULL OR created_at < $3)
     ),
     ended AS (
       SELECT run_id, run_status, duration_ms FROM task_event
        WHERE tenant_id = $1 AND run_status IS NOT NULL AND ($2::timestamptz IS NULL OR created_at >= $2)
     )
     SELECT ${shown} AS key,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE run_status IS NOT NULL) AS p50,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE run_status IS NOT NULL) AS p95,
            ${RUN_STATUSES.map(
              (status) =>
                `count(*) FILTER (WHERE ${status === 'RUNNING' ? 'run_status IS NULL' : `run_status = '${status}'`}) AS "${status}"`,
            ).join(',\n            ')}
       FROM (SELECT ${key} AS key, e.run_status, e.duration_ms
               FROM started r LEFT JOIN ended e USING (run_id)${groupBy === 'DAY' ? '' : ' JOIN task t ON t.id = r.task_id'}) runs
      GROUP BY runs.key
      ORDER BY runs.key`,
    ctx.taskSvc.tenantId,
    startedAt?.gte ?? null,
    startedAt?.lt ?? null,
  );
  return rows.map((r) => {
    const counts = RUN_STATUSES.map((status) => ({ status, count: Number(r[status]) })).filter((c) => c.count > 0);
    const total = counts.reduce((sum, c) => sum + c.count, 0);
    const ended = counts.reduce((sum, c) => (c.status === 'RUNNING' || c.status === 'CANCELLED' ? sum : sum + c.count), 0);
    const failed = counts.reduce((sum, c) => (FAILED_RUNS.has(c.status) ? sum + c.count : sum), 0);
    return {
      key: r.key,
      total,
      counts,
      p50DurationMs: r.p50 == null ? null : Number(r.p50),
      p95DurationMs: r.p95 == null ? null : Number(r.p95),
      failureRate: ended === 0 ? null : failed / ended,
    };
  });
}

builder.queryFields((t) => ({
  taskRuns: t.prismaConnection(
    {
      authScopes: { viewer: true },
      type: 'TaskRun',
      cursor: 'eventId',
      description: "Attempts of the caller's tenant, oldest first (`last` for the newest), filtered.",
      args: { filter: t.arg({ type: TaskRunFilter }) },
      extensions: { paging: { ...CONNECTION_PAGE, cursor: 'idConnection' } },
      totalCount: async (_root, args, ctx) => ctx.prisma.taskRun.count({ where: await runWhere(ctx, args.filter ?? {}) }),
      resolve: async (query, _root, args, ctx) => {
        // In start order: the order of the events that started the runs (task_event's (tenant_id, id)).
        const page = keysetPage(query, [['eventId', 'asc']]);
        return ctx.prisma.taskRun.findMany({
          ...page.query,
          where: { AND: [await runWhere(ctx, args.filter ?? {}), page.where] },
          orderBy: { eventId: 'asc' },
        });
      },
    },
    {},
  ),
  taskEvents: t.prismaConnection(
    {
      authScopes: { viewer: true },
      type: 'TaskEvent',
      cursor: 'id',
      description:
        "Status changes of the caller's tenant, oldest first (`last` for the newest): the history and audit log. An edge's node.cursor is the event id that taskStatusChanged(after:) resumes from.",
      args: { filter: t.arg({ type: TaskEventFilter }) },
      extensions: { paging: { ...CONNECTION_PAGE, cursor: 'idConnection' } },
      totalCount: async (_root, args, ctx) => ctx.prisma.taskEvent.count({ where: await eventWhere(ctx, args.filter ?? {}) }),
      resolve: async (query, _root, args, ctx) => {
        const page = keysetPage(query, [['id', 'asc']]);
        return ctx.prisma.taskEvent.findMany({
          ...page.query,
          where: { AND: [await eventWhere(ctx, args.filter ?? {}), page.where] },
          orderBy: { id: 'asc' },
        });
      },
    },
    {},
  ),
  runLogs: t.prismaConnection(
    {
      authScopes: { viewer: true },
      type: 'TaskRunLog',
      cursor: 'id',
      description: "Lines handlers logged through ctx.logger, across the caller's tenant, oldest first (`last` for the newest).",
      args: { filter: t.arg({ type: RunLogFilter }) },
      extensions: { paging: { ...CONNECTION_PAGE, cursor: 'idConnection' } },
      totalCount: async (_root, args, ctx) => ctx.prisma.taskRunLog.count({ where: await logWhere(ctx, args.filter ?? {}) }),
      resolve: async (query, _root, args, ctx) => {
        const page = keysetPage(query, [['id', 'asc']]);
        return ctx.prisma.taskRunLog.findMany({
          ...page.query,
          where: { AND: [await logWhere(ctx, args.filter ?? {}), page.where] },
          orderBy: { id: 'asc' },
        });
      },
    },
    {},
  ),
  runStats: t.field({
    authScopes: { viewer: true },
    type: [RunStatsRowRef],
    description:
      "Runs of the caller's tenant grouped by handler, template, queue or day (by start time), with counts by status, p50/p95 duration and failure rate.",
    args: { groupBy: t.arg({ type: RunStatsGroupBy, required: true }), from: t.arg({ type: 'DateTime' }), to: t.arg({ type: 'DateTime' }) },
    resolve: (_root, args, ctx) => runStats(ctx, args.groupBy, { from: args.from, to: args.to }),
  }),
}));
