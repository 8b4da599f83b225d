-- History you can prune (issue 13): a tenant's own retention (overriding HISTORY_RETENTION_DAYS), and the
-- newest event id pruned, so that a subscription resuming from before it is told CURSOR_EXPIRED.
ALTER TABLE "tenant" ADD COLUMN "history_retention_days" INTEGER;
ALTER TABLE "tenant" ADD COLUMN "events_pruned_through" BIGINT;
