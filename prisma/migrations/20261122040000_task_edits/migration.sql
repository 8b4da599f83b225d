-- Editable tasks (issue 13): updateTask records an UPDATED event and bumps the task's revision. A run
-- that was claimed before an edit completes only against the revision it was claimed with; when the
-- revision moved on meanwhile, its scheduler reads the edited schedule and computes the next run from it
-- (an edit of a running task applies from its next occurrence).
ALTER TYPE "TaskEventType" ADD VALUE 'UPDATED';
ALTER TABLE "task" ADD COLUMN "revision" INTEGER NOT NULL DEFAULT 0;
