// Chronograph beside graphile-worker on the same PostgreSQL: `npm run bench -- compare [sections]`.
// Chronograph runs as `npm start` runs it, compiled (dist/, built first when src/ changed; bench/support.ts
// chronographApi); BENCH_FROM_SOURCE=1 runs src/ through tsx instead.
// Sections (default: drain, latency, create, pglite; also: future): Each system gets a scratch database of its
// own on BENCH_DATABASE_URL's server (default the local PostgreSQL), and the two run interleaved, in
// alternating order, BENCH_ROUNDS times (default 3), so that the machine's noise hits both alike; every
// round is printed, then the median of the per-round ratios (Chronograph ÷ graphile-worker; above 1 means
// Chronograph is faster for rates and slower for latencies).
//
// - drain: BENCH_TASKS (default 20000) no-op jobs are queued with a run time an hour ahead, optionally
//   ANALYZEd, the worker processes are started and ready, then one UPDATE makes all of them due and
//   NOTIFYs the workers. Rate = jobs ÷ (time the last job was done − commit of that UPDATE), both seen
//   by this process polling the database every 25 ms. Also prints WAL bytes and row changes per job: the
//   WAL this database's records took (read with pg_walinspect when the server has it; the server's whole
//   WAL in that time, which other work on the server inflates, is printed beside it), and with
//   BENCH_WAL_DETAIL=1 where those bytes went, by relation and record type. The benchmark's own UPDATE
//   that makes the jobs due is left out of both (its transaction's records, and its one row change per
//   job): what is counted is what the system writes to process a job.
//   Configurations: 1 process × 24 and 2 processes × 50, each with and without ANALYZE (autovacuum is
//   off on the scratch databases so "without" stays without); BENCH_DRAIN=1x24,1x24a,2x50,2x50a picks some.
//   BENCH_NODE_ARGS adds node options to the drain's worker processes (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
// - latency: one job at a time, due now, BENCH_LATENCY (default 300) times: from the add call to the
//   handler's start, in-process for both; Chronograph also through GraphQL over HTTP to an instance
//   listening in this process, posted with fetch (undici) and with node:http (keep-alive agent), to show
//   what the client itself adds. The four take turns job by job (each on its own database), so that
//   noise falls on all alike, after 20 warm-up jobs each; BENCH_LATENCY_WARMUP=n first runs n more jobs per
//   system back to back (default 0), until V8 has optimised each path. Statements sent per
//   job on the `pg` driver (and how many were prepared) are counted by wrapping pg.Client#query.
// - create: BENCH_CREATE (default 10000) jobs in one call: createTimerTasks vs graphile_worker.add_jobs, each
//   after an untimed first call of 1,000 (a fresh process and connection each round: the measured call is
//   the steady state of a series of batches, not the first statement of a new connection).
// - future: the in-process due-now latency of `latency` (graphile-worker's addJob beside TaskSvc), each
//   system's database first holding BENCH_FUTURE (default 1,000,000) jobs queued for the next days,
//   inserted in batches of 100,000 (graphile-worker's through add_jobs, Chronograph's as plain task rows),
//   ANALYZEd, then a CHECKPOINT once both exist; the systems are started in alternating order. What is
//   timed is each system's own path from add to start with that backlog beside it: graphile-worker's
//   add_job then get_job, Chronograph's insert that claims its own due task (its claim statement is not
//   on that path). Not among the default sections (it inserts that backlog for each system in every round).
// - pglite: Chronograph's drain (in-process, concurrency 24) on PGlite beside PostgreSQL's. The PGlite drain
//   is done when the instance's completed-tasks counter reaches BENCH_TASKS (read in-process, not by a
//   poll that would run on PGlite's thread). PGlite runs on a new data directory on disk, as `npm start`
//   does (the ratio is this one's); the same drain on `DATA_DIR=memory://` (what the tests use) is printed
//   beside it: there PGlite's in-memory file system copies a file each time it grows, which costs about
//   a sixth of the rate. PGlite runs as Chronograph's default has it (PGLITE_OPTIMIZE=true: V8 optimises its
//   hottest WebAssembly); BENCH_PGLITE_OPTIMIZE=0 runs it with PGLITE_OPTIMIZE=false (the baseline compiler
//   alone) instead. The choice is process-wide: one per run.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger, makeWorkerUtils, run, runMigrations } from 'graphile-worker';
import pg from 'pg';
import { ADMIN_URL, chronographApi, insertTasksSql, postJson, scratchDatabase } from './support.js';

// As `npm start` runs it (dist/), also in the drain's worker processes (bench/_compareWorker.ts).
const { Chronograph, loadConfig } = await chronographApi();

