import type { PrismaClient, Task } from '../generated/prisma/client.js';
import { RepeatType, TaskEventType, TaskStatus } from '../generated/prisma/client.js';
import { recordEvents, transition } from '../tasks/statusMachine.js';
import { nextRunAfter } from './recurrence.js';

/**
 * Overlap policy ALLOW: a recurring task whose occurrences may overlap does not run itself. Each time it
 * comes due it is fired: a one-off child task (parentId) is created due now and runs like any other,
 * and the recurring task moves on to its next occurrence. Runs of different occurrences can therefore
 * go on at the same time, each with its own status, retries and lease. claimTasks never claims these.
 */
export async function fireOverlappingTasks(prisma: PrismaClient, limit: number): Promise<number> {
  // The scheduler calls this only when its next-due statement says an ALLOW task is due (overlapMs).
  return prisma.$transaction(async (tx) => {
    const due = await tx.$queryRawUnsafe<{ id: string }[]>(
      `SELECT id FROM task
        WHERE status = 'SCHEDULED' AND overlap_policy = 'ALLOW' AND repeat_type IN ('CRON', 'INTERVAL') AND next_run_at <= now()
        ORDER BY next_run_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
      limit,
    );
    if (due.length === 0) return 0;
    const parents = await tx.task.findMany({ where: { id: { in: due.map((d) => d.id) } } });
    const now = new Date();
    for (const parent of parents) {
      const child = await tx.task.create({ data: childOf(parent, now) });
      await recordEvents(tx, [
        {
          taskId: child.id,
          tenantId: child.tenantId,
          fromStatus: null,
          toStatus: TaskStatus.SCHEDULED,
          nextRunAt: now,
          message: `occurrence ${parent.nextRunAt!.toISOString()} of ${parent.id}`,
        },
      ]);
      const runCount = parent.runCount + 1;
      const next = nextRunAfter({ ...parent, scheduledFor: parent.nextRunAt!, runStartedAt: now, now, runCount });
      await transition(tx, {
        task: parent,
        to: next ? TaskStatus.SCHEDULED : TaskStatus.SUCCEEDED,
        type: next ? TaskEventType.RESCHEDULED : TaskEventType.STATUS_CHANGED,
        data: { nextRunAt: next, runCount },
        message: `fired occurrence as task ${child.id}${next ? `; next ${next.toISOString()}` : '; schedule complete'}`,
      });
    }
    return parents.length;
  });
}

function childOf(parent: Task, now: Date) {
  return {
    tenantId: parent.tenantId,
    templateId: parent.templateId,
    parentId: parent.id,
    fullName: parent.fullName,
    taskType: parent.taskType,
    funcName: parent.funcName,
    argDict: parent.argDict ?? {},
    repeatType: RepeatType.ONCE,
    timezone: parent.timezone,
    startTime: now,
    nextRunAt: now,
    status: TaskStatus.SCHEDULED,
    priority: parent.priority,
    queue: parent.queue,
    maxAttempts: parent.maxAttempts,
    timeoutMs: parent.timeoutMs,
    memoryLimitMb: parent.memoryLimitMb,
    retryBackoffMs: parent.retryBackoffMs,
    source: parent.source,
    sourceModel: parent.sourceModel,
    sourceRowId: parent.sourceRowId,
    sourceField: parent.sourceField,
  };
}
