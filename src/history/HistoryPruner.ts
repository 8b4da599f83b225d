import { open } from 'node:fs/promises';
import path from 'node:path';
import { createGzip } from 'node:zlib';
import type { Logger } from 'pino';
import type { Prisma, PrismaClient } from '../generated/prisma/client.js';
import { makeDirectory } from '../ops/makeDirectory.js';

/** What one prune removed. */
export interface PruneCounts {
  tasks: number;
  runs: number;
  logs: number;
  events: number;
  /** Archive files written (ARCHIVE_DIR), one per batch that deleted something. */
  archives: number;
}

export interface HistoryPrunerOptions {
  prisma: PrismaClient;
  logger: Logger;
  /** HISTORY_RETENTION_DAYS: null keeps everything, except where a tenant has its own setting. */
  retentionDays: number | null;
  /** ARCHIVE_DIR: where deleted rows are written first, as gzip JSON lines. */
  archiveDir: string | null;
  /** Rows per statement; small, so no prune holds locks or a transaction for long. */
  batchSize?: number;
  now?: () => Date;
}

/** An arbitrary constant naming the per-tenant prune locks (first half of the two-key advisory lock). */
const PRUNE_LOCK_CLASS = 0x70727565; // 'prue'
const FINISHED = `('SUCCEEDED', 'FAILED', 'FORCED_END', 'CANCELLED')`;
/**
 * One batch's selections, in one statement ($1 tenant, $2 cutoff, $3 batch size, $4 where the events stop: EVENTS_BOUND), rows tagged by kind:
 * - `finished`: finished tasks that ended before the cutoff, with everything they have, locked (SKIP
 *   LOCKED) until the batch commits. A finished task has no run in progress: every statement that takes
 *   a task out of RUNNING writes the event that ends its run (TaskRun is read from its events). Looked
 *   for through task_spec's created_at as well (a task that ended before the cutoff was created before
 *   it): with nothing to prune, the planner can read the tasks created before the cutoff that are still
 *   there (mostly live recurring ones) instead of every finished task of the tenant (steady state,
 *   300,000 finished tasks within the retention and 25,000 older live ones: 236 → 73 ms a prune). In no
 *   particular order: every one of them goes, and the first `batch size` found end the scan;
 * - `events` older than the cutoff of tasks that go on, none of a task with a run in progress, oldest
 *   first. A run goes with the event that started it (`run`: its id, for its log lines and the archive);
 *   the event that ended it goes when it is older than the cutoff too (a run that started before the
 *   cutoff and ended after it is pruned, as its row was, and its ending event is kept).
 * `running` is the tenant's tasks with a run in progress (a task is RUNNING exactly while its run is: the
 * claim, the completion and endTask change both in one statement). Being one statement, the selections
 * read one snapshot. `running` is read through the index task_status_tenant_id_idx and filtered as a
 * hashed set, as is `finished`, so the events selection keeps its index scan that stops at the batch size
 * (a plan the statistics tip to an anti join scans whole tables; a NOT IN is never made one).
 */
const SELECT_BATCH = `
  WITH running AS MATERIALIZED (SELECT task_id AS id FROM task_state WHERE tenant_id = $1 AND status = 'RUNNING'),
  finished AS (
    SELECT t.task_id AS id FROM task_state t JOIN task_spec s ON s.id = t.task_id
     WHERE t.tenant_id = $1 AND t.status IN ${FINISHED} AND t.updated_at < $2 AND s.tenant_id = $1 AND s.created_at < $2
     LIMIT $3 FOR UPDATE OF t SKIP LOCKED),
  events AS (
    SELECT id, CASE WHEN attempt IS NOT NULL THEN run_id END AS run_id FROM task_event
     WHERE tenant_id = $1 AND id < $4::bigint AND created_at < $2
       AND task_id NOT IN (SELECT id FROM running) AND task_id NOT IN (SELECT id FROM finished)
     ORDER BY id LIMIT $3)
  SELECT 'task' AS kind, id::text AS id FROM finished
  UNION ALL SELECT 'run', run_id::text FROM events WHERE run_id IS NOT NULL
  UNION ALL SELECT 'event', id::text FROM events`;
