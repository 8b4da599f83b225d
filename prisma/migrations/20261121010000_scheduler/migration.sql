-- Scheduler: misfire, overlap and retry policies, cross-instance forced end, run logs.

CREATE TYPE "MisfirePolicy" AS ENUM ('RUN_ONCE', 'RUN_ALL', 'SKIP');
CREATE TYPE "OverlapPolicy" AS ENUM ('SKIP', 'BUFFER_ONE', 'ALLOW');

ALTER TABLE "task_template"
    ADD COLUMN "misfire_policy" "MisfirePolicy" NOT NULL DEFAULT 'RUN_ONCE',
    ADD COLUMN "misfire_tolerance_ms" INTEGER NOT NULL DEFAULT 60000,
    ADD COLUMN "overlap_policy" "OverlapPolicy" NOT NULL DEFAULT 'SKIP',
    ADD COLUMN "retry_backoff_ms" INTEGER NOT NULL DEFAULT 1000;

ALTER TABLE "task"
    ADD COLUMN "misfire_policy" "MisfirePolicy" NOT NULL DEFAULT 'RUN_ONCE',
    ADD COLUMN "misfire_tolerance_ms" INTEGER NOT NULL DEFAULT 60000,
    ADD COLUMN "overlap_policy" "OverlapPolicy" NOT NULL DEFAULT 'SKIP',
    ADD COLUMN "retry_backoff_ms" INTEGER NOT NULL DEFAULT 1000,
    ADD COLUMN "cancel_requested_at" TIMESTAMPTZ(3),
    ADD COLUMN "parent_id" UUID;

-- Expired leases are found through this index (status RUNNING is a small set of rows).
CREATE INDEX "task_lease_idx" ON "task"("locked_until") WHERE "status" = 'RUNNING';
-- Recurring tasks with overlap ALLOW are fired (one child task per occurrence) rather than run.
CREATE INDEX "task_fire_idx" ON "task"("next_run_at") WHERE "status" = 'SCHEDULED' AND "overlap_policy" = 'ALLOW' AND "repeat_type" IN ('CRON', 'INTERVAL');

CREATE TABLE "task_run_log" (
    "id" BIGSERIAL NOT NULL,
    "tenant_id" TEXT NOT NULL DEFAULT 'default',
    "task_id" UUID NOT NULL,
    "run_id" UUID NOT NULL,
    "level" TEXT NOT NULL,
    "message" TEXT NOT NULL,
    "data" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "task_run_log_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "task_run_log_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "task"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "task_run_log_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "task_run"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "task_run_log_run_id_id_idx" ON "task_run_log"("run_id", "id");
