import type { PrismaClient } from '../generated/prisma/client.js';
import { type RepeatType, TaskEventType, TaskStatus } from '../generated/prisma/client.js';
import { transition } from '../tasks/statusMachine.js';
import { TASK_TABLES } from '../tasks/taskTables.js';
import { nextOccurrence } from '../time/schedule.js';

interface MisfiredRow {
  id: string;
  tenantId: string;
  status: TaskStatus;
  repeatType: RepeatType;
  cronExpression: string | null;
  intervalSeconds: number | null;
  timezone: string;
  nextRunAt: Date;
  endTime: Date | null;
  maxRuns: number | null;
  runCount: number;
  lateMs: number;
  misfireToleranceMs: number;
  /** The transaction's now(): the clock that found the occurrence late. */
  databaseNow: Date;
}

/**
 * Misfire policy SKIP: occurrences later than their tolerance (the instance was down) do not run. A
 * recurring task moves on to its first occurrence after now (a RESCHEDULED event says what was
 * skipped); a one-off task has nothing to move on to and is CANCELLED. claimTasks leaves these rows
 * alone, so they cannot run late between two passes of this function.
 */
export async function skipMisfiredTasks(prisma: PrismaClient, limit: number): Promise<number> {
  return prisma.$transaction(async (tx) => {
    const rows = await tx.$queryRawUnsafe<MisfiredRow[]>(
      `SELECT s.task_id AS id, s.tenant_id AS "tenantId", s.status::text AS status, s.repeat_type::text AS "repeatType",
              p.cron_expression AS "cronExpression", p.interval_seconds AS "intervalSeconds", p.timezone, s.next_run_at AS "nextRunAt",
              p.end_time AS "endTime", p.max_runs AS "maxRuns", s.run_count AS "runCount", s.misfire_tolerance_ms AS "misfireToleranceMs",
              (EXTRACT(EPOCH FROM (now() - s.next_run_at)) * 1000)::float8 AS "lateMs", now() AS "databaseNow"
         FROM ${TASK_TABLES}
        WHERE s.status IN ('SCHEDULED', 'RETRYING') AND s.misfire_policy = 'SKIP' AND s.attempts = 0 AND NOT s.last_run_abandoned
          AND s.next_run_at < now() - s.misfire_tolerance_ms * interval '1 millisecond'
        ORDER BY s.next_run_at
        LIMIT $1
        FOR UPDATE OF s SKIP LOCKED`,
      limit,
    );
    for (const row of rows) {
      const late = `missed its ${row.nextRunAt.toISOString()} run by ${duration(row.lateMs)} (tolerance ${duration(row.misfireToleranceMs)})`;
      // After now by the database's clock, which found the occurrence late: by this process' clock, if
      // it is behind, the next occurrence could be the missed one again (rescheduled to itself, each pass).
      let next = nextOccurrence(row, row.databaseNow, row.nextRunAt);
      if (next && row.endTime && next > row.endTime) next = null;
      if (next && (row.maxRuns == null || row.runCount < row.maxRuns)) {
        await transition(tx, {
          task: row,
          to: TaskStatus.SCHEDULED,
          type: TaskEventType.RESCHEDULED,
          data: { nextRunAt: next },
          message: `${late}; skipped to the next occurrence`,
        });
      } else {
        await transition(tx, {
          task: row,
          to: TaskStatus.CANCELLED,
          data: { nextRunAt: null },
          message: `${late}; skipped (misfire policy SKIP)`,
        });
      }
    }
    return rows.length;
  });
}

/** A duration as the messages give it: milliseconds under ten seconds (a 500 ms tolerance read "1 s"), whole seconds above. */
function duration(ms: number): string {
  return ms < 10_000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 1000)} s`;
}
