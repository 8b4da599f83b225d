// `npm run bench -- layouts [names]`: WAL per processed no-op task of candidate table layouts (issue 12,
// goal 4: ≤ 1.5 KB), to choose a layout before building it. Each layout gets a scratch database with
// Chronograph's migrations applied, then its own changes; BENCH_TASKS (default 5000) due tasks are
// inserted, checkpointed and vacuumed, and one connection drains them as the scheduler does: a claim of
// 24 (FOR UPDATE SKIP LOCKED; the task marked RUNNING under a lease; the run and its RUNNING event written)
// then the completion of those 24 (SUCCEEDED; the run closed; the event written), all as prepared
// statements. The figure is this database's WAL (pg_walinspect) per task, without full-page images (they
// depend on when the last checkpoint ran); BENCH_WAL_DETAIL=1 prints it by relation and record type.
// BENCH_LAYOUTS_DRAIN=2x50 drains with two connections at once, 50 at a time (`compare drain`'s 2 × 50).
// Each line also gives the drain's rate (tasks/s, this one connection, statements only).
//
// BENCH_LAYOUTS_DB=pglite runs the same on PGlite (in memory, its hottest code optimised by V8 as
// Chronograph runs it by default; BENCH_PGLITE_OPTIMIZE=0 keeps V8's baseline compiler alone) and prints
// the rates only (PGlite has no pg_walinspect): what a layout would change in PGlite's drain, which is
// CPU-bound in PostgreSQL's own code.
//
// The statements are simplified copies of src/scheduler/sql.ts's claim and completion (one tenant, no
// quotas, no logs). Every layout but `migrated` and `state-table*` starts from the schema before migration
// 20261207000000_task_state (which built `state-wide-ff50` less its status counters); `current` is that
// schema, which `npm run bench -- compare drain` measured at 2.18 KB for the real scheduler on
// 2026-12-06; `state-table` is the schema with that migration and 20261207010000, before runs became
// events (20261208000000, which built `state-table+runs-as-events+partial`); `migrated` is the schema as
// migrated now. The other layouts are what the statements
// would be after a migration; nothing here changes Chronograph itself. They are lower bounds: the candidates move only the
// indexes these tasks touch (the due, running, unique-key and status indexes) to the narrow table; the
// others that name `status` (fire, next-run, date-field and binding keys, all partial) are dropped, not
// rebuilt there. None of them would get an entry for these tasks (API tasks, claimed and completed), but
// a real migration has to keep them, and the narrow table needs their columns: the `complete-*` layouts
// do (completeState), with everything else the product needs of the state table.
import { readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { pgliteCompiler } from '../src/db/Database.js';
import { pglitePool } from '../src/db/pglitePool.js';
import { openPgPool, type SqlPool, statement } from '../src/db/SqlPool.js';
import { openPgSession, pgliteSession, type SqlSession } from '../src/db/SqlSession.js';
import { root } from '../test/support/chronographProcess.js';
import { scratchDatabase } from './support.js';

const TASKS = Number(process.env.BENCH_TASKS ?? 5000);
/**
 * BENCH_LAYOUTS_DRAIN=<workers>x<batch> (default 1x24): how many connections drain at once, each claiming
 * up to `batch` tasks and completing them before its next claim, as `compare drain`'s 1 × 24 and 2 × 50 (there
 * two processes of 50 slots): more runs under way at once leave less room on a page for their new versions.
 * PostgreSQL only; PGlite has one connection.
 */
const [WORKERS, BATCH] = (process.env.BENCH_LAYOUTS_DRAIN ?? '1x24').split('x').map(Number) as [number, number];
const ON_PGLITE = process.env.BENCH_LAYOUTS_DB === 'pglite';
// Before PGlite's module is compiled, as Chronograph sets it (pgliteCompiler in src/db/Database.ts).
if (ON_PGLITE) pgliteCompiler(!/^(0|false)$/.test(process.env.BENCH_PGLITE_OPTIMIZE ?? ''));
/** A worker id as the scheduler's (host name and process id): it is written to the task, the run and the event message. */
const WORKER = `'${hostname().replaceAll("'", "''")}-${process.pid}'`;

interface Layout {
  name: string;
  what: string;
  /** Statements run after the migrations, before the tasks are inserted. */
  setup: string[];
  /** Statements run after the tasks are inserted, before the checkpoint (moving columns out of `task`). */
  after?: string[];
  /** Where the mutable scheduling state lives: `task` (today), a `task_live` row while the task is live, or a 1:1 `task_state`. */
  state: 'task' | 'live' | 'state';
  /** Runs are events (the RUNNING event carries attempt and worker, the ending one the outcome): no task_run rows. */
  foldedRuns: boolean;
  /** The run row is written once, by the completion (the claim writes none): no update of it, HOT or not. */
  runAtEnd?: boolean;
  /** A query answering `ok` (boolean) after the drain: that what the layout keeps beside the tasks is right. */
  check?: string;
  /** How task_state or task_live gets the inserted tasks' state, when not from the columns every layout has. */
  fill?: string;
  /** More of the completion's SET on task_state. */
  completeSet?: string;
  /** The migrations applied through this one (`latest`: all of them, the schema as Chronograph has it now), not only those before STATE_MIGRATION. */
  through?: string;
}

/**
 * The layouts are changes to the schema as it was before the state table (this migration, which built
 * `state-wide-ff50`), or as it was with it (STATE_TABLE, the `state-table*` layouts); `migrated`
 * measures every migration as applied today.
 */
const STATE_MIGRATION = '20261207000000_task_state';
const STATE_TABLE = '20261207010000_task_state_key';
const LATEST = 'latest';

const STATUS_INDEXES = [
  'task_status_tenant_id_idx',
  'task_next_run_at_idx',
  'task_tenant_due_idx',
  'task_fire_idx',
  'task_live_unique_key',
  'task_date_field_live_key',
  'task_binding_live_key',
].map((i) => `DROP INDEX ${i}`);
const FOLD_RUNS = [
  'ALTER TABLE task_event ADD COLUMN attempt int, ADD COLUMN worker_id text, ADD COLUMN duration_ms int, ADD COLUMN result jsonb, ADD COLUMN error text',
];
/**
 * What folded runs would really need besides: finding a run by its id (TaskEvent.run, TaskRunLog.run,
 * the completion's logs) and listing a tenant's runs by start time (taskRuns), one entry per run each.
 */
const RUN_INDEXES = [
  'CREATE INDEX task_event_run_start_idx ON task_event (run_id) WHERE attempt IS NOT NULL',
  'CREATE INDEX task_event_run_started_idx ON task_event (tenant_id, created_at, run_id) WHERE attempt IS NOT NULL',
];
/**
 * The columns a run never writes, moved to a 1:1 task_spec with their indexes (full_name, func_name,
 * created_at, which are there already): `task` keeps its name, its status and every index that names the
 * status, and becomes narrow.
 */
const SPEC_COLUMNS = [
  'full_name',
  'task_type',
  'func_name',
  'arg_dict',
  'cron_expression',
  'interval_seconds',
  'timezone',
  'start_time',
  'end_time',
  'max_runs',
  'timeout_ms',
  'memory_limit_mb',
  'retry_backoff_ms',
  'source_model',
  'source_field',
  'created_at',
];
const MOVE_SPEC = [
  // task_spec today holds the indexed ones (migration 20261205030000_task_spec); here it takes them all.
  'DROP TRIGGER task_spec_inserted ON task',
  'DROP TRIGGER task_spec_updated ON task',
  'DROP TABLE task_spec',
  `CREATE TABLE task_spec AS SELECT id AS task_id, tenant_id, ${SPEC_COLUMNS.join(', ')} FROM task`,
  'ALTER TABLE task_spec ADD PRIMARY KEY (task_id)',
  'CREATE INDEX ON task_spec (tenant_id, full_name)',
  'CREATE INDEX ON task_spec (tenant_id, func_name)',
  'CREATE INDEX ON task_spec (tenant_id, created_at)',
  `ALTER TABLE task ${SPEC_COLUMNS.map((c) => `DROP COLUMN ${c}`).join(', ')}`,
  'VACUUM FULL task',
];
const liveTable = (kept: boolean) => {
  const table = kept ? 'task_state' : 'task_live';
  return [
    `CREATE TABLE ${table} (task_id uuid PRIMARY KEY REFERENCES task(id) ON DELETE CASCADE, tenant_id text NOT NULL,
     status "TaskStatus" NOT NULL, priority int NOT NULL, next_run_at timestamptz(3), unique_key text,
     attempts int NOT NULL DEFAULT 0, run_count int NOT NULL DEFAULT 0, locked_by text, locked_until timestamptz(3),
     locked_run_id uuid, updated_at timestamptz(3))`,
    `CREATE INDEX ${table}_due_idx ON ${table} (tenant_id, priority DESC, next_run_at) WHERE status IN ('SCHEDULED', 'RETRYING')`,
    `CREATE UNIQUE INDEX ${table}_unique_idx ON ${table} (tenant_id, unique_key) WHERE unique_key IS NOT NULL${kept ? ` AND status IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED')` : ''}`,
    // As task's today: the running tasks and a tenant's tasks by status; a task_live row is live, so the running ones suffice.
    kept
      ? `CREATE INDEX ${table}_status_idx ON ${table} (status, tenant_id)`
      : `CREATE INDEX ${table}_running_idx ON ${table} (tenant_id) WHERE status = 'RUNNING'`,
  ];
};

/** Every lever at once (the `floor` layout): state table, runs as events found by their RUNNING event only, only running tasks indexed by tenant. */
const FLOOR = [
  ...STATUS_INDEXES,
  ...liveTable(true),
  ...FOLD_RUNS,
  'CREATE INDEX ON task_event (run_id) WHERE attempt IS NOT NULL',
  'DROP INDEX task_state_status_idx',
  `CREATE INDEX ON task_state (tenant_id) WHERE status = 'RUNNING'`,
];

/**
 * Task counts by tenant and status kept by statement-level triggers on task_state from their transition
 * tables, so a claim or completion of 24 tasks moves two counters once, not 24 index entries. Each backend
 * writes to its own shard of the counters (pid % 16), so that concurrent claims do not queue on one row; a
 * read sums the shards.
 */
const statusCounts = (table: string) => [
  `CREATE TABLE task_status_count (tenant_id text NOT NULL, status "TaskStatus" NOT NULL, shard int NOT NULL,
       n bigint NOT NULL, PRIMARY KEY (tenant_id, status, shard))`,
  ...['INSERT', 'UPDATE', 'DELETE'].flatMap((event) => {
    const rows = [
      ...(event === 'DELETE' ? [] : ['SELECT tenant_id, status, 1 AS d FROM new_rows']),
      ...(event === 'INSERT' ? [] : ['SELECT tenant_id, status, -1 FROM old_rows']),
    ].join(' UNION ALL ');
    const fn = `task_state_count_${event.toLowerCase()}`;
    return [
      `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
             INSERT INTO task_status_count (tenant_id, status, shard, n)
             SELECT tenant_id, status, pg_backend_pid() % 16, sum(d) FROM (${rows}) x GROUP BY tenant_id, status HAVING sum(d) <> 0
             ON CONFLICT (tenant_id, status, shard) DO UPDATE SET n = task_status_count.n + excluded.n;
             RETURN NULL; END $$`,
      `CREATE TRIGGER ${fn} AFTER ${event} ON ${table} REFERENCING ${event === 'DELETE' ? '' : 'NEW TABLE AS new_rows'}${event === 'UPDATE' ? ' ' : ''}${event === 'INSERT' ? '' : 'OLD TABLE AS old_rows'}
             FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
    ];
  }),
];

const STATUS_COUNTS = statusCounts('task_state');

/** The check that the counters agree with the tasks (STATUS_COUNTS). */
const COUNTS_CHECK = `SELECT bool_and(coalesce(s.n, 0) = coalesce(c.n, 0)) AS ok
              FROM (SELECT tenant_id, status, count(*) AS n FROM task_state GROUP BY 1, 2) s
              FULL JOIN (SELECT tenant_id, status, sum(n) AS n FROM task_status_count GROUP BY 1, 2 HAVING sum(n) <> 0) c USING (tenant_id, status)`;

/**
 * What floor+status-counts leaves out that the product needs, for the `complete-*` layouts:
 * - the columns a completion or a recovery writes besides the lease (occurrence_at, last_error,
 *   last_run_abandoned; revision, which an edit writes and a completion compares) in task_state, or the
 *   completion would write `task` as well;
 * - the global next-due index (task_next_run_at_idx) beside the per-tenant one;
 * - the task list's filter by a status other than the due, running and succeeded ones: a partial index of
 *   the rare statuses (a succeeded task, the usual end of a run, gets no entry; the list filtered by
 *   SUCCEEDED reads the tenant's tasks newest first, most of them succeeded);
 * - a run found by its id through its RUNNING event; a tenant's runs listed through task_event's
 *   (tenant_id, id), in id order (start order), filtering the RUNNING events;
 * - the indexes whose predicates name the status (live unique key, date-field and binding live keys,
 *   fire): `narrow` = false moves them to task_state with the columns they read; `narrow` = true keeps
 *   live keys in a table of their own, a row per task that has one, and marks the fired tasks by a flag.
 */
function completeState(narrow: boolean): string[] {
  const live = `status IN ('SCHEDULED', 'RUNNING', 'RETRYING', 'PAUSED')`;
  return [
    ...STATUS_INDEXES,
    `CREATE TABLE task_state (task_id uuid PRIMARY KEY REFERENCES task(id) ON DELETE CASCADE, tenant_id text NOT NULL,
     status "TaskStatus" NOT NULL, priority int NOT NULL, next_run_at timestamptz(3), occurrence_at timestamptz(3),
     attempts int NOT NULL DEFAULT 0, run_count int NOT NULL DEFAULT 0, last_error text,
     last_run_abandoned boolean NOT NULL DEFAULT false, revision int NOT NULL DEFAULT 0, locked_by text,
     locked_until timestamptz(3), locked_run_id uuid, updated_at timestamptz(3), ${
       narrow
         ? 'fired boolean NOT NULL DEFAULT false'
         : `unique_key text, template_id uuid, source "TaskSource" NOT NULL DEFAULT 'API', source_row_id text, parent_id uuid,
            binding_id uuid, overlap_policy "OverlapPolicy" NOT NULL DEFAULT 'SKIP', repeat_type "RepeatType" NOT NULL DEFAULT 'ONCE'`
     })`,
    `CREATE INDEX task_state_due_idx ON task_state (tenant_id, priority DESC, next_run_at) WHERE status IN ('SCHEDULED', 'RETRYING')`,
    `CREATE INDEX task_state_next_run_at_idx ON task_state (next_run_at) WHERE status IN ('SCHEDULED', 'RETRYING')`,
    `CREATE INDEX task_state_running_idx ON task_state (tenant_id) WHERE status = 'RUNNING'`,
    `CREATE INDEX task_state_rare_idx ON task_state (tenant_id, status) WHERE status IN ('FAILED', 'FORCED_END', 'CANCELLED', 'PAUSED')`,
    ...(narrow
      ? [
          `CREATE INDEX task_state_fire_idx ON task_state (next_run_at) WHERE status = 'SCHEDULED' AND fired`,
          'CREATE TABLE task_live_key (key text PRIMARY KEY, task_id uuid NOT NULL)',
        ]
      : [
          `CREATE INDEX task_state_fire_idx ON task_state (next_run_at) WHERE status = 'SCHEDULED' AND overlap_policy = 'ALLOW' AND repeat_type IN ('CRON', 'INTERVAL')`,
          `CREATE UNIQUE INDEX task_state_unique_key ON task_state (tenant_id, unique_key) WHERE unique_key IS NOT NULL AND ${live}`,
          `CREATE UNIQUE INDEX task_state_date_field_key ON task_state (tenant_id, template_id, source_row_id) WHERE source = 'DATE_FIELD' AND parent_id IS NULL AND ${live}`,
          `CREATE UNIQUE INDEX task_state_binding_key ON task_state (binding_id) WHERE binding_id IS NOT NULL AND ${live}`,
        ]),
    ...FOLD_RUNS,
    'CREATE INDEX task_event_run_started_idx ON task_event (run_id) WHERE attempt IS NOT NULL',
    ...STATUS_COUNTS,
  ];
}
/** complete-wide's copy of the tasks' state. */
const STATE_FILL_WIDE = `INSERT INTO task_state (task_id, tenant_id, status, priority, next_run_at, unique_key, template_id, source,
  source_row_id, parent_id, binding_id, overlap_policy, repeat_type)
  SELECT id, tenant_id, status, priority, next_run_at, unique_key, template_id, source, source_row_id, parent_id, binding_id, overlap_policy, repeat_type FROM task`;
/** What the `complete-*` completions set besides the lease and the status (as the scheduler's completion does on task today). */
const COMPLETE_SET = ', occurrence_at = NULL, last_error = NULL, last_run_abandoned = false';

const LAYOUTS: Layout[] = [
  { name: 'current', what: 'the schema before migration 20261207000000_task_state', setup: [], state: 'task', foldedRuns: false },
  {
    // The schema as migrated today: the state table, runs as events (migration 20261208000000), the
    // status index without succeeded tasks; the scheduler's statements simplified as for the other layouts.
    name: 'migrated',
    what: 'the schema as migrated today (task_state, runs as events)',
    setup: [],
    through: LATEST,
    completeSet: COMPLETE_SET,
    state: 'state',
    foldedRuns: true,
  },
  {
    name: 'migrated-ff50',
    what: 'the schema as migrated today, task_state at fillfactor 50 (before 20261209000000) instead of 40',
    setup: ['ALTER TABLE task_state SET (fillfactor = 50)'],
    through: LATEST,
    completeSet: COMPLETE_SET,
    state: 'state',
    foldedRuns: true,
  },
  {
    // The state table as built (state-wide-ff50 without the status counters): the scheduler's statements
    // as src/scheduler/sql.ts has them, simplified as for the other layouts.
    name: 'state-table',
    what: 'the schema with task_state (migration 20261207010000), runs as task_run rows',
    setup: [],
    through: STATE_TABLE,
    completeSet: COMPLETE_SET,
    state: 'state',
    foldedRuns: false,
  },
  {
    // What is left of the redesign (the `complete-*` layouts) on top of the state table as built: runs
    // folded into their events, found by their RUNNING event; the status counters instead of the index
    // of every task by status, with the running and rare-status indexes the readers of a status need.
    name: 'state-table+runs-as-events+counts',
    what: 'state-table, with runs as events and the status counters instead of task_status_tenant_id_idx',
    setup: [
      ...FOLD_RUNS,
      'CREATE INDEX task_event_run_started_idx ON task_event (run_id) WHERE attempt IS NOT NULL',
      'DROP INDEX task_status_tenant_id_idx',
      `CREATE INDEX task_state_running_idx ON task_state (tenant_id) WHERE status = 'RUNNING'`,
      `CREATE INDEX task_state_rare_idx ON task_state (tenant_id, status) WHERE status IN ('FAILED', 'FORCED_END', 'CANCELLED', 'PAUSED')`,
      ...STATUS_COUNTS,
    ],
    through: STATE_TABLE,
    completeSet: COMPLETE_SET,
    state: 'state',
    foldedRuns: true,
    check: COUNTS_CHECK,
  },
  {
    name: 'state-table+runs-as-events',
    what: 'state-table, with runs as events',
    setup: [...FOLD_RUNS, 'CREATE INDEX task_event_run_started_idx ON task_event (run_id) WHERE attempt IS NOT NULL'],
    through: STATE_TABLE,
    completeSet: COMPLETE_SET,
    state: 'state',
    foldedRuns: true,
  },
  {
    name: 'state-table+runs-as-events+partial',
    what: 'state-table, with runs as events and the status index without succeeded tasks (as built: migrated)',
    setup: [
      ...FOLD_RUNS,
      'CREATE INDEX task_event_run_started_idx ON task_event (run_id) WHERE attempt IS NOT NULL',
      'DROP INDEX task_status_tenant_id_idx',
      `CREATE INDEX task_status_tenant_id_idx ON task_state (status, tenant_id) WHERE status <> 'SUCCEEDED'`,
    ],
    through: STATE_TABLE,
    completeSet: COMPLETE_SET,
    state: 'state',
    foldedRuns: true,
  },
  {
    // Room on a page for both of a run's new versions (50 leaves room for one): the completion's update
    // then stays on its page too, without the lock record and whole tuple a move to another page writes.
    name: 'fillfactor-33',
    what: 'the schema as migrated today, with task fillfactor 33 instead of the default 100',
    setup: ['ALTER TABLE task SET (fillfactor = 33)'],
    state: 'task',
    foldedRuns: false,
  },
  {
    name: 'fillfactor-50',
    what: 'the schema as migrated today, with task fillfactor 50 instead of the default 100',
    setup: ['ALTER TABLE task SET (fillfactor = 50)'],
    state: 'task',
    foldedRuns: false,
  },
  {
    name: 'current+status-counts',
    what: 'the schema as migrated today, with the status counters (STATUS_COUNTS) kept by triggers on task',
    setup: statusCounts('task'),
    state: 'task',
    foldedRuns: false,
    check: COUNTS_CHECK.replaceAll('task_state', 'task'),
  },
  {
    name: 'live',
    what: 'status and its indexes on a narrow task_live row kept while the task is live; task fillfactor 90 (HOT updates)',
    setup: [...STATUS_INDEXES, 'ALTER TABLE task SET (fillfactor = 90)', ...liveTable(false)],
    state: 'live',
    foldedRuns: false,
  },
  {
    name: 'live+runs-as-events',
    what: 'live, and runs folded into their events',
    setup: [...STATUS_INDEXES, 'ALTER TABLE task SET (fillfactor = 90)', ...liveTable(false), ...FOLD_RUNS],
    state: 'live',
    foldedRuns: true,
  },
  {
    name: 'state+runs-as-events',
    what: 'the mutable state (status, attempts, lease, next run) in a narrow 1:1 task_state: task is not written during a run',
    setup: [...STATUS_INDEXES, ...liveTable(true), ...FOLD_RUNS],
    state: 'state',
    foldedRuns: true,
  },
  {
    name: 'state+runs-as-events+run-idx',
    what: 'state+runs-as-events with the two indexes folded runs need (RUN_INDEXES)',
    setup: [...STATUS_INDEXES, ...liveTable(true), ...FOLD_RUNS, ...RUN_INDEXES],
    state: 'state',
    foldedRuns: true,
  },
  {
    name: 'no-status-index',
    what: 'the schema as migrated today with only the running tasks indexed by tenant, not every task by status (taskStats reads it)',
    setup: ['DROP INDEX task_status_tenant_id_idx', `CREATE INDEX task_running_idx ON task (tenant_id) WHERE status = 'RUNNING'`],
    state: 'task',
    foldedRuns: false,
  },
  {
    name: 'state',
    what: 'the mutable state in a narrow 1:1 task_state, runs kept as task_run rows',
    setup: [...STATUS_INDEXES, ...liveTable(true)],
    state: 'state',
    foldedRuns: false,
  },
  {
    name: 'runs-as-events+run-id',
    what: 'the schema as migrated today with runs folded into their events, found by one run_id index over both',
    setup: [...FOLD_RUNS, 'CREATE INDEX ON task_event (run_id) WHERE run_id IS NOT NULL'],
    state: 'task',
    foldedRuns: true,
  },
  {
    name: 'state+runs-as-events+run-id',
    what: 'state, runs as events, one run_id index over both events',
    setup: [...STATUS_INDEXES, ...liveTable(true), ...FOLD_RUNS, 'CREATE INDEX ON task_event (run_id) WHERE run_id IS NOT NULL'],
    state: 'state',
    foldedRuns: true,
  },
  {
    // Every lever at once: the least any layout that keeps two events per run with their three indexes writes.
    name: 'floor',
    what: 'state, runs as events found by their RUNNING event only, only the running tasks indexed by tenant',
    setup: FLOOR,
    state: 'state',
    foldedRuns: true,
  },
  {
    // What taskStats (a tenant's tasks by status) and quota counts would read once no index covers every
    // task by status (STATUS_COUNTS).
    name: 'floor+status-counts',
    what: 'floor, with task counts by tenant and status kept by statement triggers in sharded counters',
    setup: [...FLOOR, ...STATUS_COUNTS],
    state: 'state',
    foldedRuns: true,
    check: COUNTS_CHECK,
  },
  {
    // floor+status-counts with everything the product would still need of it (completeState): the
    // state table holds every column a run writes, and the partial unique and fire indexes (their
    // predicates name the status) move there with the columns they read.
    name: 'complete-wide',
    what: 'floor+status-counts with every column a run writes in task_state, and every index that names the status moved there',
    setup: completeState(false),
    fill: STATE_FILL_WIDE,
    completeSet: COMPLETE_SET,
    state: 'state',
    foldedRuns: true,
    check: COUNTS_CHECK,
  },
  {
    // The same, with the live-key indexes replaced by a table of live keys (a row only for a task with a
    // unique key, a date field's record or a binding: none here) and the fire index by a flag.
    name: 'complete-narrow',
    what: 'complete-wide with live keys in a table of their own and the fire index on a flag: task_state stays narrow',
    setup: completeState(true),
    completeSet: COMPLETE_SET,
    state: 'state',
    foldedRuns: true,
    check: COUNTS_CHECK,
  },
  {
    // Room on task_state's pages for a task's new versions: an update that stays on its page writes no
    // lock record and only the changed middle of the row (the state rows are narrow, so the room costs
    // little: 5,000 tasks' state is about 0.6 MB at the default fillfactor).
    name: 'complete-narrow-ff50',
    what: 'complete-narrow with task_state at fillfactor 50',
    setup: [...completeState(true), 'ALTER TABLE task_state SET (fillfactor = 50)'],
    completeSet: COMPLETE_SET,
    state: 'state',
    foldedRuns: true,
    check: COUNTS_CHECK,
  },
  {
    name: 'complete-wide-ff50',
    what: 'complete-wide with task_state at fillfactor 50',
    setup: [...completeState(false), 'ALTER TABLE task_state SET (fillfactor = 50)'],
    fill: STATE_FILL_WIDE,
    completeSet: COMPLETE_SET,
    state: 'state',
    foldedRuns: true,
    check: COUNTS_CHECK,
  },
  {
    // The redesign's first release alone: the state table as complete-wide-ff50, runs still task_run rows.
    name: 'state-wide-ff50',
    what: 'complete-wide-ff50 with runs kept as task_run rows',
    setup: [...completeState(false), 'ALTER TABLE task_state SET (fillfactor = 50)'],
    fill: STATE_FILL_WIDE,
    completeSet: COMPLETE_SET,
    state: 'state',
    foldedRuns: false,
    check: COUNTS_CHECK,
  },
  {
    name: 'spec',
    what: 'the columns a run never writes moved to a 1:1 task_spec with their indexes; task narrow, statements unchanged',
    setup: [],
    after: MOVE_SPEC,
    state: 'task',
    foldedRuns: false,
  },
  {
    // What a run looks like while it runs would come from the task (its lease: run id, attempt, worker)
    // and its RUNNING event; the run row holds finished runs only. The claim writes no run; the
    // completion inserts it whole, so it is never updated (the update is HOT only while its page has room:
    // about 93 % of them at 1 process × 24, 40 % at 2 × 50, where the others write an entry in each of
    // task_run's three indexes; `npm run bench -- compare drain` with BENCH_WAL_DETAIL=1).
    name: 'run-at-end',
    what: 'the schema as migrated today, with the run row inserted by the completion instead of inserted by the claim and updated',
    setup: [],
    state: 'task',
    foldedRuns: false,
    runAtEnd: true,
  },
  {
    name: 'spec+runs-as-events+run-idx',
    what: 'spec, and runs folded into their events with the indexes they need',
    setup: [...FOLD_RUNS, ...RUN_INDEXES],
    after: MOVE_SPEC,
    state: 'task',
    foldedRuns: true,
  },
];

function claimSql({ state, foldedRuns, runAtEnd }: Layout): string {
  const run =
    foldedRuns || runAtEnd
      ? 'r AS (SELECT 1)'
      : `r AS (INSERT INTO task_run (id, tenant_id, task_id, attempt, status, worker_id, recovered, started_at)
         SELECT locked_run_id, tenant_id, id, attempts, 'RUNNING', ${WORKER}, false, statement_timestamp() FROM c RETURNING id)`;
  const event = `e AS (INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, next_run_at, message${foldedRuns ? ', attempt, worker_id' : ''})
       SELECT tenant_id, id, locked_run_id, 'STATUS_CHANGED', prev, 'RUNNING', next_run_at, 'attempt ' || attempts || ' on ' || ${WORKER}${foldedRuns ? `, attempts, ${WORKER}` : ''} FROM c)`;
  const from = state === 'task' ? 'task' : `task_${state}`;
  const key = state === 'task' ? 'id' : 'task_id';
  const due = `due AS (SELECT ${key} AS id, status AS prev FROM ${from}
       WHERE tenant_id = 'default' AND status IN ('SCHEDULED', 'RETRYING') AND next_run_at <= now()
       ORDER BY priority DESC, next_run_at LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)`;
  const lease = `locked_by = ${WORKER}, locked_run_id = gen_random_uuid(), attempts = t.attempts + 1, updated_at = now()`;
  const steps =
    state === 'task'
      ? `c AS (UPDATE task t SET status = 'RUNNING', ${lease}, locked_until = now() + interval '30 seconds', last_run_abandoned = false
           FROM due WHERE t.id = due.id RETURNING t.*, due.prev)`
      : state === 'live'
        ? `l AS (UPDATE task_live SET status = 'RUNNING', locked_until = now() + interval '30 seconds' FROM due WHERE task_live.task_id = due.id RETURNING 1),
           c AS (UPDATE task t SET status = 'RUNNING', ${lease} FROM due WHERE t.id = due.id RETURNING t.*, due.prev)`
        : `c AS (UPDATE task_state t SET status = 'RUNNING', ${lease}, locked_until = now() + interval '30 seconds'
           FROM due WHERE t.task_id = due.id
           RETURNING t.task_id AS id, t.tenant_id, t.locked_run_id, t.attempts, t.next_run_at, due.prev)`;
  return `WITH ${due}, ${steps}, ${run}, ${event}
    SELECT id, locked_run_id FROM c CROSS JOIN (SELECT count(*) FROM r) x${state === 'live' ? ' CROSS JOIN (SELECT count(*) FROM l) y' : ''}`;
}

function completeSql({ state, foldedRuns, runAtEnd, completeSet = '' }: Layout): string {
  const input = 'i AS (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS x(task_id, run_id))';
  const ended = `status = 'SUCCEEDED', next_run_at = NULL, run_count = run_count + 1, locked_by = NULL, locked_until = NULL, locked_run_id = NULL, updated_at = now()`;
  const table = state === 'state' ? 'task_state' : 'task';
  const key = state === 'state' ? 'task_id' : 'id';
  const t = `t AS (UPDATE ${table} SET ${ended}${state === 'state' ? completeSet : ', last_error = NULL, last_run_abandoned = false'}
       FROM i WHERE ${table}.${key} = i.task_id AND ${table}.locked_run_id = i.run_id AND ${table}.status = 'RUNNING'
       RETURNING ${table}.${key} AS id, ${table}.tenant_id, i.run_id, ${table}.attempts)`;
  const live = state === 'live' ? 'l AS (DELETE FROM task_live USING t WHERE task_live.task_id = t.id RETURNING 1)' : 'l AS (SELECT 1)';
  const run = foldedRuns
    ? 'run AS (SELECT 1)'
    : runAtEnd
      ? `run AS (INSERT INTO task_run (id, tenant_id, task_id, attempt, status, worker_id, recovered, started_at, finished_at, duration_ms, result)
         SELECT t.run_id, t.tenant_id, t.id, t.attempts, 'SUCCEEDED', ${WORKER}, false, now() - interval '1 millisecond', now(), 1, NULL FROM t RETURNING 1)`
      : `run AS (UPDATE task_run SET status = 'SUCCEEDED', finished_at = now(), duration_ms = 1, result = NULL
         FROM t WHERE task_run.id = t.run_id AND task_run.status = 'RUNNING' RETURNING 1)`;
  const event = `e AS (INSERT INTO task_event (tenant_id, task_id, run_id, type, from_status, to_status, next_run_at, message${foldedRuns ? ', duration_ms, result' : ''})
       SELECT t.tenant_id, t.id, t.run_id, 'STATUS_CHANGED', 'RUNNING', 'SUCCEEDED', NULL, 'succeeded'${foldedRuns ? ', 1, NULL::jsonb' : ''} FROM t)`;
  return `WITH ${input}, ${t}, ${live}, ${run}, ${event}
    SELECT count(*) FROM t, (SELECT count(*) FROM run) r, (SELECT count(*) FROM l) ll`;
}

/**
 * A scratch database as Chronograph reaches it: a session for the set-up scripts and the measurement's
 * own queries, and the hot path's pool for the drain, whose claim and completion run as prepared
 * statements (named on PostgreSQL, PGlite's prepared statements on PGlite: src/db/pglitePool.ts).
 */
interface Scratch {
  session: SqlSession;
  pool: SqlPool;
  close(): Promise<void>;
}

async function postgres(): Promise<Scratch> {
  const db = await scratchDatabase();
  const session = await openPgSession(db.url);
  const pool = await openPgPool(db.url, { max: WORKERS });
  return {
    session,
    pool,
    close: async () => {
      await pool.close();
      await session.close();
      await db.drop();
    },
  };
}

async function pglite(): Promise<Scratch> {
  const { PGlite } = await import('@electric-sql/pglite');
  const db = await PGlite.create('memory://');
  return { session: pgliteSession(db), pool: pglitePool(db), close: () => db.close() };
}

async function measure(layout: Layout, warmUp = false): Promise<void> {
  const scratch = ON_PGLITE ? await pglite() : await postgres();
  const c = scratch.session;
  try {
    const migrations = path.join(root, 'prisma', 'migrations');
    for (const dir of readdirSync(migrations)
      .filter((d) => /^\d/.test(d) && (layout.through === LATEST || (layout.through ? d <= layout.through : d < STATE_MIGRATION)))
      .sort()) {
      await c.exec(readFileSync(path.join(migrations, dir, 'migration.sql'), 'utf8'));
    }
    if (!ON_PGLITE) await c.exec('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
    for (const statement of layout.setup) await c.exec(statement);
    await c.exec(
      `INSERT INTO task_template (id, full_name, title, func_name, updated_at) VALUES (gen_random_uuid(), 'bench.Noop', 'No-op', 'chronograph.noop', now())`,
    );
    await c.query(
      `INSERT INTO task (id, template_id, full_name, task_type, func_name, start_time, next_run_at, updated_at)
       SELECT gen_random_uuid(), (SELECT id FROM task_template), 'bench.Noop', 'tasks.NormalType', 'chronograph.noop', now(), now(), now()
         FROM generate_series(1, $1)`,
      [TASKS],
    );
    if (layout.state !== 'task' && !layout.through) {
      await c.exec(
        layout.fill ??
          `INSERT INTO task_${layout.state} (task_id, tenant_id, status, priority, next_run_at) SELECT id, tenant_id, status, priority, next_run_at FROM task`,
      );
    }
    for (const statement of layout.after ?? []) await c.exec(statement);
    await c.exec('CHECKPOINT');
    await c.exec('VACUUM ANALYZE');
    const from = ON_PGLITE ? '' : (await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn'))[0]!.lsn;
    const claim = statement('layout_claim', claimSql(layout));
    const complete = statement('layout_complete', completeSql(layout));
    let done = 0;
    const started = performance.now();
    const drain = async () => {
      for (;;) {
        const rows = await scratch.pool.query<{ id: string; locked_run_id: string }>(claim);
        if (rows.length === 0) break;
        await scratch.pool.query(complete, [rows.map((r) => r.id), rows.map((r) => r.locked_run_id)]);
        done += rows.length;
      }
    };
    await Promise.all(Array.from({ length: ON_PGLITE ? 1 : WORKERS }, drain));
    const rate = `${Math.round(done / ((performance.now() - started) / 1000))
      .toLocaleString('en-US')
      .padStart(6)} tasks/s`;
    if (layout.check && !(await c.query<{ ok: boolean }>(layout.check))[0]?.ok) throw new Error(`${layout.name}: its check failed`);
    if (warmUp) return;
    if (ON_PGLITE) {
      console.log(`${layout.name.padEnd(28)} ${rate}   ${layout.what}`);
      return;
    }
    const to = (await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn'))[0]!.lsn;
    const rows = await c.query<{ rel: string; kind: string; bytes: number; fpi: number; n: number }>(
      `SELECT coalesce(pg_filenode_relation(0, substring(block_ref from 'rel \\d+/\\d+/(\\d+)')::oid)::regclass::text, '(none)') AS rel,
              resource_manager || '/' || record_type AS kind,
              sum(record_length)::float8 AS bytes, sum(fpi_length)::float8 AS fpi, count(*)::float8 AS n
         FROM pg_get_wal_records_info($1, $2) GROUP BY 1, 2 ORDER BY sum(record_length - fpi_length) DESC`,
      [from, to],
    );
    const bytes = rows.reduce((sum, r) => sum + r.bytes - r.fpi, 0);
    console.log(`${layout.name.padEnd(28)} ${(bytes / done / 1024).toFixed(2)} KB/task ${rate}   ${layout.what}`);
    if (process.env.BENCH_WAL_DETAIL) {
      for (const r of rows.filter((r) => (r.bytes - r.fpi) / done >= 8)) {
        console.log(`    ${((r.bytes - r.fpi) / done).toFixed(0).padStart(5)} B  ${(r.n / done).toFixed(2)}×  ${r.rel} ${r.kind}`);
      }
    }
  } finally {
    await scratch.close();
  }
}

const chosen = process.argv.slice(2);
console.log(
  ON_PGLITE
    ? `PGlite in memory${/^(0|false)$/.test(process.env.BENCH_PGLITE_OPTIMIZE ?? '') ? ' (baseline compiler alone)' : ''}: the drain's rate, ${TASKS} tasks drained ${BATCH} at a time`
    : `WAL per processed no-op task (without full-page images) and the drain's rate, ${TASKS} tasks drained ${BATCH} at a time by ${WORKERS} connection${WORKERS > 1 ? 's' : ''}`,
);
const layouts = LAYOUTS.filter((l) => chosen.length === 0 || chosen.includes(l.name));
// The first drain of a process runs cold (the JIT; on PGlite its WebAssembly too) and came out up to a
// third slower than the same layout measured later: the first layout is drained once unprinted first.
if (layouts[0]) await measure(layouts[0], true);
for (const layout of layouts) await measure(layout);
process.exit(0);
