import type { RecordWrite } from '../../dateFields/ModelSvc.js';
import type { DateFieldResult } from '../../dateFields/applyDateFields.js';
import { MODEL_FIELD_TYPES, type ModelField } from '../../dateFields/modelFields.js';
import { badInput } from '../../errors.js';
import { RepeatType, TaskSource } from '../../generated/prisma/client.js';
import { builder } from '../builder.js';
import { DateFieldResultRef } from './dateFields.js';

const ModelFieldTypeEnum = builder.enumType('ModelFieldType', {
  values: MODEL_FIELD_TYPES,
  description: 'DATE values are YYYY-MM-DD; DATETIME values are ISO 8601 instants (stored in UTC).',
});

const ModelFieldRef = builder.objectRef<ModelField>('ModelField').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    type: t.field({ type: ModelFieldTypeEnum, resolve: (f) => f.type }),
    required: t.exposeBoolean('required'),
    title: t.exposeString('title', { nullable: true }),
  }),
});

builder.prismaObject('ModelDefinition', {
  description: 'A low-code model: a name such as models.Contract and typed fields.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    title: t.exposeString('title', { nullable: true }),
    fields: t.field({ type: [ModelFieldRef], resolve: (m) => m.fields as unknown as ModelField[] }),
    recordCount: t.int({ resolve: (m, _args, ctx) => ctx.prisma.modelRecord.count({ where: { tenantId: m.tenantId, model: m.name } }) }),
    dateFieldTemplates: t.prismaField({
      type: ['TaskTemplate'],
      description: 'The DATE_FIELD templates that follow this model.',
      resolve: (query, m, _args, ctx) =>
        ctx.prisma.taskTemplate.findMany({ ...query, where: { tenantId: m.tenantId, sourceModel: m.name, repeatType: RepeatType.DATE_FIELD }, orderBy: { fullName: 'asc' } }),
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

const ModelRecordRef = builder.prismaObject('ModelRecord', {
  description: 'One record of a low-code model.',
  fields: (t) => ({
    id: t.exposeID('id'),
    model: t.exposeString('model'),
    data: t.expose('data', { type: 'JSON' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
    tasks: t.prismaField({
      type: ['Task'],
      description: 'The date-field tasks of this record, live and finished, oldest first.',
      resolve: (query, r, _args, ctx) =>
        ctx.prisma.task.findMany({
          ...query,
          where: { tenantId: r.tenantId, source: TaskSource.DATE_FIELD, sourceModel: r.model, sourceRowId: r.id },
          orderBy: { id: 'asc' },
        }),
    }),
  }),
});

const RecordWriteRef = builder.objectRef<RecordWrite>('ModelRecordWrite').implement({
  description: 'A record write and what it did to the record\'s date-field tasks (same transaction).',
  fields: (t) => ({
    record: t.field({ type: ModelRecordRef, resolve: (w) => w.record }),
    dateFields: t.field({ type: DateFieldResultRef, resolve: (w) => w.dateFields }),
  }),
});

const RecordImportRef = builder.objectRef<{ count: number; dateFields: DateFieldResult }>('ModelRecordImport').implement({
  fields: (t) => ({
    count: t.exposeInt('count', { description: 'Records created.' }),
    dateFields: t.field({ type: DateFieldResultRef, resolve: (i) => i.dateFields }),
  }),
});

const ModelFieldInput = builder.inputType('ModelFieldInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: 'An identifier such as expireDate.' }),
    type: t.field({ type: ModelFieldTypeEnum, required: true }),
    required: t.boolean({ description: 'Records must have a value (default false).' }),
    title: t.string(),
  }),
});

const ModelDefinitionInput = builder.inputType('ModelDefinitionInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: 'Dotted name such as models.Contract.' }),
    title: t.string(),
    fields: t.field({ type: [ModelFieldInput], required: true }),
  }),
});

