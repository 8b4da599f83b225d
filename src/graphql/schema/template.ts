import { builder } from '../builder.js';
import { DateFieldRuleInput } from './dateFields.js';
import { MisfirePolicyEnum, OverlapPolicyEnum, RepeatTypeEnum, TemplateOriginEnum } from './enums.js';

export const TaskTemplateRef = builder.prismaObject('TaskTemplate', {
  description: 'A named task element such as tasks.DataBackup: the defaults of the tasks created from it.',
  // tenantId: Task.template shows a template only to its own tenant (and ADMINs).
  select: { id: true, tenantId: true },
  fields: (t) => ({
    id: t.exposeID('id'),
    fullName: t.exposeString('fullName'),
    title: t.exposeString('title'),
    description: t.exposeString('description', { nullable: true }),
    taskType: t.exposeString('taskType'),
    repeatType: t.expose('repeatType', { type: RepeatTypeEnum }),
    funcName: t.exposeString('funcName', { nullable: true }),
    argDict: t.expose('argDict', { type: 'JSON' }),
    cronExpression: t.exposeString('cronExpression', { nullable: true }),
    intervalSeconds: t.exposeInt('intervalSeconds', { nullable: true }),
    timezone: t.exposeString('timezone'),
    maxAttempts: t.exposeInt('maxAttempts'),
    timeoutMs: t.exposeInt('timeoutMs', { nullable: true }),
    memoryLimitMb: t.exposeInt('memoryLimitMb', { nullable: true, description: templateFields.memoryLimitMb }),
    priority: t.exposeInt('priority'),
    queue: t.exposeString('queue'),
    enabled: t.exposeBoolean('enabled'),
    misfirePolicy: t.expose('misfirePolicy', { type: MisfirePolicyEnum }),
    misfireToleranceMs: t.exposeInt('misfireToleranceMs'),
    overlapPolicy: t.expose('overlapPolicy', { type: OverlapPolicyEnum }),
    retryBackoffMs: t.exposeInt('retryBackoffMs'),
    origin: t.expose('origin', { type: TemplateOriginEnum, description: 'FILE templates ship with the app and are read-only here.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

const templateFields = {
  title: 'Human-readable name.',
  description: 'Longer explanation.',
  taskType: 'Registered task type; default tasks.NormalType.',
  funcName: 'Default handler for tasks of this template.',
  argDict: "Default arguments (a JSON object); a task's own argDict is merged over it.",
  cronExpression: '5-field or 6-field (with seconds) cron expression, for CRON templates.',
  intervalSeconds: 'Seconds between runs, for INTERVAL templates.',
  timezone: 'IANA time zone for wall-clock times and cron; default DEFAULT_TIMEZONE.',
  maxAttempts: 'Attempts before a task fails for good.',
  timeoutMs: 'Time limit of one run in milliseconds.',
  memoryLimitMb:
    'Heap limit in MB of the worker thread each run gets; setting it runs the handler in a thread (it must be registered by module).',
  priority: 'Higher runs first among due tasks (-1000..1000).',
  queue: 'Named queue, for concurrency limits.',
  enabled: 'A disabled template cannot create tasks.',
} as const;

const TaskTemplateInput = builder.inputType('TaskTemplateInput', {
  fields: (t) => ({
    fullName: t.string({ required: true, description: 'Dotted unique name such as tasks.DataBackup.' }),
    title: t.string({ required: true, description: templateFields.title }),
    description: t.string({ description: templateFields.description }),
    taskType: t.string({ description: templateFields.taskType }),
    repeatType: t.field({
      type: RepeatTypeEnum,
      description: 'ONCE (default), CRON, INTERVAL or DATE_FIELD (tasks follow a record date; see dateField).',
    }),
    dateField: t.field({
      type: DateFieldRuleInput,
      description: 'Required for DATE_FIELD templates; their tasks repeat after the first run by cronExpression or intervalSeconds.',
    }),
    funcName: t.string({ description: templateFields.funcName }),
    argDict: t.field({ type: 'JSON', description: templateFields.argDict }),
    cronExpression: t.string({ description: templateFields.cronExpression }),
    intervalSeconds: t.int({ description: templateFields.intervalSeconds }),
    timezone: t.string({ description: templateFields.timezone }),
    maxAttempts: t.int({ description: templateFields.maxAttempts }),
    timeoutMs: t.int({ description: templateFields.timeoutMs }),
    memoryLimitMb: t.int({ description: templateFields.memoryLimitMb }),
    priority: t.int({ description: templateFields.priority }),
    queue: t.string({ description: templateFields.queue }),
    enabled: t.boolean({ description: templateFields.enabled }),
    misfirePolicy: t.field({ type: MisfirePolicyEnum }),
    misfireToleranceMs: t.int({ description: 'For misfire SKIP: how late a run may start, in ms.' }),
    overlapPolicy: t.field({ type: OverlapPolicyEnum }),
    retryBackoffMs: t.int({ description: 'First retry delay in ms; doubles per attempt, with jitter.' }),
  }),
});

const TaskTemplatePatch = builder.inputType('TaskTemplatePatch', {
  description: 'Fields to change; omitted fields keep their value, null resets an optional one.',
  fields: (t) => ({
    title: t.string({ description: templateFields.title }),
    description: t.string({ description: templateFields.description }),
    taskType: t.string({ description: templateFields.taskType }),
    repeatType: t.field({ type: RepeatTypeEnum }),
    dateField: t.field({ type: DateFieldRuleInput, description: 'Replaces the whole date-field rule of a DATE_FIELD template.' }),
    funcName: t.string({ description: templateFields.funcName }),
    argDict: t.field({ type: 'JSON', description: templateFields.argDict }),
    cronExpression: t.string({ description: templateFields.cronExpression }),
    intervalSeconds: t.int({ description: templateFields.intervalSeconds }),
    timezone: t.string({ description: templateFields.timezone }),
    maxAttempts: t.int({ description: templateFields.maxAttempts }),
    timeoutMs: t.int({ description: templateFields.timeoutMs }),
    memoryLimitMb: t.int({ description: templateFields.memoryLimitMb }),
    priority: t.int({ description: templateFields.priority }),
    queue: t.string({ description: templateFields.queue }),
    enabled: t.boolean({ description: templateFields.enabled }),
    misfirePolicy: t.field({ type: MisfirePolicyEnum }),
    misfireToleranceMs: t.int({ description: 'For misfire SKIP: how late a run may start, in ms.' }),
    overlapPolicy: t.field({ type: OverlapPolicyEnum }),
    retryBackoffMs: t.int({ description: 'First retry delay in ms; doubles per attempt, with jitter.' }),
  }),
});

builder.queryFields((t) => ({
  taskTemplates: t.prismaField({
    authScopes: { viewer: true },
    type: ['TaskTemplate'],
    description: 'Templates whose title or fullName contains `query` (case-insensitive); "" or no argument lists all.',
    args: { query: t.arg.string({ defaultValue: '' }) },
    resolve: (query, _root, args, ctx) => ctx.templateSvc.list(args.query ?? '', query),
  }),
  taskTemplate: t.prismaField({
    authScopes: { viewer: true },
    type: 'TaskTemplate',
    nullable: true,
    args: { fullName: t.arg.string({ required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.templateSvc.find(args.fullName),
  }),
}));

builder.mutationFields((t) => ({
  createTaskTemplate: t.prismaField({
    authScopes: { editor: true },
    type: 'TaskTemplate',
    args: { input: t.arg({ type: TaskTemplateInput, required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.templateSvc.create(args.input),
  }),
  updateTaskTemplate: t.prismaField({
    authScopes: { editor: true },
    type: 'TaskTemplate',
    args: { fullName: t.arg.string({ required: true }), patch: t.arg({ type: TaskTemplatePatch, required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.templateSvc.update(args.fullName, args.patch),
  }),
  deleteTaskTemplate: t.prismaField({
    authScopes: { editor: true },
    type: 'TaskTemplate',
    description: 'Deletes a template that has no live tasks and returns it as it was.',
    args: { fullName: t.arg.string({ required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.templateSvc.delete(args.fullName),
  }),
}));
