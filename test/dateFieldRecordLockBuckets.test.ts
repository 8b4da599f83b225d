import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RECORD_LOCK_BUCKETS } from '../src/dateFields/dateFieldSql.js';
import { createDateFieldTemplate, SAVE } from './support/dateFields.js';
import { createTestApp, createTestDatabase, ok, type TestApp, type TestDatabase } from './support/testApp.js';
import { lockWaiters } from './support/waitFor.js';

const NOW = new Date('2029-06-01T00:00:00Z');
const RECORDS = RECORD_LOCK_BUCKETS + 500;

/**
 * A batch of records (saveRecords: the Prisma extension's createMany / updateMany) took one advisory lock
 * per record in one transaction: ~100,000 records exhausted PostgreSQL's shared lock table
 * (max_locks_per_transaction × max_connections, "out of shared memory"). The record locks are hash
 * buckets of the (tenant, model) now, at most RECORD_LOCK_BUCKETS per model and transaction. Counted in
 * pg_locks while a holder connection keeps the batch inside its transaction, after its record locks.
 * PostgreSQL only.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('record locks of a large batch are bounded (postgres)', () => {
  let db: TestDatabase;
  let t: TestApp;
  let holder: pg.Client;
  let watcher: pg.Client;
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    t = await createTestApp('postgres', { database: db, now: () => NOW, env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });
  beforeEach(async () => {
    holder = new pg.Client({ connectionString: db.url });
    watcher = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await watcher.connect();
  });
  afterEach(async () => {
    await holder.query('ROLLBACK').catch(() => {});
    await holder.end();
    await watcher.end();
  });

  it(`a batch of ${RECORDS} records takes at most ${RECORD_LOCK_BUCKETS} record locks, and all its tasks are created`, async () => {
    await createDateFieldTemplate(t);
    ok(await t.gql(SAVE, { rowObj: { model: 'models.Contract', postData: { id: 'r00000', expireDate: '2030-03-10' } } }));
    const first = await t.app.db.prisma.task.findFirstOrThrow({ where: { source: 'DATE_FIELD', sourceRowId: 'r00000' } });

    const records = Array.from({ length: RECORDS }, (_, i) => {
      const rowId = `r${String(i).padStart(5, '0')}`;
      return { rowId, data: { id: rowId, expireDate: '2030-03-10' } };
    });
    // The holder keeps the first record's task: the batch stops at it, after taking its record locks.
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM task WHERE id = $1::uuid FOR UPDATE', [first.id]);
    const batch = t.app.dateFieldSvc.saveRecords('models.Contract', records);
    await lockWaiters(watcher, 1, 'the batch to wait for the holder');
    const { rows } = await watcher.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' AND l.locktype = 'advisory' AND l.granted`,
    );
    await holder.query('COMMIT');
    expect(await batch).toMatchObject({ created: RECORDS - 1, unchanged: 1 });
    // The record locks, and the model lock (no quota lock: the tenant has no count quota).
    expect(rows[0]!.n).toBeGreaterThan(1);
    expect(rows[0]!.n).toBeLessThanOrEqual(RECORD_LOCK_BUCKETS + 1);
    expect(await t.app.db.prisma.task.count({ where: { source: 'DATE_FIELD', status: 'SCHEDULED' } })).toBe(RECORDS);
  });
});
