import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrate, readMigrations } from '../../src/db/migrate.js';
import { pgliteSession } from '../../src/db/SqlSession.js';
import { createLogger } from '../../src/logger.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A file holding the dump of a new, migrated in-memory PGlite database (see makePgliteImages). */
    pgliteImage: string;
    /** A file holding the dump of a new in-memory PGlite database, as initdb left it (no migration). */
    pgliteEmptyImage: string;
  }
}

/**
 * The PostgreSQL half of the suite runs when TEST_DATABASE_URL is set. Under CI it must be set and
 * reachable: CI fails rather than silently skipping half the tests.
 */
export default async function globalSetup(project: TestProject) {
  const images = await makePgliteImages();
  project.provide('pgliteImage', images.migrated);
  project.provide('pgliteEmptyImage', images.empty);
  const teardown = () => Promise.all(Object.values(images).map((file) => rm(file, { force: true }))).then(() => {});
  const url = process.env.TEST_DATABASE_URL;
  if (!url) {
    if (process.env.CI) {
      await teardown();
      throw new Error('CI must set TEST_DATABASE_URL so the suite also runs on PostgreSQL');
    }
    console.warn('TEST_DATABASE_URL is not set: PostgreSQL tests are skipped (PGlite tests still run)');
    return teardown;
  }
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    await teardown();
    throw new Error(`TEST_DATABASE_URL (${url}) is unreachable: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
  return teardown;
}

/**
 * initdb in WebAssembly takes seconds, and every in-memory PGlite database of the suite would run it:
 * instead, one new database is dumped here as initdb left it (newPglite starts from that), then migrated
 * as openDatabase does and dumped again (createTestApp starts from that: DatabaseOptions.pgliteImage,
 * and openDatabase then finds every migration applied). PGlite.create itself runs initdb in a module of
 * its own and loads the data directory from a dump of it, so a database loaded from `empty` is what
 * PGlite.create('memory://') makes.
 */
async function makePgliteImages(): Promise<{ empty: string; migrated: string }> {
  const dump = async (pglite: PGlite, name: string) => {
    const file = path.join(os.tmpdir(), `chronograph-pglite-${name}-${process.pid}.tar`);
    await writeFile(file, Buffer.from(await (await pglite.dumpDataDir('none')).arrayBuffer()));
    return file;
  };
  const pglite = await PGlite.create('memory://');
  try {
    const empty = await dump(pglite, 'empty');
    await migrate(pgliteSession(pglite), createLogger('silent'), await readMigrations());
    return { empty, migrated: await dump(pglite, 'migrated') };
  } finally {
    await pglite.close();
  }
}
