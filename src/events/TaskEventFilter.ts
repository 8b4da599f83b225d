import { badInput } from '../errors.js';
import type { Prisma, TaskEventType, TaskSource, TaskStatus } from '../generated/prisma/client.js';
import { assertId, parseCursor } from '../tasks/validate.js';
import type { EventRow } from './eventRows.js';

/** What a subscriber asks for; every field narrows, an absent field matches everything. */
export interface TaskEventFilterInput {
  taskId?: string | number | null;
  fullName?: string | null;
  funcName?: string | null;
  source?: TaskSource | null;
  /** The status the task moved to. */
  statuses?: TaskStatus[] | null;
  types?: TaskEventType[] | null;
}

/** The columns of an event (and of its task) that filters and tenants are decided on. */
export interface TaskEventRef {
  /** Live events: the event's and its task's columns as the stream read them (see eventRows); absent in replays. */
  row?: EventRow;
  id: bigint;
  taskId: string;
  tenantId: string;
  type: TaskEventType;
  toStatus: TaskStatus;
  fullName: string;
  funcName: string;
  source: TaskSource;
}

/**
 * A validated filter: `matches` decides live events in memory and `where` selects the same events
 * from the table during a replay, so both halves of a resumed subscription agree.
 */
export class TaskEventFilter {
  private constructor(
    readonly tenantId: string,
    private readonly input: Readonly<Omit<TaskEventFilterInput, 'taskId'> & { taskId?: string }>,
  ) {}

  /** Rejects a malformed filter with BAD_USER_INPUT before anything is subscribed. */
  static parse(tenantId: string, input: TaskEventFilterInput | null | undefined = {}): TaskEventFilter {
    const filter = input ?? {};
    const taskId = filter.taskId == null ? undefined : assertId(String(filter.taskId), 'filter.taskId');
    for (const field of ['fullName', 'funcName'] as const) {
      const value = filter[field];
      if (value != null && value.trim() === '')
        throw badInput(`filter.${field} must not be empty; omit it to match every task`, `filter.${field}`);
    }
    for (const field of ['statuses', 'types'] as const) {
      if (filter[field] && filter[field].length === 0) {
        throw badInput(`filter.${field} must name at least one value; omit it to match all`, `filter.${field}`);
      }
    }
    return new TaskEventFilter(tenantId, { ...filter, taskId });
  }

  matches(event: TaskEventRef): boolean {
    const f = this.input;
    return (
      event.tenantId === this.tenantId &&
      (f.taskId == null || event.taskId === f.taskId) &&
      (f.fullName == null || event.fullName === f.fullName) &&
      (f.funcName == null || event.funcName === f.funcName) &&
      (f.source == null || event.source === f.source) &&
      (f.statuses == null || f.statuses.includes(event.toStatus)) &&
      (f.types == null || f.types.includes(event.type))
    );
  }

  /** The same selection as `matches`, for events with `after < id <= upTo`. */
  where(after: bigint, upTo: bigint): Prisma.TaskEventWhereInput {
    const f = this.input;
    // With the tenant, so that task_spec's (tenant_id, full_name) and (tenant_id, func_name) indexes serve.
    const task: Prisma.TaskWhereInput = {};
    if (f.fullName != null) task.fullName = f.fullName;
    if (f.funcName != null) task.funcName = f.funcName;
    if (f.source != null) task.source = f.source;
    if (Object.keys(task).length > 0) task.tenantId = this.tenantId;
    return {
      tenantId: this.tenantId,
      id: { gt: after, lte: upTo },
      ...(f.taskId != null && { taskId: f.taskId }),
      ...(f.statuses != null && { toStatus: { in: f.statuses } }),
      ...(f.types != null && { type: { in: f.types } }),
      ...(Object.keys(task).length > 0 && { task }),
    };
  }
}

/** An event cursor as clients send it back (`TaskEvent.cursor`, the decimal id). */
export function parseEventCursor(cursor: string | null | undefined, field = 'after'): bigint | undefined {
  return cursor == null ? undefined : parseCursor('event', cursor, field);
}