const TASKS = Number(process.env.BENCH_TASKS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const LATENCY_N = Number(process.env.BENCH_LATENCY ?? 300);
const LATENCY_WARMUP = Number(process.env.BENCH_LATENCY_WARMUP ?? 0);
const CREATE_N = Number(process.env.BENCH_CREATE ?? 10_000);
const FUTURE_N = Number(process.env.BENCH_FUTURE ?? 1_000_000);
const sections = new Set(process.argv.slice(2).length ? process.argv.slice(2) : ['drain', 'latency', 'create', 'pglite']);

const quiet = new Logger(() => (level, message) => {
  if (level === 'error') console.error(message);
});

type System = 'graphile-worker' | 'chronograph';
const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const quantile = (values: number[], q: number) => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function cgConfig(env: Record<string, string | undefined>) {
  return loadConfig({ APP_DIR: '/nonexistent', LOG_LEVEL: 'warn', DATA_DIR: 'memory://', ...env });
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

type ScratchDatabase = Awaited<ReturnType<typeof scratchDatabase>>;

/** A scratch database with the system's schema installed and autovacuum off (statistics stay as we leave them). */
async function prepareDatabase(system: System) {
  const db = await scratchDatabase();
  if (system === 'graphile-worker') {
    await runMigrations({ connectionString: db.url, logger: quiet });
  } else {
    const app = await Chronograph.create({ config: cgConfig({ DATABASE_URL: db.url, SCHEDULER_ENABLED: 'false' }) });
    await app.templateSvc.create({ fullName: 'bench.Noop', title: 'No-op', funcName: 'chronograph.noop' });
    await app.stop();
  }
  await withClient(db.url, async (c) => {
    const tables =
      system === 'graphile-worker'
        ? ['graphile_worker._private_jobs', 'graphile_worker._private_tasks']
        : ['task_spec', 'task_state', 'task_event'];
    for (const table of tables) await c.query(`ALTER TABLE ${table} SET (autovacuum_enabled = false)`);
    await c.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect').catch(() => undefined);
  });
  return db;
}

// ---- drain ----

/** The columns of the no-op tasks the benchmarks queue in SQL (insertTasksSql). */
const NOOP_COLUMNS = ['id', 'template_id', 'full_name', 'task_type', 'func_name', 'start_time', 'next_run_at', 'updated_at'];

/** Makes every waiting task due now, as one UPDATE of the view would, on the tables (the view's trigger updates row by row). */
const MAKE_DUE = `WITH due AS (UPDATE task_state SET next_run_at = now() WHERE status = 'SCHEDULED' RETURNING task_id)
  UPDATE task_spec SET start_time = now() WHERE id IN (SELECT task_id FROM due)`;

/** Queues `count` no-op jobs due in an hour. */
async function queueFuture(system: System, c: pg.Client, count: number) {
  if (system === 'graphile-worker') {
    await c.query(
      `SELECT graphile_worker.add_jobs(array(
         SELECT ROW('noop', '{}'::json, NULL, now() + interval '1 hour', NULL, NULL, NULL, NULL)::graphile_worker.job_spec
           FROM generate_series(1, $1)))`,
      [count],
    );
  } else {
    await c.query(
      insertTasksSql(
        NOOP_COLUMNS,
        `SELECT gen_random_uuid(), (SELECT id FROM task_template WHERE full_name = 'bench.Noop'), 'bench.Noop', 'tasks.NormalType',
                'chronograph.noop', now() + interval '1 hour', now() + interval '1 hour', now()
           FROM generate_series(1, $1)`,
      ),
      [count],
    );
  }
}

/** Queues `count` no-op jobs spread over the next days (one a second from tomorrow), in batches of 100,000, then ANALYZE. */
async function queueBacklog(system: System, url: string, count: number) {
  await withClient(url, async (c) => {
    for (let done = 0; done < count; done += 100_000) {
      const n = Math.min(100_000, count - done);
      const at = `now() + interval '1 day' + (g + ${done}) * interval '1 second'`;
      await c.query(
        system === 'graphile-worker'
          ? `SELECT count(*) FROM graphile_worker.add_jobs(array(
               SELECT ROW('noop', '{}'::json, NULL, ${at}, NULL, NULL, NULL, NULL)::graphile_worker.job_spec FROM generate_series(1, $1) g))`
          : insertTasksSql(
              NOOP_COLUMNS,
              `SELECT gen_random_uuid(), (SELECT id FROM task_template WHERE full_name = 'bench.Noop'), 'bench.Noop', 'tasks.NormalType',
                      'chronograph.noop', ${at}, ${at}, now()
                 FROM generate_series(1, $1) g`,
            ),
        [n],
      );
    }
    await c.query(system === 'graphile-worker' ? 'ANALYZE graphile_worker._private_jobs' : 'ANALYZE task_spec, task_state');
  });
}

/**
 * Makes every queued job due now and wakes the workers, in one transaction; resolves at its commit with
 * that transaction's id (its WAL is the benchmark's, not the system's).
 */
async function makeDue(system: System, c: pg.Client): Promise<string> {
  const update =
    system === 'graphile-worker'
      ? `UPDATE graphile_worker._private_jobs SET run_at = now(); SELECT pg_notify('jobs:insert', '{"count":1000}')`
      : `${MAKE_DUE}; SELECT pg_notify('chronograph_wake', '')`;
  const results = (await c.query(`BEGIN; ${update}; SELECT pg_current_xact_id()::text AS xid; COMMIT;`)) as unknown as pg.QueryResult[];
  return results.find((r) => r.rows?.[0]?.xid)!.rows[0].xid as string;
}

async function remaining(system: System, c: pg.Client): Promise<boolean> {
  const sql =
    system === 'graphile-worker'
      ? 'SELECT 1 FROM graphile_worker._private_jobs LIMIT 1'
      : `SELECT 1 FROM task_state WHERE status IN ('SCHEDULED', 'RUNNING', 'RETRYING') LIMIT 1`;
  return (await c.query(sql)).rowCount! > 0;
}

interface TableStats {
  ins: number;
  upd: number;
  hot: number;
  del: number;
}

async function tableStats(c: pg.Client): Promise<TableStats> {
  const { rows } = await c.query(
    `SELECT coalesce(sum(n_tup_ins), 0)::float8 AS ins, coalesce(sum(n_tup_upd), 0)::float8 AS upd,
            coalesce(sum(n_tup_hot_upd), 0)::float8 AS hot, coalesce(sum(n_tup_del), 0)::float8 AS del
       FROM pg_stat_user_tables`,
  );
  return rows[0] as TableStats;
}

const alive = new Set<ChildProcess>();
process.on('exit', () => alive.forEach((c) => c.kill('SIGKILL')));

/** BENCH_NODE_ARGS: node options for the drain's worker processes (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). */
const WORKER_NODE_ARGS = process.env.BENCH_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [];

function spawnWorkers(system: System, url: string, processes: number, concurrency: number): Promise<ChildProcess[]> {
  const children = Array.from({ length: processes }, (_, i) =>
    spawn(process.execPath, [...WORKER_NODE_ARGS, '--import', 'tsx', path.join(import.meta.dirname, '_compareWorker.ts')], {
      env: {
        ...process.env,
        COMPARE_KIND: system === 'graphile-worker' ? 'gw' : 'cg',
        COMPARE_CONCURRENCY: String(concurrency),
        DATABASE_URL: url,
        WORKER_ID: `compare-${i}`,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  for (const child of children) {
    alive.add(child);
    child.on('exit', () => alive.delete(child));
  }
  return Promise.all(
    children.map(
      (child) =>
        new Promise<ChildProcess>((resolve, reject) => {
          child.stdout!.on('data', (d) => String(d).includes('ready') && resolve(child));
          child.on('exit', (code) => reject(new Error(`${system} worker exited with ${code} before it was ready`)));
        }),
    ),
  ).then(() => children);
}

async function stopWorkers(children: ChildProcess[]) {
  await Promise.all(children.map((c) => new Promise((resolve) => (c.on('exit', resolve), c.kill('SIGTERM')))));
}

/**
 * This database's WAL between two positions, by relation and record type (pg_walinspect): records whose
 * first block is in this database, and the commit records of their transactions, except those of
 * transaction `excluded`. Null without pg_walinspect.
 */
async function walOfDatabase(c: pg.Client, from: string, to: string, excluded: string) {
  const installed = await c.query(`SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect'`);
  if (installed.rowCount === 0) return null;
  // The row estimates of pg_walinspect's functions are fixed guesses: a nested loop over ~10^5 records
  // would take minutes.
  await c.query('SET enable_nestloop = off');
  const { rows } = await c
    .query<{ rel: string; rm: string; type: string; n: number; bytes: number; fpi: number }>(
      `WITH r AS (
       SELECT w.xid, w.resource_manager, w.record_type, w.record_length, w.fpi_length,
              regexp_match(w.block_ref, 'rel [0-9]+/([0-9]+)/([0-9]+)') AS m
         FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn) w
        WHERE w.xid::text <> $3
     ),
     ours AS (
       SELECT * FROM r WHERE m[1]::oid = (SELECT oid FROM pg_database WHERE datname = current_database())
     ),
     commits AS (
       SELECT r.* FROM r JOIN (SELECT DISTINCT xid::text AS xid FROM ours WHERE xid::text <> '0') o ON o.xid = r.xid::text
        WHERE r.m IS NULL AND r.resource_manager = 'Transaction'
     )
     SELECT coalesce(pg_filenode_relation(0, m[2]::oid)::text, m[2], '(none)') AS rel, resource_manager AS rm,
            record_type AS type, count(*)::float8 AS n, sum(record_length)::float8 AS bytes, sum(fpi_length)::float8 AS fpi
       FROM (SELECT * FROM ours UNION ALL SELECT * FROM commits) x
      GROUP BY 1, 2, 3 ORDER BY bytes DESC`,
      [from, to, excluded],
    )
    .catch((error: Error) => {
      // A checkpoint may have recycled the segments already.
      console.log(`  (no WAL detail: ${error.message})`);
      return { rows: null };
    });
  await c.query('RESET enable_nestloop');
  return rows;
}

interface DrainResult {
  rate: number;
  walPerJob: number;
  /** The same without full-page images (a checkpoint during the drain adds them, by chance). */
  walPerJobNoFpi: number | null;
  /** The server's whole WAL in the same time (other databases' included). */
  serverWalPerJob: number;
  rowsPerJob: number;
  hotShare: number;
}

async function drain(system: System, processes: number, concurrency: number, analyze: boolean): Promise<DrainResult> {
  const db = await prepareDatabase(system);
  try {
    return await withClient(db.url, async (c) => {
      await queueFuture(system, c, TASKS);
      if (analyze) await c.query('ANALYZE');
      const children = await spawnWorkers(system, db.url, processes, concurrency);
      let seconds: number;
      let bytes: number;
      let before: TableStats;
      let lsnBefore: string;
      let lsnAfter: string;
      let dueXid: string;
      try {
        await sleep(500);
        before = await tableStats(c);
        [{ lsn: lsnBefore }] = (await c.query('SELECT pg_current_wal_lsn() AS lsn')).rows;
        dueXid = await makeDue(system, c);
        const started = performance.now();
        while (await remaining(system, c)) await sleep(25);
        seconds = (performance.now() - started) / 1000;
        [{ bytes, lsn: lsnAfter }] = (
          await c.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::float8 AS bytes, pg_current_wal_lsn() AS lsn', [lsnBefore])
        ).rows;
      } finally {
        await stopWorkers(children);
      }
      // Backends flush their table statistics when they disconnect (idle ones only every few seconds).
      await sleep(200);
      const after = await tableStats(c);
      // The make-due UPDATE changed every queued row once.
      const changed = after.ins - before.ins + (after.upd - before.upd - TASKS) + (after.del - before.del);
      const wal = await walOfDatabase(c, lsnBefore, lsnAfter, dueXid);
      if (wal && process.env.BENCH_WAL_DETAIL) {
        console.log(`  ${system}: this database's WAL per job by relation and record type (bytes, of which full-page images)`);
        for (const w of wal.filter((w) => w.bytes / TASKS >= 1)) {
          console.log(
            `    ${fmt(w.bytes / TASKS).padStart(6)} B ${fmt(w.fpi / TASKS).padStart(5)} FPI  ${fmt(w.n / TASKS, 2).padStart(5)}×  ${w.rel} ${w.rm}/${w.type}`,
          );
        }
      }
      return {
        rate: TASKS / seconds,
        walPerJob: wal ? wal.reduce((sum, w) => sum + w.bytes, 0) / TASKS : bytes / TASKS,
        walPerJobNoFpi: wal ? wal.reduce((sum, w) => sum + w.bytes - w.fpi, 0) / TASKS : null,
        serverWalPerJob: bytes / TASKS,
        rowsPerJob: changed / TASKS,
        hotShare: after.upd - before.upd > TASKS ? (after.hot - before.hot) / (after.upd - before.upd - TASKS) : 0,
      };
    });
  } finally {
    await db.drop();
  }
}

async function benchDrain() {
  const configs = [
    { processes: 1, concurrency: 24, analyze: false },
    { processes: 1, concurrency: 24, analyze: true },
    { processes: 2, concurrency: 50, analyze: false },
    { processes: 2, concurrency: 50, analyze: true },
  ].filter((cfg) => {
    // BENCH_DRAIN=1x24,2x50a: only these configurations (a: with ANALYZE).
    const only = process.env.BENCH_DRAIN?.split(',');
    return !only || only.includes(`${cfg.processes}x${cfg.concurrency}${cfg.analyze ? 'a' : ''}`);
  });
  console.log(`\n## Drain: ${fmt(TASKS)} queued no-op jobs, ${ROUNDS} rounds`);
  for (const cfg of configs) {
    const label = `${cfg.processes} process${cfg.processes > 1 ? 'es' : ''} × ${cfg.concurrency}, ${cfg.analyze ? 'with' : 'without'} ANALYZE`;
    console.log(`\n### ${label}`);
    const ratios: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const order: System[] = round % 2 ? ['graphile-worker', 'chronograph'] : ['chronograph', 'graphile-worker'];
      const results = {} as Record<System, DrainResult>;
      for (const system of order) results[system] = await drain(system, cfg.processes, cfg.concurrency, cfg.analyze);
      const ratio = results.chronograph.rate / results['graphile-worker'].rate;
      ratios.push(ratio);
      for (const system of ['graphile-worker', 'chronograph'] as const) {
        const r = results[system];
        console.log(
          `round ${round} ${system.padEnd(15)} ${fmt(r.rate).padStart(7)} jobs/s   WAL ${fmt(r.walPerJob / 1024, 2)} KB/job (${r.walPerJobNoFpi === null ? '' : `${fmt(r.walPerJobNoFpi / 1024, 2)} without full-page images, `}server ${fmt(r.serverWalPerJob / 1024, 2)})   ${fmt(r.rowsPerJob, 1)} row changes/job   HOT ${fmt(r.hotShare * 100)} % of updates`,
        );
      }
      console.log(`round ${round} ratio chronograph ÷ graphile-worker: ${fmt(ratio, 2)}`);
    }
    console.log(`median ratio (${label}): ${fmt(median(ratios), 2)}`);
  }
}

// ---- latency ----

/**
 * Statements sent on the pg driver (both systems use it), and how many were named (prepared), counted for
 * the system whose job is being measured (`counting`): the systems take turns, one job at a time. Only
 * statements on that system's own database count: the others keep polling meanwhile (graphile-worker's
 * workers look for jobs every few seconds), and their statements are not this job's.
 */
type Counts = { total: number; prepared: number; transactionControl: number };
let counting: Counts | undefined;
let countingDatabase: string | undefined;
/** BENCH_STATEMENTS=1: which statements, by their first words, counted per measured run. */
let statementTexts: Map<string, number> | undefined;
const originalQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, config: unknown, ...rest: unknown[]) {
  const text = typeof config === 'string' ? config : (config as { text?: string })?.text;
  if (counting && (this as pg.Client & { database?: string }).database === countingDatabase) {
    counting.total++;
    if (process.env.BENCH_STATEMENTS && statementTexts) {
      const key = `${(config as { name?: string })?.name ? '[prepared] ' : ''}${(text ?? '?').replace(/\s+/g, ' ').slice(0, 90)}`;
      statementTexts.set(key, (statementTexts.get(key) ?? 0) + 1);
    }
    if (config && typeof config === 'object' && (config as { name?: string }).name) counting.prepared++;
    if (text && /^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b/i.test(text)) counting.transactionControl++;
  }
  return (originalQuery as (...args: unknown[]) => unknown).call(this, config, ...rest);
} as typeof pg.Client.prototype.query;

interface LatencyResult {
  p50: number;
  p99: number;
  statements: number;
  prepared: number;
  transactionControl: number;
}

/** One system ready to take due-now jobs: `add` queues job i, `started` gets its handler's start time. */
interface LatencySystem {
  name: string;
  /** The name of the system's database (whose statements are counted for its jobs). */
  database: string;
  add(i: number): Promise<unknown>;
  started: Map<number, number>;
  close(): Promise<void>;
  samples: number[];
  counts: Counts;
  texts: Map<string, number>;
}

/**
 * One job at a time, the systems taking turns job by job (in an order that rotates), so that the
 * machine's noise — other processes, checkpoints, the disk's flushes — falls on all of them alike
 * rather than on whichever happened to run during a bad second.
 */
async function measureLatency(systems: LatencySystem[]): Promise<Map<string, LatencyResult>> {
  // BENCH_LATENCY_WARMUP: jobs back to back, in turns, untimed (V8 optimises a function only after it has
  // run a good many times; 20 jobs leave the longer HTTP path mostly unoptimised).
  for (let w = 0; w < LATENCY_WARMUP; w++) {
    for (const system of systems) {
      const i = -1_000_000 - w;
      await system.add(i);
      await untilStarted(system, i);
    }
  }
  if (LATENCY_WARMUP) await sleep(1_000);
  // A few warm-up jobs first: planning caches, pools, JIT.
  for (let i = -20; i < LATENCY_N; i++) {
    for (let k = 0; k < systems.length; k++) {
      const system = systems[((i % systems.length) + systems.length + k) % systems.length]!;
      counting = i >= 0 ? system.counts : undefined;
      countingDatabase = system.database;
      statementTexts = system.texts;
      const t0 = performance.now();
      await system.add(i);
      await untilStarted(system, i);
      if (i >= 0) system.samples.push(system.started.get(i)! - t0);
      // Let the job finish and its completion commit before the next one (one at a time).
      await sleep(15);
      counting = undefined;
    }
  }
  const results = new Map<string, LatencyResult>();
  for (const system of systems) {
    if (process.env.BENCH_STATEMENTS) {
      console.log(`  statements of ${system.name}:`);
      for (const [text, n] of [...system.texts].sort((a, b) => b[1] - a[1])) console.log(`    ${(n / LATENCY_N).toFixed(2)}/job  ${text}`);
    }
    results.set(system.name, {
      p50: quantile(system.samples, 0.5),
      p99: quantile(system.samples, 0.99),
      statements: system.counts.total / LATENCY_N,
      prepared: system.counts.prepared / LATENCY_N,
      transactionControl: system.counts.transactionControl / LATENCY_N,
    });
  }
  return results;
}

/** Resolves once job `i` of `system` has started its handler; throws after 10 s. */
async function untilStarted(system: LatencySystem, i: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!system.started.has(i)) {
    if (Date.now() > deadline) throw new Error(`${system.name}: job ${i} did not start within 10 s`);
    await sleep(0);
  }
}

function latencySystem(
  name: string,
  db: ScratchDatabase,
  started: Map<number, number>,
  add: (i: number) => Promise<unknown>,
  close: () => Promise<void>,
): LatencySystem {
  const database = decodeURIComponent(new URL(db.url).pathname.slice(1));
  return { name, database, add, started, close, samples: [], counts: { total: 0, prepared: 0, transactionControl: 0 }, texts: new Map() };
}

async function latencyGraphileWorker(prepared?: ScratchDatabase): Promise<LatencySystem> {
  const db = prepared ?? (await prepareDatabase('graphile-worker'));
  const started = new Map<number, number>();
  // Our own pool, ended (and awaited) before the database is dropped: graphile-worker ends a pool it made
  // without waiting, and the drop's FORCE then terminates a connection of a pool nobody listens to.
  const pool = new pg.Pool({ connectionString: db.url, max: 27 });
  pool.on('error', () => {});
  const runner = await run({
    pgPool: pool,
    concurrency: 24,
    noHandleSignals: true,
    logger: quiet,
    taskList: { latency: async (payload) => void started.set((payload as { i: number }).i, performance.now()) },
  });
  const utils = await makeWorkerUtils({ pgPool: pool, logger: quiet });
  return latencySystem(
    'graphile-worker addJob',
    db,
    started,
    (i) => utils.addJob('latency', { i }),
    async () => {
      await utils.release();
      await runner.stop();
      await pool.end();
      await db.drop();
    },
  );
}

/**
 * Chronograph taking due-now creates in-process (TaskSvc), or as createTimerTask mutations over HTTP to
 * the instance listening in this process: sent with `fetch` (undici, as before), or with node:http and a
 * keep-alive agent, the leaner client. Both clients run in this process, so what each costs on its side
 * (building and writing the request, and whatever it still does while the server works) is counted in the
 * latency too; the node:http line shows how much of the HTTP figure is the client's.
 */
async function latencyChronograph(transport: 'in-process' | 'fetch' | 'node:http', prepared?: ScratchDatabase): Promise<LatencySystem> {
  const db = prepared ?? (await prepareDatabase('chronograph'));
  const started = new Map<number, number>();
  const app = await Chronograph.create({
    config: cgConfig({ DATABASE_URL: db.url, CONCURRENCY: '24' }),
    setup: (a) => {
      a.handlers.register('bench.latency', (args) => void started.set(args.i as number, performance.now()));
    },
  });
  const close = async () => {
    await app.stop();
    await db.drop();
  };
  if (transport === 'in-process') {
    const svc = app.taskSvc;
    return latencySystem(
      'chronograph TaskSvc',
      db,
      started,
      (i) => svc.createTimerTask({ fullName: 'bench.Noop', funcName: 'bench.latency', startTime: '2000-01-01T00:00:00Z', argDict: { i } }),
      close,
    );
  }
  const { url } = await app.listen(0, '127.0.0.1');
  const query =
    'mutation($args: JSON!) { createTimerTask(input: { fullName: "bench.Noop", funcName: "bench.latency", startTime: "2000-01-01T00:00:00Z", argDict: $args }) { id } }';
  const check = (text: string) => {
    const body = JSON.parse(text) as { errors?: unknown };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
  };
  if (transport === 'fetch') {
    return latencySystem(
      'chronograph GraphQL over HTTP',
      db,
      started,
      async (i) => {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query, variables: { args: { i } } }),
        });
        const body = (await response.json()) as { errors?: unknown };
        if (body.errors) throw new Error(JSON.stringify(body.errors));
      },
      close,
    );
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return latencySystem(
    'chronograph HTTP, node:http',
    db,
    started,
    async (i) => check(await postJson(url, agent, JSON.stringify({ query, variables: { args: { i } } }))),
    async () => {
      agent.destroy();
      await close();
    },
  );
}

