-- chronograph: breaking
--
-- A task's scheduling state moves to a narrow table of its own, "task_state", and "task" becomes a view
-- joining it to the rest of the task ("task_spec": name, handler, arguments, schedule, limits,
-- provenance, creation time), which a run never writes.
--
-- Why (issue 12, goal 4: at most 1.5 KB of WAL per processed task): a run changes a task's status twice
-- (claimed, then ended). A status change is never a HOT update, since indexes name the status, so each
-- wrote a new version of the whole wide task row, with an entry in each of its indexes. Now it writes a
-- version of a row of about 150 bytes, on a table at fillfactor 50: both of a run's new versions usually
-- stay on their page, and PostgreSQL then logs neither a row lock nor the unchanged start and end of the
-- row. `npm run bench -- layouts current state-wide-ff50` measured 2.19 against 1.88 KB per task with
-- runs still kept as task_run rows, and PGlite's drain of the same statements runs faster
-- (complete-wide-ff50 in the same bench).
--
-- "task_state" holds what a run reads or writes (the claim's filters, the lease, attempts, the outcome)
-- and the columns of every index that names the status (the due, next-run, fire and live-key indexes,
-- the status counts). The old "task_spec" (a copy of three columns, kept by triggers) is dropped: "task"
-- itself, renamed, is now the table a run never writes, with those indexes. `source` and
-- `source_row_id` are in both tables (they never change once a task exists): "task_spec" for the
-- date-field history index, "task_state" for the date-field live key.
--
-- The view "task" keeps its readers working: Prisma's Task model and the API's queries. Writes through
-- it (INSERT, UPDATE, DELETE) go to the tables through INSTEAD OF triggers below. The scheduler's
-- statements, bulk inserts and the statements that lock tasks name the tables (src/scheduler/sql.ts,
-- src/tasks/bulkInsert.ts, src/tasks/taskTables.ts).
--
-- Breaking: an instance of an earlier version writes "task" as a table; it stops when this is applied
-- (src/db/SchemaWatch.ts). Everything here takes its locks first, strongest first.
LOCK TABLE "task", "task_spec", "task_run", "task_event" IN ACCESS EXCLUSIVE MODE;

DROP TRIGGER IF EXISTS "task_spec_inserted" ON "task";
DROP TRIGGER IF EXISTS "task_spec_updated" ON "task";
DROP TRIGGER IF EXISTS "task_spec_truncated" ON "task";
DROP TRIGGER IF EXISTS "task_deleted" ON "task";
DROP FUNCTION IF EXISTS "chronograph_task_spec_inserted"();
DROP FUNCTION IF EXISTS "chronograph_task_spec_updated"();
DROP FUNCTION IF EXISTS "chronograph_task_spec_truncated"();
DROP FUNCTION IF EXISTS "chronograph_task_deleted"();
DROP TABLE "task_spec";

ALTER TABLE "task" RENAME TO "task_spec";
ALTER TABLE "task_spec" RENAME CONSTRAINT "task_pkey" TO "task_spec_pkey";

-- The columns a run never changes come first, those it changes after them, together: PostgreSQL logs
-- an update that stays on its page without the row's unchanged start and end, so a run's two updates
-- log little more than the columns they change.
CREATE TABLE "task_state" (
    "task_id" UUID NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "template_id" UUID,
    "source" "TaskSource" NOT NULL DEFAULT 'API',
    "source_row_id" TEXT,
    "parent_id" UUID,
    "binding_id" UUID,
    "unique_key" TEXT,
    "repeat_type" "RepeatType" NOT NULL DEFAULT 'ONCE',
    "overlap_policy" "OverlapPolicy" NOT NULL DEFAULT 'SKIP',
    "misfire_policy" "MisfirePolicy" NOT NULL DEFAULT 'RUN_ONCE',
    "misfire_tolerance_ms" INTEGER NOT NULL DEFAULT 60000,
    "retry_backoff_ms" INTEGER NOT NULL DEFAULT 1000,
    "max_attempts" INTEGER NOT NULL DEFAULT 1,
    "queue" TEXT NOT NULL DEFAULT 'default',
    "priority" INTEGER NOT NULL DEFAULT 0,
    "revision" INTEGER NOT NULL DEFAULT 0,
    "status" "TaskStatus" NOT NULL DEFAULT 'SCHEDULED',
    "next_run_at" TIMESTAMPTZ(3),
    "occurrence_at" TIMESTAMPTZ(3),
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "run_count" INTEGER NOT NULL DEFAULT 0,
    "last_run_abandoned" BOOLEAN NOT NULL DEFAULT false,
    "locked_by" TEXT,
    "locked_until" TIMESTAMPTZ(3),
    "locked_run_id" UUID,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    "last_error" TEXT,
    CONSTRAINT "task_state_pkey" PRIMARY KEY ("task_id"),
    CONSTRAINT "task_state_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "task_spec"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "task_state_template_id_fkey" FOREIGN KEY ("template_id") REFERENCES "task_template"("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "task_state_binding_id_fkey" FOREIGN KEY ("binding_id") REFERENCES "template_binding"("id") ON DELETE SET NULL ON UPDATE CASCADE
) WITH (fillfactor = 50);

INSERT INTO "task_state" ("task_id", "tenant_id", "template_id", "source", "source_row_id", "parent_id", "binding_id", "unique_key",
    "repeat_type", "overlap_policy", "misfire_policy", "misfire_tolerance_ms", "retry_backoff_ms", "max_attempts", "queue",
    "priority", "revision", "status", "next_run_at", "occurrence_at", "attempts", "run_count", "last_run_abandoned", "locked_by",
    "locked_until", "locked_run_id", "updated_at", "last_error")
SELECT "id", "tenant_id", "template_id", "source", "source_row_id", "parent_id", "binding_id", "unique_key",
    "repeat_type", "overlap_policy", "misfire_policy", "misfire_tolerance_ms", "retry_backoff_ms", "max_attempts", "queue",
    "priority", "revision", "status", "next_run_at", "occurrence_at", "attempts", "run_count", "last_run_abandoned", "locked_by",
    "locked_until", "locked_run_id", "updated_at", "last_error"
  FROM "task_spec";

-- Dropping the columns drops the indexes and keys that read them (every index naming the status, the
-- binding and template keys). The rows keep the dropped columns' bytes until they are rewritten.
ALTER TABLE "task_spec"
  DROP COLUMN "status", DROP COLUMN "priority", DROP COLUMN "queue", DROP COLUMN "next_run_at", DROP COLUMN "occurrence_at",
  DROP COLUMN "attempts", DROP COLUMN "max_attempts", DROP COLUMN "run_count", DROP COLUMN "last_error",
  DROP COLUMN "last_run_abandoned", DROP COLUMN "revision", DROP COLUMN "locked_by", DROP COLUMN "locked_until",
  DROP COLUMN "locked_run_id", DROP COLUMN "misfire_policy", DROP COLUMN "misfire_tolerance_ms", DROP COLUMN "overlap_policy",
  DROP COLUMN "repeat_type", DROP COLUMN "retry_backoff_ms", DROP COLUMN "unique_key", DROP COLUMN "template_id",
  DROP COLUMN "parent_id", DROP COLUMN "binding_id", DROP COLUMN "updated_at";

-- What lists, quotas and the pruner look tasks up by, written once per task.
CREATE INDEX "task_spec_tenant_id_full_name_idx" ON "task_spec"("tenant_id", "full_name");
CREATE INDEX "task_spec_tenant_id_func_name_idx" ON "task_spec"("tenant_id", "func_name");
CREATE INDEX "task_spec_tenant_id_created_at_idx" ON "task_spec"("tenant_id", "created_at");

-- The state's indexes, as they were on "task" (migrations 20261121010000_scheduler to 20261206000000),
-- under the same names.
CREATE INDEX "task_status_tenant_id_idx" ON "task_state"("status", "tenant_id");
CREATE INDEX "task_tenant_due_idx" ON "task_state"("tenant_id", "priority" DESC, "next_run_at")
  WHERE "status" IN ('SCHEDULED', 'RETRYING');
CREATE INDEX "task_next_run_at_idx" ON "task_state"("next_run_at") WHERE "status" IN ('SCHEDULED', 'RETRYING');
CREATE INDEX "task_fire_idx" ON "task_state"("next_run_at")
  WHERE "status" = 'SCHEDULED' AND "overlap_policy" = 'ALLOW' AND "repeat_type" IN ('CRON', 'INTERVAL');
CREATE UNIQUE INDEX "task_live_unique_key" ON "task_state"("tenant_id", "unique_key")
  WHERE "unique_key" IS NOT NULL AND "status" IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED');
CREATE UNIQUE INDEX "task_date_field_live_key" ON "task_state"("tenant_id", "template_id", "source_row_id")
  WHERE "source" = 'DATE_FIELD' AND "parent_id" IS NULL AND "status" IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED');
CREATE UNIQUE INDEX "task_binding_live_key" ON "task_state"("binding_id")
  WHERE "binding_id" IS NOT NULL AND "status" IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED');
CREATE INDEX "task_binding_idx" ON "task_state"("binding_id") WHERE "binding_id" IS NOT NULL;

-- A task is its two rows. The view reads task_state first and LEFT JOINs task_spec: every state row has
-- its spec row (its key), so the rows are those of an inner join, but a query that reads only state
-- columns (the counts by status, the look-ups by status and tenant) reads task_state alone, since
-- PostgreSQL leaves out a left join to a unique key whose columns nothing reads. A condition on a spec
-- column makes it an inner join, and the equal tenant and source in the join let task_spec's
-- tenant-first indexes (and the date-field history index) serve it. FOR UPDATE cannot lock this view (the
-- nullable side of an outer join): a statement that locks tasks locks their task_state rows, which is
-- what every writer of a task updates first.
CREATE VIEW "task" AS
SELECT s."task_id" AS "id", s."tenant_id", s."template_id", p."full_name", p."task_type", p."func_name", p."arg_dict",
       s."repeat_type", p."cron_expression", p."interval_seconds", p."timezone", p."start_time", p."end_time", p."max_runs",
       s."run_count", s."next_run_at", s."occurrence_at", s."status", s."priority", s."queue", s."attempts", s."max_attempts",
       p."timeout_ms", s."unique_key", s."source", p."source_model", p."source_row_id", p."source_field", s."locked_by",
       s."locked_until", s."last_error", s."misfire_policy", s."misfire_tolerance_ms", s."overlap_policy", s."retry_backoff_ms",
       s."locked_run_id", s."last_run_abandoned", s."revision", p."memory_limit_mb", s."parent_id", s."binding_id",
       p."created_at", s."updated_at"
  FROM "task_state" s
  LEFT JOIN "task_spec" p ON p."id" = s."task_id" AND p."tenant_id" = s."tenant_id" AND p."source" = s."source";

-- An INSERT through the view that leaves a column out gets the table's default, as before.
ALTER VIEW "task" ALTER COLUMN "tenant_id" SET DEFAULT 'default';
ALTER VIEW "task" ALTER COLUMN "arg_dict" SET DEFAULT '{}';
ALTER VIEW "task" ALTER COLUMN "repeat_type" SET DEFAULT 'ONCE';
ALTER VIEW "task" ALTER COLUMN "timezone" SET DEFAULT 'UTC';
ALTER VIEW "task" ALTER COLUMN "run_count" SET DEFAULT 0;
ALTER VIEW "task" ALTER COLUMN "status" SET DEFAULT 'SCHEDULED';
ALTER VIEW "task" ALTER COLUMN "priority" SET DEFAULT 0;
ALTER VIEW "task" ALTER COLUMN "queue" SET DEFAULT 'default';
ALTER VIEW "task" ALTER COLUMN "attempts" SET DEFAULT 0;
ALTER VIEW "task" ALTER COLUMN "max_attempts" SET DEFAULT 1;
ALTER VIEW "task" ALTER COLUMN "source" SET DEFAULT 'API';
ALTER VIEW "task" ALTER COLUMN "misfire_policy" SET DEFAULT 'RUN_ONCE';
ALTER VIEW "task" ALTER COLUMN "misfire_tolerance_ms" SET DEFAULT 60000;
ALTER VIEW "task" ALTER COLUMN "overlap_policy" SET DEFAULT 'SKIP';
ALTER VIEW "task" ALTER COLUMN "retry_backoff_ms" SET DEFAULT 1000;
ALTER VIEW "task" ALTER COLUMN "last_run_abandoned" SET DEFAULT false;
ALTER VIEW "task" ALTER COLUMN "revision" SET DEFAULT 0;
ALTER VIEW "task" ALTER COLUMN "created_at" SET DEFAULT CURRENT_TIMESTAMP;

CREATE FUNCTION "chronograph_task_insert"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "task_spec" ("id", "tenant_id", "full_name", "task_type", "func_name", "arg_dict", "cron_expression",
      "interval_seconds", "timezone", "start_time", "end_time", "max_runs", "timeout_ms", "source", "source_model",
      "source_row_id", "source_field", "memory_limit_mb", "created_at")
  VALUES (NEW."id", NEW."tenant_id", NEW."full_name", NEW."task_type", NEW."func_name", NEW."arg_dict", NEW."cron_expression",
      NEW."interval_seconds", NEW."timezone", NEW."start_time", NEW."end_time", NEW."max_runs", NEW."timeout_ms", NEW."source",
      NEW."source_model", NEW."source_row_id", NEW."source_field", NEW."memory_limit_mb", NEW."created_at");
  INSERT INTO "task_state" ("task_id", "tenant_id", "status", "priority", "queue", "next_run_at", "occurrence_at", "attempts",
      "max_attempts", "run_count", "last_error", "last_run_abandoned", "revision", "locked_by", "locked_until", "locked_run_id",
      "misfire_policy", "misfire_tolerance_ms", "overlap_policy", "repeat_type", "retry_backoff_ms", "unique_key", "template_id",
      "source", "source_row_id", "parent_id", "binding_id", "updated_at")
  VALUES (NEW."id", NEW."tenant_id", NEW."status", NEW."priority", NEW."queue", NEW."next_run_at", NEW."occurrence_at",
      NEW."attempts", NEW."max_attempts", NEW."run_count", NEW."last_error", NEW."last_run_abandoned", NEW."revision",
      NEW."locked_by", NEW."locked_until", NEW."locked_run_id", NEW."misfire_policy", NEW."misfire_tolerance_ms",
      NEW."overlap_policy", NEW."repeat_type", NEW."retry_backoff_ms", NEW."unique_key", NEW."template_id", NEW."source",
      NEW."source_row_id", NEW."parent_id", NEW."binding_id", NEW."updated_at");
  RETURN NEW;
END $$;
CREATE TRIGGER "task_insert" INSTEAD OF INSERT ON "task" FOR EACH ROW EXECUTE FUNCTION "chronograph_task_insert"();

-- An UPDATE through the view (Prisma's updates of Task, src/tasks/statusMachine.ts) changes a task only
-- while its status and revision are still those the statement read: the view's rows are read without
-- locks, so the state row is updated on that condition, which PostgreSQL checks again after waiting
-- for a concurrent writer. A task changed meanwhile is left out of the statement's rows (its result and
-- RETURNING), as a row that no longer matched the statement's WHERE would be. Only the columns the
-- statement changed are written: a heartbeat that extended the lease meanwhile is kept.
CREATE FUNCTION "chronograph_task_update"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW."id" IS DISTINCT FROM OLD."id" OR NEW."tenant_id" IS DISTINCT FROM OLD."tenant_id" THEN
    RAISE EXCEPTION 'a task''s id and tenant do not change' USING ERRCODE = 'feature_not_supported';
  END IF;
  UPDATE "task_state" s SET
    "status" = CASE WHEN NEW."status" IS DISTINCT FROM OLD."status" THEN NEW."status" ELSE s."status" END,
    "priority" = CASE WHEN NEW."priority" IS DISTINCT FROM OLD."priority" THEN NEW."priority" ELSE s."priority" END,
    "queue" = CASE WHEN NEW."queue" IS DISTINCT FROM OLD."queue" THEN NEW."queue" ELSE s."queue" END,
    "next_run_at" = CASE WHEN NEW."next_run_at" IS DISTINCT FROM OLD."next_run_at" THEN NEW."next_run_at" ELSE s."next_run_at" END,
    "occurrence_at" = CASE WHEN NEW."occurrence_at" IS DISTINCT FROM OLD."occurrence_at" THEN NEW."occurrence_at" ELSE s."occurrence_at" END,
    "attempts" = CASE WHEN NEW."attempts" IS DISTINCT FROM OLD."attempts" THEN NEW."attempts" ELSE s."attempts" END,
    "max_attempts" = CASE WHEN NEW."max_attempts" IS DISTINCT FROM OLD."max_attempts" THEN NEW."max_attempts" ELSE s."max_attempts" END,
    "run_count" = CASE WHEN NEW."run_count" IS DISTINCT FROM OLD."run_count" THEN NEW."run_count" ELSE s."run_count" END,
    "last_error" = CASE WHEN NEW."last_error" IS DISTINCT FROM OLD."last_error" THEN NEW."last_error" ELSE s."last_error" END,
    "last_run_abandoned" = CASE WHEN NEW."last_run_abandoned" IS DISTINCT FROM OLD."last_run_abandoned" THEN NEW."last_run_abandoned" ELSE s."last_run_abandoned" END,
    "revision" = CASE WHEN NEW."revision" IS DISTINCT FROM OLD."revision" THEN NEW."revision" ELSE s."revision" END,
    "locked_by" = CASE WHEN NEW."locked_by" IS DISTINCT FROM OLD."locked_by" THEN NEW."locked_by" ELSE s."locked_by" END,
    "locked_until" = CASE WHEN NEW."locked_until" IS DISTINCT FROM OLD."locked_until" THEN NEW."locked_until" ELSE s."locked_until" END,
    "locked_run_id" = CASE WHEN NEW."locked_run_id" IS DISTINCT FROM OLD."locked_run_id" THEN NEW."locked_run_id" ELSE s."locked_run_id" END,
    "misfire_policy" = CASE WHEN NEW."misfire_policy" IS DISTINCT FROM OLD."misfire_policy" THEN NEW."misfire_policy" ELSE s."misfire_policy" END,
    "misfire_tolerance_ms" = CASE WHEN NEW."misfire_tolerance_ms" IS DISTINCT FROM OLD."misfire_tolerance_ms" THEN NEW."misfire_tolerance_ms" ELSE s."misfire_tolerance_ms" END,
    "overlap_policy" = CASE WHEN NEW."overlap_policy" IS DISTINCT FROM OLD."overlap_policy" THEN NEW."overlap_policy" ELSE s."overlap_policy" END,
    "repeat_type" = CASE WHEN NEW."repeat_type" IS DISTINCT FROM OLD."repeat_type" THEN NEW."repeat_type" ELSE s."repeat_type" END,
    "retry_backoff_ms" = CASE WHEN NEW."retry_backoff_ms" IS DISTINCT FROM OLD."retry_backoff_ms" THEN NEW."retry_backoff_ms" ELSE s."retry_backoff_ms" END,
    "unique_key" = CASE WHEN NEW."unique_key" IS DISTINCT FROM OLD."unique_key" THEN NEW."unique_key" ELSE s."unique_key" END,
    "template_id" = CASE WHEN NEW."template_id" IS DISTINCT FROM OLD."template_id" THEN NEW."template_id" ELSE s."template_id" END,
    "source" = CASE WHEN NEW."source" IS DISTINCT FROM OLD."source" THEN NEW."source" ELSE s."source" END,
    "source_row_id" = CASE WHEN NEW."source_row_id" IS DISTINCT FROM OLD."source_row_id" THEN NEW."source_row_id" ELSE s."source_row_id" END,
    "parent_id" = CASE WHEN NEW."parent_id" IS DISTINCT FROM OLD."parent_id" THEN NEW."parent_id" ELSE s."parent_id" END,
    "binding_id" = CASE WHEN NEW."binding_id" IS DISTINCT FROM OLD."binding_id" THEN NEW."binding_id" ELSE s."binding_id" END,
    "updated_at" = CASE WHEN NEW."updated_at" IS DISTINCT FROM OLD."updated_at" THEN NEW."updated_at" ELSE s."updated_at" END
   WHERE s."task_id" = OLD."id" AND s."status" = OLD."status" AND s."revision" = OLD."revision";
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF (NEW."full_name", NEW."task_type", NEW."func_name", NEW."arg_dict", NEW."cron_expression", NEW."interval_seconds",
      NEW."timezone", NEW."start_time", NEW."end_time", NEW."max_runs", NEW."timeout_ms", NEW."source", NEW."source_model",
      NEW."source_row_id", NEW."source_field", NEW."memory_limit_mb", NEW."created_at")
     IS DISTINCT FROM
     (OLD."full_name", OLD."task_type", OLD."func_name", OLD."arg_dict", OLD."cron_expression", OLD."interval_seconds",
      OLD."timezone", OLD."start_time", OLD."end_time", OLD."max_runs", OLD."timeout_ms", OLD."source", OLD."source_model",
      OLD."source_row_id", OLD."source_field", OLD."memory_limit_mb", OLD."created_at") THEN
    UPDATE "task_spec" SET "full_name" = NEW."full_name", "task_type" = NEW."task_type", "func_name" = NEW."func_name",
        "arg_dict" = NEW."arg_dict", "cron_expression" = NEW."cron_expression", "interval_seconds" = NEW."interval_seconds",
        "timezone" = NEW."timezone", "start_time" = NEW."start_time", "end_time" = NEW."end_time", "max_runs" = NEW."max_runs",
        "timeout_ms" = NEW."timeout_ms", "source" = NEW."source", "source_model" = NEW."source_model",
        "source_row_id" = NEW."source_row_id", "source_field" = NEW."source_field", "memory_limit_mb" = NEW."memory_limit_mb",
        "created_at" = NEW."created_at"
     WHERE "id" = OLD."id";
  END IF;
  SELECT * INTO NEW FROM "task" WHERE "id" = OLD."id";
  RETURN NEW;
END $$;
CREATE TRIGGER "task_update" INSTEAD OF UPDATE ON "task" FOR EACH ROW EXECUTE FUNCTION "chronograph_task_update"();

-- A task's state goes with it (its key); its events and runs go by the trigger below.
CREATE FUNCTION "chronograph_task_delete"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "task_spec" WHERE "id" = OLD."id";
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER "task_delete" INSTEAD OF DELETE ON "task" FOR EACH ROW EXECUTE FUNCTION "chronograph_task_delete"();

-- As migration 20261205040000_task_history_reference did for "task": what goes with deleted tasks.
CREATE FUNCTION "chronograph_task_deleted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "task_event" WHERE "task_id" = ANY (ARRAY(SELECT "id" FROM "deleted_tasks"));
  DELETE FROM "task_run" WHERE "task_id" = ANY (ARRAY(SELECT "id" FROM "deleted_tasks"));
  RETURN NULL;
END $$;
CREATE TRIGGER "task_deleted" AFTER DELETE ON "task_spec"
  REFERENCING OLD TABLE AS "deleted_tasks" FOR EACH STATEMENT EXECUTE FUNCTION "chronograph_task_deleted"();

-- TRUNCATE "task_spec" CASCADE (task_state and task_run_log reference it) empties the events and runs too.
CREATE FUNCTION "chronograph_task_truncated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM "task_event") THEN TRUNCATE "task_event"; END IF;
  DELETE FROM "task_run";
  RETURN NULL;
END $$;
CREATE TRIGGER "task_truncated" AFTER TRUNCATE ON "task_spec"
  FOR EACH STATEMENT EXECUTE FUNCTION "chronograph_task_truncated"();
