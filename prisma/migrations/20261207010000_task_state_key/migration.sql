-- task_state's task_id is no longer a foreign key to task_spec; the trigger "task_deleted" on task_spec
-- deletes a task's state with it, as ON DELETE CASCADE did, and "task_truncated" empties task_state.
--
-- The key was checked for every task created: a query per row of a bulk insert, and a row lock on the
-- new task_spec row that is written to the WAL. A batch of 10,000 creates ran about 15 % slower than
-- before migration 20261207000000_task_state, which added the key (`npm run bench -- compare create`, two
-- paired runs). Nothing is lost by it, as for the events and runs (migration
-- 20261205040000_task_history_reference): a task's two rows are only ever inserted together, by the
-- statement that creates the task (src/tasks/bulkInsert.ts, the view's INSERT trigger), and deleted
-- together, by this trigger.
LOCK TABLE "task_spec", "task_state" IN ACCESS EXCLUSIVE MODE;
ALTER TABLE "task_state" DROP CONSTRAINT IF EXISTS "task_state_task_id_fkey";

CREATE OR REPLACE FUNCTION "chronograph_task_deleted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "task_state" WHERE "task_id" = ANY (ARRAY(SELECT "id" FROM "deleted_tasks"));
  DELETE FROM "task_event" WHERE "task_id" = ANY (ARRAY(SELECT "id" FROM "deleted_tasks"));
  DELETE FROM "task_run" WHERE "task_id" = ANY (ARRAY(SELECT "id" FROM "deleted_tasks"));
  RETURN NULL;
END $$;

-- TRUNCATE "task_spec" CASCADE (task_run_log references it) empties the state, the events and the runs
-- too; a table the same TRUNCATE names itself is empty by now and is left alone.
CREATE OR REPLACE FUNCTION "chronograph_task_truncated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM "task_state") THEN TRUNCATE "task_state"; END IF;
  IF EXISTS (SELECT 1 FROM "task_event") THEN TRUNCATE "task_event"; END IF;
  DELETE FROM "task_run";
  RETURN NULL;
END $$;
