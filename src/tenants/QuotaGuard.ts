import { ChronographError } from '../errors.js';
import type { Prisma } from '../generated/prisma/client.js';
import { measureJson } from '../tasks/validate.js';
import { insertTenant, NO_QUOTA, quotaOf, type TenantQuota } from './TenantSvc.js';
import { countTenantUsage, lockTenantQuota, lockTenantQuotas } from './tenantSql.js';

/**
 * A tenant's quotas inside one transaction that creates tasks. Every path that creates live tasks —
 * createTimerTask(s), date-field hooks, low-code record writes and imports, reconcile, template changes,
 * template bindings — goes through it:
 *
 *   const guard = await QuotaGuard.of(tx, tenantId);
 *   guard.checkArgDict(argDict);          // maxArgDictBytes, before anything is written
 *   await guard.beforeCreate();           // takes the tenant's lock and counts (count quotas only)
 *   …insert…
 *   guard.created(inserted.length);       // QUOTA_EXCEEDED: the caller's transaction rolls back
 *
 * The count is taken once per transaction, after the tenant's advisory lock, so it includes every
 * other instance's committed creates and no create of that tenant can commit in between; the guard
 * then adds what this transaction inserts. Tasks this transaction cancels are not subtracted (that
 * only errs on the safe side). Tenants without count quotas take no lock and count nothing.
 */
export class QuotaGuard {
  private static readonly byTransaction = new WeakMap<object, Map<string, Promise<QuotaGuard>>>();
  private baseline?: Promise<{ live: number; recent: number }>;
  private added = 0;

  private constructor(
    private readonly tx: Prisma.TransactionClient,
    readonly tenantId: string,
    readonly quota: TenantQuota,
  ) {}

  /** The guard of `tenantId` in this transaction (one per transaction, so the count is taken once). */
  static of(tx: Prisma.TransactionClient, tenantId: string): Promise<QuotaGuard> {
    let guards = QuotaGuard.byTransaction.get(tx);
    if (!guards) QuotaGuard.byTransaction.set(tx, (guards = new Map()));
    let guard = guards.get(tenantId);
    if (!guard) {
      guard = (async () => {
        // Every tenant that gets tasks gets its row, so the scheduler's claim can read its quota.
        const row = (await tx.tenant.findUnique({ where: { id: tenantId } })) ?? (await insertTenant(tx, tenantId));
        return new QuotaGuard(tx, tenantId, row ? quotaOf(row) : NO_QUOTA);
      })();
      guards.set(tenantId, guard);
      guard.catch(() => guards.delete(tenantId));
    }
    return guard;
  }

  /** maxArgDictBytes: the size of the argDict as stored (UTF-8 JSON). */
  checkArgDict(argDict: unknown, field = 'argDict'): void {
    checkArgDictQuota(this.tenantId, this.quota, argDict, field);
  }

  /** Call before inserting: with a count quota, locks the tenant's creates and counts what it has. */
  async beforeCreate(): Promise<void> {
    if (!this.counted) return;
    this.baseline ??= (async () => {
      await lockTenantQuota(this.tx, this.tenantId);
      return this.count();
    })();
    await this.baseline;
  }

  /**
   * beforeCreate for several tenants at once: the quota locks of those that have count quotas and have
   * not taken theirs in this transaction, in one statement (lockTenantQuotas: one global order), then
   * their counts. For transactions that may create tasks of several tenants (changes of platform
   * templates bound to them): taken one by one as each create came, two of them took the same tenants'
   * locks in different orders and deadlocked (40P01). Take them before the first task lock.
   */
  static async beforeCreateAll(tx: Prisma.TransactionClient, tenantIds: string[]): Promise<void> {
    const guards: QuotaGuard[] = [];
    for (const tenantId of [...new Set(tenantIds)].sort()) guards.push(await QuotaGuard.of(tx, tenantId));
    const pending = guards.filter((g) => g.counted && !g.baseline);
    if (pending.length === 0) return;
    await lockTenantQuotas(
      tx,
      pending.map((g) => g.tenantId),
    );
    for (const guard of pending) {
      guard.baseline ??= guard.count();
      await guard.baseline;
    }
  }

  private get counted(): boolean {
    return this.quota.maxLiveTasks != null || this.quota.maxTasksCreatedPerMinute != null;
  }

  private async count(): Promise<{ live: number; recent: number }> {
    const usage = await countTenantUsage(this.tx, this.tenantId);
    return { live: usage.liveTasks, recent: usage.createdLastMinute };
  }

  /** Call after inserting `count` live tasks (beforeCreate first); throws QUOTA_EXCEEDED when over a limit. */
  async created(count: number): Promise<void> {
    if (count === 0 || !this.baseline) return;
    const { live, recent } = await this.baseline;
    this.added += count;
    const { maxLiveTasks, maxTasksCreatedPerMinute } = this.quota;
    if (maxLiveTasks != null && live + this.added > maxLiveTasks) {
      throw exceeded(this.tenantId, 'maxLiveTasks', maxLiveTasks, `it has ${live} live task(s) and this would add ${this.added}`);
    }
    if (maxTasksCreatedPerMinute != null && recent + this.added > maxTasksCreatedPerMinute) {
      throw exceeded(
        this.tenantId,
        'maxTasksCreatedPerMinute',
        maxTasksCreatedPerMinute,
        `it created ${recent} task(s) in the last minute and this would add ${this.added}`,
      );
    }
  }
}

/**
 * maxArgDictBytes of `quota` for one argDict (QuotaGuard.checkArgDict; createTimerTasks' single-statement
 * path checks with the quota it read, which its insert then confirms is current).
 */
export function checkArgDictQuota(tenantId: string, quota: TenantQuota, argDict: unknown, field = 'argDict'): void {
  const limit = quota.maxArgDictBytes;
  if (limit == null) return;
  // The one measure of stored JSON (it stops counting, returning Infinity, once past the limit).
  const bytes = measureJson(argDict ?? {}, field, 'INVALID_ARG_DICT', limit);
  if (bytes > limit) {
    const size = Number.isFinite(bytes) ? `of ${bytes} bytes` : `of more than ${limit} bytes`;
    throw exceeded(tenantId, 'maxArgDictBytes', limit, `an argDict ${size} is larger than the ${limit} bytes allowed`, {
      field,
      ...(Number.isFinite(bytes) && { bytes }),
    });
  }
}

function exceeded(tenantId: string, quota: string, limit: number, why: string, details: Record<string, unknown> = {}): ChronographError {
  return new ChronographError('QUOTA_EXCEEDED', `Tenant ${tenantId} is limited to ${quota} = ${limit}: ${why}; nothing was written`, {
    ...details,
    quota,
    limit,
    tenantId,
  });
}
