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
    /** A file holding the dump of a new, migrated in-memory PGlite database (see makePgliteImage). */
    pgliteImage: string;
  }
}

/**
 * The PostgreSQL half of the suite runs when TEST_DATABASE_URL is set. Under CI it must be set and
 * reachable: CI fails rather than silently skipping half the tests.
 */
export default async function globalSetup(project: TestProject) {
  const image = await makePgliteImage();
  project.provide('pgliteImage', image);
  const teardown = () => rm(image, { force: true });
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
 * initdb in WebAssembly takes seconds, and every in-memory PGlite database of createTestApp would run it:
 * instead, one new database is made and migrated here, as openDatabase does, and dumped; createTestApp
 * starts each from that dump (DatabaseOptions.pgliteImage), and openDatabase then finds every migration
 * applied. Tests of initdb and of the migrations themselves open their databases without it.
 */
async function makePgliteImage(): Promise<string> {
  const pglite = await PGlite.create('memory://');
  try {
    await migrate(pgliteSession(pglite), createLogger('silent'), await readMigrations());
    const dump = await pglite.dumpDataDir('none');
    const file = path.join(os.tmpdir(), `chronograph-pglite-image-${process.pid}.tar`);
    await writeFile(file, Buffer.from(await dump.arrayBuffer()));
    return file;
  } finally {
    await pglite.close();
  }
}
