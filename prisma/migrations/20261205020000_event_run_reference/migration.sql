-- An event's run_id names the run it belongs to; it is no longer a foreign key. The key cost every claim
-- and completion a row lock on the run (KEY SHARE, written to the WAL) and an entry in an index that only
-- its ON DELETE SET NULL needed: about 0.28 KB of WAL per processed task of 3.1 (issue 12,
-- `npm run bench -- layouts`). Events are an append-only log: an event of a run that history pruning
-- has since removed keeps the run's id, and TaskEvent.run reads as null, as it did after SET NULL.
-- Nothing looks events up by run_id.
ALTER TABLE "task_event" DROP CONSTRAINT IF EXISTS "task_event_run_id_fkey";
DROP INDEX IF EXISTS "task_event_run_id_idx";
