import { Role } from '../../auth/Identity.js';
import { TaskStatus } from '../../generated/prisma/client.js';
import { builder, CONNECTION_PAGE, LIST_PAGE } from '../builder.js';
import { keysetPage, pageSize } from '../PagingPlugin.js';
import {
  MisfirePolicyEnum,
  OverlapPolicyEnum,
  RepeatTypeEnum,
  RunStatusEnum,
  TaskEventTypeEnum,
  TaskSourceEnum,
  TaskStatusEnum,
} from './enums.js';
import { TaskTemplateRef } from './template.js';

/** `first` of a list inside an object; its cost and its rows are bounded by LIST_PAGE. */
const FIRST = {
  description: `At most this many, oldest first (at most ${LIST_PAGE.maxSize}).`,
  defaultValue: LIST_PAGE.defaultSize,
} as const;

// Select mode: a query reads the columns and relations its selection needs, nothing more.
builder.prismaObject('Task', {
  description: 'One schedulable unit created from a template.',
  select: { id: true },
  fields: (t) => ({
    id: t.exposeID('id'),
    tenantId: t.exposeString('tenantId'),
    fullName: t.exposeString('fullName', { description: 'The template this task was created from.' }),
    template: t.field({
      type: TaskTemplateRef,
      nullable: true,
      description:
        "The template it was created from, when it belongs to the caller's tenant; a platform template behind a bound task (or one it was bound from, or a child of one) is seen only by ADMINs (null otherwise).",
      authScopes: { viewer: true },
      // TaskTemplate always selects its tenantId: whether it may be shown is decided on it.
      select: (_args, _ctx, nestedSelection) => ({ template: nestedSelection() }),
      // As t.relation does: a task loaded without its template (a mutation's answer) is loaded again
      // with this field's selection, rather than answered null.
      extensions: { pothosPrismaLoaded: (task: { template?: unknown }) => task.template !== undefined },
      resolve: (task, _args, ctx) => {
        const template = (task as { template?: { tenantId: string } | null }).template;
        if (!template) return null;
        return ctx.identity.role === Role.ADMIN || template.tenantId === ctx.tenantId ? (template as never) : null;
      },
    }),
    taskType: t.exposeString('taskType'),
    funcName: t.exposeString('funcName'),
    argDict: t.expose('argDict', { type: 'JSON' }),
    status: t.expose('status', { type: TaskStatusEnum }),
    repeatType: t.expose('repeatType', { type: RepeatTypeEnum }),
    cronExpression: t.exposeString('cronExpression', { nullable: true }),
    intervalSeconds: t.exposeInt('intervalSeconds', { nullable: true }),
    timezone: t.exposeString('timezone'),
    startTime: t.expose('startTime', { type: 'DateTime' }),
    endTime: t.expose('endTime', { type: 'DateTime', nullable: true }),
    maxRuns: t.exposeInt('maxRuns', { nullable: true }),
    runCount: t.exposeInt('runCount'),
    nextRunAt: t.expose('nextRunAt', { type: 'DateTime', nullable: true, description: 'Null once the task can no longer run.' }),
    priority: t.exposeInt('priority'),
    queue: t.exposeString('queue'),
    attempts: t.exposeInt('attempts'),
    maxAttempts: t.exposeInt('maxAttempts'),
    timeoutMs: t.exposeInt('timeoutMs', { nullable: true }),
    memoryLimitMb: t.exposeInt('memoryLimitMb', {
      nullable: true,
      description: 'Heap limit in MB of the worker thread its runs get; null: the handler decides.',
    }),
    source: t.expose('source', { type: TaskSourceEnum }),
    sourceModel: t.exposeString('sourceModel', { nullable: true }),
    sourceRowId: t.exposeString('sourceRowId', { nullable: true }),
    sourceField: t.exposeString('sourceField', { nullable: true }),
    lockedBy: t.exposeString('lockedBy', { nullable: true, description: 'Worker holding the task while it runs.' }),
    lastError: t.exposeString('lastError', { nullable: true }),
    uniqueKey: t.exposeString('uniqueKey', { nullable: true }),
    misfirePolicy: t.expose('misfirePolicy', { type: MisfirePolicyEnum }),
    misfireToleranceMs: t.exposeInt('misfireToleranceMs'),
    overlapPolicy: t.expose('overlapPolicy', { type: OverlapPolicyEnum }),
    retryBackoffMs: t.exposeInt('retryBackoffMs', { description: 'First retry delay; it doubles with each attempt (with jitter).' }),
    deduplicated: t.boolean({
      description:
        'True only in the answer to createTimerTask(s) when a live task already held the uniqueKey and was returned instead of a new one.',
      resolve: (task) => (task as { deduplicated?: boolean }).deduplicated === true,
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
    runs: t.relation('runs', {
      description: 'Execution attempts, oldest first.',
      args: { first: t.arg.int(FIRST) },
      extensions: { paging: LIST_PAGE },
      query: (args) => ({ orderBy: { eventId: 'asc' }, take: pageSize(LIST_PAGE, args) }),
    }),
    events: t.relation('events', {
      description: 'Status history, oldest first (taskEvents(filter: { taskId }) pages through all of it).',
      args: { first: t.arg.int(FIRST) },
      extensions: { paging: LIST_PAGE },
      query: (args) => ({ orderBy: { id: 'asc' }, take: pageSize(LIST_PAGE, args) }),
    }),
  }),
});

builder.prismaObject('TaskRun', {
  description: 'One execution attempt of a task.',
  select: { id: true },
  fields: (t) => ({
    id: t.exposeID('id'),
    task: t.relation('task'),
    attempt: t.exposeInt('attempt'),
    status: t.expose('status', { type: RunStatusEnum }),
    workerId: t.exposeString('workerId'),
    recovered: t.exposeBoolean('recovered', { description: 'True when this attempt took over a task whose worker died.' }),
    startedAt: t.expose('startedAt', { type: 'DateTime' }),
    finishedAt: t.expose('finishedAt', { type: 'DateTime', nullable: true }),
    durationMs: t.exposeInt('durationMs', { nullable: true }),
    result: t.expose('result', { type: 'JSON', nullable: true }),
    error: t.exposeString('error', { nullable: true }),
    errorStack: t.exposeString('errorStack', { nullable: true }),
    logs: t.relation('logs', {
      description: 'Lines the handler logged through ctx.logger.',
      args: { first: t.arg.int(FIRST) },
      extensions: { paging: LIST_PAGE },
      query: (args) => ({ orderBy: { id: 'asc' }, take: pageSize(LIST_PAGE, args) }),
    }),
  }),
});

builder.prismaObject('TaskRunLog', {
  description: 'One line a handler logged through ctx.logger.',
  select: { id: true },
  fields: (t) => ({
    id: t.id({ resolve: (line) => line.id.toString() }),
    task: t.relation('task'),
    run: t.relation('run'),
    level: t.exposeString('level'),
    message: t.exposeString('message'),
    data: t.expose('data', { type: 'JSON', nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

builder.prismaObject('TaskEvent', {
  description: 'One status change. Ids only grow; pass the last one seen as `after` to read on.',
  select: { id: true },
  fields: (t) => ({
    id: t.id({ resolve: (event) => event.id.toString() }),
    cursor: t.string({ description: 'Same as id; taskStatusChanged(after:) resumes from it.', resolve: (event) => event.id.toString() }),
    task: t.relation('task'),
    run: t.relation('run', { nullable: true }),
    type: t.expose('type', { type: TaskEventTypeEnum }),
    fromStatus: t.expose('fromStatus', { type: TaskStatusEnum, nullable: true }),
    nextRunAt: t.expose('nextRunAt', { type: 'DateTime', nullable: true, description: 'When the task is next due after this event.' }),
    toStatus: t.expose('toStatus', { type: TaskStatusEnum }),
    message: t.exposeString('message', { nullable: true }),
    actor: t.exposeString('actor', {
      nullable: true,
      description:
        'Who caused it: key:<API key id>, jwt:<token subject>, key:ADMIN_API_KEY, anonymous, or task:<id> (a handler); null when the scheduler did it on its own.',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

const TaskFilter = builder.inputType('TaskFilter', {
  fields: (t) => ({
    status: t.field({ type: [TaskStatusEnum], description: 'Any of these statuses.' }),
    fullName: t.string(),
    funcName: t.string(),
    source: t.field({ type: TaskSourceEnum }),
    startTimeFrom: t.string({ description: 'startTime at or after this date-time.' }),
    startTimeTo: t.string({ description: 'startTime at or before this date-time.' }),
  }),
});

export const TimerTaskInput = builder.inputType('TimerTaskInput', {
  description: "The seed's createTimerTask arguments. Omitted fields default from the template.",
  fields: (t) => ({
    fullName: t.string({ required: true, description: 'Template name, e.g. tasks.DataBackup.' }),
    startTime: t.string({
      description:
        'When to run: ISO 8601 (2030-01-01T10:00:00Z) or "2030-01-01 10:00:00" in `timezone` (a time the clocks skip is refused; one they repeat is its first occurrence). Required for ONCE; CRON and INTERVAL default to now.',
    }),
    funcName: t.string({ description: 'Registered handler, e.g. services.BackupSvc.backupDatabase.' }),
    taskType: t.string({ description: 'Registered task type, e.g. tasks.NormalType.' }),
    argDict: t.field({ type: 'JSON', description: 'Arguments for the handler: a JSON object.' }),
    timezone: t.string({ description: 'IANA time zone for wall-clock times and cron.' }),
    repeatType: t.field({ type: RepeatTypeEnum }),
    cronExpression: t.string({
      description: 'Standard cron: 5 fields, or 6 with seconds first; @daily etc.; L W # (README: Cron and time zones).',
    }),
    intervalSeconds: t.int({ description: 'INTERVAL: seconds of real time between runs.' }),
    endTime: t.string({ description: 'No occurrence after this date-time.' }),
    maxRuns: t.int({ description: 'Stop after this many runs.' }),
    maxAttempts: t.int(),
    timeoutMs: t.int(),
    memoryLimitMb: t.int({
      description:
        'Heap limit in MB of a worker thread for each run (16 or more); runs the handler in a thread, so it must be registered by module.',
    }),
    priority: t.int(),
    queue: t.string(),
    uniqueKey: t.string({
      description: 'At most one live task per key: if one exists it is returned (deduplicated: true) and nothing is created.',
    }),
    misfirePolicy: t.field({ type: MisfirePolicyEnum }),
    misfireToleranceMs: t.int({ description: 'For misfire SKIP: how late a run may start (default 60000).' }),
    overlapPolicy: t.field({ type: OverlapPolicyEnum }),
    retryBackoffMs: t.int({ description: 'First retry delay in ms (default 1000); doubles per attempt, with jitter.' }),
  }),
});

export const TaskPatchInput = builder.inputType('TaskPatch', {
  description:
    "updateTask's changes: an omitted field keeps its value; endTime, maxRuns, timeoutMs and memoryLimitMb are cleared by null. Same meaning and checks as in TimerTaskInput; argDict replaces the arguments as a whole.",
  fields: (t) => ({
    funcName: t.string(),
    taskType: t.string(),
    argDict: t.field({ type: 'JSON' }),
    timezone: t.string(),
    repeatType: t.field({ type: RepeatTypeEnum }),
    cronExpression: t.string(),
    intervalSeconds: t.int(),
    startTime: t.string({ description: "Where the changed schedule starts (default: now, or the task's startTime if later)." }),
    endTime: t.string(),
    maxRuns: t.int(),
    maxAttempts: t.int(),
    timeoutMs: t.int(),
    memoryLimitMb: t.int(),
    priority: t.int(),
    queue: t.string(),
    misfirePolicy: t.field({ type: MisfirePolicyEnum }),
    misfireToleranceMs: t.int(),
    overlapPolicy: t.field({ type: OverlapPolicyEnum }),
    retryBackoffMs: t.int(),
  }),
});

const TaskStats = builder.objectRef<Record<string, number>>('TaskStats').implement({
  description: "How many tasks of the caller's tenant are in each status.",
  fields: (t) => ({
    total: t.int({ resolve: (stats) => stats.total ?? 0 }),
    ...Object.fromEntries(
      Object.values(TaskStatus).map((status) => [status.toLowerCase(), t.int({ resolve: (stats) => stats[status.toLowerCase()] ?? 0 })]),
    ),
  }),
});

builder.queryFields((t) => ({
  task: t.prismaField({
    authScopes: { viewer: true },
    type: 'Task',
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) => ctx.taskSvc.findTask(String(args.id), query),
  }),
  tasks: t.prismaConnection(
    {
      authScopes: { viewer: true },
      type: 'Task',
      cursor: 'id',
      description: "Tasks of the caller's tenant, newest first.",
      args: { filter: t.arg({ type: TaskFilter }) },
      extensions: { paging: { ...CONNECTION_PAGE, cursor: 'connection' } },
      totalCount: (_root, args, ctx) => ctx.prisma.task.count({ where: ctx.taskSvc.taskWhere(args.filter ?? {}) }),
      resolve: (query, _root, args, ctx) => {
        const page = keysetPage(query, [['id', 'desc']]);
        return ctx.prisma.task.findMany({
          ...page.query,
          where: { AND: [ctx.taskSvc.taskWhere(args.filter ?? {}), page.where] },
          orderBy: { id: 'desc' },
        });
      },
    },
    {},
  ),
  taskStats: t.field({
    authScopes: { viewer: true },
    type: TaskStats,
    resolve: (_root, _args, ctx) => ctx.taskSvc.stats(),
  }),
}));

builder.mutationFields((t) => ({
  createTimerTask: t.prismaField({
    authScopes: { editor: true },
    type: 'Task',
    description: 'Creates one task (status SCHEDULED) from a template.',
    args: { input: t.arg({ type: TimerTaskInput, required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.taskSvc.createTimerTask(args.input),
  }),
  createTimerTasks: t.prismaField({
    authScopes: { editor: true },
    type: ['Task'],
    description: 'Creates many tasks in one transaction: all of them, or none when any input is bad.',
    args: { inputs: t.arg({ type: [TimerTaskInput], required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.taskSvc.createTimerTasks(args.inputs),
  }),
  pauseTask: t.prismaField({
    authScopes: { editor: true },
    type: 'Task',
    description: 'SCHEDULED or RETRYING → PAUSED: keeps its place but does not run until resumed.',
    args: { taskId: t.arg.id({ required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.taskSvc.pauseTask(String(args.taskId)),
  }),
  resumeTask: t.prismaField({
    authScopes: { editor: true },
    type: 'Task',
    description: 'PAUSED → SCHEDULED (or RETRYING).',
    args: { taskId: t.arg.id({ required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.taskSvc.resumeTask(String(args.taskId)),
  }),
  runTaskNow: t.prismaField({
    authScopes: { editor: true },
    type: 'Task',
    description: 'Makes a waiting task due now; a recurring task then continues its schedule.',
    args: { taskId: t.arg.id({ required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.taskSvc.runTaskNow(String(args.taskId)),
  }),
  rescheduleTask: t.prismaField({
    authScopes: { editor: true },
    type: 'Task',
    description: 'Moves the next run of a waiting task (RESCHEDULED event).',
    args: { taskId: t.arg.id({ required: true }), startTime: t.arg.string({ required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.taskSvc.rescheduleTask(String(args.taskId), args.startTime),
  }),
  cancelTask: t.prismaField({
    authScopes: { editor: true },
    type: 'Task',
    description: 'A waiting task → CANCELLED. A running task is stopped with forcedEnd.',
    args: { taskId: t.arg.id({ required: true }), reason: t.arg.string() },
    resolve: (_query, _root, args, ctx) => ctx.taskSvc.cancelTask(String(args.taskId), args.reason),
  }),
  updateTask: t.prismaField({
    authScopes: { editor: true },
    type: 'Task',
    description:
      "Edits a live task with createTimerTask's checks (UPDATED event naming the changed fields). A waiting or paused task whose schedule changed gets its next run recomputed; a running task keeps its current attempt and runs on the edited schedule from its next occurrence.",
    args: { taskId: t.arg.id({ required: true }), patch: t.arg({ type: TaskPatchInput, required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.taskSvc.updateTask(String(args.taskId), args.patch),
  }),
  deleteTask: t.id({
    authScopes: { editor: true },
    description:
      'Removes a finished task (SUCCEEDED, FAILED, FORCED_END, CANCELLED) with its runs, logs and events; returns its id. A live task must be cancelled first (CONFLICT).',
    args: { taskId: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => ctx.taskSvc.deleteTask(String(args.taskId)),
  }),
  forcedEnd: t.prismaField({
    authScopes: { editor: true },
    type: 'Task',
    description:
      'Ends a task for good (FORCED_END), at once, with `reason` on its event and run. A running handler is aborted on whichever instance runs it, and anything it does afterwards is fenced off.',
    args: { taskId: t.arg.id({ required: true }), reason: t.arg.string() },
    resolve: (_query, _root, args, ctx) => ctx.taskSvc.forcedEnd(String(args.taskId), args.reason),
  }),
}));
