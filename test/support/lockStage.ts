import pg from 'pg';
import { afterEach, beforeEach } from 'vitest';

/**
 * For race tests on PostgreSQL: before each test of the enclosing describe block, two new connections to
 * the database at `url()`: `holder`, which keeps locks in a transaction of its own to stage where another
 * transaction has to wait, and `watcher`, which looks at who waits (lockWaiters, pg_locks). After each
 * test the holder's transaction is rolled back and both are closed.
 */
export function lockStage(url: () => string | undefined): { readonly holder: pg.Client; readonly watcher: pg.Client } {
  let holder: pg.Client | undefined;
  let watcher: pg.Client | undefined;
  beforeEach(async () => {
    const connectionString = url();
    if (!connectionString) throw new Error('lockStage: no PostgreSQL database to connect to');
    holder = new pg.Client({ connectionString });
    watcher = new pg.Client({ connectionString });
    await holder.connect();
    await watcher.connect();
  });
  afterEach(async () => {
    await holder?.query('ROLLBACK').catch(() => {});
    await holder?.end();
    await watcher?.end();
  });
  return {
    get holder() {
      return holder!;
    },
    get watcher() {
      return watcher!;
    },
  };
}
