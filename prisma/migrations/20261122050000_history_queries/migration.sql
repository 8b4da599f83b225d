-- History you can query (issue 13): runs page by (tenant, start time, id), the order of the taskRuns
-- connection and its cursor; run logs of a whole tenant page by id.
CREATE UNIQUE INDEX "task_run_tenant_id_started_at_id_key" ON "task_run"("tenant_id", "started_at", "id");
CREATE INDEX "task_run_log_tenant_id_id_idx" ON "task_run_log"("tenant_id", "id");
