import { type SqlRunner, statement } from '../db/SqlPool.js';
import type { TaskEventType, TaskSource, TaskStatus } from '../generated/prisma/client.js';
import { EVENT_ROW_SQL, type EventRow, reviveEventRow } from './eventRows.js';
import type { TaskEventRef } from './TaskEventFilter.js';

export interface EventsAfter {
  /** Committed events with `id > after`, oldest first, at most `limit`. */
  events: TaskEventRef[];
  /**
   * Transactions (virtual transaction ids) that held a write lock on task_event just after the events
   * were read: any of them may own an id that is missing from `events` and commit it later.
   */
  writers: string[];
}

type Row = [
  id: string,
  taskId: string,
  tenantId: string,
  type: TaskEventType,
  toStatus: TaskStatus,
  fullName: string,
  funcName: string,
  source: TaskSource,
  row: EventRow,
];

const EVENTS_AFTER = statement(
  'chronograph_events_after',
  `SELECT
     (SELECT coalesce(json_agg(json_build_array(e.id::text, e.task_id, e.tenant_id, e.type, e.to_status, t.full_name, t.func_name, t.source, ${EVENT_ROW_SQL}) ORDER BY e.id), '[]'::json)
        FROM (SELECT * FROM task_event WHERE id > $1::bigint ORDER BY id LIMIT $2::int) e
        JOIN task t ON t.id = e.task_id) AS events,
     (SELECT coalesce(json_agg(l.virtualtransaction), '[]'::json)
        FROM pg_locks l
       WHERE l.locktype = 'relation' AND l.relation = 'task_event'::regclass AND l.mode = 'RowExclusiveLock'
         AND l.granted AND l.pid <> pg_backend_pid()) AS writers`,
);

/**
 * One statement, so the lock table is read after (never before) the snapshot the events come from:
 * an id taken by a transaction that had not committed when the snapshot was taken belongs to a
 * transaction listed in `writers`, because INSERT takes ROW EXCLUSIVE on the table before it draws
 * the id and keeps it until commit or rollback. Ids travel as text: JSON numbers lose precision
 * past 2^53. Each event also carries its own and its task's columns (eventRows), from which most
 * subscriptions are answered without another read. It runs once per commit announced while anyone
 * subscribes, so it is a prepared statement on the hot-path driver (db.sql): through Prisma's raw
 * queries it took 1.5 ms (parse, plan and the ORM's own work) where prepared it takes 0.3 ms, and that
 * is added to every event's commit → receipt delay.
 */
export async function readEventsAfter(sql: SqlRunner, after: bigint, limit: number): Promise<EventsAfter> {
  const [result] = await sql.query<{ events: Row[]; writers: string[] }>(EVENTS_AFTER, [after.toString(), limit]);
  return {
    events: result!.events.map(([id, taskId, tenantId, type, toStatus, fullName, funcName, source, row]) => ({
      id: BigInt(id),
      taskId,
      tenantId,
      type,
      toStatus,
      fullName,
      funcName,
      source,
      row: reviveEventRow(row),
    })),
    writers: result!.writers,
  };
}
