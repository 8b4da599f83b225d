import type pg from 'pg';

/**
 * A statement the hot path runs over and over: on PostgreSQL it is prepared once per connection under
 * its name (the `pg` driver's named statements), on PGlite once per instance (src/db/pglitePool.ts), and
 * planned from then on without parsing, where the same text sent through Prisma's raw queries is parsed
 * and planned at every call (most of the database time of a claim was planning). Names must be unique
 * per text.
 */
export interface Statement {
  name: string;
  text: string;
}

export function statement(name: string, text: string): Statement {
  return { name, text };
}

/** Runs statements; one connection's worth of them inside `transaction`. */
export interface SqlRunner {
  query<Row = Record<string, unknown>>(statement: Statement | string, params?: unknown[]): Promise<Row[]>;
}

/**
 * The hot path below Prisma: the scheduler's claims, completions, recovery, next-due look-up and lease
 * checks, and task creation (createTimerTask(s)' insert, and its reads of templates and quotas).
 * Everything else (the API's other reads and writes) stays on Prisma.
 */
export interface SqlPool extends SqlRunner {
  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * A pg.Pool of its own (PG_POOL_SIZE-like small pool: the scheduler runs a few statements at a time),
 * with the same statement_timeout as Prisma's connections.
 */
export async function openPgPool(connectionString: string, options: { max?: number; statementTimeoutMs?: number } = {}): Promise<SqlPool> {
  const { default: pgModule } = await import('pg');
  const pool = new pgModule.Pool({
    connectionString,
    max: options.max ?? 4,
    ...(options.statementTimeoutMs && { statement_timeout: options.statementTimeoutMs }),
  });
  // An idle connection that the server drops must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const run = async <Row>(client: pg.Pool | pg.PoolClient, s: Statement | string, params: unknown[] = []) =>
    (await client.query(typeof s === 'string' ? { text: s, values: params } : { name: s.name, text: s.text, values: params }))
      .rows as Row[];
  return {
    query: (s, params) => run(pool, s, params),
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn({ query: (s, params) => run(client, s, params) });
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
