// History queries and pruning on a large history: `npm run bench -- history [postgres|pglite]`.
// BENCH_RUNS (default 1,000,000) finished runs of BENCH_TASKS (100,000) finished tasks in one tenant, with
// an event per run and a log line per ten runs, written by SQL; then the GraphQL history queries a
// dashboard makes (through yoga.fetch, so no socket noise), timed over BENCH_ROUNDS rounds, and a
// pruneHistory of the older half. Prints p50 / max per query.
import { Chronograph } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { insertTasksSql, scratchDatabase } from './support.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 1_000_000);
const TASKS = Number(process.env.BENCH_TASKS ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const backend = process.argv[2] === 'pglite' ? 'pglite' : 'postgres';

async function main() {
  const database = backend === 'postgres' ? await scratchDatabase() : undefined;
  const config = loadConfig({
    APP_DIR: '/nonexistent',
    LOG_LEVEL: 'warn',
    DATA_DIR: 'memory://',
    DATABASE_URL: database?.url,
    SCHEDULER_ENABLED: 'false',
    // Also the statement timeout: writing a million runs in one statement takes longer than a request may.
    REQUEST_TIMEOUT_MS: '3600000',
  });
  const app = await Chronograph.create({ config });
  const prisma = app.db.prisma;
  try {
    let started = performance.now();
    // Tasks that finished over the last 100 days, each with RUNS/TASKS runs (status mix, durations).
    await prisma.$executeRawUnsafe(
      insertTasksSql(
        [
          'id',
          'tenant_id',
          'full_name',
          'task_type',
          'func_name',
          'arg_dict',
          'repeat_type',
          'timezone',
          'status',
          'queue',
          'source',
          'start_time',
          'created_at',
          'updated_at',
        ],
        `SELECT gen_random_uuid(), 'default', 'tasks.T' || (i % 20), 'tasks.NormalType', 'h.f' || (i % 10), '{}'::jsonb, 'ONCE'::"RepeatType", 'UTC',
                'SUCCEEDED'::"TaskStatus", 'q' || (i % 3), 'API'::"TaskSource", now() - (i * interval '100 days' / $1),
                now() - (i * interval '100 days' / $1), now() - (i * interval '100 days' / $1)
           FROM generate_series(1, $1) i`,
      ),
      TASKS,
    );
    // Each run as the scheduler keeps it (migration 20261208000000_runs_as_events): the event that started
    // it, with its attempt and worker, and the one that ended it, with its outcome.
    await prisma.$executeRawUnsafe(
      `WITH runs AS (
         SELECT gen_random_uuid() AS run_id, t.id AS task_id, g AS attempt, CASE WHEN g % 17 = 0 THEN 'FAILED'::"RunStatus" ELSE 'SUCCEEDED'::"RunStatus" END AS status,
                'w' || (g % 4) AS worker_id, t.updated_at - g * interval '1 second' AS started_at, 5 + (g * 7) % 400 AS duration_ms
           FROM task t CROSS JOIN generate_series(1, $1) g
       )
       INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, created_at, attempt, worker_id, recovered,
                               run_status, duration_ms, error)
       SELECT 'default', task_id, run_id, 'STATUS_CHANGED', e.from_status, e.to_status, started_at + e.after,
              CASE WHEN e.starts THEN attempt END, CASE WHEN e.starts THEN worker_id END, CASE WHEN e.starts THEN false END,
              CASE WHEN NOT e.starts THEN status END, CASE WHEN NOT e.starts THEN duration_ms END,
              CASE WHEN NOT e.starts AND status = 'FAILED' THEN 'boom' END
         FROM runs CROSS JOIN (VALUES (true, 'SCHEDULED'::"TaskStatus", 'RUNNING'::"TaskStatus", interval '0'),
                                      (false, 'RUNNING'::"TaskStatus", 'SUCCEEDED'::"TaskStatus", interval '20 ms')) AS e(starts, from_status, to_status, after)
        ORDER BY started_at, e.starts DESC`,
      Math.max(1, Math.round(RUNS / TASKS)),
    );
    await prisma.$executeRawUnsafe(
      `INSERT INTO task_run_log (tenant_id, task_id, run_id, level, message, created_at)
       SELECT r.tenant_id, r.task_id, r.id, CASE WHEN r.status = 'FAILED' THEN 'error' ELSE 'info' END, 'step done for ' || r.worker_id, r.started_at
         FROM task_run r WHERE r.attempt % 10 = 1`,
    );
    // As autovacuum leaves a history this old: vacuumed (the visibility map, BRIN summaries) and analyzed.
    await prisma.$executeRawUnsafe('VACUUM ANALYZE');
    const counts = await prisma.$queryRawUnsafe<{ runs: bigint; events: bigint; logs: bigint }[]>(
      'SELECT (SELECT count(*) FROM task_run) AS runs, (SELECT count(*) FROM task_event) AS events, (SELECT count(*) FROM task_run_log) AS logs',
    );
    console.log(
      `${backend}: ${TASKS} tasks, ${counts[0]!.runs} runs, ${counts[0]!.events} events, ${counts[0]!.logs} log lines written in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );

    const someTask = (await prisma.task.findFirstOrThrow({ select: { id: true }, orderBy: { updatedAt: 'desc' } })).id;
    const queries: [string, string, Record<string, unknown>?][] = [
      ['newest 20 runs, with totalCount', '{ taskRuns(last: 20) { totalCount edges { node { id status durationMs } } } }'],
      [
        'failed runs of the last week',
        `{ taskRuns(last: 20, filter: { status: [FAILED], from: "${new Date(Date.now() - 7 * 86_400_000).toISOString()}" }) { edges { node { id error } } } }`,
      ],
      [
        "one task's runs, events and logs",
        'query($id: ID!) { taskRuns(filter: { taskId: $id }) { totalCount edges { node { id } } } taskEvents(filter: { taskId: $id }) { edges { node { cursor } } } runLogs(filter: { taskId: $id }) { edges { node { message } } } }',
        { id: someTask },
      ],
      ['newest 50 events of a status', '{ taskEvents(last: 50, filter: { statuses: [SUCCEEDED] }) { edges { node { cursor } } } }'],
      ['error log lines, searched', '{ runLogs(last: 50, filter: { levels: ["error"], search: "w1" }) { edges { node { message } } } }'],
      [
        'runStats by handler, last 7 days',
        `{ runStats(groupBy: HANDLER, from: "${new Date(Date.now() - 7 * 86_400_000).toISOString()}") { key total p95DurationMs failureRate } }`,
      ],
      ['runStats by day, all 100 days', '{ runStats(groupBy: DAY) { key total } }'],
    ];
    const times = new Map<string, number[]>(queries.map(([name]) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, query, variables] of queries) {
        const t0 = performance.now();
        const response = await app.yoga.fetch('http://bench/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query, variables }),
        });
        const body = (await response.json()) as { errors?: unknown };
        if (body.errors) throw new Error(`${name}: ${JSON.stringify(body.errors)}`);
        times.get(name)!.push(performance.now() - t0);
      }
    }
    for (const [name, values] of times) {
      const s = [...values].sort((a, b) => a - b);
      console.log(
        `  ${name.padEnd(40)} p50 ${s[Math.floor(s.length / 2)]!.toFixed(1).padStart(8)} ms   max ${s.at(-1)!.toFixed(1).padStart(8)} ms`,
      );
    }

    started = performance.now();
    const pruned = await app.history.pruneBefore(new Date(Date.now() - 50 * 86_400_000));
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `  pruneHistory of the older half: ${pruned.tasks} tasks, ${pruned.runs} runs, ${pruned.logs} logs, ${pruned.events} events in ${seconds.toFixed(1)} s (${Math.round((pruned.runs + pruned.events + pruned.logs + pruned.tasks) / seconds)} rows/s, batches of 500)`,
    );
  } finally {
    await app.stop();
    await database?.drop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