async function benchLatency() {
  console.log(
    `\n## Due-now latency, add → handler start, ${LATENCY_N} jobs one at a time per system (the systems take turns job by job), ${ROUNDS} rounds`,
  );
  const ratios = {
    p50: [] as number[],
    p99: [] as number[],
    httpP50: [] as number[],
    httpP99: [] as number[],
    nodeHttpP50: [] as number[],
    nodeHttpP99: [] as number[],
  };
  const line = (name: string, r: LatencyResult) =>
    console.log(
      `  ${name.padEnd(30)} p50 ${fmt(r.p50, 2).padStart(6)} ms  p99 ${fmt(r.p99, 2).padStart(6)} ms   ${fmt(r.statements, 1)} statements/job on pg ` +
        `(${fmt(r.transactionControl, 1)} BEGIN/COMMIT, ${fmt(r.prepared, 1)} prepared)`,
    );
  for (let round = 1; round <= ROUNDS; round++) {
    console.log(`round ${round}`);
    const systems = [
      await latencyGraphileWorker(),
      await latencyChronograph('in-process'),
      await latencyChronograph('fetch'),
      await latencyChronograph('node:http'),
    ];
    let results: Map<string, LatencyResult>;
    try {
      results = await measureLatency(systems);
    } finally {
      for (const system of systems) await system.close();
    }
    const [gw, cg, overFetch, overNodeHttp] = systems.map((s) => results.get(s.name)!) as [
      LatencyResult,
      LatencyResult,
      LatencyResult,
      LatencyResult,
    ];
    line('graphile-worker addJob', gw);
    line('chronograph TaskSvc', cg);
    line('chronograph GraphQL over HTTP', overFetch);
    line('chronograph HTTP, node:http', overNodeHttp);
    ratios.p50.push(cg.p50 / gw.p50);
    ratios.p99.push(cg.p99 / gw.p99);
    ratios.httpP50.push(overFetch.p50 / gw.p50);
    ratios.httpP99.push(overFetch.p99 / gw.p99);
    ratios.nodeHttpP50.push(overNodeHttp.p50 / gw.p50);
    ratios.nodeHttpP99.push(overNodeHttp.p99 / gw.p99);
  }
  console.log(
    `median ratio chronograph ÷ graphile-worker (lower is better): TaskSvc p50 ${fmt(median(ratios.p50), 2)}, p99 ${fmt(median(ratios.p99), 2)}; ` +
      `GraphQL/HTTP (fetch) p50 ${fmt(median(ratios.httpP50), 2)}, p99 ${fmt(median(ratios.httpP99), 2)}; ` +
      `GraphQL/HTTP (node:http) p50 ${fmt(median(ratios.nodeHttpP50), 2)}, p99 ${fmt(median(ratios.nodeHttpP99), 2)}`,
  );
}

