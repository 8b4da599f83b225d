import { openPgSession, pgliteSession, type SqlSession } from '../../src/db/SqlSession.js';
import { type BackendName, createTestDatabase, newPglite } from './testApp.js';

/**
 * A session on a new, empty database of `backend`, for a test that applies migrations itself (up to one,
 * then the one it checks). What it opens is closed by the functions it pushes onto `cleanup`, to run in
 * reverse order.
 */
export async function emptyDatabaseSession(backend: BackendName, cleanup: (() => Promise<unknown>)[]): Promise<SqlSession> {
  if (backend === 'pglite') {
    const db = await newPglite();
    cleanup.push(() => db.close());
    return pgliteSession(db);
  }
  const database = await createTestDatabase('postgres');
  cleanup.push(() => database.drop());
  const s = await openPgSession(database.url!);
  cleanup.push(() => s.close());
  return s;
}
