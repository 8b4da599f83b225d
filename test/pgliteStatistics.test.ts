import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Migration, readMigrations } from '../src/db/migrate.js';
import { pglitePool } from '../src/db/pglitePool.js';
import {
  ANALYZE_MIN_ROWS,
  analyzeGrownTables,
  checkpointIfDue,
  FREEZE_MAX_AGE,
  maintainCheckpoints,
  maintainStatistics,
  maintainVacuum,
  PGLITE_MAX_WAL_SIZE,
  VACUUM_INSERT_THRESHOLD,
  vacuumDueTables,
} from '../src/db/pgliteStatistics.js';
import { buildTemplate, copyTemplate } from '../src/db/pgliteTemplate.js';
import { statement } from '../src/db/SqlPool.js';
import { createLogger } from '../src/logger.js';
import { createTestApp, newPglite } from './support/testApp.js';

const logger = createLogger('silent');

/**
 * What the foreign-key check of task_run_log runs for every row it inserts (task_event and task_run ran it
 * too before migration 20261205040000, task_state between 20261207000000 and 20261207010000); task_spec is
 * the table of tasks since migration 20261207000000.
 */
const TASK_KEY_CHECK = `SELECT 1 FROM ONLY "public"."task_spec" x WHERE "id" OPERATOR(pg_catalog.=) $1 FOR KEY SHARE OF x`;

/** The plan a generic plan of `sql` would be on this database now (what a cached plan is made as). */
async function genericPlan(pglite: PGlite, sql: string): Promise<string> {
  const [result] = await pglite.exec(`EXPLAIN (GENERIC_PLAN) ${sql}`);
  return result!.rows.map((r) => (r as { 'QUERY PLAN': string })['QUERY PLAN']).join('\n');
}

/** pg_class.reltuples of every table of the schema: -1 is "never measured". */
async function reltuples(pglite: PGlite): Promise<Record<string, number>> {
  const { rows } = await pglite.query<{ relname: string; reltuples: number }>(
    `SELECT relname, reltuples FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY relname`,
  );
  return Object.fromEntries(rows.map((r) => [r.relname, r.reltuples]));
}

async function withPglite<T>(dir: string, fn: (pglite: PGlite) => Promise<T>): Promise<T> {
  const pglite = await PGlite.create(dir);
  try {
    return await fn(pglite);
  } finally {
    await pglite.close();
  }
}

/**
 * PGlite has no autovacuum, and prepared statements and foreign-key checks keep a generic plan once
 * made: statistics that say a table is empty make those plans sequential scans, which stay so as the
 * table grows (bulk creation on a data directory copied from the template fell to 483 tasks/s).
 */