async function benchFuture() {
  console.log(
    `\n## Due-now latency with ${fmt(FUTURE_N)} future jobs queued, add → handler start, in-process, ${LATENCY_N} jobs one at a time per system, ${ROUNDS} rounds`,
  );
  const p50: number[] = [];
  const p99: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const t0 = performance.now();
    const gwDb = await prepareDatabase('graphile-worker');
    const cgDb = await prepareDatabase('chronograph');
    await queueBacklog('graphile-worker', gwDb.url, FUTURE_N);
    await queueBacklog('chronograph', cgDb.url, FUTURE_N);
    await withClient(ADMIN_URL, (c) => c.query('CHECKPOINT'));
    console.log(`round ${round} (backlogs queued in ${fmt((performance.now() - t0) / 1000, 1)} s)`);
    const systems =
      round % 2
        ? [await latencyGraphileWorker(gwDb), await latencyChronograph('in-process', cgDb)]
        : [await latencyChronograph('in-process', cgDb), await latencyGraphileWorker(gwDb)];
    let results: Map<string, LatencyResult>;
    try {
      results = await measureLatency(systems);
    } finally {
      for (const system of systems) await system.close();
    }
    const gw = results.get('graphile-worker addJob')!;
    const cg = results.get('chronograph TaskSvc')!;
    for (const [name, r] of [
      ['graphile-worker addJob', gw],
      ['chronograph TaskSvc', cg],
    ] as const) {
      console.log(`  ${name.padEnd(30)} p50 ${fmt(r.p50, 2).padStart(6)} ms  p99 ${fmt(r.p99, 2).padStart(6)} ms`);
    }
    p50.push(cg.p50 / gw.p50);
    p99.push(cg.p99 / gw.p99);
  }
  console.log(`median ratio chronograph ÷ graphile-worker (lower is better): p50 ${fmt(median(p50), 2)}, p99 ${fmt(median(p99), 2)}`);
}

