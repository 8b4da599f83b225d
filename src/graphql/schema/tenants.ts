import type { Tenant } from '../../generated/prisma/client.js';
import type { PruneCounts } from '../../history/HistoryPruner.js';
import { assertTenantId } from '../../tasks/validate.js';
import { NO_QUOTA, quotaOf, type TenantQuota } from '../../tenants/TenantSvc.js';
import type { TenantUsage } from '../../tenants/tenantSql.js';
import { builder } from '../builder.js';

const TenantQuotaRef = builder.objectRef<TenantQuota>('TenantQuota').implement({
  description: 'Limits of one tenant; null is unlimited.',
  fields: (t) => ({
    maxLiveTasks: t.exposeInt('maxLiveTasks', {
      nullable: true,
      description: 'Tasks that can still run (SCHEDULED, RUNNING, RETRYING, PAUSED).',
    }),
    maxTasksCreatedPerMinute: t.exposeInt('maxTasksCreatedPerMinute', {
      nullable: true,
      description: 'Tasks created in any 60 seconds, by any path.',
    }),
    maxConcurrentRuns: t.exposeInt('maxConcurrentRuns', {
      nullable: true,
      description: "Tasks running at once across every instance (enforced by the scheduler's claim).",
    }),
    maxArgDictBytes: t.exposeInt('maxArgDictBytes', { nullable: true, description: "Size of one task's argDict as stored (UTF-8 JSON)." }),
  }),
});

const TenantUsageRef = builder.objectRef<TenantUsage>('TenantUsage').implement({
  description: 'What a tenant uses now, counted in the database.',
  fields: (t) => ({
    liveTasks: t.exposeInt('liveTasks'),
    runningTasks: t.exposeInt('runningTasks'),
    createdLastMinute: t.exposeInt('createdLastMinute'),
  }),
});

const TenantRef = builder.objectRef<{ id: string; row: Tenant | null }>('Tenant').implement({
  description: 'A tenant: its quotas and what it uses.',
  fields: (t) => ({
    id: t.exposeString('id'),
    quota: t.field({ type: TenantQuotaRef, resolve: (tenant) => (tenant.row ? quotaOf(tenant.row) : NO_QUOTA) }),
    usage: t.field({ type: TenantUsageRef, resolve: (tenant, _args, ctx) => ctx.tenants.usage(tenant.id) }),
    historyRetentionDays: t.int({
      nullable: true,
      description: 'Days its finished tasks and old runs, logs and events are kept; null follows HISTORY_RETENTION_DAYS.',
      resolve: (tenant) => tenant.row?.historyRetentionDays ?? null,
    }),
  }),
});

const TenantQuotaInput = builder.inputType('TenantQuotaInput', {
  description: 'The whole quota of a tenant: an omitted or null field is unlimited. Whole numbers from 0.',
  fields: (t) => ({
    maxLiveTasks: t.int(),
    maxTasksCreatedPerMinute: t.int(),
    maxConcurrentRuns: t.int(),
    maxArgDictBytes: t.int(),
  }),
});

builder.queryFields((t) => ({
  tenant: t.field({
    type: TenantRef,
    // Any credential may read its own tenant; only ADMINs read others.
    authScopes: (_root, args, ctx) => (args.id === ctx.identity.tenantId ? { viewer: true } : { admin: true }),
    args: { id: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const id = assertTenantId(args.id, 'id');
      return { id, row: await ctx.prisma.tenant.findUnique({ where: { id } }) };
    },
  }),
  tenants: t.field({
    type: [TenantRef],
    authScopes: { admin: true },
    description: 'Every tenant that has tasks, templates, models, keys, bindings or quotas.',
    resolve: async (_root, _args, ctx) => (await ctx.tenants.list()).map((row) => ({ id: row.id, row })),
  }),
}));

builder.mutationFields((t) => ({
  setTenantQuota: t.field({
    type: TenantRef,
    authScopes: { admin: true },
    description: "Replaces a tenant's quotas. A create that would exceed one is refused with QUOTA_EXCEEDED and writes nothing.",
    args: { tenantId: t.arg.string({ required: true }), input: t.arg({ type: TenantQuotaInput, required: true }) },
    resolve: async (_root, args, ctx) => {
      const row = await ctx.tenants.setQuota(args.tenantId, args.input);
      return { id: row.id, row };
    },
  }),
  setTenantHistoryRetention: t.field({
    type: TenantRef,
    authScopes: { admin: true },
    description:
      "Sets how many days a tenant's finished tasks and old runs, logs and events are kept (1-36500); null follows HISTORY_RETENTION_DAYS.",
    args: { tenantId: t.arg.string({ required: true }), days: t.arg.int() },
    resolve: async (_root, args, ctx) => {
      const row = await ctx.tenants.setHistoryRetention(args.tenantId, args.days ?? null);
      return { id: row.id, row };
    },
  }),
  pruneHistory: t.field({
    type: PruneResult,
    authScopes: { admin: true },
    description:
      'Deletes now what retention would delete: finished tasks that ended before `before` (with their runs, logs and events), and older runs, logs and events of tasks that go on; of one tenant, or of every tenant. Archived first when ARCHIVE_DIR is set.',
    args: { before: t.arg({ type: 'DateTime', required: true }), tenantId: t.arg.string() },
    resolve: (_root, args, ctx) =>
      ctx.history.pruneBefore(args.before, args.tenantId == null ? undefined : assertTenantId(args.tenantId, 'tenantId')),
  }),
}));

const PruneResult = builder.objectRef<PruneCounts>('PruneResult').implement({
  description: 'What pruneHistory deleted.',
  fields: (t) => ({
    tasks: t.exposeInt('tasks'),
    runs: t.exposeInt('runs'),
    logs: t.exposeInt('logs'),
    events: t.exposeInt('events'),
    archives: t.exposeInt('archives', { description: 'Archive files written under ARCHIVE_DIR.' }),
  }),
});