builder.queryFields((t) => ({
  models: t.prismaField({
    authScopes: { viewer: true },
    type: ['ModelDefinition'],
    description: 'The low-code models of the caller\'s tenant.',
    resolve: (_query, _root, _args, ctx) => ctx.modelSvc.listModels(),
  }),
  model: t.prismaField({
    authScopes: { viewer: true },
    type: 'ModelDefinition',
    nullable: true,
    args: { name: t.arg.string({ required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.modelSvc.findModel(args.name),
  }),
  modelRecord: t.prismaField({
    authScopes: { viewer: true },
    type: 'ModelRecord',
    nullable: true,
    args: { model: t.arg.string({ required: true }), id: t.arg.id({ required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.modelSvc.getRecord(args.model, String(args.id)),
  }),
  modelRecords: t.connection({
    authScopes: { viewer: true },
    type: ModelRecordRef,
    description: 'Records of a model in creation order, filtered by `where` (the condition language of date-field templates).',
    args: {
      model: t.arg.string({ required: true }),
      where: t.arg({ type: 'JSON', description: '{"status": "active", "amount": {"$gte": 1000}}' }),
    },
    resolve: async (_root, args, ctx) => {
      if (args.last != null || args.before != null) throw badInput('modelRecords pages forward only: use first and after', args.last != null ? 'last' : 'before');
      const { records, hasNextPage } = await ctx.modelSvc.queryRecords(args.model, { where: args.where, first: args.first, after: args.after });
      return {
        edges: records.map((node) => ({ cursor: node.id, node })),
        pageInfo: { hasNextPage, hasPreviousPage: args.after != null, startCursor: records[0]?.id ?? null, endCursor: records.at(-1)?.id ?? null },
      };
    },
  }),
}));

builder.mutationFields((t) => ({
  saveModel: t.prismaField({
    authScopes: { editor: true },
    type: 'ModelDefinition',
    description: 'Creates a low-code model or replaces its fields (fields in use cannot be dropped or change type).',
    args: { input: t.arg({ type: ModelDefinitionInput, required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.modelSvc.saveModel(args.input),
  }),
  deleteModel: t.prismaField({
    authScopes: { editor: true },
    type: 'ModelDefinition',
    description: 'Deletes a model and its records; their live tasks are cancelled.',
    args: { name: t.arg.string({ required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.modelSvc.deleteModel(args.name),
  }),
  createModelRecord: t.field({
    authScopes: { editor: true },
    type: RecordWriteRef,
    args: { model: t.arg.string({ required: true }), data: t.arg({ type: 'JSON', required: true }) },
    resolve: (_root, args, ctx) => ctx.modelSvc.createRecord(args.model, args.data),
  }),
  updateModelRecord: t.field({
    authScopes: { editor: true },
    type: RecordWriteRef,
    description: 'Merges data into the record (null clears a field); replace: true makes data the whole record.',
    args: {
      model: t.arg.string({ required: true }),
      id: t.arg.id({ required: true }),
      data: t.arg({ type: 'JSON', required: true }),
      replace: t.arg.boolean({ defaultValue: false }),
    },
    resolve: (_root, args, ctx) => ctx.modelSvc.updateRecord(args.model, String(args.id), args.data, { replace: args.replace ?? false }),
  }),
  deleteModelRecord: t.field({
    authScopes: { editor: true },
    type: RecordWriteRef,
    description: 'Deletes a record; its live date-field tasks are cancelled.',
    args: { model: t.arg.string({ required: true }), id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => ctx.modelSvc.deleteRecord(args.model, String(args.id)),
  }),
  importModelRecords: t.field({
    authScopes: { editor: true },
    type: RecordImportRef,
    description: 'Creates many records (up to 100000) and their tasks in one transaction: all or none.',
    args: { model: t.arg.string({ required: true }), records: t.arg({ type: ['JSON'], required: true }) },
    resolve: (_root, args, ctx) => ctx.modelSvc.importRecords(args.model, args.records),
  }),
}));
