import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { BREAKING_MIGRATIONS_TABLE, migrate, readMigrations } from '../src/db/migrate.js';
import { emptyDatabaseSession } from './support/migrationSession.js';
import { backends } from './support/testApp.js';

const logger = pino({ level: 'silent' });
const TASK_STATE = '20261207000000_task_state';

/**
 * Migration 20261207000000_task_state splits the table `task` into task_spec and task_state behind a view
 * named `task`. Every task a database held before reads back through the view exactly as it was, with
 * every column; the indexes that keep one live task per key still hold; the history stays attached.
 */
describe.each(backends)('the task_state migration keeps every task as it was (%s)', (backend) => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  const session = () => emptyDatabaseSession(backend, cleanup);

  it('reads every task back through the view, column for column, and keeps its keys and history', async () => {
    const s = await session();
    const files = await readMigrations();
    const at = files.findIndex((m) => m.name === TASK_STATE);
    expect(at).toBeGreaterThan(0);
    await migrate(s, logger, files.slice(0, at));
    await s.exec(`INSERT INTO task_template (id, full_name, title, func_name, updated_at)
                  VALUES ('01900000-0000-7000-8000-0000000000aa', 'tasks.Old', 'Old', 'chronograph.noop', now())`);
    // Tasks in every status, with every optional column set on some of them.
    await s.exec(`
      INSERT INTO task (id, tenant_id, template_id, full_name, task_type, func_name, arg_dict, repeat_type, cron_expression,
                        interval_seconds, timezone, start_time, end_time, max_runs, run_count, next_run_at, occurrence_at, status,
                        priority, queue, attempts, max_attempts, timeout_ms, unique_key, source, source_model, source_row_id,
                        source_field, locked_by, locked_until, last_error, misfire_policy, misfire_tolerance_ms, overlap_policy,
                        retry_backoff_ms, locked_run_id, last_run_abandoned, revision, memory_limit_mb, parent_id, created_at, updated_at)
      SELECT ('01900000-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid, 'tenant-' || (i % 3),
             CASE WHEN i % 2 = 0 THEN '01900000-0000-7000-8000-0000000000aa'::uuid END,
             'tasks.Old' || i, 'tasks.NormalType', 'chronograph.noop', jsonb_build_object('i', i),
             (ARRAY['ONCE', 'CRON', 'INTERVAL', 'DATE_FIELD'])[1 + i % 4]::"RepeatType", CASE WHEN i % 4 = 1 THEN '*/5 * * * *' END,
             CASE WHEN i % 4 = 2 THEN 60 END, 'Europe/Paris', now() - i * interval '1 hour', now() + interval '30 days', 10 + i, i % 5,
             CASE WHEN i % 8 < 4 THEN now() + i * interval '1 minute' END, CASE WHEN i % 8 = 3 THEN now() - interval '1 day' END,
             (ARRAY['SCHEDULED', 'RUNNING', 'PAUSED', 'RETRYING', 'SUCCEEDED', 'FAILED', 'FORCED_END', 'CANCELLED'])[1 + i % 8]::"TaskStatus",
             i % 7 - 3, CASE WHEN i % 5 = 0 THEN 'slow' ELSE 'default' END, i % 4, 3, CASE WHEN i % 3 = 0 THEN 5000 END,
             CASE WHEN i % 6 = 0 THEN 'key-' || i END,
             CASE WHEN i % 4 = 3 THEN 'DATE_FIELD' ELSE 'API' END::"TaskSource", CASE WHEN i % 4 = 3 THEN 'Order' END,
             CASE WHEN i % 4 = 3 THEN 'row-' || i END, CASE WHEN i % 4 = 3 THEN 'due' END,
             CASE WHEN i % 8 = 1 THEN 'worker-1' END, CASE WHEN i % 8 = 1 THEN now() + interval '30 seconds' END,
             CASE WHEN i % 8 = 5 THEN 'it failed' END, (ARRAY['RUN_ONCE', 'SKIP', 'RUN_ALL'])[1 + i % 3]::"MisfirePolicy", 1000 * i,
             CASE WHEN i % 2 = 0 THEN 'ALLOW' ELSE 'SKIP' END::"OverlapPolicy", 500 + i,
             CASE WHEN i % 8 = 1 THEN gen_random_uuid() END, i % 8 = 3, i % 3, CASE WHEN i % 5 = 0 THEN 64 END, NULL,
             now() - i * interval '1 day', now() - i * interval '1 minute'
        FROM generate_series(1, 64) i`);
    await s.exec(`INSERT INTO task_event (tenant_id, task_id, type, to_status) SELECT tenant_id, id, 'CREATED', 'SCHEDULED' FROM task`);
    const snapshot = `SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.id), '[]') AS rows FROM task t`;
    const [before] = await s.query<{ rows: Record<string, unknown>[] }>(snapshot);
    expect(before!.rows).toHaveLength(64);

    expect(await migrate(s, logger, files.slice(0, at + 1))).toEqual([TASK_STATE]);
    const [after] = await s.query<{ rows: Record<string, unknown>[] }>(snapshot);
    expect(after!.rows).toEqual(before!.rows);
    expect(await s.query(`SELECT migration_name FROM "${BREAKING_MIGRATIONS_TABLE}"`)).toEqual([{ migration_name: TASK_STATE }]);

    // The live unique key holds on task_state: a second live task with key-24 of tenant-0 (SCHEDULED) is refused.
    await expect(
      s.exec(`INSERT INTO task (id, tenant_id, full_name, task_type, func_name, start_time, unique_key, updated_at)
              VALUES (gen_random_uuid(), 'tenant-0', 'tasks.New', 'tasks.NormalType', 'chronograph.noop', now(), 'key-24', now())`),
    ).rejects.toThrow(/task_live_unique_key/);
    // A deleted task takes its state and its events with it.
    await s.exec(`DELETE FROM task WHERE id = '01900000-0000-7000-8000-000000000001'`);
    expect(
      await s.query(`SELECT (SELECT count(*) FROM task_state)::int AS state, (SELECT count(*) FROM task_spec)::int AS spec,
                            (SELECT count(*) FROM task_event)::int AS events`),
    ).toEqual([{ state: 63, spec: 63, events: 63 }]);
  }, 120_000);
});
