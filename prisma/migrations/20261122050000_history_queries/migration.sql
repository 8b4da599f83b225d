-- History you can query (issue 13): runs page by (tenant, start time, id), the order of the taskRuns
-- connection and its cursor; run logs of a whole tenant page by id.
CREATE UNIQUE INDEX "task_run_tenant_id_started_at_id_key" ON "task_run"("tenant_id", "started_at", "id");
CREATE INDEX "task_run_log_tenant_id_id_idx" ON "task_run_log"("tenant_id", "id");
CREATE INDEX "task_run_log_task_id_id_idx" ON "task_run_log"("task_id", "id");
-- Deleting a run (pruning) sets task_event.run_id to null (ON DELETE SET NULL): without an index each
-- deleted run would scan every event.
CREATE INDEX "task_event_run_id_idx" ON "task_event"("run_id");
