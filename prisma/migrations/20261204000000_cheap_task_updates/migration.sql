-- Cheaper task updates (issue 12, WAL per task).
--
-- A status change can never be a HOT update (status is in the predicates of the partial indexes), so it
-- writes a new entry in every index of task whose predicate the new version matches. What can be cheap:
-- an update that changes no indexed column is HOT (no index entries at all).
-- (fillfactor = 50, room on every page for a task's next versions, saved about 0.36 KB of WAL per drained
-- task of 3.96, but doubles the pages of a table that keeps every finished task until it is pruned; not taken.)

-- The lease's expiry is no longer an index key: a heartbeat (a lease extended, ctx.assertLease) changes
--    only locked_until and becomes a HOT update, instead of writing a new entry in every index of task
--    every few seconds for every running task. RUNNING tasks are few (at most the instances' slots), so
--    recovery and the next-due look-up find them through this index and sort or take the minimum of
--    their expiries themselves; the per-tenant count of running tasks (maxConcurrentRuns) is served too.
DROP INDEX IF EXISTS "task_lease_idx";
CREATE INDEX "task_running_idx" ON "task"("tenant_id") WHERE "status" = 'RUNNING';
