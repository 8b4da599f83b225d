import type { PrismaClient } from '../generated/prisma/client.js';

/**
 * Statements behind readiness and metrics, one function each. Raw because they read Prisma's own
 * migration table or need FILTER aggregates; each is served by an index (task_next_run_at_idx,
 * task_status_tenant_id_idx, the task_event primary key), so a scrape or a probe stays cheap on large tables.
 */

/** One round trip; fails when the database cannot be reached. */
export async function pingDatabase(db: PrismaClient): Promise<void> {
  await db.$queryRawUnsafe('SELECT 1');
}

/** Names of the migrations applied to this database. */
export async function appliedMigrationNames(db: PrismaClient): Promise<string[]> {
  const rows = await db.$queryRawUnsafe<{ name: string }[]>(
    `SELECT migration_name AS name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
  );
  return rows.map((r) => r.name);
}

export interface QueueGauges {
  queue: string;
  /** Tasks due now and not running yet (SCHEDULED or RETRYING with next_run_at in the past). */
  due: number;
  /** Seconds since the oldest of them was due; null when none is. */
  oldestDueSeconds: number | null;
  /** Tasks RUNNING on any instance. */
  running: number;
}

/** The due backlog and running tasks per queue, by the database's clock. */
export async function readQueueGauges(db: PrismaClient): Promise<QueueGauges[]> {
  const rows = await db.$queryRawUnsafe<{ queue: string; due: number; oldest: number | null; running: number }[]>(
    `WITH due AS (
       SELECT queue, count(*)::int AS n, EXTRACT(EPOCH FROM now() - min(next_run_at))::float8 AS oldest
         FROM task_state WHERE status IN ('SCHEDULED', 'RETRYING') AND next_run_at <= now() GROUP BY queue
     ), running AS (
       SELECT queue, count(*)::int AS n FROM task_state WHERE status = 'RUNNING' GROUP BY queue
     )
     SELECT coalesce(d.queue, r.queue) AS queue, coalesce(d.n, 0) AS due, d.oldest, coalesce(r.n, 0) AS running
       FROM due d FULL JOIN running r ON r.queue = d.queue`,
  );
  return rows.map((r) => ({
    queue: r.queue,
    due: Number(r.due),
    oldestDueSeconds: r.oldest == null ? null : Number(r.oldest),
    running: Number(r.running),
  }));
}

/** The newest TaskEvent id (0 when there is none). */
export async function newestEventId(db: PrismaClient): Promise<bigint> {
  const [row] = await db.$queryRawUnsafe<{ id: string | null }[]>(`SELECT max(id)::text AS id FROM task_event`);
  return BigInt(row?.id ?? 0);
}

/** Tasks created (their CREATED events) with event ids in (after, upTo], by queue and source. */
export async function countCreatedTasks(
  db: PrismaClient,
  after: bigint,
  upTo: bigint,
): Promise<{ queue: string; source: string; n: number }[]> {
  if (upTo <= after) return [];
  const rows = await db.$queryRawUnsafe<{ queue: string; source: string; n: number }[]>(
    `SELECT t.queue, t.source::text AS source, count(*)::int AS n
       FROM task_event e JOIN task t ON t.id = e.task_id
      WHERE e.id > $1::bigint AND e.id <= $2::bigint AND e.type = 'CREATED'
      GROUP BY t.queue, t.source`,
    after.toString(),
    upTo.toString(),
  );
  return rows.map((r) => ({ ...r, n: Number(r.n) }));
}
