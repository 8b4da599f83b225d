import pg from 'pg';

/**
 * The PostgreSQL half of the suite runs when TEST_DATABASE_URL is set. Under CI it must be set and
 * reachable: CI fails rather than silently skipping half the tests.
 */
export default async function globalSetup() {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) {
    if (process.env.CI) throw new Error('CI must set TEST_DATABASE_URL so the suite also runs on PostgreSQL');
    console.warn('TEST_DATABASE_URL is not set: PostgreSQL tests are skipped (PGlite tests still run)');
    return;
  }
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    throw new Error(`TEST_DATABASE_URL (${url}) is unreachable: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
}