describe('PGlite planner statistics (src/db/pgliteStatistics.ts, the template)', () => {
  let tmp: string;
  let template: string;
  let migrations: Migration[];
  let dirs = 0;
  const newDir = () => path.join(tmp, `data-${++dirs}`);

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), 'chronograph-stats-'));
    template = path.join(tmp, 'template');
    migrations = await readMigrations();
    await buildTemplate(migrations, logger, template);
  }, 180_000);
  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('a data directory copied from the template has every table unmeasured, and looks an empty task table up by its index', async () => {
    const dir = newDir();
    expect(await copyTemplate(dir, migrations, logger, template)).toBe(true);
    await withPglite(dir, async (pglite) => {
      const stats = await reltuples(pglite);
      expect(Object.keys(stats)).toContain('task_spec');
      for (const [table, tuples] of Object.entries(stats)) expect({ table, tuples }).toEqual({ table, tuples: -1 });
      expect(await genericPlan(pglite, TASK_KEY_CHECK)).toContain('Index Scan using task_spec_pkey');
    });
  });

  it('the template holds only the database PGlite uses (template0 and template1 were 600 files to copy), and a copy starts and runs tasks', async () => {
    const dir = newDir();
    await copyTemplate(dir, migrations, logger, template);
    expect((await readdir(path.join(dir, 'base'))).length).toBe(1);
    await withPglite(dir, async (pglite) => {
      const { rows } = await pglite.query<{ datname: string }>('SELECT datname FROM pg_database ORDER BY datname');
      expect(rows.map((r) => r.datname)).toEqual(['postgres']);
    });
    const t = await createTestApp('pglite', { env: { DATA_DIR: dir } });
    try {
      const ran = new Promise<unknown>((resolve) => t.app.handlers.register('test.copied', (args) => void resolve(args)));
      await t.app.templateSvc.create({ fullName: 'test.Copied', title: 'Copied', funcName: 'test.copied' });
      await t.app.taskSvc.createTimerTask({ fullName: 'test.Copied', startTime: new Date().toISOString(), argDict: { on: 'copy' } });
      await expect(ran).resolves.toEqual({ on: 'copy' });
    } finally {
      await t.close();
    }
  });

  it('a data directory made before the template (by initdb) loses template0 and template1, which nothing VACUUMs, when Chronograph opens it', async () => {
    const dir = newDir();
    await withPglite(dir, async (pglite) => {
      const { rows } = await pglite.query<{ datname: string }>('SELECT datname FROM pg_database ORDER BY datname');
      expect(rows.map((r) => r.datname)).toEqual(['postgres', 'template0', 'template1']);
    });
    const t = await createTestApp('pglite', { env: { DATA_DIR: dir, SCHEDULER_ENABLED: 'false' } });
    await t.close();
    expect((await readdir(path.join(dir, 'base'))).length).toBe(1);
    await withPglite(dir, async (pglite) => {
      const { rows } = await pglite.query<{ datname: string }>('SELECT datname FROM pg_database ORDER BY datname');
      expect(rows.map((r) => r.datname)).toEqual(['postgres']);
      // The cluster's oldest unfrozen transaction id is now that of the database a VACUUM keeps young
      // (template0's would have stayed as old as every transaction since initdb, migrations included).
      await pglite.exec('VACUUM FREEZE');
      const { rows: ages } = await pglite.query<{ age: number }>('SELECT max(age(datfrozenxid))::int AS age FROM pg_database');
      expect(ages[0]!.age).toBeLessThan(5);
    });
    // Opened again: nothing left to drop.
    const again = await createTestApp('pglite', { env: { DATA_DIR: dir, SCHEDULER_ENABLED: 'false' } });
    await again.close();
  });

  it('statistics frozen at zero (a template made before, or a VACUUM of empty tables) are reset when Chronograph opens the directory', async () => {
    const dir = newDir();
    await copyTemplate(dir, migrations, logger, template);
    await withPglite(dir, async (pglite) => {
      await pglite.exec('VACUUM FREEZE');
      expect((await reltuples(pglite)).task_spec).toBe(0);
      // What made bulk creation collapse: the foreign-key check's generic plan reads the whole table.
      expect(await genericPlan(pglite, TASK_KEY_CHECK)).toContain('Seq Scan on task_spec');
    });
    const t = await createTestApp('pglite', { env: { DATA_DIR: dir, SCHEDULER_ENABLED: 'false' } });
    await t.close();
    await withPglite(dir, async (pglite) => {
      const stats = await reltuples(pglite);
      expect(Object.entries(stats).filter(([, tuples]) => tuples === 0)).toEqual([]);
      expect(stats.task_spec).toBe(-1);
      expect(await genericPlan(pglite, TASK_KEY_CHECK)).toContain('Index Scan using task_spec_pkey');
    });
  });

  it('bulk creation on a copy of the template checks each new row’s task by index, with generic plans, not by reading the task table', async () => {
    const dir = newDir();
    await copyTemplate(dir, migrations, logger, template);
    const t = await createTestApp('pglite', { env: { DATA_DIR: dir, SCHEDULER_ENABLED: 'false' } });
    try {
      const inputs = (from: number, n: number) =>
        Array.from({ length: n }, (_, i) => ({
          fullName: 'tasks.DataSync',
          startTime: new Date(Date.parse('2031-01-01T00:00:00Z') + (from + i) * 1000).toISOString(),
          argDict: { i: from + i },
        }));
      // Small batches first, as a client's first requests: the generic plans made then (after five runs)
      // must still fit at 3,100 rows.
      for (let from = 0; from < 100; from += 10) await t.app.taskSvc.createTimerTasks(inputs(from, 10));
      for (let from = 100; from < 3100; from += 1000) await t.app.taskSvc.createTimerTasks(inputs(from, 1000));
      const prisma = t.app.db.prisma;
      const [task] = await prisma.$queryRawUnsafe<{ seq_tup_read: bigint; n: bigint }[]>(
        `SELECT s.seq_tup_read, (SELECT count(*) FROM task) AS n FROM pg_stat_user_tables s WHERE s.relname = 'task_spec'`,
      );
      expect(Number(task!.n)).toBe(3100);
      // A sequential scan per foreign-key check would read some 3,000 × 1,500 rows; by index, none.
      expect(Number(task!.seq_tup_read)).toBeLessThan(3100 * 3);
      // Prepared statements switch to generic plans (no plan_cache_mode=force_custom_plan).
      const [plans] = await prisma.$queryRawUnsafe<{ generic: bigint }[]>(
        `SELECT coalesce(sum(generic_plans), 0) AS generic FROM pg_prepared_statements`,
      );
      expect(Number(plans!.generic)).toBeGreaterThan(0);
    } finally {
      await t.close();
    }
  });
});

