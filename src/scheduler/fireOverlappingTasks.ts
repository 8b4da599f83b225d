import type { Prisma, PrismaClient, Task } from '../generated/prisma/client.js';
import { MisfirePolicy, OverlapPolicy, RepeatType, TaskEventType, TaskStatus } from '../generated/prisma/client.js';
import { insertNewTasks, type NewTaskRow, prismaRunner, TaskIds } from '../tasks/bulkInsert.js';
import { transition } from '../tasks/statusMachine.js';
import { nextRunAfter } from './recurrence.js';
import { firedSql } from './sql.js';

/** What one call of fireOverlappingTasks did. */
export interface FireResult {
  /** Due ALLOW-overlap tasks it locked (at most `limit`): fewer than `limit` means none is left. */
  seen: number;
  /** Tasks whose occurrence it fired. */
  fired: string[];
  /** Tasks whose occurrence could not be fired, with why; nothing of theirs was written. */
  failed: { id: string; error: unknown }[];
}

/**
 * Overlap policy ALLOW: a recurring task whose occurrences may overlap does not run itself. Each time it
 * comes due it is fired: a one-off child task (parentId) is created due now and runs like any other,
 * and the recurring task moves on to its next occurrence. Runs of different occurrences can therefore
 * go on at the same time, each with its own status, retries and lease. claimTasks never claims these.
 *
 * Each task is fired under a savepoint of its own: one whose child cannot be written (a constraint, a
 * template deleted meanwhile) is rolled back alone and reported in `failed`, and the others of the batch
 * fire all the same. `skip` leaves out tasks the caller is not retrying yet.
 */
export async function fireOverlappingTasks(prisma: PrismaClient, limit: number, skip: readonly string[] = []): Promise<FireResult> {
  // The scheduler calls this only when its next-due statement says an ALLOW task is due (overlapMs).
  return prisma.$transaction(async (tx) => {
    const due = await tx.$queryRawUnsafe<{ id: string }[]>(
      `SELECT task_id AS id FROM task_state WHERE ${firedSql('task_state')} AND next_run_at <= now() AND task_id <> ALL($2::uuid[])
        ORDER BY next_run_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
      limit,
      skip,
    );
    const failed: FireResult['failed'] = [];
    const fired: string[] = [];
    if (due.length === 0) return { seen: 0, fired, failed };
    const parents = await tx.task.findMany({ where: { id: { in: due.map((d) => d.id) } } });
    const now = new Date();
    for (const parent of parents) {
      await tx.$executeRawUnsafe('SAVEPOINT fire_occurrence');
      try {
        await fire(tx, parent, now);
        await tx.$executeRawUnsafe('RELEASE SAVEPOINT fire_occurrence');
        fired.push(parent.id);
      } catch (error) {
        await tx.$executeRawUnsafe('ROLLBACK TO SAVEPOINT fire_occurrence');
        failed.push({ id: parent.id, error });
      }
    }
    return { seen: due.length, fired, failed };
  });
}

/** Fires one occurrence of `parent` (locked by the caller): its child task, and the parent's next occurrence. */
async function fire(tx: Prisma.TransactionClient, parent: Task, now: Date): Promise<void> {
  const child = childOf(parent, now, new TaskIds(1).next());
  // The same insert as createTimerTask's: the row with its CREATED event, and a wake-up on commit.
  const { skipped } = await insertNewTasks(
    prismaRunner(tx),
    [child],
    new Map([[child.id, `occurrence ${parent.nextRunAt!.toISOString()} of ${parent.id}`]]),
    null,
    { templates: [], tenant: null },
  );
  // The insert skips a row that a live task's unique key holds; an occurrence carries none of those keys.
  if (skipped.size > 0) throw new Error(`the occurrence of task ${parent.id} conflicts with a unique key of a live task`);
  const runCount = parent.runCount + 1;
  const next = nextRunAfter(parent, { scheduledFor: parent.nextRunAt!, runStartedAt: now, now, runCount });
  await transition(tx, {
    task: parent,
    to: next ? TaskStatus.SCHEDULED : TaskStatus.SUCCEEDED,
    type: next ? TaskEventType.RESCHEDULED : TaskEventType.STATUS_CHANGED,
    data: { nextRunAt: next, runCount },
    message: `fired occurrence as task ${child.id}${next ? `; next ${next.toISOString()}` : '; schedule complete'}`,
  });
}

/**
 * One occurrence of `parent`: a one-off task due now with the parent's handler, arguments, limits and
 * provenance (its template, and for a date-field task its record), which run and retry like any task's.
 */
function childOf(parent: Task, now: Date, id: string): NewTaskRow {
  return {
    id,
    tenantId: parent.tenantId,
    templateId: parent.templateId,
    parentId: parent.id,
    // Not the binding's task (task_binding_live_key keeps one live task per binding): its parent is.
    bindingId: null,
    fullName: parent.fullName,
    taskType: parent.taskType,
    funcName: parent.funcName,
    argDict: (parent.argDict ?? {}) as Record<string, unknown>,
    repeatType: RepeatType.ONCE,
    cronExpression: null,
    intervalSeconds: null,
    timezone: parent.timezone,
    startTime: now,
    endTime: null,
    maxRuns: null,
    nextRunAt: now,
    status: TaskStatus.SCHEDULED,
    priority: parent.priority,
    queue: parent.queue,
    maxAttempts: parent.maxAttempts,
    timeoutMs: parent.timeoutMs,
    memoryLimitMb: parent.memoryLimitMb,
    uniqueKey: null,
    misfirePolicy: MisfirePolicy.RUN_ONCE,
    misfireToleranceMs: 60_000,
    overlapPolicy: OverlapPolicy.SKIP,
    retryBackoffMs: parent.retryBackoffMs,
    source: parent.source,
    sourceModel: parent.sourceModel,
    sourceRowId: parent.sourceRowId,
    sourceField: parent.sourceField,
  };
}
