-- The columns of a task that lists and quotas look tasks up by (name, handler, creation time) are never
-- written by a run, yet their indexes on "task" got a new entry at every claim and every completion:
-- those updates change the status, so they are not HOT, and a new row version needs an entry in every
-- index. In "task_spec", a table a run never writes, the same indexes cost nothing per run: about 0.35 KB
-- of WAL per processed task of 2.8 (issue 12, `npm run bench -- layouts`, layout "names").
--
-- "task" keeps these columns, so everything that reads them is unchanged; only the look-ups go through
-- "task_spec" (TaskSvc.taskWhere, the per-minute creation quota). Triggers keep it in step with "task" on
-- every insert, on an update that sets one of its columns, on delete and on truncate; nothing else writes
-- it. A data-only restore of "task" with its triggers disabled must fill it too. It is
-- the first part of a 1:1 table for everything a run never writes (layout "spec" in the benchmark).
CREATE TABLE "task_spec" (
    "task_id" UUID NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "full_name" TEXT NOT NULL,
    "func_name" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "task_spec_pkey" PRIMARY KEY ("task_id")
);
-- Other instances may be creating tasks meanwhile (a rolling deploy): no insert, update or delete of a
-- task may fall between this copy and the triggers below, so writers wait until this migration commits.
LOCK TABLE "task" IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO "task_spec" ("task_id", "tenant_id", "full_name", "func_name", "created_at")
SELECT "id", "tenant_id", "full_name", "func_name", "created_at" FROM "task";
CREATE INDEX "task_spec_tenant_id_full_name_idx" ON "task_spec"("tenant_id", "full_name");
CREATE INDEX "task_spec_tenant_id_func_name_idx" ON "task_spec"("tenant_id", "func_name");
CREATE INDEX "task_spec_tenant_id_created_at_idx" ON "task_spec"("tenant_id", "created_at");
DROP INDEX IF EXISTS "task_tenant_id_full_name_idx";
DROP INDEX IF EXISTS "task_tenant_id_func_name_idx";
DROP INDEX IF EXISTS "task_tenant_id_created_at_idx";

-- Once per statement: a batch of 10,000 creates runs one INSERT … SELECT.
CREATE FUNCTION "chronograph_task_spec_inserted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "task_spec" ("task_id", "tenant_id", "full_name", "func_name", "created_at")
  SELECT "id", "tenant_id", "full_name", "func_name", "created_at" FROM "inserted_tasks";
  RETURN NULL;
END $$;
CREATE TRIGGER "task_spec_inserted" AFTER INSERT ON "task"
  REFERENCING NEW TABLE AS "inserted_tasks" FOR EACH STATEMENT EXECUTE FUNCTION "chronograph_task_spec_inserted"();

-- Per row, and only for an UPDATE that sets one of these columns (PostgreSQL does not allow transition
-- tables with a column list): the claim, the completion, the heartbeat and recovery never fire it.
CREATE FUNCTION "chronograph_task_spec_updated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "task_spec" SET "tenant_id" = NEW."tenant_id", "full_name" = NEW."full_name", "func_name" = NEW."func_name",
         "created_at" = NEW."created_at"
   WHERE "task_id" = NEW."id";
  RETURN NULL;
END $$;
CREATE TRIGGER "task_spec_updated" AFTER UPDATE OF "tenant_id", "full_name", "func_name", "created_at" ON "task"
  FOR EACH ROW
  WHEN (OLD."tenant_id" IS DISTINCT FROM NEW."tenant_id" OR OLD."full_name" IS DISTINCT FROM NEW."full_name"
        OR OLD."func_name" IS DISTINCT FROM NEW."func_name" OR OLD."created_at" IS DISTINCT FROM NEW."created_at")
  EXECUTE FUNCTION "chronograph_task_spec_updated"();

CREATE FUNCTION "chronograph_task_spec_deleted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "task_spec" WHERE "task_id" IN (SELECT "id" FROM "deleted_tasks");
  RETURN NULL;
END $$;
CREATE TRIGGER "task_spec_deleted" AFTER DELETE ON "task"
  REFERENCING OLD TABLE AS "deleted_tasks" FOR EACH STATEMENT EXECUTE FUNCTION "chronograph_task_spec_deleted"();

CREATE FUNCTION "chronograph_task_spec_truncated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE "task_spec";
  RETURN NULL;
END $$;
CREATE TRIGGER "task_spec_truncated" AFTER TRUNCATE ON "task"
  FOR EACH STATEMENT EXECUTE FUNCTION "chronograph_task_spec_truncated"();
