import type { DateFieldChange, DateFieldResult } from '../../dateFields/applyDateFields.js';
import { configOf, type DateFieldConfig, type DateOffset, OFFSET_DIRECTIONS, OFFSET_UNITS } from '../../dateFields/dateRule.js';
import { RepeatType } from '../../generated/prisma/client.js';
import { builder } from '../builder.js';

const DateOffsetRef = builder.objectRef<DateOffset>('DateOffset').implement({
  description: "A shift from a record's date.",
  fields: (t) => ({
    amount: t.exposeInt('amount'),
    unit: t.exposeString('unit', { description: OFFSET_UNITS.join(', ') }),
    direction: t.exposeString('direction', { description: OFFSET_DIRECTIONS.join(' or ') }),
  }),
});

const DateFieldRuleRef = builder.objectRef<DateFieldConfig>('DateFieldRule').implement({
  description: 'Which record date a DATE_FIELD template follows, and when relative to it its tasks run.',
  fields: (t) => ({
    model: t.string({ resolve: (c) => c.sourceModel }),
    field: t.string({ resolve: (c) => c.sourceField }),
    offset: t.field({ type: DateOffsetRef, resolve: (c) => c.dateRule.offset }),
    timeOfDay: t.string({ nullable: true, resolve: (c) => c.dateRule.timeOfDay }),
    timezoneField: t.string({ nullable: true, resolve: (c) => c.dateRule.timezoneField }),
    condition: t.field({ type: 'JSON', nullable: true, resolve: (c) => c.dateRule.condition }),
    endOffset: t.field({ type: DateOffsetRef, nullable: true, resolve: (c) => c.dateRule.endOffset }),
    maxRuns: t.int({ nullable: true, resolve: (c) => c.dateRule.maxRuns }),
  }),
});

builder.prismaObjectField('TaskTemplate', 'dateField', (t) =>
  t.field({
    type: DateFieldRuleRef,
    nullable: true,
    description: 'For DATE_FIELD templates: the model, date field and offset their tasks follow.',
    select: { repeatType: true, sourceModel: true, sourceField: true, dateRule: true, fullName: true },
    resolve: (template) => (template.repeatType === RepeatType.DATE_FIELD && template.sourceModel ? configOf(template) : null),
  }),
);

const DateOffsetInput = builder.inputType('DateOffsetInput', {
  fields: (t) => ({
    amount: t.int({ required: true, description: 'A whole number, 0 or more.' }),
    unit: t.string({ required: true, description: `${OFFSET_UNITS.join(', ')} (DAYS are calendar days in the time zone).` }),
    direction: t.string({ description: 'BEFORE or AFTER (default) the date.' }),
  }),
});

export const DateFieldRuleInput = builder.inputType('DateFieldRuleInput', {
  description: 'What a DATE_FIELD template follows: "3 DAYS BEFORE models.Contract.expireDate at 09:00 in the owner\'s zone".',
  fields: (t) => ({
    model: t.string({
      required: true,
      description: 'Model name, e.g. models.Contract (a low-code model or one whose hooks call saveDateFieldTask).',
    }),
    field: t.string({ required: true, description: "The record's date field, e.g. expireDate (a path such as dates.expire works too)." }),
    offset: t.field({ type: DateOffsetInput, description: 'Default: on the date itself.' }),
    timeOfDay: t.string({ description: 'Wall-clock time (HH:mm or HH:mm:ss) the run is moved to, e.g. 09:00.' }),
    timezoneField: t.string({
      description: 'A record field holding an IANA zone (e.g. ownerTimezone); empty values use the template timezone.',
    }),
    condition: t.field({
      type: 'JSON',
      description: 'Only matching records get a task: {"status": "active"}, operators $eq $ne $in $nin $gt $gte $lt $lte $exists.',
    }),
    endOffset: t.field({ type: DateOffsetInput, description: 'Repeating tasks stop at the date shifted by this offset.' }),
    maxRuns: t.int({ description: 'Repeating tasks stop after this many runs.' }),
  }),
});

const DateFieldActionEnum = builder.enumType('DateFieldAction', {
  values: ['CREATED', 'RESCHEDULED', 'CANCELLED', 'UNCHANGED', 'SKIPPED'] as const,
  description:
    'What the date-field layer did for one (template, record): SKIPPED means the computed time cannot run (past, with misfire policy SKIP, or after its end).',
});

const DateFieldChangeRef = builder.objectRef<DateFieldChange>('DateFieldChange').implement({
  fields: (t) => ({
    template: t.string({ description: "The template's fullName.", resolve: (c) => c.fullName }),
    rowId: t.exposeString('rowId'),
    action: t.field({ type: DateFieldActionEnum, resolve: (c) => c.action }),
    reason: t.exposeString('reason'),
    task: t.prismaField({
      type: 'Task',
      nullable: true,
      resolve: (query, c, _args, ctx) => (c.taskId ? ctx.prisma.task.findUnique({ ...query, where: { id: c.taskId } }) : null),
    }),
  }),
});

export const DateFieldResultRef = builder.objectRef<DateFieldResult>('DateFieldResult').implement({
  description: 'What a date-field hook, record write or reconcile changed.',
  fields: (t) => ({
    created: t.exposeInt('created'),
    rescheduled: t.exposeInt('rescheduled'),
    cancelled: t.exposeInt('cancelled'),
    unchanged: t.exposeInt('unchanged'),
    skipped: t.exposeInt('skipped'),
    changes: t.field({
      type: [DateFieldChangeRef],
      description: 'One entry per (template, record) for hooks and single-record writes; empty for bulk work.',
      resolve: (r) => r.changes,
    }),
  }),
});

const DateFieldRowInput = builder.inputType('DateFieldRowInput', {
  description: "The seed's rowObj: the model and the record after (postData) and before (prevData) the change.",
  fields: (t) => ({
    model: t.string({ required: true, description: 'e.g. models.Contract' }),
    postData: t.field({ type: 'JSON', description: 'The record after the change, with its id; merged over prevData.' }),
    prevData: t.field({ type: 'JSON', description: 'The record before the change (for deleteDateFieldTask: the deleted record).' }),
  }),
});

builder.mutationFields((t) => ({
  saveDateFieldTask: t.field({
    authScopes: { editor: true },
    type: DateFieldResultRef,
    description: "afterSave hook: creates, reschedules or cancels the record's task for every DATE_FIELD template of its model.",
    args: { rowObj: t.arg({ type: DateFieldRowInput, required: true }) },
    resolve: (_root, args, ctx) => ctx.taskSvc.saveDateFieldTask(args.rowObj),
  }),
  deleteDateFieldTask: t.field({
    authScopes: { editor: true },
    type: DateFieldResultRef,
    description: "afterDelete hook: cancels the record's live date-field tasks (they stay in history).",
    args: { rowObj: t.arg({ type: DateFieldRowInput, required: true }) },
    resolve: (_root, args, ctx) => ctx.taskSvc.deleteDateFieldTask(args.rowObj),
  }),
  reconcileDateFieldTasks: t.field({
    authScopes: { editor: true },
    type: DateFieldResultRef,
    description: "Rebuilds a model's date-field tasks from its records (missed hooks, bulk imports) and reports what changed.",
    args: { model: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => ctx.dateFieldSvc.reconcile(args.model),
  }),
}));