// ---- create ----

/** Jobs of an untimed first call on the same connection (both systems): connection, caches and JIT warm. */
const CREATE_WARMUP = 1_000;

async function createGraphileWorker(): Promise<number> {
  const db = await prepareDatabase('graphile-worker');
  try {
    return await withClient(db.url, async (c) => {
      const specs = (n: number) =>
        JSON.stringify(
          Array.from({ length: n }, (_, i) => ({
            identifier: 'noop',
            payload: { i },
            run_at: new Date(Date.now() + 3_600_000).toISOString(),
          })),
        );
      const addJobs = (json: string) =>
        c.query(
          `SELECT count(*) FROM graphile_worker.add_jobs(array(SELECT json_populate_recordset(NULL::graphile_worker.job_spec, $1::json)))`,
          [json],
        );
      await addJobs(specs(CREATE_WARMUP));
      const json = specs(CREATE_N);
      const t0 = performance.now();
      await addJobs(json);
      return CREATE_N / ((performance.now() - t0) / 1000);
    });
  } finally {
    await db.drop();
  }
}

async function createChronograph(): Promise<number> {
  const db = await prepareDatabase('chronograph');
  const app = await Chronograph.create({ config: cgConfig({ DATABASE_URL: db.url, SCHEDULER_ENABLED: 'false' }) });
  try {
    const startTime = new Date(Date.now() + 3_600_000).toISOString();
    const batch = (n: number) => Array.from({ length: n }, (_, i) => ({ fullName: 'bench.Noop', startTime, argDict: { i } }));
    await app.taskSvc.createTimerTasks(batch(CREATE_WARMUP));
    const inputs = batch(CREATE_N);
    const t0 = performance.now();
    await app.taskSvc.createTimerTasks(inputs);
    return CREATE_N / ((performance.now() - t0) / 1000);
  } finally {
    await app.stop();
    await db.drop();
  }
}