/**
 * Where a prune of a tenant's events stops ($1 tenant, $2 cutoff): the first event after the tenant's
 * prune mark that is not older than the cutoff (ids follow creation, so events past it are newer too),
 * or past the newest event if every one is older. Without it, the events selection of a prune with
 * nothing (left) to prune read every event of the tenant looking for one older than the cutoff: there is
 * no index on created_at, and a scan in id order does not know where to stop (a sequential scan of
 * task_event, 40 ms for 600,000 events, at every prune). Found once per prune, from the mark on: in the
 * usual case, where everything before the mark is pruned, the first event after it is already new
 * enough. An event committed after newer ones (a long transaction) may wait for a later prune.
 */
const EVENTS_BOUND = `
  SELECT coalesce(
    (SELECT e.id FROM task_event e WHERE e.tenant_id = $1 AND e.created_at >= $2
        AND e.id > coalesce((SELECT events_pruned_through FROM tenant WHERE id = $1), 0)
      ORDER BY e.id LIMIT 1),
    (SELECT max(e.id) + 1 FROM task_event e WHERE e.tenant_id = $1),
    0)::text AS bound`;
const DAY_MS = 86_400_000;

/**
 * Deletes old history in small batches: finished tasks (with their runs, logs and events) that ended
 * before a tenant's cutoff, and the runs, logs and events older than it of tasks that go on. A task with a
 * run in progress keeps all of its history, however old, until that run has finished: the run, its
 * events (the one that started it among them) and the task's earlier runs, logs and events (they used
 * to be pruned under a running attempt). A run is kept in its events and goes with the one that started
 * it. A batch's finished tasks and events are selected in one statement, which reads whether a run is in
 * progress: a run that starts meanwhile is never pruned (its events are visible to the statement only
 * together with its RUNNING status), and within a batch a task's old events, runs among them, are judged
 * alike, all selected (it had no run in progress when the batch was selected) or all kept; events a batch
 * selected before a run started may still go. Each batch is
 * one short transaction under the tenant's prune lock (an advisory lock: an instance that finds it taken
 * leaves that tenant to the instance holding it), touches only finished rows, and takes no lock a claim
 * waits for. With ARCHIVE_DIR, a batch's rows are written as gzip JSON lines before the transaction that
 * deletes them commits (so an archive may repeat rows whose deletion then failed, never miss one).
 *
 * Events are pruned oldest id first and the newest id pruned is kept per tenant
 * (tenant.events_pruned_through, only ever raised): a subscription resuming from before it gets
 * CURSOR_EXPIRED, since an event after its cursor is gone; one resuming from it or later gets every event
 * still stored after its cursor. Events at or below it may still be stored (a task's whose run was in
 * progress, or newer than the cutoff with a lower id): a subscription resuming from it skips those, as it
 * was told (CURSOR_EXPIRED names it as the oldest cursor); when they are pruned later, the mark does not
 * move back.
 */
export class HistoryPruner {
  private timer?: NodeJS.Timeout;
  private first?: NodeJS.Timeout;
  private stopped = false;
  private running?: Promise<unknown>;
  private readonly batchSize: number;

  constructor(private readonly options: HistoryPrunerOptions) {
    this.batchSize = options.batchSize ?? 500;
  }

