-- The occurrence a task's retries belong to (Task.occurrenceAt in schema.prisma): a retry's next_run_at
-- is its backoff, and the schedule continued from it, so every retry moved an INTERVAL task's grid and
-- made a RUN_ALL task skip occurrences. NULL for every row here: a task already between retries keeps
-- the old behaviour for that occurrence. Adding a nullable column rewrites nothing.
ALTER TABLE "task" ADD COLUMN "occurrence_at" TIMESTAMPTZ(3);