async function benchCreate() {
  console.log(`\n## Creating ${fmt(CREATE_N)} jobs in one call, ${ROUNDS} rounds`);
  const ratios: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const gw = await createGraphileWorker();
    const cg = await createChronograph();
    ratios.push(cg / gw);
    console.log(
      `round ${round}: graphile-worker add_jobs ${fmt(gw)} jobs/s, chronograph createTimerTasks ${fmt(cg)} tasks/s, ratio ${fmt(cg / gw, 3)}`,
    );
  }
  console.log(`median ratio chronograph ÷ graphile-worker: ${fmt(median(ratios), 3)}`);
}

// ---- PGlite beside PostgreSQL ----

/** The drain on PGlite, on a new data directory on disk (`npm start`'s way) or in memory (the tests'). */
async function drainPglite(onDisk: boolean): Promise<number> {
  const dataDir = onDisk ? await mkdtemp(path.join(tmpdir(), 'chronograph-bench-')) : 'memory://';
  const app = await Chronograph.create({
    config: cgConfig({
      SCHEDULER_ENABLED: 'false',
      CONCURRENCY: '24',
      DATA_DIR: dataDir,
      PGLITE_OPTIMIZE: PGLITE_OPTIMIZE ? 'true' : 'false',
    }),
  });
  try {
    await app.templateSvc.create({ fullName: 'bench.Noop', title: 'No-op', funcName: 'chronograph.noop' });
    const prisma = app.db.prisma;
    await prisma.$executeRawUnsafe(
      insertTasksSql(
        NOOP_COLUMNS,
        `SELECT gen_random_uuid(), (SELECT id FROM task_template WHERE full_name = 'bench.Noop'), 'bench.Noop', 'tasks.NormalType',
                'chronograph.noop', now() + interval '1 hour', now() + interval '1 hour', now()
           FROM generate_series(1, $1)`,
      ),
      TASKS,
    );
    await app.scheduler.start();
    await sleep(300);
    await prisma.$executeRawUnsafe(MAKE_DUE);
    app.scheduler.wake();
    const started = performance.now();
    // Done when the instance has recorded every completion (its metrics counter, read in this process):
    // polling the database, as the PostgreSQL drain does from another process, would run the poll's
    // statements on PGlite, in the very thread being measured (about 2 % of the rate).
    const completed = app.metrics.registry.getSingleMetric('chronograph_tasks_completed_total')!;
    for (;;) {
      const { values } = await completed.get();
      if (values.reduce((sum, v) => sum + v.value, 0) >= TASKS) break;
      await sleep(5);
    }
    return TASKS / ((performance.now() - started) / 1000);
  } finally {
    await app.stop();
    if (onDisk) await rm(dataDir, { recursive: true, force: true });
  }
}

