-- Execution that one bad task cannot break: fenced leases, poison tasks, thread-isolated handlers.

-- A thread-isolated run that went over its memory limit, or whose thread died (process.exit, a crash).
-- New enum values cannot be used in the transaction that adds them; nothing here uses them.
ALTER TYPE "RunStatus" ADD VALUE 'MEMORY_LIMIT';
ALTER TYPE "RunStatus" ADD VALUE 'CRASHED';

-- The fence: the run that holds a RUNNING task's lease. Heartbeats, lease checks and completions match
-- it, so an attempt that lost its lease (taken over, force-ended, recovered) cannot touch the task,
-- even when the same worker has claimed the task again since.
ALTER TABLE "task" ADD COLUMN "locked_run_id" UUID;
-- Set when the previous attempt's worker stopped (crash, freeze, shutdown hand-over); the next run is
-- recorded `recovered`.
ALTER TABLE "task" ADD COLUMN "last_run_abandoned" BOOLEAN NOT NULL DEFAULT false;
-- forcedEnd now ends a running task itself, at once, writing its event with the caller as actor; a pending
-- request (and who made it) is no longer a state.
ALTER TABLE "task" DROP COLUMN "cancel_requested_at", DROP COLUMN "cancel_requested_by";

-- Heap limit of a run in a worker thread; null takes the handler's (or THREAD_MEMORY_LIMIT_MB).
ALTER TABLE "task" ADD COLUMN "memory_limit_mb" INTEGER;
ALTER TABLE "task_template" ADD COLUMN "memory_limit_mb" INTEGER;
