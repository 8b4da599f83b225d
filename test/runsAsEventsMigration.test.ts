import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { BREAKING_MIGRATIONS_TABLE, migrate, readMigrations } from '../src/db/migrate.js';
import { emptyDatabaseSession } from './support/migrationSession.js';
import { backends } from './support/testApp.js';

const logger = pino({ level: 'silent' });
const RUNS_AS_EVENTS = '20261208000000_runs_as_events';

/**
 * Migration 20261208000000_runs_as_events keeps runs in their events, and task_run becomes a view of
 * them. Every run a database held before reads back through the view as it was (its start is its
 * starting event's time, here the same), a run whose starting event is gone goes with its log lines, and
 * a finished run without an ending event keeps its outcome.
 */
describe.each(backends)('the runs-as-events migration keeps every run as it was (%s)', (backend) => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  const session = () => emptyDatabaseSession(backend, cleanup);

  it('reads every run back through the view, column for column', async () => {
    const s = await session();
    const files = await readMigrations();
    const at = files.findIndex((m) => m.name === RUNS_AS_EVENTS);
    expect(at).toBeGreaterThan(0);
    await migrate(s, logger, files.slice(0, at));
    await s.exec(`
      INSERT INTO task (id, tenant_id, full_name, task_type, func_name, start_time, status, attempts, updated_at)
      SELECT ('01900000-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid, 'tenant-' || (i % 2), 'tasks.Old', 'tasks.NormalType',
             'chronograph.noop', now(), CASE WHEN i = 1 THEN 'RUNNING' ELSE 'SUCCEEDED' END::"TaskStatus", 3, now()
        FROM generate_series(1, 4) i`);
    // Per task three runs: attempts 1 and 2 ended (FAILED with an error and a stack, then SUCCEEDED with a
    // result, or ABANDONED), attempt 3 RUNNING on task 1 and SUCCEEDED elsewhere. Each run has the event
    // that started it and the event that ended it, as the scheduler wrote them, with events that are no
    // run's in between.
    await s.exec(`
      INSERT INTO task_run (id, tenant_id, task_id, attempt, status, worker_id, recovered, started_at, finished_at, duration_ms,
                            result, error, error_stack)
      SELECT ('01900000-0000-7000-9000-' || lpad((t.i * 10 + a)::text, 12, '0'))::uuid, t.tenant_id, t.id, a,
             (CASE WHEN t.i = 1 AND a = 3 THEN 'RUNNING' WHEN a = 1 THEN 'FAILED' WHEN t.i = 2 AND a = 2 THEN 'ABANDONED' ELSE 'SUCCEEDED' END)::"RunStatus",
             'worker-' || a, a = 2, timestamptz '2026-12-01 00:00:00Z' + (t.i * 10 + a) * interval '1 minute',
             CASE WHEN NOT (t.i = 1 AND a = 3) THEN timestamptz '2026-12-01 00:00:00Z' + (t.i * 10 + a) * interval '1 minute' + interval '1500 ms' END,
             CASE WHEN NOT (t.i = 1 AND a = 3) THEN 1500 END,
             CASE WHEN a = 3 AND t.i <> 1 THEN jsonb_build_object('ok', t.i) END,
             CASE WHEN a = 1 THEN 'boom ' || t.i END, CASE WHEN a = 1 THEN 'Error: boom' END
        FROM (SELECT row_number() OVER (ORDER BY id) AS i, id, tenant_id FROM task) t CROSS JOIN generate_series(1, 3) a`);
    await s.exec(`
      INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, message, created_at)
      SELECT tenant_id, task_id, id, 'STATUS_CHANGED', 'SCHEDULED', 'RUNNING', 'attempt ' || attempt, started_at
        FROM task_run ORDER BY started_at`);
    await s.exec(`
      INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, message, created_at)
      SELECT tenant_id, task_id, NULL, 'UPDATED', 'RUNNING', 'RUNNING', 'updated while running', started_at
        FROM task_run WHERE attempt = 2 ORDER BY started_at`);
    // Task 3's second run has no ending event (none is known to exist; the migration must keep its outcome
    // all the same); task 4's first run lost its starting event to pruning, and goes with its log line.
    await s.exec(`
      INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, message, created_at)
      SELECT r.tenant_id, r.task_id, r.id, CASE WHEN r.status = 'ABANDONED' THEN 'RECOVERED' ELSE 'STATUS_CHANGED' END::"TaskEventType",
             'RUNNING', CASE WHEN r.attempt = 3 THEN 'SUCCEEDED' ELSE 'RETRYING' END::"TaskStatus", lower(r.status::text), r.finished_at
        FROM task_run r WHERE r.status <> 'RUNNING' AND r.id <> '01900000-0000-7000-9000-000000000032' ORDER BY r.finished_at`);
    await s.exec(`DELETE FROM task_event WHERE run_id = '01900000-0000-7000-9000-000000000041' AND to_status = 'RUNNING'`);
    await s.exec(`
      INSERT INTO task_run_log (tenant_id, task_id, run_id, level, message)
      SELECT tenant_id, task_id, id, 'info', 'line of ' || attempt FROM task_run`);

    const runs = `SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'id', id, 'tenant_id', tenant_id, 'task_id', task_id, 'attempt', attempt, 'status', status, 'worker_id', worker_id,
                    'recovered', recovered, 'started_at', started_at, 'finished_at', finished_at, 'duration_ms', duration_ms,
                    'result', result, 'error', error, 'error_stack', error_stack) ORDER BY id), '[]') AS rows FROM task_run`;
    const [before] = await s.query<{ rows: Record<string, unknown>[] }>(runs);
    expect(before!.rows).toHaveLength(12);

    expect(await migrate(s, logger, files.slice(0, at + 1))).toEqual([RUNS_AS_EVENTS]);
    expect(
      await s.query(`SELECT migration_name FROM "${BREAKING_MIGRATIONS_TABLE}" WHERE migration_name = $1`, [RUNS_AS_EVENTS]),
    ).toHaveLength(1);
    const [kind] = await s.query<{ kind: string }>(`SELECT relkind::text AS kind FROM pg_class WHERE relname = 'task_run'`);
    expect(kind!.kind).toBe('v');

    const [after] = await s.query<{ rows: Record<string, unknown>[] }>(runs);
    const gone = '01900000-0000-7000-9000-000000000041';
    expect(after!.rows).toEqual(before!.rows.filter((r) => r.id !== gone));
    expect(await s.query(`SELECT message FROM task_run_log WHERE run_id = $1::uuid`, [gone])).toEqual([]);
    const [lines] = await s.query<{ n: number }>(`SELECT count(*)::int AS n FROM task_run_log`);
    expect(lines!.n).toBe(11);
    // Runs in start order by the id of the event that started them; one by its id.
    const [ordered] = await s.query<{ ok: boolean }>(
      `SELECT bool_and(ok) AS ok FROM (SELECT started_at >= lag(started_at) OVER (ORDER BY event_id) IS NOT FALSE AS ok FROM task_run) x`,
    );
    expect(ordered!.ok).toBe(true);
    expect(await s.query(`SELECT status::text, worker_id FROM task_run WHERE id = '01900000-0000-7000-9000-000000000013'`)).toEqual([
      { status: 'RUNNING', worker_id: 'worker-3' },
    ]);
  });
});