/** BENCH_PGLITE_OPTIMIZE=0: PGlite's drains with PGLITE_OPTIMIZE=false (V8's baseline compiler alone; a process-wide V8 flag). */
const PGLITE_OPTIMIZE = !/^(0|false)$/.test(process.env.BENCH_PGLITE_OPTIMIZE ?? '');

async function benchPglite() {
  console.log(
    `\n## Chronograph drain on PGlite${PGLITE_OPTIMIZE ? '' : ' (PGLITE_OPTIMIZE=false)'} beside PostgreSQL (1 process × 24, ${fmt(TASKS)} jobs), ${ROUNDS} rounds`,
  );
  const ratios: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const lite = await drainPglite(true);
    const postgres = (await drain('chronograph', 1, 24, true)).rate;
    const memory = await drainPglite(false);
    ratios.push(lite / postgres);
    console.log(
      `round ${round}: PGlite ${fmt(lite)} tasks/s (memory:// ${fmt(memory)}), PostgreSQL ${fmt(postgres)} tasks/s, ratio ${fmt(lite / postgres, 2)}`,
    );
  }
  console.log(`median ratio PGlite (data directory on disk) ÷ PostgreSQL: ${fmt(median(ratios), 2)}`);
}

console.log(`Chronograph vs graphile-worker on ${new URL(ADMIN_URL).host}; node ${process.version}; ${ROUNDS} rounds`);
if (sections.has('drain')) await benchDrain();
if (sections.has('latency')) await benchLatency();
if (sections.has('future')) await benchFuture();
if (sections.has('create')) await benchCreate();
if (sections.has('pglite')) await benchPglite();
process.exit(0);