  /** Prunes every `intervalMs` (the first time soon after start); errors are logged, not thrown. */
  start(intervalMs: number): void {
    this.stopped = false;
    const run = () => {
      if (this.stopped) return;
      this.running ??= this.pruneByRetention()
        .then((counts) => {
          if (counts.tasks + counts.runs + counts.events > 0) this.options.logger.info(counts, 'pruned history');
        })
        .catch((error) => this.options.logger.error({ err: error }, 'could not prune history; trying again later'))
        .finally(() => (this.running = undefined));
    };
    this.timer = setInterval(run, intervalMs);
    this.timer.unref();
    this.first = setTimeout(run, Math.min(intervalMs, 5_000));
    this.first.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.first);
    await this.running;
  }

  /** Prunes each tenant by its retention (its own, else HISTORY_RETENTION_DAYS). */
  async pruneByRetention(): Promise<PruneCounts> {
    const now = (this.options.now?.() ?? new Date()).getTime();
    const total = emptyCounts();
    for (const tenant of await this.tenants()) {
      const days = tenant.retentionDays ?? this.options.retentionDays;
      if (days == null) continue;
      add(total, await this.pruneTenant(tenant.id, new Date(now - days * DAY_MS)));
    }
    return total;
  }

  /** pruneHistory: everything finished or recorded before `before`, of one tenant or of all. */
  async pruneBefore(before: Date, tenantId?: string): Promise<PruneCounts> {
    const total = emptyCounts();
    const tenants = tenantId ? [tenantId] : (await this.tenants()).map((t) => t.id);
    for (const id of tenants) add(total, await this.pruneTenant(id, before));
    return total;
  }

  /**
   * Every tenant that has tasks (a loose index scan of task_spec, which has a row per task and indexes
   * led by tenant_id: one probe per tenant), with its own retention.
   */
  private async tenants(): Promise<{ id: string; retentionDays: number | null }[]> {
    const rows = await this.options.prisma.$queryRawUnsafe<{ id: string; days: number | null }[]>(
      `WITH RECURSIVE t AS (
         (SELECT tenant_id FROM task_spec ORDER BY tenant_id LIMIT 1)
         UNION ALL
         SELECT (SELECT tenant_id FROM task_spec WHERE tenant_id > t.tenant_id ORDER BY tenant_id LIMIT 1) FROM t WHERE t.tenant_id IS NOT NULL
       )
       SELECT t.tenant_id AS id, q.history_retention_days AS days FROM t LEFT JOIN tenant q ON q.id = t.tenant_id WHERE t.tenant_id IS NOT NULL`,
    );
    return rows.map((r) => ({ id: r.id, retentionDays: r.days }));
  }

  private async pruneTenant(tenantId: string, cutoff: Date): Promise<PruneCounts> {
    const total = emptyCounts();
    const events: { bound?: string } = {};
    for (;;) {
      const batch = await this.batch(tenantId, cutoff, events);
      if (batch === null) break;
      add(total, batch);
      if (batch.tasks + batch.runs + batch.events === 0) break;
    }
    return total;
  }

  /** One batch in one transaction; null when another instance holds the tenant's prune lock. */
  /** `events.bound`: where the events selection stops (EVENTS_BOUND), found by the prune's first batch. */
  private batch(tenantId: string, cutoff: Date, events: { bound?: string }): Promise<PruneCounts | null> {
    return this.options.prisma.$transaction(
      async (tx) => {
        const [lock] = await tx.$queryRawUnsafe<{ locked: boolean }[]>(
          `SELECT pg_try_advisory_xact_lock($1::int, hashtext($2)) AS locked`,
          PRUNE_LOCK_CLASS,
          tenantId,
        );
        if (!lock?.locked) return null;
        const counts = emptyCounts();
        if (events.bound === undefined) {
          const [row] = await tx.$queryRawUnsafe<{ bound: string }[]>(EVENTS_BOUND, tenantId, cutoff);
          events.bound = row?.bound ?? '0';
        }
        // One statement, so one snapshot decides which tasks have a run in progress for both selections.
        const selected = await tx.$queryRawUnsafe<{ kind: 'task' | 'run' | 'event'; id: string }[]>(
          SELECT_BATCH,
          tenantId,
          cutoff,
          this.batchSize,
          events.bound,
        );
        const taskIds = selected.filter((r) => r.kind === 'task').map((r) => r.id);
        const runIds = selected.filter((r) => r.kind === 'run').map((r) => r.id);
        const eventIds = selected.filter((r) => r.kind === 'event').map((r) => BigInt(r.id));
        if (taskIds.length + runIds.length + eventIds.length === 0) return counts;
        if (this.options.archiveDir) {
          await this.archive(tx, tenantId, taskIds, runIds, eventIds);
          counts.archives = 1;
        }
        // Children first, so each count is what this prune removed; one statement per index (an OR of
        // two index conditions would scan the table).
        const run = (sql: string, ids: unknown[]) => (ids.length ? tx.$executeRawUnsafe(sql, ids) : Promise.resolve(0));
        counts.logs =
          (await run(`DELETE FROM task_run_log WHERE task_id = ANY($1::uuid[])`, taskIds)) +
          (await run(`DELETE FROM task_run_log WHERE run_id = ANY($1::uuid[])`, runIds));
        // A run goes with the event that started it (the only event of a run with an attempt).
        const deletedEvents = [
          ...(taskIds.length
            ? await tx.$queryRawUnsafe<{ id: bigint; run: boolean }[]>(
                `DELETE FROM task_event WHERE task_id = ANY($1::uuid[]) RETURNING id, attempt IS NOT NULL AS run`,
                taskIds,
              )
            : []),
          ...(eventIds.length
            ? await tx.$queryRawUnsafe<{ id: bigint; run: boolean }[]>(
                `DELETE FROM task_event WHERE id = ANY($1::bigint[]) RETURNING id, attempt IS NOT NULL AS run`,
                eventIds,
              )
            : []),
        ];
        counts.events = deletedEvents.length;
        counts.runs = deletedEvents.filter((e) => e.run).length;
        counts.tasks = await run(`DELETE FROM task_spec WHERE id = ANY($1::uuid[])`, taskIds);
        if (deletedEvents.length > 0) {
          // biome-ignore lint/complexity/useMathMinMax: Math.max does not take bigints.
          const newest = deletedEvents.reduce((max, e) => (e.id > max ? e.id : max), 0n);
          await tx.$executeRawUnsafe(
            `INSERT INTO tenant (id, events_pruned_through, updated_at) VALUES ($1, $2, now())
             ON CONFLICT (id) DO UPDATE SET events_pruned_through = GREATEST(coalesce(tenant.events_pruned_through, 0), EXCLUDED.events_pruned_through)`,
            tenantId,
            newest,
          );
        }
        return counts;
      },
      { timeout: 60_000 },
    );
  }

  /** Writes the batch's rows as gzip JSON lines ({"table": ..., "row": ...}) under ARCHIVE_DIR/<tenant>/<day>/. */
  private async archive(
    tx: Prisma.TransactionClient,
    tenantId: string,
    taskIds: string[],
    runIds: string[],
    eventIds: bigint[],
  ): Promise<void> {
    const now = this.options.now?.() ?? new Date();
    const dir = path.join(this.options.archiveDir!, encodeURIComponent(tenantId), now.toISOString().slice(0, 10));
    await makeDirectory(dir);
    const file = path.join(
      dir,
      `${now.toISOString().replace(/[:.]/g, '-')}-${process.pid}-${Math.random().toString(36).slice(2, 8)}.jsonl.gz`,
    );
    const rows = async (table: string, sql: string, ...params: unknown[]) =>
      (await tx.$queryRawUnsafe<{ row: unknown }[]>(sql, ...params)).map((r) => `${JSON.stringify({ table, row: r.row })}\n`);
    const lines = [
      ...(await rows('task', `SELECT to_jsonb(t) AS row FROM task t WHERE id = ANY($1::uuid[])`, taskIds)),
      ...(await rows('task_run', `SELECT to_jsonb(r) AS row FROM task_run r WHERE task_id = ANY($1::uuid[])`, taskIds)),
      ...(await rows('task_run', `SELECT to_jsonb(r) AS row FROM task_run r WHERE id = ANY($1::uuid[])`, runIds)),
      ...(await rows('task_run_log', `SELECT to_jsonb(l) AS row FROM task_run_log l WHERE task_id = ANY($1::uuid[])`, taskIds)),
      ...(await rows('task_run_log', `SELECT to_jsonb(l) AS row FROM task_run_log l WHERE run_id = ANY($1::uuid[])`, runIds)),
      ...(await rows('task_event', `SELECT to_jsonb(e) AS row FROM task_event e WHERE task_id = ANY($1::uuid[])`, taskIds)),
      ...(await rows('task_event', `SELECT to_jsonb(e) AS row FROM task_event e WHERE id = ANY($1::bigint[])`, eventIds)),
    ];
    const handle = await open(file, 'wx');
    try {
      const gzip = createGzip();
      const chunks: Buffer[] = [];
      gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
      const done = new Promise<void>((resolve, reject) => {
        gzip.on('end', resolve);
        gzip.on('error', reject);
      });
      for (const line of lines) gzip.write(line);
      gzip.end();
      await done;
      await handle.writeFile(Buffer.concat(chunks));
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

function emptyCounts(): PruneCounts {
  return { tasks: 0, runs: 0, logs: 0, events: 0, archives: 0 };
}

function add(total: PruneCounts, more: PruneCounts): void {
  total.tasks += more.tasks;
  total.runs += more.runs;
  total.logs += more.logs;
  total.events += more.events;
  total.archives += more.archives;
}
