import { createContextCache } from '@pothos/core';
import { queryFromInfo } from '@pothos/plugin-prisma';
import DataLoader from 'dataloader';
import type { DateFieldResult } from '../../dateFields/applyDateFields.js';
import type { RecordWrite } from '../../dateFields/ModelSvc.js';
import { MODEL_FIELD_TYPES, type ModelField } from '../../dateFields/modelFields.js';
import { badInput } from '../../errors.js';
import { type Prisma, RepeatType, type Task, TaskSource } from '../../generated/prisma/client.js';
import { builder, type Context } from '../builder.js';
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
  select: { id: true },
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    title: t.exposeString('title', { nullable: true }),
    fields: t.field({ type: [ModelFieldRef], select: { fields: true }, resolve: (m) => m.fields as unknown as ModelField[] }),
    recordCount: t.int({
      select: { tenantId: true, name: true },
      resolve: (m, _args, ctx) => ctx.prisma.modelRecord.count({ where: { tenantId: m.tenantId, model: m.name } }),
    }),
    dateFieldTemplates: t.prismaField({
      type: ['TaskTemplate'],
      description: 'The DATE_FIELD templates that follow this model.',
      select: { tenantId: true, name: true },
      resolve: (query, m, _args, ctx) =>
        ctx.prisma.taskTemplate.findMany({
          ...query,
          where: { tenantId: m.tenantId, sourceModel: m.name, repeatType: RepeatType.DATE_FIELD },
          orderBy: { fullName: 'asc' },
        }),
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

/**
 * The tasks of many records in one query: a page of records selecting `tasks` would otherwise read
 * them one record at a time. One loader per request and selection.
 */
const recordTaskLoaders = createContextCache((_ctx: Context) => new Map<string, DataLoader<RecordKey, Task[], string>>());

interface RecordKey {
  tenantId: string;
  model: string;
  id: string;
}

function recordTasks(
  ctx: Context,
  query: { select?: Prisma.TaskSelect; include?: Prisma.TaskInclude },
): DataLoader<RecordKey, Task[], string> {
  const loaders = recordTaskLoaders(ctx);
  const key = JSON.stringify(query);
  let loader = loaders.get(key);
  if (!loader) {
    // The grouping column must be read even when the client did not select it.
    const selection = query.select ? { select: { ...query.select, sourceRowId: true } } : query;
    loader = new DataLoader<RecordKey, Task[], string>(
      async (records) => {
        const byModel = new Map<string, RecordKey[]>();
        for (const r of records) {
          const key = JSON.stringify([r.tenantId, r.model]);
          byModel.set(key, [...(byModel.get(key) ?? []), r]);
        }
        const found = new Map<string, Task[]>();
        for (const group of byModel.values()) {
          const tasks = (await ctx.prisma.task.findMany({
            ...selection,
            where: {
              tenantId: group[0]!.tenantId,
              source: TaskSource.DATE_FIELD,
              sourceModel: group[0]!.model,
              sourceRowId: { in: group.map((r) => r.id) },
            },
            orderBy: { id: 'asc' },
          })) as Task[];
          for (const task of tasks) found.set(task.sourceRowId!, [...(found.get(task.sourceRowId!) ?? []), task]);
        }
        return records.map((r) => found.get(r.id) ?? []);
      },
      { cacheKeyFn: (r) => JSON.stringify([r.tenantId, r.model, r.id]) },
    );
    loaders.set(key, loader);
  }
  return loader;
}

const ModelRecordRef = builder.prismaObject('ModelRecord', {
  description: 'One record of a low-code model.',
  select: { id: true },
  fields: (t) => ({
    id: t.exposeID('id'),
    model: t.exposeString('model'),
    data: t.expose('data', { type: 'JSON' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
    tasks: t.prismaField({
      type: ['Task'],
      description: 'The date-field tasks of this record, live and finished, oldest first.',
      select: { tenantId: true, model: true },
      resolve: (query, r, _args, ctx) => recordTasks(ctx, query).load({ tenantId: r.tenantId, model: r.model, id: r.id }),
    }),
  }),
});

const RecordWriteRef = builder.objectRef<RecordWrite>('ModelRecordWrite').implement({
  description: "A record write and what it did to the record's date-field tasks (same transaction).",
  fields: (t) => ({
    // A prismaField, so Pothos takes the written row as loaded (a deleted record cannot be read again).
    record: t.prismaField({ type: ModelRecordRef, resolve: (_query, w) => w.record }),
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
    description: "The low-code models of the caller's tenant.",
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
  modelRecords: t.connection(
    {
      authScopes: { viewer: true },
      type: ModelRecordRef,
      description: 'Records of a model in creation order, filtered by `where` (the condition language of date-field templates).',
      args: {
        model: t.arg.string({ required: true }),
        where: t.arg({ type: 'JSON', description: '{"status": "active", "amount": {"$gte": 1000}}' }),
      },
      extensions: { paging: { defaultSize: 50, maxSize: 500, cursor: 'uuid' } },
      resolve: async (_root, args, ctx, info) => {
        if (args.last != null || args.before != null)
          throw badInput('modelRecords pages forward only: use first and after', args.last != null ? 'last' : 'before');
        const selection = queryFromInfo({ context: ctx, info, typeName: 'ModelRecord', path: ['edges', 'node'] });
        const { records, hasNextPage } = await ctx.modelSvc.queryRecords(args.model, {
          where: args.where,
          first: args.first,
          after: args.after,
          selection,
        });
        return {
          edges: records.map((node) => ({ cursor: node.id, node })),
          pageInfo: {
            hasNextPage,
            hasPreviousPage: args.after != null,
            startCursor: records[0]?.id ?? null,
            endCursor: records.at(-1)?.id ?? null,
          },
          // Counted only when the query asks for it.
          totalCount: () => ctx.modelSvc.countRecords(args.model, args.where),
        };
      },
    },
    {
      fields: (c) => ({
        totalCount: c.int({
          description: 'Records matching `where`, on every page.',
          resolve: (connection) => (connection as unknown as { totalCount: () => Promise<number> }).totalCount(),
        }),
      }),
    },
  ),
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
