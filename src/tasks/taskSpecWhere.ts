import type { Prisma } from '../generated/prisma/client.js';

/**
 * A filter of tasks by name and handler, as a Prisma `where` on Task: through task_spec, where those
 * columns are indexed with the tenant (migration 20261205030000_task_spec), and with the tenant, so that
 * its (tenant_id, …) indexes serve. Undefined when neither is given. The task list (TaskSvc.taskWhere)
 * and a subscription's replay (TaskEventFilter.where) use it.
 */
export function taskSpecWhere(
  tenantId: string,
  { fullName, funcName }: { fullName?: string | null; funcName?: string | null },
): Prisma.TaskWhereInput['spec'] {
  if (fullName == null && funcName == null) return undefined;
  return { tenantId, ...(fullName != null && { fullName }), ...(funcName != null && { funcName }) };
}
