-- One writer of task-event announcements (issue 12). Every statement that inserts TaskEvents (a claim, a
-- completion, a recovery, a create, a date-field sync, the API's status changes) used to send one NOTIFY
-- per event itself, in four hand-written copies; the database now does it, once per statement, from this
-- trigger: a status change cannot be recorded without being announced, and a batch of 10,000 events is
-- one notification instead of 10,000 (each also parsed by every listening client).
--
-- The payload is a hint, not the news: the task ids of the statement's events, comma-separated in event
-- order, when there are at most 100 of them, else '' (some events were written). Listeners re-read the
-- events (TaskEventStream reads everything above its floor; waitForTask checks its task when its id is
-- in the payload or the payload is ''). Sent on commit, like any NOTIFY; nothing on rollback.
CREATE FUNCTION "chronograph_announce_task_events"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  n integer;
  ids text;
BEGIN
  SELECT count(*), string_agg(e.task_id::text, ',' ORDER BY e.id) INTO n, ids
    FROM (SELECT id, task_id FROM new_events LIMIT 101) e;
  IF n > 0 THEN
    PERFORM pg_notify('chronograph_task_event', CASE WHEN n <= 100 THEN ids ELSE '' END);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER "task_event_announce" AFTER INSERT ON "task_event"
  REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT EXECUTE FUNCTION "chronograph_announce_task_events"();
