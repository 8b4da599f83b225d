-- chronograph: breaking
--
-- A run is kept in its events, not in a row of its own: the event that starts it (to RUNNING) carries
-- the attempt, the worker and whether it took over from a stopped worker; the event that ends it (from
-- RUNNING: the completion, the recovery of an expired lease, a forced end) carries the run's status,
-- duration, result and error. "task_run" becomes a view of those events, so Prisma's TaskRun model, the
-- run look-ups and the history queries read it unchanged. The run's id is the events' run_id (the lease's
-- fence, task_state.locked_run_id), as before; the view adds "event_id", the starting event's id, which
-- orders a tenant's runs and a task's runs in start order through task_event's indexes.
--
-- Why (issue 12, goal 4: at most 1.5 KB of WAL per processed task): a run wrote a row when it started,
-- a new version of it when it ended, and an entry in each of task_run's three indexes. Its two events
-- are written anyway. Now a run costs those events a few more columns and the starting event an entry in
-- one partial index (run_id, for look-ups by run id). `npm run bench -- layouts migrated
-- migrated+runs-as-events` measured 1.94 against 1.50 KB per task.
--
-- The index of every task by status (task_status_tenant_id_idx) leaves out succeeded tasks: a run's
-- usual end added an entry to it that no query needs. Succeeded tasks are counted as a tenant's tasks
-- (task_spec's tenant-first indexes) less the others; a list filtered by SUCCEEDED reads the tenant's
-- tasks in its own order. 1.50 against 1.42 KB per task (`migrated+runs-as-events+partial`).
--
-- Existing runs: each one's columns go to its starting event, and its outcome to the first event after
-- it that left RUNNING with its run id. A finished run without such an event (none is known to exist:
-- every statement that ends a run writes it) keeps its outcome on the starting event, which the view
-- reads as its end. A run whose starting event is gone (history pruning removed the event, its start
-- being older than the tenant's retention, and not yet the run) is removed with its log lines: the next
-- prune would have removed it. Event times are left as recorded: a run's start is its starting event's
-- time, which may precede the run row's former start by the milliseconds between a claiming
-- transaction's start and its statement's.
--
-- Breaking: an instance of an earlier version writes "task_run" as a table; it stops when this is
-- applied (src/db/SchemaWatch.ts).
LOCK TABLE "task_spec", "task_state", "task_run", "task_run_log", "task_event" IN ACCESS EXCLUSIVE MODE;

ALTER TABLE "task_event"
  ADD COLUMN "attempt" INTEGER,
  ADD COLUMN "worker_id" TEXT,
  ADD COLUMN "recovered" BOOLEAN,
  ADD COLUMN "run_status" "RunStatus",
  ADD COLUMN "duration_ms" INTEGER,
  ADD COLUMN "result" JSONB,
  ADD COLUMN "error" TEXT,
  ADD COLUMN "error_stack" TEXT;

CREATE TEMPORARY TABLE "run_start" ON COMMIT DROP AS
  SELECT DISTINCT ON (r."id") r."id" AS "run_id", e."id" AS "event_id"
    FROM "task_run" r
    JOIN "task_event" e ON e."task_id" = r."task_id" AND e."run_id" = r."id"
                       AND e."to_status" = 'RUNNING' AND e."from_status" IS DISTINCT FROM 'RUNNING'
   ORDER BY r."id", e."id";

UPDATE "task_event" e SET "attempt" = r."attempt", "worker_id" = r."worker_id", "recovered" = r."recovered"
  FROM "run_start" s JOIN "task_run" r ON r."id" = s."run_id"
 WHERE e."id" = s."event_id";

CREATE TEMPORARY TABLE "run_end" ON COMMIT DROP AS
  SELECT DISTINCT ON (r."id") r."id" AS "run_id", coalesce(e."id", s."event_id") AS "event_id"
    FROM "task_run" r
    JOIN "run_start" s ON s."run_id" = r."id"
    LEFT JOIN "task_event" e ON e."task_id" = r."task_id" AND e."run_id" = r."id" AND e."id" > s."event_id"
                            AND e."from_status" = 'RUNNING' AND e."attempt" IS NULL
   WHERE r."status" <> 'RUNNING'
   ORDER BY r."id", e."id";

UPDATE "task_event" e SET "run_status" = r."status", "duration_ms" = coalesce(r."duration_ms", 0), "result" = r."result",
       "error" = r."error", "error_stack" = r."error_stack"
  FROM "run_end" f JOIN "task_run" r ON r."id" = f."run_id"
 WHERE e."id" = f."event_id";

DELETE FROM "task_run_log" l WHERE NOT EXISTS (SELECT 1 FROM "run_start" s WHERE s."run_id" = l."run_id");

ALTER TABLE "task_run_log" DROP CONSTRAINT IF EXISTS "task_run_log_run_id_fkey";
DROP TABLE "task_run";

-- A run by its id: its starting event (the only event of a run with an attempt).
CREATE INDEX "task_event_run_id_idx" ON "task_event" ("run_id") WHERE "attempt" IS NOT NULL;

-- Events (and runs) by time: the history's filters by time and runStats read the pages of the events of
-- that time only. A BRIN index summarises each range of 128 pages, and an insert into the table's last
-- range, not yet summarised, writes nothing to it: the next VACUUM summarises the ranges filled since.
CREATE INDEX "task_event_created_at_idx" ON "task_event" USING brin ("created_at");

-- A run's end is the first event from its start on that carries a run status (its own start only for a
-- run converted above without an ending event), found through task_event's (task_id, id) index. Its id
-- is looked up in the select list and the ending event joined by it, so that a query reading none of the
-- end's columns (a count of runs, runs by id) reads neither: PostgreSQL removes the unused left join to a
-- unique key, and with it the look-up.
CREATE VIEW "task_run" AS
SELECT s."run_id" AS "id", s."tenant_id", s."task_id", s."attempt",
       coalesce(e."run_status", 'RUNNING'::"RunStatus") AS "status", s."worker_id", coalesce(s."recovered", false) AS "recovered",
       s."created_at" AS "started_at",
       (CASE WHEN e."id" = s."id" THEN s."created_at" + e."duration_ms" * interval '1 millisecond' ELSE e."created_at" END)::timestamptz(3) AS "finished_at",
       e."duration_ms", e."result", e."error", e."error_stack", s."id" AS "event_id"
  FROM (SELECT x.*, (SELECT y."id" FROM "task_event" y
                      WHERE y."task_id" = x."task_id" AND y."id" >= x."id" AND y."run_id" = x."run_id" AND y."run_status" IS NOT NULL
                      ORDER BY y."id" LIMIT 1) AS "end_id"
          FROM "task_event" x WHERE x."attempt" IS NOT NULL) s
  LEFT JOIN "task_event" e ON e."id" = s."end_id";

-- What goes with deleted tasks: their state and events (runs and all); their log lines go by their key.
CREATE OR REPLACE FUNCTION "chronograph_task_deleted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "task_state" WHERE "task_id" = ANY (ARRAY(SELECT "id" FROM "deleted_tasks"));
  DELETE FROM "task_event" WHERE "task_id" = ANY (ARRAY(SELECT "id" FROM "deleted_tasks"));
  RETURN NULL;
END $$;

-- TRUNCATE "task_spec" CASCADE (task_run_log references it) empties the state and the events too; a
-- table the same TRUNCATE names itself is empty by now and is left alone.
CREATE OR REPLACE FUNCTION "chronograph_task_truncated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM "task_state") THEN TRUNCATE "task_state"; END IF;
  IF EXISTS (SELECT 1 FROM "task_event") THEN TRUNCATE "task_event"; END IF;
  RETURN NULL;
END $$;

-- Every task by status and tenant, but the succeeded ones.
DROP INDEX "task_status_tenant_id_idx";
CREATE INDEX "task_status_tenant_id_idx" ON "task_state" ("status", "tenant_id") WHERE "status" <> 'SUCCEEDED';

-- The view "task" starts from task_spec (the task's identity, tenant and definition) and joins its state:
-- a query of one tenant's tasks whatever their status (a list, its count, the example app's backup)
-- then goes through task_spec's tenant-first indexes, and one that reads no state column reads
-- task_spec alone (PostgreSQL removes the unused left join). A query of a tenant's tasks by status still
-- starts from the status index (the join's equal tenant). The scheduler's statements read the tables.
CREATE OR REPLACE VIEW "task" AS
SELECT p."id", p."tenant_id", s."template_id", p."full_name", p."task_type", p."func_name", p."arg_dict",
       s."repeat_type", p."cron_expression", p."interval_seconds", p."timezone", p."start_time", p."end_time", p."max_runs",
       s."run_count", s."next_run_at", s."occurrence_at", s."status", s."priority", s."queue", s."attempts", s."max_attempts",
       p."timeout_ms", s."unique_key", p."source", p."source_model", p."source_row_id", p."source_field", s."locked_by",
       s."locked_until", s."last_error", s."misfire_policy", s."misfire_tolerance_ms", s."overlap_policy", s."retry_backoff_ms",
       s."locked_run_id", s."last_run_abandoned", s."revision", p."memory_limit_mb", s."parent_id", s."binding_id",
       p."created_at", s."updated_at"
  FROM "task_spec" p
  LEFT JOIN "task_state" s ON s."task_id" = p."id" AND s."tenant_id" = p."tenant_id" AND s."source" = p."source";
