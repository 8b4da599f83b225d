-- Fair claims (issue 8): the claim walks the tenants that have waiting tasks (a loose index scan) and
-- takes each tenant's due tasks in its own priority order, so the waiting-task index leads with the
-- tenant. It replaces task_due_idx (priority DESC, next_run_at), which only a claim across all tenants
-- in one priority order used; the number of indexes a task update maintains stays the same.
DROP INDEX IF EXISTS "task_due_idx";
CREATE INDEX "task_tenant_due_idx" ON "task"("tenant_id", "priority" DESC, "next_run_at") WHERE "status" IN ('SCHEDULED', 'RETRYING');
