import type { PGlite } from '@electric-sql/pglite';
import type pg from 'pg';

/**
 * One database session, below Prisma: the migrator needs a single connection of its own (session
 * advisory lock, multi-statement scripts) and the notification listener needs one that stays open.
 */
export interface SqlSession {
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
  /** Runs a script that may hold several statements (simple query protocol, no parameters). */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

export async function openPgSession(connectionString: string): Promise<SqlSession & { client: pg.Client }> {
  const { default: pg } = await import('pg'); // only where PostgreSQL is used
  const client = new pg.Client({ connectionString });
  // A connection lost while the session is idle (the migrator between attempts) emits 'error', which
  // without a listener would end the process; the next query rejects instead (pg: "not queryable").
  // The notification listener adds its own, which reconnects.
  client.on('error', () => {});
  await client.connect();
  return {
    client,
    async query<Row>(sql: string, params?: unknown[]) {
      return (await client.query(sql, params)).rows as Row[];
    },
    async exec(sql: string) {
      await client.query(sql);
    },
    async close() {
      await client.end();
    },
  };
}

/** PGlite is one in-process session already; closing it is the Database's job, not the session's. */
export function pgliteSession(db: PGlite): SqlSession {
  return {
    async query<Row>(sql: string, params?: unknown[]) {
      return (await db.query<Row>(sql, params)).rows;
    },
    async exec(sql: string) {
      await db.exec(sql);
    },
    async close() {},
  };
}
