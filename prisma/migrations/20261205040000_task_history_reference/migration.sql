-- An event's and a run's task_id is no longer a foreign key; a trigger on "task" deletes a task's events
-- and runs with it, as ON DELETE CASCADE did.
--
-- The keys were checked on every insert: each claim (its run and its RUNNING event) and each completion
-- (its event) ran a key check, a query of its own, and took a KEY SHARE lock on the task row that is
-- written to the WAL. On PGlite, where the database's CPU is the instance's, those checks took about a
-- sixth of a drain (issue 12, goal 7); on PostgreSQL they cost about 0.05 KB of WAL per processed task.
--
-- Nothing is lost by it: every event and run is inserted by the statement that inserts or updates its
-- task (src/tasks/bulkInsert.ts, src/scheduler/sql.ts, src/tasks/statusMachine.ts inside the
-- transaction that updated the task), so the task exists and is locked by that transaction; a delete
-- of the task waits for it, then removes what it wrote. task_run_log keeps its keys (a handler's log lines
-- are not on the path of every run).
-- In the order the scheduler's statements take them (task, then its runs and events): dropping a key
-- locks both of its tables, and taking them the other way round could deadlock with a running instance.
LOCK TABLE "task", "task_run", "task_event" IN ACCESS EXCLUSIVE MODE;
ALTER TABLE "task_event" DROP CONSTRAINT IF EXISTS "task_event_task_id_fkey";
ALTER TABLE "task_run" DROP CONSTRAINT IF EXISTS "task_run_task_id_fkey";

-- One statement-level trigger for what goes with a deleted task: its task_spec row (which the trigger of
-- migration 20261205030000_task_spec removed), its events, and its runs (their logs go by their key).
DROP TRIGGER IF EXISTS "task_spec_deleted" ON "task";
DROP FUNCTION IF EXISTS "chronograph_task_spec_deleted"();
-- `= ANY (ARRAY(…))`, not `IN (SELECT …)`: PL/pgSQL keeps one plan per connection, and a join planned
-- for a first delete of thousands of tasks (a hash join over the whole table) would be kept for every
-- later delete of one; an array of ids is looked up through the index whatever its length.
CREATE FUNCTION "chronograph_task_deleted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "task_spec" WHERE "task_id" = ANY (ARRAY(SELECT "id" FROM "deleted_tasks"));
  DELETE FROM "task_event" WHERE "task_id" = ANY (ARRAY(SELECT "id" FROM "deleted_tasks"));
  DELETE FROM "task_run" WHERE "task_id" = ANY (ARRAY(SELECT "id" FROM "deleted_tasks"));
  RETURN NULL;
END $$;
CREATE TRIGGER "task_deleted" AFTER DELETE ON "task"
  REFERENCING OLD TABLE AS "deleted_tasks" FOR EACH STATEMENT EXECUTE FUNCTION "chronograph_task_deleted"();

-- TRUNCATE "task" (with CASCADE: task_run_log still references it, so the logs go by that) emptied
-- task_spec already; now also the events and the runs, which no key ties to it any more. A table the
-- same TRUNCATE names itself (`TRUNCATE task, task_event, …`) is empty by now, and truncating it a
-- second time inside that statement would fail: only a table that still has rows is emptied. The runs
-- are deleted rather than truncated: task_run_log's key on them forbids a TRUNCATE without CASCADE.
CREATE OR REPLACE FUNCTION "chronograph_task_spec_truncated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM "task_spec") THEN TRUNCATE "task_spec"; END IF;
  IF EXISTS (SELECT 1 FROM "task_event") THEN TRUNCATE "task_event"; END IF;
  DELETE FROM "task_run";
  RETURN NULL;
END $$;
