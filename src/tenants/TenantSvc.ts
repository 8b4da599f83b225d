import { type RequestScope, scopedDeps } from '../db/requestScope.js';
import { badInput } from '../errors.js';
import type { Prisma, PrismaClient, Tenant } from '../generated/prisma/client.js';
import { assertTenantId } from '../tasks/validate.js';
import { countTenantUsage, type TenantUsage } from './tenantSql.js';

/** The quotas of one tenant; null means unlimited. */
export interface TenantQuota {
  maxLiveTasks: number | null;
  maxTasksCreatedPerMinute: number | null;
  maxConcurrentRuns: number | null;
  maxArgDictBytes: number | null;
}

export type TenantQuotaInput = { [K in keyof TenantQuota]?: number | null };

export const QUOTA_NAMES = [
  'maxLiveTasks',
  'maxTasksCreatedPerMinute',
  'maxConcurrentRuns',
  'maxArgDictBytes',
] as const satisfies readonly (keyof TenantQuota)[];

export const NO_QUOTA: TenantQuota = Object.freeze({
  maxLiveTasks: null,
  maxTasksCreatedPerMinute: null,
  maxConcurrentRuns: null,
  maxArgDictBytes: null,
});

/** Tenants and their quotas (ADMIN). Quotas are enforced where tasks are created (QuotaGuard) and claimed. */
export class TenantSvc {
  constructor(private readonly deps: { prisma: PrismaClient }) {}

  /** This service for work done in `scope` (a request's operation): its statements check the scope first. */
  withScope(scope: RequestScope): TenantSvc {
    return new TenantSvc(scopedDeps(this.deps, scope));
  }

  list(): Promise<Tenant[]> {
    return this.deps.prisma.tenant.findMany({ orderBy: { id: 'asc' } });
  }

  async quota(tenantId: string): Promise<TenantQuota> {
    const row = await this.deps.prisma.tenant.findUnique({ where: { id: assertTenantId(tenantId, 'id') } });
    return row ? quotaOf(row) : NO_QUOTA;
  }

  /** Replaces the tenant's quotas: omitted or null fields are unlimited. */
  async setQuota(tenantId: string, input: TenantQuotaInput): Promise<Tenant> {
    const id = assertTenantId(tenantId, 'tenantId');
    const data: TenantQuota = { ...NO_QUOTA };
    for (const name of QUOTA_NAMES) {
      const value = input[name];
      if (value == null) continue;
      if (!Number.isInteger(value) || value < 0 || value > 2_147_483_647)
        throw badInput(`${name} must be a whole number from 0 to 2147483647, or null for no limit`, name);
      data[name] = value;
    }
    return this.deps.prisma.tenant.upsert({ where: { id }, create: { id, ...data }, update: data });
  }

  /** The tenant's own history retention in days (1-36500), or null to follow HISTORY_RETENTION_DAYS. */
  async setHistoryRetention(tenantId: string, days: number | null): Promise<Tenant> {
    const id = assertTenantId(tenantId, 'tenantId');
    if (days != null && (!Number.isInteger(days) || days < 1 || days > 36_500))
      throw badInput('days must be a whole number from 1 to 36500, or null', 'days');
    return this.deps.prisma.tenant.upsert({
      where: { id },
      create: { id, historyRetentionDays: days },
      update: { historyRetentionDays: days },
    });
  }

  usage(tenantId: string): Promise<TenantUsage> {
    return countTenantUsage(this.deps.prisma, assertTenantId(tenantId, 'id'));
  }

  /** Gives the tenant its row if it has none yet (inside the caller's transaction). */
  async ensure(tx: Prisma.TransactionClient, tenantId: string): Promise<Tenant> {
    return (await tx.tenant.findUnique({ where: { id: tenantId } })) ?? (await insertTenant(tx, tenantId));
  }
}

export function quotaOf(row: Tenant): TenantQuota {
  return {
    maxLiveTasks: row.maxLiveTasks,
    maxTasksCreatedPerMinute: row.maxTasksCreatedPerMinute,
    maxConcurrentRuns: row.maxConcurrentRuns,
    maxArgDictBytes: row.maxArgDictBytes,
  };
}

/** ON CONFLICT: two first creates of one tenant may race; the second finds the first's row. */
export async function insertTenant(tx: Prisma.TransactionClient, tenantId: string): Promise<Tenant> {
  await tx.$executeRaw`INSERT INTO tenant (id, updated_at) VALUES (${tenantId}, now()) ON CONFLICT (id) DO NOTHING`;
  return tx.tenant.findUniqueOrThrow({ where: { id: tenantId } });
}
