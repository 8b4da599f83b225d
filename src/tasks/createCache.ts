import { type SqlRunner, statement } from '../db/SqlPool.js';
import type { TaskTemplate } from '../generated/prisma/client.js';
import { NO_QUOTA, type TenantQuota } from '../tenants/TenantSvc.js';

/** What createTimerTask takes from a template: its id, whether it is enabled, and the defaults of a task. */
export type TemplateDefaults = Pick<
  TaskTemplate,
  | 'id'
  | 'fullName'
  | 'enabled'
  | 'funcName'
  | 'taskType'
  | 'argDict'
  | 'repeatType'
  | 'cronExpression'
  | 'intervalSeconds'
  | 'timezone'
  | 'timeoutMs'
  | 'memoryLimitMb'
  | 'priority'
  | 'queue'
  | 'maxAttempts'
  | 'misfirePolicy'
  | 'misfireToleranceMs'
  | 'overlapPolicy'
  | 'retryBackoffMs'
>;

/** A row as read, with its version: the row's `xmin`, which every update of the row changes. */
export interface Versioned<T> {
  value: T;
  version: string;
}

/** A tenant's quotas as read; `version` null when the tenant had no row (no quotas). */
export interface TenantRead {
  value: TenantQuota;
  version: string | null;
}

const READ_TEMPLATE = statement(
  'chronograph_read_template',
  `SELECT xmin::text AS version, id, full_name AS "fullName", enabled, func_name AS "funcName", task_type AS "taskType",
          arg_dict AS "argDict", repeat_type::text AS "repeatType", cron_expression AS "cronExpression",
          interval_seconds AS "intervalSeconds", timezone, timeout_ms AS "timeoutMs", memory_limit_mb AS "memoryLimitMb",
          priority, queue, max_attempts AS "maxAttempts", misfire_policy::text AS "misfirePolicy",
          misfire_tolerance_ms AS "misfireToleranceMs", overlap_policy::text AS "overlapPolicy", retry_backoff_ms AS "retryBackoffMs"
     FROM task_template WHERE tenant_id = $1 AND full_name = $2`,
);

/** The tenant's quotas; no row means none (the insert creates the row with the tenant's first tasks). */
const READ_TENANT = statement(
  'chronograph_read_tenant',
  `SELECT xmin::text AS version, max_live_tasks AS "maxLiveTasks", max_tasks_created_per_minute AS "maxTasksCreatedPerMinute",
          max_concurrent_runs AS "maxConcurrentRuns", max_arg_dict_bytes AS "maxArgDictBytes"
     FROM tenant WHERE id = $1`,
);

/** Entries kept per kind; the oldest goes first. */
const MAX_ENTRIES = 1000;

/**
 * Templates and tenant quotas as createTimerTasks last read them, per process. Nothing here is trusted
 * on its own: the insert that uses an entry checks, in the same statement, that the row's version is
 * still the one read (insertNewTasks' ReadVersions) and writes nothing otherwise; the caller then reads
 * again. A template or quota changed by any instance therefore applies from the next create on, as it
 * did when every create read them, and a create never acts on what it did not see.
 */
export class CreateCache {
  private readonly templates = new Map<string, Versioned<TemplateDefaults>>();
  private readonly tenants = new Map<string, TenantRead>();

  /**
   * The template named `fullName` of the tenant, or null; `fresh` reads it even when it is cached.
   * `read.cached` is set when the answer came from the cache.
   */
  async template(
    db: SqlRunner,
    tenantId: string,
    fullName: string,
    fresh: boolean,
    read: { cached: boolean },
  ): Promise<Versioned<TemplateDefaults> | null> {
    const key = `${tenantId}\u0000${fullName}`;
    const cached = fresh ? undefined : this.templates.get(key);
    if (cached) {
      read.cached = true;
      return cached;
    }
    const [row] = await db.query<TemplateDefaults & { version: string }>(READ_TEMPLATE, [tenantId, fullName]);
    if (!row) {
      this.templates.delete(key);
      return null;
    }
    const { version, ...value } = row;
    return remember(this.templates, key, { value, version });
  }

  /** The tenant's quotas (none while it has no row); `fresh` and `read` as for template. */
  async tenant(db: SqlRunner, tenantId: string, fresh: boolean, read: { cached: boolean }): Promise<TenantRead> {
    const cached = fresh ? undefined : this.tenants.get(tenantId);
    if (cached) {
      read.cached = true;
      return cached;
    }
    const [row] = await db.query<TenantQuota & { version: string }>(READ_TENANT, [tenantId]);
    if (!row) return remember(this.tenants, tenantId, { value: NO_QUOTA, version: null });
    const { version, ...value } = row;
    return remember(this.tenants, tenantId, { value, version });
  }

  /** Drops what is kept of the tenant (its row was just created: the next create reads it). */
  forgetTenant(tenantId: string): void {
    this.tenants.delete(tenantId);
  }
}

function remember<T>(map: Map<string, T>, key: string, value: T): T {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_ENTRIES) map.delete(map.keys().next().value!);
  return value;
}
