import type { PrismaClient } from '../generated/prisma/client.js';
import type { TaskEventFilter, TaskEventRef } from './TaskEventFilter.js';

/** Stored events that `filter` matches with `after < id <= upTo`, oldest first: one replay page. */
export async function readMatchingEvents(
  prisma: PrismaClient,
  filter: TaskEventFilter,
  after: bigint,
  upTo: bigint,
  limit: number,
): Promise<TaskEventRef[]> {
  const rows = await prisma.taskEvent.findMany({
    where: filter.where(after, upTo),
    orderBy: { id: 'asc' },
    take: limit,
    select: {
      id: true,
      taskId: true,
      tenantId: true,
      type: true,
      toStatus: true,
      task: { select: { fullName: true, funcName: true, source: true } },
    },
  });
  // A literal, not `({ task, ...event }) => ({ ...event, ...task })` (about 3 µs a row on Node 20's V8).
  return rows.map((r) => ({
    id: r.id,
    taskId: r.taskId,
    tenantId: r.tenantId,
    type: r.type,
    toStatus: r.toStatus,
    fullName: r.task.fullName,
    funcName: r.task.funcName,
    source: r.task.source,
  }));
}