describe('analyzeGrownTables: the ANALYZE autovacuum would run, on PGlite', () => {
  let db: PGlite;
  afterEach(async () => {
    await db?.close();
  });

  const tableStats = async () =>
    (
      await db.query<{ reltuples: number; last_analyze: Date | null }>(
        `SELECT c.reltuples, s.last_analyze FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = 'item'`,
      )
    ).rows[0]!;
  const insert = (from: number, n: number) => db.exec(`INSERT INTO item SELECT i, i % 7 FROM generate_series(${from + 1}, ${from + n}) i`);

  it(`leaves a table under ${ANALYZE_MIN_ROWS} rows unmeasured, then ANALYZEs it each time more than 50 rows + 10 % of it changed`, async () => {
    db = await newPglite();
    await db.exec('CREATE TABLE item (id int PRIMARY KEY, v int)');
    await insert(0, ANALYZE_MIN_ROWS - 1);
    expect(await analyzeGrownTables(db)).toEqual([]);
    expect(await tableStats()).toMatchObject({ reltuples: -1, last_analyze: null });
    await insert(ANALYZE_MIN_ROWS - 1, 1);
    expect((await analyzeGrownTables(db)).map((a) => a.table)).toEqual(['public.item']);
    expect((await tableStats()).reltuples).toBe(ANALYZE_MIN_ROWS);
    // 1,000 rows measured: more than 50 + 100 changes are needed before the next ANALYZE.
    await db.exec('UPDATE item SET v = v + 1 WHERE id <= 150');
    expect(await analyzeGrownTables(db)).toEqual([]);
    await insert(ANALYZE_MIN_ROWS, 1);
    expect((await analyzeGrownTables(db)).map((a) => a.table)).toEqual(['public.item']);
    expect((await tableStats()).reltuples).toBe(ANALYZE_MIN_ROWS + 1);
    // Pruned below the minimum: no longer measured, so the statistics keep the size it had.
    await db.exec(`DELETE FROM item WHERE id > 10`);
    expect(await analyzeGrownTables(db)).toEqual([]);
    expect((await tableStats()).reltuples).toBe(ANALYZE_MIN_ROWS + 1);
  });

  it('an ANALYZE makes the cached generic plan of a prepared statement again, for the table as it now is', async () => {
    db = await newPglite();
    await db.exec('CREATE TABLE item (id int PRIMARY KEY, v int)');
    await db.exec('VACUUM item');
    const pool = pglitePool(db);
    const byId = statement('itemById', 'SELECT v FROM item WHERE id = $1');
    for (let i = 0; i < 8; i++) await pool.query(byId, [i]);
    await insert(0, 5000);
    const { rows } = await db.query<{ name: string; generic_plans: number }>(
      `SELECT name, generic_plans FROM pg_prepared_statements WHERE statement = $1`,
      [byId.text],
    );
    expect(rows[0]!.generic_plans).toBeGreaterThan(0);
    const cached = async () =>
      (await db.exec(`EXPLAIN EXECUTE ${rows[0]!.name}(1)`))[0]!.rows.map((r) => (r as { 'QUERY PLAN': string })['QUERY PLAN']).join('\n');
    // Made while the table was empty and measured so: it reads the 5,000 rows for one.
    expect(await cached()).toContain('Seq Scan on item');
    expect((await analyzeGrownTables(db)).map((a) => a.table)).toEqual(['public.item']);
    expect(await cached()).toMatch(/Index (Only )?Scan using item_pkey/);
    expect(await pool.query(byId, [42])).toEqual([{ v: 0 }]);
  });

  it('maintainStatistics runs the pass on its own until stopped', async () => {
    db = await newPglite();
    await db.exec('CREATE TABLE item (id int PRIMARY KEY, v int)');
    await insert(0, ANALYZE_MIN_ROWS);
    const maintainer = maintainStatistics(db, logger, 5);
    try {
      await vi.waitFor(async () => expect((await tableStats()).last_analyze).not.toBeNull(), { timeout: 10_000 });
    } finally {
      await maintainer.stop();
    }
    const analyzed = (await tableStats()).last_analyze;
    await insert(ANALYZE_MIN_ROWS, ANALYZE_MIN_ROWS);
    // Stopped: nothing ANALYZEs the table any more, however much it changed.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await tableStats()).last_analyze).toEqual(analyzed);
  });
});

