-- An occurrence of a recurring date-field task whose overlap policy is ALLOW is a child task (parent_id
-- set) that carries its parent's source, template and record, and is live while it waits and runs. It is
-- not the record's task: the one live task per (template, record) is its parent. Counting children here
-- made every occurrence collide with its live parent (23505), so such a task never fired, and the
-- scheduler's batch of ALLOW tasks it stood in failed with it each time.
DROP INDEX IF EXISTS "task_date_field_live_key";
CREATE UNIQUE INDEX "task_date_field_live_key" ON "task"("tenant_id", "template_id", "source_row_id")
    WHERE "source" = 'DATE_FIELD' AND "parent_id" IS NULL AND "status" IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED');
