-- One index on (status, tenant_id) instead of two: task_tenant_id_status_idx (tenant_id, status) and the
-- running tasks' partial task_running_idx (tenant_id) WHERE status = 'RUNNING'. A status change is never
-- a HOT update, so every claim wrote an entry in both (and every completion in the first): one index
-- fewer is about 64 bytes of WAL and one index insertion less per run. With the status first, the one
-- index serves what each served:
-- - the running tasks, all of them (recovery of expired leases, the next lease to expire, the pruner)
--   or a tenant's (maxConcurrentRuns, quotas): a range of `status = 'RUNNING'`;
-- - a tenant's tasks by status (taskStats, countTenantUsage, the task list's status filter): one range
--   per status asked, `status IN (...) AND tenant_id = $1` (TaskSvc.stats names every status so).
CREATE INDEX "task_status_tenant_id_idx" ON "task"("status", "tenant_id");
DROP INDEX IF EXISTS "task_tenant_id_status_idx";
DROP INDEX IF EXISTS "task_running_idx";
