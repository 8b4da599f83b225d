import { conflict } from '../errors.js';
import type { Prisma, RunStatus, Task } from '../generated/prisma/client.js';
import { TaskEventType, TaskStatus } from '../generated/prisma/client.js';

/** Statuses from which a task can still run; `uniqueKey` admits one live task per key. */
export const LIVE_STATUSES: TaskStatus[] = [TaskStatus.SCHEDULED, TaskStatus.RUNNING, TaskStatus.RETRYING, TaskStatus.PAUSED];
export const TERMINAL_STATUSES: TaskStatus[] = [TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.FORCED_END, TaskStatus.CANCELLED];

/**
 * NOTIFY channel announcing new TaskEvents, sent on commit by task_event's statement trigger (migration
 * 20261205000000_task_event_announcements): one notification per inserting statement, whose payload is
 * the task ids of its events (comma-separated, in event order) when there are at most 100, else ''.
 */
export const TASK_EVENT_CHANNEL = 'chronograph_task_event';
/** NOTIFY channel that wakes schedulers when a task becomes due earlier than they expected. */
export const WAKE_CHANNEL = 'chronograph_wake';
/** NOTIFY channel whose payload is the id of a RUNNING task to force-end; its instance aborts it. */
export const CANCEL_CHANNEL = 'chronograph_cancel';

const ALLOWED: Record<TaskStatus, readonly TaskStatus[]> = {
  // SCHEDULED → SUCCEEDED: an ALLOW-overlap task fired its last occurrence (its runs are child tasks).
  SCHEDULED: ['SCHEDULED', 'RUNNING', 'PAUSED', 'SUCCEEDED', 'FORCED_END', 'CANCELLED'],
  // RETRYING → SCHEDULED: a date-field task whose record date moved starts its new occurrence afresh.
  RETRYING: ['RETRYING', 'SCHEDULED', 'RUNNING', 'PAUSED', 'FORCED_END', 'CANCELLED'],
  RUNNING: ['SCHEDULED', 'RETRYING', 'SUCCEEDED', 'FAILED', 'FORCED_END', 'CANCELLED', 'RUNNING'],
  PAUSED: ['PAUSED', 'SCHEDULED', 'RETRYING', 'FORCED_END', 'CANCELLED'],
  SUCCEEDED: [],
  FAILED: [],
  FORCED_END: [],
  CANCELLED: [],
};

export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return ALLOWED[from].includes(to);
}

export interface TransitionInput {
  task: Pick<Task, 'id' | 'tenantId' | 'status'>;
  to: TaskStatus;
  /** Other columns to change in the same update. */
  data?: Prisma.TaskUncheckedUpdateManyInput;
  message?: string | null;
  runId?: string | null;
  /** The run `runId` names ends with this event (TaskRun is read from its events). */
  runEnd?: RunEnd | null;
  type?: TaskEventType;
  /** Who caused it (TaskEvent.actor); null when the scheduler acts on its own. */
  actor?: string | null;
}

/** How a run ended, carried by the event that ended it. */
export interface RunEnd {
  status: RunStatus;
  durationMs: number;
  error: string | null;
}

/**
 * The one way a task changes status: a conditional update (the status must still be the one the caller
 * saw, so two writers cannot both win), the TaskEvent row, and a NOTIFY that is delivered on commit.
 * Call it inside a transaction.
 */
export async function transition(tx: Prisma.TransactionClient, input: TransitionInput): Promise<Task> {
  const { task, to } = input;
  if (!canTransition(task.status, to)) {
    throw conflict(`Task ${task.id} is ${task.status}; it cannot become ${to}`, { status: task.status });
  }
  const updated = await tx.task.updateManyAndReturn({
    where: { id: task.id, tenantId: task.tenantId, status: task.status },
    data: { ...input.data, status: to },
  });
  if (updated.length === 0) {
    throw conflict(`Task ${task.id} changed while this request was handled; read it again and retry`);
  }
  const row = updated[0]!;
  await recordEvent(tx, {
    taskId: task.id,
    tenantId: task.tenantId,
    fromStatus: task.status,
    toStatus: to,
    nextRunAt: row.nextRunAt,
    message: input.message,
    runId: input.runId,
    runEnd: input.runEnd,
    type: input.type,
    actor: input.actor,
  });
  return row;
}

export interface EventInput {
  taskId: string;
  tenantId: string;
  /** Default: CREATED when fromStatus is null, else STATUS_CHANGED. */
  type?: TaskEventType;
  nextRunAt?: Date | null;
  fromStatus: TaskStatus | null;
  toStatus: TaskStatus;
  message?: string | null;
  runId?: string | null;
  runEnd?: RunEnd | null;
  /** key:<id>, jwt:<sub>, anonymous, task:<id>; null for the scheduler's own changes. */
  actor?: string | null;
}

export async function recordEvent(tx: Prisma.TransactionClient, event: EventInput): Promise<void> {
  await recordEvents(tx, [event]);
}

/** Appends TaskEvents (task_event's trigger announces them on commit, see TASK_EVENT_CHANNEL). */
export async function recordEvents(tx: Prisma.TransactionClient, events: EventInput[]): Promise<void> {
  if (events.length === 0) return;
  await tx.taskEvent.createMany({
    data: events.map((e) => ({
      type: e.type ?? (e.fromStatus === null ? TaskEventType.CREATED : TaskEventType.STATUS_CHANGED),
      nextRunAt: e.nextRunAt ?? null,
      taskId: e.taskId,
      tenantId: e.tenantId,
      fromStatus: e.fromStatus,
      toStatus: e.toStatus,
      message: e.message ?? null,
      runId: e.runId ?? null,
      actor: e.actor ?? null,
      ...(e.runEnd && { runStatus: e.runEnd.status, durationMs: e.runEnd.durationMs, error: e.runEnd.error }),
    })),
  });
}
