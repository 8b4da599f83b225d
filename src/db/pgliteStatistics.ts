import type { PGlite } from '@electric-sql/pglite';
import type { Logger } from '../logger.js';

/**
 * What PGlite's missing background processes would do: the planner statistics and the VACUUMs of
 * autovacuum (see maintainVacuum), and the checkpoints of the checkpointer (see maintainCheckpoints).
 *
 * The planner statistics of a PGlite database, which has no autovacuum to keep them.
 *
 * Prepared statements (pglitePool) and the foreign-key checks' saved plans switch to a generic plan
 * after five runs and keep it until something invalidates it. A generic plan made while a table is
 * small enough for a sequential scan to look cheapest stays a sequential scan as the table grows:
 * bulk creation then checks every new event's task by reading the whole task table (483 tasks/s
 * instead of some 7,500). Two things prevent this on PostgreSQL; on PGlite the template's VACUUM
 * turned off the first, and the second does not run:
 * - a table that was never vacuumed or analyzed (pg_class.reltuples = -1) is planned as at least ten
 *   pages, so lookups go through its indexes from the start; a VACUUM or ANALYZE of an empty table
 *   records reltuples = 0 and turns that off (PostgreSQL 14 and later);
 * - autovacuum ANALYZEs a table once enough of it has changed, and an ANALYZE invalidates the cached
 *   plans that read it (relcache invalidation), so they are made again for the table as it now is.
 */

/** A table is analyzed once it holds at least this many live rows (some ten pages of task rows). */
export const ANALYZE_MIN_ROWS = 1000;
/** ... and once more than this many rows, plus ANALYZE_SCALE of the rows it had at its last ANALYZE, changed (autovacuum's defaults). */
export const ANALYZE_THRESHOLD = 50;
export const ANALYZE_SCALE = 0.1;
/**
 * The statistics target of these ANALYZEs (PostgreSQL's default is 100: a 30,000-row sample). An ANALYZE
 * runs on the event loop like every PGlite statement: of a task table of 100,000 rows it took 2.6 s with
 * 100 and 0.14 s with 10 (a 3,000-row sample; 300,000 rows: 1.9 s and 0.25 s).
 */
export const ANALYZE_STATISTICS_TARGET = 10;
/** How often the tables' change counts are looked at. */
export const ANALYZE_INTERVAL_MS = 10_000;

/**
 * Marks the tables whose statistics say they are empty (reltuples = 0) as never measured (-1), as
 * initdb leaves a new table: the planner then assumes ten pages at least instead of none, and the
 * cached plans that read them are made again. Data directories copied from a template that ended with
 * VACUUM FREEZE (before 2026-12-05) have every table so; a table that really holds rows is
 * ANALYZEd by analyzeGrownTables once it is big enough. Returns the tables changed.
 */
export async function forgetEmptyStatistics(pglite: PGlite): Promise<string[]> {
  const { rows } = await pglite.query<{ relname: string }>(
    `UPDATE pg_class c SET reltuples = -1
       FROM pg_namespace n
      WHERE n.oid = c.relnamespace AND n.nspname = current_schema() AND c.relkind = 'r' AND c.reltuples = 0
     RETURNING c.relname`,
  );
  return rows.map((r) => r.relname).sort();
}

/**
 * ANALYZEs every table that holds at least ANALYZE_MIN_ROWS live rows and has changed by more than
 * ANALYZE_THRESHOLD + ANALYZE_SCALE × its rows since its last ANALYZE (pg_stat_user_tables'
 * n_mod_since_analyze). A smaller table is left unmeasured, so that the planner keeps its ten-page
 * assumption rather than caching sequential scans of a table that is about to grow. Returns the
 * tables analyzed with the milliseconds each took.
 */
export async function analyzeGrownTables(pglite: PGlite): Promise<{ table: string; ms: number }[]> {
  // The session's counts reach pg_stat_user_tables at most once a second, when it is idle: now.
  await pglite.query('SELECT pg_stat_force_next_flush()');
  const { rows } = await pglite.query<{ table: string }>(
    `SELECT format('%I.%I', s.schemaname, s.relname) AS table
       FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
      WHERE s.schemaname = current_schema() AND s.n_live_tup >= $1
        AND s.n_mod_since_analyze > $2::float8 + $3::float8 * greatest(c.reltuples, 0)
      ORDER BY s.relname`,
    [ANALYZE_MIN_ROWS, ANALYZE_THRESHOLD, ANALYZE_SCALE],
  );
  const done: { table: string; ms: number }[] = [];
  for (const { table } of rows) {
    if (pglite.closed) break;
    const started = performance.now();
    await pglite.transaction(async (tx) => {
      await tx.exec(`SET LOCAL default_statistics_target = ${ANALYZE_STATISTICS_TARGET}`);
      await tx.exec(`ANALYZE ${table}`);
    });
    done.push({ table, ms: Math.round(performance.now() - started) });
  }
  return done;
}

