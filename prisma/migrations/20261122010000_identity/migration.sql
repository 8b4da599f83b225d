-- Identity and tenancy: API keys, tenants with their quotas, platform templates bound to tenants, and
-- the actor (who caused it) of every task event.

CREATE TYPE "Role" AS ENUM ('ADMIN', 'EDITOR', 'VIEWER');

-- API keys. Only a SHA-256 hash of the key is kept: the key is shown once, at creation. Keys are 256
-- random bits, so a fast hash is enough (there is nothing to brute-force, unlike a password).
CREATE TABLE "api_key" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "role" "Role" NOT NULL,
    "secret_hash" TEXT NOT NULL,
    "created_by" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3),
    "last_used_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),
    CONSTRAINT "api_key_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "api_key_tenant_id_idx" ON "api_key"("tenant_id");

-- One row per tenant; a quota column that is NULL means unlimited. The scheduler's claim reads
-- max_concurrent_runs; creates read the others (src/tenants/QuotaGuard.ts).
CREATE TABLE "tenant" (
    "id" TEXT NOT NULL,
    "max_live_tasks" INTEGER,
    "max_tasks_created_per_minute" INTEGER,
    "max_concurrent_runs" INTEGER,
    "max_arg_dict_bytes" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "tenant_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "tenant_quotas_not_negative" CHECK (
        "max_live_tasks" >= 0 AND "max_tasks_created_per_minute" >= 0 AND "max_concurrent_runs" >= 0 AND "max_arg_dict_bytes" >= 0)
);
-- Every tenant that already has data gets its row.
INSERT INTO "tenant" ("id", "updated_at")
SELECT "tenant_id", CURRENT_TIMESTAMP FROM "task"
UNION SELECT "tenant_id", CURRENT_TIMESTAMP FROM "task_template"
UNION SELECT "tenant_id", CURRENT_TIMESTAMP FROM "model_definition";

-- A template of the platform tenant bound to a tenant: that tenant runs it on its own schedule with its
-- own arguments. NULL override columns inherit the template's value.
CREATE TABLE "template_binding" (
    "id" UUID NOT NULL,
    "template_id" UUID NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "cron_expression" TEXT,
    "interval_seconds" INTEGER,
    "timezone" TEXT,
    "arg_dict" JSONB,
    "func_name" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "template_binding_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "template_binding_template_id_fkey" FOREIGN KEY ("template_id") REFERENCES "task_template"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "template_binding_template_id_tenant_id_key" ON "template_binding"("template_id", "tenant_id");

-- The binding a TEMPLATE task runs for (kept in its history after unbinding), and who asked for the
-- forced end of a running task: the instance that ends it writes the event with that actor.
ALTER TABLE "task"
    ADD COLUMN "binding_id" UUID,
    ADD COLUMN "cancel_requested_by" TEXT,
    ADD CONSTRAINT "task_binding_id_fkey" FOREIGN KEY ("binding_id") REFERENCES "template_binding"("id") ON DELETE SET NULL ON UPDATE CASCADE;
-- Not expressible in schema.prisma (partial indexes). Few tasks are bound, so both stay small.
-- At most one live task per binding, whoever creates it concurrently.
CREATE UNIQUE INDEX "task_binding_live_key" ON "task"("binding_id")
    WHERE "binding_id" IS NOT NULL AND "status" IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED');
-- A binding's tasks (and the foreign key's ON DELETE SET NULL) without scanning every task.
CREATE INDEX "task_binding_idx" ON "task"("binding_id") WHERE "binding_id" IS NOT NULL;

-- Who caused the event: "key:<api key id>", "jwt:<subject>", "anonymous", "task:<id>" (a handler's
-- TaskSvc); NULL when the scheduler did it on its own.
ALTER TABLE "task_event" ADD COLUMN "actor" TEXT;
