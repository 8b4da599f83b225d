-- Date-field tasks (the model-event layer) and low-code models.

-- A DATE_FIELD template follows one date field of one model. The offset, time of day, time-zone field,
-- condition and end live in date_rule (validated by src/dateFields/dateRule.ts); model and field are
-- columns so that a hook finds the templates of its model through an index.
ALTER TABLE "task_template"
    ADD COLUMN "source_model" TEXT,
    ADD COLUMN "source_field" TEXT,
    ADD COLUMN "date_rule" JSONB;
CREATE INDEX "task_template_tenant_id_source_model_idx" ON "task_template"("tenant_id", "source_model");

-- Not expressible in schema.prisma (partial indexes), so they live only here.
-- At most one live task per (template, record): concurrent hooks for one record cannot both create one.
-- Inserts use ON CONFLICT DO NOTHING, so the loser waits for the winner's commit and then reschedules
-- the winner's task instead of failing.
CREATE UNIQUE INDEX "task_date_field_live_key" ON "task"("tenant_id", "template_id", "source_row_id")
    WHERE "source" = 'DATE_FIELD' AND "status" IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED');
-- A record's latest task per template, live or finished (a date that did not change is a no-op even
-- after its task has run), and a record's tasks when it is read.
CREATE INDEX "task_date_field_history_idx" ON "task"("tenant_id", "source_model", "source_row_id", "created_at")
    WHERE "source" = 'DATE_FIELD';

-- Low-code models: a name and typed fields ([{name, type, required, title}], see src/dateFields/modelFields.ts).
CREATE TABLE "model_definition" (
    "id" UUID NOT NULL,
    "tenant_id" TEXT NOT NULL DEFAULT 'default',
    "name" TEXT NOT NULL,
    "title" TEXT,
    "fields" JSONB NOT NULL DEFAULT '[]',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "model_definition_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "model_definition_tenant_id_name_key" ON "model_definition"("tenant_id", "name");

-- Their records, one JSONB document each.
CREATE TABLE "model_record" (
    "id" UUID NOT NULL,
    "tenant_id" TEXT NOT NULL DEFAULT 'default',
    "model" TEXT NOT NULL,
    "data" JSONB NOT NULL DEFAULT '{}',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "model_record_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "model_record_tenant_id_model_fkey" FOREIGN KEY ("tenant_id", "model") REFERENCES "model_definition"("tenant_id", "name") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "model_record_tenant_id_model_id_idx" ON "model_record"("tenant_id", "model", "id");

-- The last version of each record of an external model (one an app keeps elsewhere and reports through
-- saveDateFieldTask or the Prisma extension) that has date-field templates: what template changes and
-- reconcileDateFieldTasks recompute its tasks from.
CREATE TABLE "date_field_source" (
    "tenant_id" TEXT NOT NULL DEFAULT 'default',
    "model" TEXT NOT NULL,
    "row_id" TEXT NOT NULL,
    "data" JSONB NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "date_field_source_pkey" PRIMARY KEY ("tenant_id", "model", "row_id")
);
