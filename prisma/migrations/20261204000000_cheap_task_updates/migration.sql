-- Cheaper status changes (issue 12, WAL per task): room on every page for a task's next versions.
ALTER TABLE "task" SET (fillfactor = 50);
ALTER TABLE "task_run" SET (fillfactor = 80);