/**
 * PGlite has no autovacuum either (its setting says on, but no launcher runs in its one process), and
 * nothing else VACUUMs it. Every run leaves dead versions of its task and run rows, and their index
 * entries stay until a VACUUM, so a busy embedded instance's indexes only grow. Worse, no row is ever
 * frozen: a single-user backend, which PGlite is, does not refuse new transaction ids near wraparound as
 * a server does (it only warns), so after about two billion transactions the oldest rows would seem to
 * be from the future and disappear. A drain of 2,000 tasks a second uses some 170 transaction ids a
 * second: half a year. So Chronograph VACUUMs as autovacuum would, with its default thresholds: a table
 * whose dead rows passed VACUUM_THRESHOLD + VACUUM_SCALE of its rows, or whose rows inserted since its
 * last VACUUM passed VACUUM_INSERT_THRESHOLD + VACUUM_INSERT_SCALE of them (so insert-only tables such
 * as task_event get frozen too); and the whole database, catalogs included, once its oldest unfrozen
 * transaction id is FREEZE_MAX_AGE old (a VACUUM of a table that old freezes it). Like an ANALYZE, a
 * VACUUM runs on the event loop: about 0.1 s for 100,000 rows with 300,000 dead versions.
 */
export const VACUUM_THRESHOLD = 50;
export const VACUUM_SCALE = 0.2;
export const VACUUM_INSERT_THRESHOLD = 1000;
export const VACUUM_INSERT_SCALE = 0.2;
/** autovacuum_freeze_max_age's default. */
export const FREEZE_MAX_AGE = 200_000_000;
/**
 * autovacuum_multixact_freeze_max_age's default. Multixact ids (a row locked by more than one
 * transaction, or by a transaction and its savepoint, as a foreign-key check's share lock and an update
 * under a savepoint do) wrap around as transaction ids do, and a standalone backend does not stop there
 * either.
 */
export const MULTIXACT_FREEZE_MAX_AGE = 400_000_000;
/** How often the tables are looked at (autovacuum_naptime's default). */
export const VACUUM_INTERVAL_MS = 60_000;

/**
 * VACUUMs the tables of the current schema that autovacuum would (see above), and the whole database
 * once age(datfrozenxid) passes `freezeMaxAge` or mxid_age(datminmxid) passes `multixactFreezeMaxAge`
 * (such a VACUUM is aggressive, past vacuum_freeze_table_age and vacuum_multixact_freeze_table_age: it
 * reads every page and moves both horizons on). Returns what was vacuumed (`*` for the database), why,
 * and the milliseconds each took.
 */
export async function vacuumDueTables(
  pglite: PGlite,
  freezeMaxAge = FREEZE_MAX_AGE,
  multixactFreezeMaxAge = MULTIXACT_FREEZE_MAX_AGE,
): Promise<{ table: string; reason: 'dead' | 'inserted' | 'wraparound'; ms: number }[]> {
  await pglite.query('SELECT pg_stat_force_next_flush()');
  const done: { table: string; reason: 'dead' | 'inserted' | 'wraparound'; ms: number }[] = [];
  const vacuum = async (table: string, reason: 'dead' | 'inserted' | 'wraparound') => {
    const started = performance.now();
    // Outside any transaction (VACUUM cannot run in one): PGlite runs it between its callers' transactions.
    await pglite.exec(table === '*' ? 'VACUUM' : `VACUUM ${table}`);
    done.push({ table, reason, ms: Math.round(performance.now() - started) });
    // A VACUUM records the rows it found in pg_class.reltuples (0 for an emptied table), which ends the
    // planner's ten-page assumption: the generic plans made next (a VACUUM invalidates them) would be
    // sequential scans, and stay so as the table grows. As analyzeGrownTables does, a table under
    // ANALYZE_MIN_ROWS rows is left unmeasured (this update invalidates the plans made meanwhile).
    await pglite.query(
      `UPDATE pg_class c SET reltuples = -1
         FROM pg_namespace n
        WHERE n.oid = c.relnamespace AND n.nspname = current_schema() AND c.relkind = 'r'
          AND c.reltuples >= 0 AND c.reltuples < $1 AND ($2::text IS NULL OR c.oid = $2::regclass)`,
      [ANALYZE_MIN_ROWS, table === '*' ? null : table],
    );
  };
  const [database] = (
    await pglite.query<{ age: number; mxidAge: number }>(
      `SELECT age(datfrozenxid)::float8 AS age, mxid_age(datminmxid)::float8 AS "mxidAge" FROM pg_database WHERE datname = current_database()`,
    )
  ).rows;
  if ((database?.age ?? 0) > freezeMaxAge || (database?.mxidAge ?? 0) > multixactFreezeMaxAge) {
    await vacuum('*', 'wraparound');
    return done;
  }
  const { rows } = await pglite.query<{ table: string; dead: boolean }>(
    `SELECT format('%I.%I', s.schemaname, s.relname) AS table,
            s.n_dead_tup > $1::float8 + $2::float8 * greatest(c.reltuples, 0) AS dead
       FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
      WHERE s.schemaname = current_schema()
        AND (s.n_dead_tup > $1::float8 + $2::float8 * greatest(c.reltuples, 0)
             OR s.n_ins_since_vacuum > $3::float8 + $4::float8 * greatest(c.reltuples, 0))
      ORDER BY s.relname`,
    [VACUUM_THRESHOLD, VACUUM_SCALE, VACUUM_INSERT_THRESHOLD, VACUUM_INSERT_SCALE],
  );
  for (const { table, dead } of rows) {
    if (pglite.closed) break;
    await vacuum(table, dead ? 'dead' : 'inserted');
  }
  return done;
}