/**
 * PGlite has no autovacuum: nothing removed dead row versions or froze rows, and a single-user backend
 * does not stop before transaction-id wraparound. vacuumDueTables VACUUMs as autovacuum would.
 */
describe('vacuumDueTables: the VACUUM autovacuum would run, on PGlite', () => {
  let db: PGlite;
  afterEach(async () => {
    await db?.close();
  });

  const stats = async () =>
    (
      await db.query<{ n_dead_tup: number; n_ins_since_vacuum: number; last_vacuum: Date | null; frozen_age: number }>(
        `SELECT s.n_dead_tup::int, s.n_ins_since_vacuum::int, s.last_vacuum, age(c.relfrozenxid)::int AS frozen_age
           FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relname = 'item'`,
      )
    ).rows[0]!;

  it('VACUUMs a table once more than 50 rows + 20 % of it are dead, and removes them', async () => {
    db = await newPglite();
    await db.exec('CREATE TABLE item (id int PRIMARY KEY, v int)');
    await db.exec('INSERT INTO item SELECT i, 0 FROM generate_series(1, 500) i');
    await db.exec('VACUUM item'); // counted from here: 500 rows, nothing inserted since
    await db.exec('UPDATE item SET v = 1 WHERE id <= 100'); // 100 dead: under 50 + 20 % of 500
    expect(await vacuumDueTables(db)).toEqual([]);
    await db.exec('UPDATE item SET v = 2 WHERE id <= 100');
    expect((await vacuumDueTables(db)).map((v) => [v.table, v.reason])).toEqual([['public.item', 'dead']]);
    expect((await stats()).n_dead_tup).toBe(0);
    expect(await vacuumDueTables(db)).toEqual([]);
  });

  it('VACUUMs an insert-only table too, once enough rows were inserted since its last VACUUM (they get frozen in time)', async () => {
    db = await newPglite();
    await db.exec('CREATE TABLE item (id int PRIMARY KEY, v int)');
    await db.exec(`INSERT INTO item SELECT i, 0 FROM generate_series(1, ${VACUUM_INSERT_THRESHOLD}) i`);
    expect(await vacuumDueTables(db)).toEqual([]);
    await db.exec(`INSERT INTO item VALUES (${VACUUM_INSERT_THRESHOLD + 1}, 0)`);
    expect((await vacuumDueTables(db)).map((v) => [v.table, v.reason])).toEqual([['public.item', 'inserted']]);
    expect((await stats()).n_ins_since_vacuum).toBe(0);
  });

  it('VACUUMs the whole database, catalogs included, once its oldest unfrozen transaction id is old enough', async () => {
    db = await newPglite();
    await db.exec('CREATE TABLE item (id int PRIMARY KEY, v int)');
    for (let i = 0; i < 30; i++) await db.exec(`INSERT INTO item VALUES (${i}, 0)`);
    const age = async () =>
      (await db.query<{ age: number }>('SELECT age(datfrozenxid)::int AS age FROM pg_database WHERE datname = current_database()')).rows[0]!
        .age;
    const before = await age();
    expect(before).toBeGreaterThan(20);
    // A threshold of 20 transactions stands for autovacuum_freeze_max_age's 200 million.
    expect((await vacuumDueTables(db, 20)).map((v) => [v.table, v.reason])).toEqual([['*', 'wraparound']]);
    expect(await age()).toBeLessThan(before);
  });

  it('VACUUMs the whole database once its oldest multixact id is old enough (multixacts wrap around too)', async () => {
    db = await newPglite();
    await db.exec('CREATE TABLE item (id int PRIMARY KEY, v int)');
    await db.exec('INSERT INTO item VALUES (1, 0)');
    const mxidAge = async () =>
      (await db.query<{ age: number }>('SELECT mxid_age(datminmxid)::int AS age FROM pg_database WHERE datname = current_database()'))
        .rows[0]!.age;
    const before = await mxidAge();
    // Not past the threshold: nothing, however many transactions ran (fewer than FREEZE_MAX_AGE).
    expect(await vacuumDueTables(db, FREEZE_MAX_AGE, before)).toEqual([]);
    // A row share-locked by a transaction and then updated under its savepoint: one multixact id more.
    await db.exec('BEGIN; SELECT * FROM item WHERE id = 1 FOR SHARE; SAVEPOINT s; UPDATE item SET v = 1 WHERE id = 1; COMMIT');
    expect(await mxidAge()).toBe(before + 1);
    expect((await vacuumDueTables(db, FREEZE_MAX_AGE, before)).map((v) => [v.table, v.reason])).toEqual([['*', 'wraparound']]);
  });

  it(`leaves a table under ${ANALYZE_MIN_ROWS} rows unmeasured after its VACUUM, so that generic plans made then still use its index as it grows`, async () => {
    db = await newPglite();
    await db.exec('CREATE TABLE item (id int PRIMARY KEY, v int)');
    const reltuples = async () =>
      (await db.query<{ reltuples: number }>(`SELECT reltuples FROM pg_class WHERE relname = 'item'`)).rows[0]!.reltuples;
    const pool = pglitePool(db);
    const byId = statement('itemById', 'SELECT v FROM ONLY item x WHERE id = $1 FOR KEY SHARE OF x');
    const cachedPlan = async () => {
      const { rows } = await db.query<{ name: string; generic_plans: number }>(
        `SELECT name, generic_plans FROM pg_prepared_statements WHERE statement = $1`,
        [byId.text],
      );
      expect(rows[0]!.generic_plans).toBeGreaterThan(0);
      return (await db.exec(`EXPLAIN EXECUTE ${rows[0]!.name}(1)`))[0]!.rows
        .map((r) => (r as { 'QUERY PLAN': string })['QUERY PLAN'])
        .join('\n');
    };
    // 100 rows, each updated once: 100 dead rows, more than 50 + 20 % of none measured.
    await db.exec('INSERT INTO item SELECT i, 0 FROM generate_series(1, 100) i');
    await db.exec('UPDATE item SET v = 1');
    expect((await vacuumDueTables(db)).map((v) => [v.table, v.reason])).toEqual([['public.item', 'dead']]);
    expect(await reltuples()).toBe(-1);
    for (let i = 0; i < 8; i++) await pool.query(byId, [i]);
    await db.exec('INSERT INTO item SELECT i, 0 FROM generate_series(101, 5000) i');
    expect(await cachedPlan()).toMatch(/Index (Only )?Scan using item_pkey/);
    // Emptied: its VACUUM found no rows.
    await db.exec('DELETE FROM item');
    expect((await vacuumDueTables(db)).map((v) => [v.table, v.reason])).toEqual([['public.item', 'dead']]);
    expect(await reltuples()).toBe(-1);
    for (let i = 0; i < 8; i++) await pool.query(byId, [i]);
    await db.exec('INSERT INTO item SELECT i, 0 FROM generate_series(1, 5000) i');
    expect(await cachedPlan()).toMatch(/Index (Only )?Scan using item_pkey/);
    // The database-wide VACUUM too; a table of ANALYZE_MIN_ROWS rows or more keeps what its VACUUM found.
    await db.exec(`DELETE FROM item WHERE id > ${ANALYZE_MIN_ROWS}`);
    await db.exec('CREATE TABLE empty (id int PRIMARY KEY)');
    expect((await vacuumDueTables(db, 0)).map((v) => [v.table, v.reason])).toEqual([['*', 'wraparound']]);
    expect(await reltuples()).toBe(ANALYZE_MIN_ROWS);
    expect((await db.query(`SELECT reltuples FROM pg_class WHERE relname = 'empty'`)).rows).toEqual([{ reltuples: -1 }]);
  });

  it('maintainVacuum runs the pass on its own until stopped', async () => {
    db = await newPglite();
    await db.exec('CREATE TABLE item (id int PRIMARY KEY, v int)');
    await db.exec('INSERT INTO item SELECT i, 0 FROM generate_series(1, 500) i');
    await db.exec('VACUUM item');
    await db.exec('UPDATE item SET v = 1');
    const maintainer = maintainVacuum(db, logger, 5);
    try {
      await vi.waitFor(async () => expect((await stats()).n_dead_tup).toBe(0), { timeout: 10_000 });
    } finally {
      await maintainer.stop();
    }
    const vacuumed = (await stats()).last_vacuum;
    await db.exec('UPDATE item SET v = 2');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await stats()).last_vacuum).toEqual(vacuumed);
  });
});

