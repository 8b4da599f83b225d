import type { Prisma } from '../generated/prisma/client.js';

/** What a tenant uses now, counted in the database (so across every instance). */
export interface TenantUsage {
  liveTasks: number;
  runningTasks: number;
  createdLastMinute: number;
}

type Db = Prisma.TransactionClient;

/** An arbitrary constant naming Chronograph's per-tenant quota locks (first half of the two-key advisory lock). */
export const QUOTA_LOCK_CLASS = 727_274_002;

/**
 * Serialises the creates of one tenant until the end of the transaction, so that "count, then insert"
 * cannot be interleaved by another instance: without it, two instances each seeing 99 of 100 live tasks
 * would both insert. Taken only for tenants that have a count quota; hashtext collisions between two
 * tenants only make them wait for each other.
 */
export async function lockTenantQuota(db: Db, tenantId: string): Promise<void> {
  await db.$executeRaw`SELECT pg_advisory_xact_lock(${QUOTA_LOCK_CLASS}::int, hashtext(${tenantId}))`;
}

/**
 * The quota locks of several tenants (lockTenantQuota's), in one statement and in one global order (by
 * lock key): a transaction that creates tasks of several tenants (a change of platform templates bound to
 * them) takes them all at once, before its first task lock, so that two such transactions cannot each
 * hold one tenant's lock and wait for the other's. Hash collisions only make tenants wait for each other.
 */
export async function lockTenantQuotas(db: Db, tenantIds: string[]): Promise<void> {
  if (tenantIds.length === 0) return;
  await db.$queryRawUnsafe(
    `SELECT count(pg_advisory_xact_lock($1::int, h)) FROM (
       SELECT DISTINCT hashtext(t) AS h FROM unnest($2::text[]) AS t ORDER BY 1
     ) locks`,
    QUOTA_LOCK_CLASS,
    tenantIds,
  );
}

/** An arbitrary constant naming the locks of the template-file sync of a tenant (TemplateSvc.syncFromFiles). */
const TEMPLATE_SYNC_LOCK_CLASS = 727_274_003;

/**
 * Serialises the template-file syncs of one tenant until the end of the transaction: instances started
 * together sync one after the other instead of inserting the same new template at once. Taken first, by
 * the sync only, before any lock of the date-field LOCK ORDER (DateFieldSvc.ts).
 */
export async function lockTemplateSync(db: Db, tenantId: string): Promise<void> {
  await db.$executeRaw`SELECT pg_advisory_xact_lock(${TEMPLATE_SYNC_LOCK_CLASS}::int, hashtext(${tenantId}))`;
}

/** Live tasks (they can still run), tasks running now, and tasks created in the last minute. */
export async function countTenantUsage(db: Db, tenantId: string): Promise<TenantUsage> {
  const [row] = await db.$queryRaw<{ live: number; running: number; recent: number }[]>`
    SELECT count(*) FILTER (WHERE status IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED'))::int AS live,
           count(*) FILTER (WHERE status = 'RUNNING')::int AS running,
           (SELECT count(*) FROM task_spec WHERE tenant_id = ${tenantId} AND created_at > now() - interval '1 minute')::int AS recent
      FROM task_state WHERE tenant_id = ${tenantId} AND status IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED')`;
  return { liveTasks: row!.live, runningTasks: row!.running, createdLastMinute: row!.recent };
}