/**
 * PGlite has no checkpointer either. Without a CHECKPOINT its WAL only grows (in memory with
 * `memory://`), and a crash replays all of it. Worse, once the WAL since the last checkpoint passes
 * max_wal_size ÷ (1 + checkpoint_completion_target), 538 MB with the default 1 GB, the backend asks
 * for a checkpoint from inside its WAL write and spins for ever on a lock it holds itself. PGlite 0.4.3
 * wedges there at 100 % CPU (reproduced with inserts alone; bulk creation stopped at about 300,000
 * tasks). So PGlite starts with max_wal_size PGLITE_MAX_WAL_SIZE, which puts that point past 4 GB, and
 * Chronograph runs a CHECKPOINT itself whenever more than CHECKPOINT_WAL_BYTES of WAL were written since
 * the last one, looking every CHECKPOINT_INTERVAL_MS.
 */
export const PGLITE_MAX_WAL_SIZE = '8GB';
export const CHECKPOINT_WAL_BYTES = 64 * 2 ** 20;
export const CHECKPOINT_INTERVAL_MS = 1000;

/** CHECKPOINTs when more than `walBytes` of WAL were written since the last one; returns how many were, or null when none was due. */
export async function checkpointIfDue(pglite: PGlite, walBytes = CHECKPOINT_WAL_BYTES): Promise<number | null> {
  const { rows } = await pglite.query<{ bytes: number }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), redo_lsn)::float8 AS bytes FROM pg_control_checkpoint()`,
  );
  const bytes = rows[0]!.bytes;
  if (bytes <= walBytes) return null;
  await pglite.exec('CHECKPOINT');
  return bytes;
}

/**
 * Runs `pass` every `intervalMs` until stopped; its errors are logged as `failure` (unless PGlite has
 * closed). The timer does not keep the process alive; `stop` waits for a pass under way.
 */
function every(pglite: PGlite, logger: Logger, intervalMs: number, failure: string, pass: () => Promise<void>): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = pass()
        .catch((error: unknown) => {
          if (!pglite.closed) logger.warn({ err: error }, failure);
        })
        .finally(() => {
          running = undefined;
          schedule();
        });
    }, intervalMs);
    timer.unref();
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/** Runs analyzeGrownTables every `intervalMs` until stopped (PGlite's stand-in for autovacuum's ANALYZE). */
export function maintainStatistics(pglite: PGlite, logger: Logger, intervalMs = ANALYZE_INTERVAL_MS): { stop(): Promise<void> } {
  return every(pglite, logger, intervalMs, 'PGlite statistics: ANALYZE failed', async () => {
    const done = await analyzeGrownTables(pglite);
    if (done.length) logger.debug({ analyzed: done }, 'PGlite statistics renewed');
  });
}

/** Runs vacuumDueTables every `intervalMs` until stopped (PGlite's stand-in for autovacuum's VACUUM). */
export function maintainVacuum(pglite: PGlite, logger: Logger, intervalMs = VACUUM_INTERVAL_MS): { stop(): Promise<void> } {
  return every(pglite, logger, intervalMs, 'PGlite: VACUUM failed', async () => {
    const done = await vacuumDueTables(pglite);
    // Every statement waited for it (PGlite runs on the event loop): a long one is worth an operator's notice,
    // e.g. the first pass over a large data directory that was never vacuumed (about 0.7 s per 800,000 dead rows).
    if (done.some((v) => v.ms >= 1000)) logger.info({ vacuumed: done }, 'PGlite vacuum held the database for a second or more');
    else if (done.length) logger.debug({ vacuumed: done }, 'PGlite vacuum');
  });
}

/** Runs checkpointIfDue every `intervalMs` until stopped (PGlite's stand-in for the checkpointer). */
export function maintainCheckpoints(
  pglite: PGlite,
  logger: Logger,
  intervalMs = CHECKPOINT_INTERVAL_MS,
  walBytes = CHECKPOINT_WAL_BYTES,
): { stop(): Promise<void> } {
  return every(pglite, logger, intervalMs, 'PGlite: CHECKPOINT failed', async () => {
    const started = performance.now();
    const bytes = await checkpointIfDue(pglite, walBytes);
    if (bytes === null) return;
    const ms = Math.round(performance.now() - started);
    // As a long VACUUM: every statement waited for it (its writes and their flushes run on the event loop).
    if (ms >= 1000) logger.info({ walBytes: bytes, ms }, 'PGlite checkpoint held the database for a second or more');
    else logger.debug({ walBytes: bytes, ms }, 'PGlite checkpoint');
  });
}