/**
 * PGlite has no checkpointer: past max_wal_size ÷ 1.9 of WAL since the last checkpoint (538 MB by
 * default) its backend asks for one from inside a WAL write and spins for ever. Chronograph raises
 * max_wal_size and CHECKPOINTs itself long before.
 */
describe('PGlite checkpoints (src/db/pgliteStatistics.ts)', () => {
  let db: PGlite | undefined;
  afterEach(async () => {
    await db?.close();
    db = undefined;
  });
  const redo = async () => (await db!.query<{ redo: string }>('SELECT redo_lsn::text AS redo FROM pg_control_checkpoint()')).rows[0]!.redo;
  /** Writes about `mb` MB of WAL. */
  const write = (mb: number) => db!.exec(`INSERT INTO item (v) SELECT repeat(md5(g::text), 16) FROM generate_series(1, ${mb * 1500}) g`);

  it('checkpointIfDue CHECKPOINTs once more WAL than its threshold was written since the last checkpoint', async () => {
    db = await newPglite();
    await db.exec('CREATE TABLE item (id serial PRIMARY KEY, v text)');
    await db.exec('CHECKPOINT');
    const before = await redo();
    await write(1);
    expect(await checkpointIfDue(db, 4 * 2 ** 20)).toBeNull();
    expect(await redo()).toBe(before);
    await write(4);
    expect(await checkpointIfDue(db, 4 * 2 ** 20)).toBeGreaterThan(4 * 2 ** 20);
    expect(await redo()).not.toBe(before);
    expect(await checkpointIfDue(db, 4 * 2 ** 20)).toBeNull();
  });

  it('maintainCheckpoints checkpoints on its own until stopped', async () => {
    db = await newPglite();
    await db.exec('CREATE TABLE item (id serial PRIMARY KEY, v text)');
    await db.exec('CHECKPOINT');
    const before = await redo();
    const maintainer = maintainCheckpoints(db, logger, 5, 2 ** 20);
    try {
      await write(2);
      await vi.waitFor(async () => expect(await redo()).not.toBe(before), { timeout: 10_000 });
    } finally {
      await maintainer.stop();
    }
    const last = await redo();
    await write(2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await redo()).toBe(last);
  });

  it(`an instance on PGlite runs with max_wal_size ${PGLITE_MAX_WAL_SIZE}`, async () => {
    const t = await createTestApp('pglite');
    try {
      expect(await t.app.db.sql.query<{ max_wal_size: string }>('SHOW max_wal_size')).toEqual([{ max_wal_size: PGLITE_MAX_WAL_SIZE }]);
    } finally {
      await t.close();
    }
  });
});
