-- Chronograph initial schema. Written by hand in PostgreSQL dialect; kept in step with
-- prisma/schema.prisma by test/schemaMatchesMigrations.test.ts.

CREATE TYPE "RepeatType" AS ENUM ('ONCE', 'CRON', 'INTERVAL', 'DATE_FIELD');
CREATE TYPE "TaskStatus" AS ENUM ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED', 'SUCCEEDED', 'FAILED', 'FORCED_END', 'CANCELLED');
CREATE TYPE "TaskSource" AS ENUM ('API', 'DATE_FIELD', 'TEMPLATE');
CREATE TYPE "TaskEventType" AS ENUM ('CREATED', 'STATUS_CHANGED', 'RESCHEDULED', 'RECOVERED');
CREATE TYPE "TemplateOrigin" AS ENUM ('API', 'FILE');
CREATE TYPE "RunStatus" AS ENUM ('RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED', 'ABANDONED');

CREATE TABLE "task_template" (
    "id" UUID NOT NULL,
    "tenant_id" TEXT NOT NULL DEFAULT 'default',
    "full_name" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "description" TEXT,
    "task_type" TEXT NOT NULL DEFAULT 'tasks.NormalType',
    "repeat_type" "RepeatType" NOT NULL DEFAULT 'ONCE',
    "func_name" TEXT,
    "arg_dict" JSONB NOT NULL DEFAULT '{}',
    "cron_expression" TEXT,
    "interval_seconds" INTEGER,
    "timezone" TEXT NOT NULL DEFAULT 'UTC',
    "max_attempts" INTEGER NOT NULL DEFAULT 1,
    "timeout_ms" INTEGER,
    "priority" INTEGER NOT NULL DEFAULT 0,
    "queue" TEXT NOT NULL DEFAULT 'default',
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "origin" "TemplateOrigin" NOT NULL DEFAULT 'API',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "task_template_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "task_template_tenant_id_full_name_key" ON "task_template"("tenant_id", "full_name");

CREATE TABLE "task" (
    "id" UUID NOT NULL,
    "tenant_id" TEXT NOT NULL DEFAULT 'default',
    "template_id" UUID,
    "full_name" TEXT NOT NULL,
    "task_type" TEXT NOT NULL,
    "func_name" TEXT NOT NULL,
    "arg_dict" JSONB NOT NULL DEFAULT '{}',
    "repeat_type" "RepeatType" NOT NULL DEFAULT 'ONCE',
    "cron_expression" TEXT,
    "interval_seconds" INTEGER,
    "timezone" TEXT NOT NULL DEFAULT 'UTC',
    "start_time" TIMESTAMPTZ(3) NOT NULL,
    "end_time" TIMESTAMPTZ(3),
    "max_runs" INTEGER,
    "run_count" INTEGER NOT NULL DEFAULT 0,
    "next_run_at" TIMESTAMPTZ(3),
    "status" "TaskStatus" NOT NULL DEFAULT 'SCHEDULED',
    "priority" INTEGER NOT NULL DEFAULT 0,
    "queue" TEXT NOT NULL DEFAULT 'default',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "max_attempts" INTEGER NOT NULL DEFAULT 1,
    "timeout_ms" INTEGER,
    "unique_key" TEXT,
    "source" "TaskSource" NOT NULL DEFAULT 'API',
    "source_model" TEXT,
    "source_row_id" TEXT,
    "source_field" TEXT,
    "locked_by" TEXT,
    "locked_until" TIMESTAMPTZ(3),
    "last_error" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "task_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "task_template_id_fkey" FOREIGN KEY ("template_id") REFERENCES "task_template"("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE INDEX "task_tenant_id_status_idx" ON "task"("tenant_id", "status");
CREATE INDEX "task_tenant_id_full_name_idx" ON "task"("tenant_id", "full_name");
CREATE INDEX "task_tenant_id_func_name_idx" ON "task"("tenant_id", "func_name");
CREATE INDEX "task_tenant_id_created_at_idx" ON "task"("tenant_id", "created_at");
-- Not expressible in schema.prisma (partial indexes), so they live only here:
-- the scheduler's claim query walks runnable rows in priority then due-time order, and its
-- "when is the next task due" query reads the smallest next_run_at. Both only ever look at runnable
-- rows, so finished history does not bloat them.
CREATE INDEX "task_due_idx" ON "task"("priority" DESC, "next_run_at") WHERE "status" IN ('SCHEDULED', 'RETRYING');
CREATE INDEX "task_next_run_at_idx" ON "task"("next_run_at") WHERE "status" IN ('SCHEDULED', 'RETRYING');
-- At most one live task per unique key and tenant.
CREATE UNIQUE INDEX "task_live_unique_key" ON "task"("tenant_id", "unique_key") WHERE "unique_key" IS NOT NULL AND "status" IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED');

CREATE TABLE "task_run" (
    "id" UUID NOT NULL,
    "tenant_id" TEXT NOT NULL DEFAULT 'default',
    "task_id" UUID NOT NULL,
    "attempt" INTEGER NOT NULL,
    "status" "RunStatus" NOT NULL DEFAULT 'RUNNING',
    "worker_id" TEXT NOT NULL,
    "recovered" BOOLEAN NOT NULL DEFAULT false,
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    "duration_ms" INTEGER,
    "result" JSONB,
    "error" TEXT,
    "error_stack" TEXT,
    CONSTRAINT "task_run_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "task_run_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "task"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "task_run_task_id_attempt_idx" ON "task_run"("task_id", "attempt");

CREATE TABLE "task_event" (
    "id" BIGSERIAL NOT NULL,
    "tenant_id" TEXT NOT NULL DEFAULT 'default',
    "task_id" UUID NOT NULL,
    "run_id" UUID,
    "type" "TaskEventType" NOT NULL DEFAULT 'STATUS_CHANGED',
    "from_status" "TaskStatus",
    "to_status" "TaskStatus" NOT NULL,
    "next_run_at" TIMESTAMPTZ(3),
    "message" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "task_event_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "task_event_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "task"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "task_event_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "task_run"("id") ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE INDEX "task_event_task_id_id_idx" ON "task_event"("task_id", "id");
CREATE INDEX "task_event_tenant_id_id_idx" ON "task_event"("tenant_id", "id");
