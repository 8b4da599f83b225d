import type { PrismaClient } from '../../src/generated/prisma/client.js';

/**
 * What a claim writes when it starts a run (migration 20261208000000_runs_as_events: a run is kept in its
 * events, TaskRun is a view of them): the STATUS_CHANGED event to RUNNING with the attempt, the worker and
 * whether it took over. For tests that stage what another instance left behind; the task's own row
 * (status, lease) is the caller's to set, or holdTask's. Returns the new run's id.
 */
export async function startRun(
  prisma: PrismaClient,
  run: { taskId: string; tenantId?: string; attempt: number; workerId: string; recovered?: boolean },
): Promise<{ id: string }> {
  const [row] = await prisma.$queryRawUnsafe<{ id: string }[]>(
    `INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, message, attempt, worker_id, recovered)
     VALUES ($1, $2::uuid, gen_random_uuid(), 'STATUS_CHANGED', 'SCHEDULED', 'RUNNING', 'attempt ' || $3 || ' on ' || $4, $3::int, $4, $5)
     RETURNING run_id::text AS id`,
    run.tenantId ?? 'default',
    run.taskId,
    run.attempt,
    run.workerId,
    run.recovered ?? false,
  );
  return row!;
}

/**
 * What another instance's claim leaves behind: the run's starting event (startRun) and its task RUNNING
 * under that run's lease, held by `workerId` for `leaseMs` more (negative: a lease that has run out, as a
 * crashed instance leaves it), the attempt counted. Returns the run's id.
 */
export async function holdTask(
  prisma: PrismaClient,
  run: { taskId: string; tenantId?: string; attempt: number; workerId: string; leaseMs: number },
): Promise<{ id: string }> {
  const started = await startRun(prisma, run);
  await prisma.task.update({
    where: { id: run.taskId },
    data: {
      status: 'RUNNING',
      lockedBy: run.workerId,
      lockedRunId: started.id,
      lockedUntil: new Date(Date.now() + run.leaseMs),
      attempts: run.attempt,
    },
  });
  return started;
}

/** The event that ends a run started by startRun, as a completion writes it (the task's row is the caller's). */
export async function endRun(
  prisma: PrismaClient,
  run: { id: string; taskId: string; tenantId?: string; status: 'SUCCEEDED' | 'FAILED'; result?: unknown; durationMs?: number },
): Promise<void> {
  await prisma.$executeRawUnsafe(
    `INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, message, run_status, duration_ms, result)
     VALUES ($1, $2::uuid, $3::uuid, 'STATUS_CHANGED', 'RUNNING', $4::text::"TaskStatus", lower($4::text), $4::text::"RunStatus", $5::int, $6::jsonb)`,
    run.tenantId ?? 'default',
    run.taskId,
    run.id,
    run.status,
    run.durationMs ?? 1,
    run.result === undefined ? null : JSON.stringify(run.result),
  );
}
