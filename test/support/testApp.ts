import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { inject } from 'vitest';
import { Chronograph, type ChronographOptions } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { databaseOptions, openDatabase } from '../../src/db/Database.js';
import { createLogger } from '../../src/logger.js';

export type BackendName = 'pglite' | 'postgres';

/** Every backend this run can test: PGlite always, PostgreSQL when TEST_DATABASE_URL is set. */
export const backends: BackendName[] = process.env.TEST_DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

export interface TestDatabase {
  /** postgres:// URL of a fresh, empty database; undefined for PGlite (each app gets its own in memory). */
  url?: string;
  drop(): Promise<void>;
}

/** A fresh, empty database on PostgreSQL (dropped by `drop`), or nothing to do for in-memory PGlite. */
export async function createTestDatabase(backend: BackendName): Promise<TestDatabase> {
  if (backend === 'pglite') return { url: undefined, drop: async () => {} };
  const admin = process.env.TEST_DATABASE_URL!;
  const name = `chronograph_test_${randomBytes(6).toString('hex')}`;
  await withClient(admin, (c) => c.query(`CREATE DATABASE "${name}"`));
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => withClient(admin, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => {}),
  };
}

export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export function testConfig(overrides: Record<string, string | undefined> = {}): Config {
  return loadConfig({
    LOG_LEVEL: 'silent',
    DATA_DIR: 'memory://',
    APP_DIR: 'test/fixtures/app',
    PORT: '0',
    SHUTDOWN_GRACE_MS: '2000',
    ...overrides,
  });
}

export interface GqlResult<T = any> {
  data?: T;
  errors?: { message: string; path?: string[]; extensions?: Record<string, any> }[];
}

export interface TestApp {
  app: Chronograph;
  /** A GraphQL request through yoga's fetch, as a client would send it over HTTP. */
  gql<T = any>(query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<GqlResult<T>>;
  close(): Promise<void>;
}

/** A Chronograph on a fresh database of `backend`, or on `database` to share one between instances. */
export async function createTestApp(
  backend: BackendName,
  options: Partial<Omit<ChronographOptions, 'config'>> & { env?: Record<string, string>; database?: TestDatabase } = {},
): Promise<TestApp> {
  const database = options.database ?? (await createTestDatabase(backend));
  const config = testConfig({ DATABASE_URL: database.url, ...options.env });
  let app: Chronograph;
  try {
    app = await Chronograph.create({ ...options, ...(await fromPgliteImage(config, options)), config });
  } catch (error) {
    // An app that does not start (what some tests check) leaves no database of its own behind.
    if (!options.database) await database.drop();
    throw error;
  }
  return {
    app,
    gql: (query, variables, headers) => gql(app, query, variables, headers),
    async close() {
      await app.stop();
      if (!options.database) await database.drop();
    },
  };
}

const images = new Map<'pgliteImage' | 'pgliteEmptyImage', Promise<Blob>>();

/** One of the dumps globalSetup made, read once per test file. */
function image(name: 'pgliteImage' | 'pgliteEmptyImage'): Promise<Blob> {
  let blob = images.get(name);
  if (!blob) {
    blob = readFile(inject(name)).then((bytes) => new Blob([bytes]));
    images.set(name, blob);
  }
  return blob;
}

/** A new in-memory PGlite database, as PGlite.create('memory://') makes it, without running initdb again. */
export async function newPglite(): Promise<PGlite> {
  const { PGlite } = await import('@electric-sql/pglite');
  return PGlite.create('memory://', { loadDataDir: await image('pgliteEmptyImage') });
}

/**
 * An in-memory PGlite database starts from the new, migrated database globalSetup dumped, instead of
 * running initdb (seconds of WebAssembly) for every test app; a DATA_DIR on disk or PostgreSQL opens as usual.
 */
async function fromPgliteImage(
  config: Config,
  options: Pick<ChronographOptions, 'logger' | 'onQuery' | 'databaseOpening'>,
): Promise<Pick<ChronographOptions, 'logger' | 'databaseOpening'>> {
  if (options.databaseOpening || config.DATABASE_URL || !config.DATA_DIR.startsWith('memory://')) return {};
  const pgliteImage = await image('pgliteImage');
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  return { logger, databaseOpening: openDatabase({ ...databaseOptions(config, logger, options.onQuery), pgliteImage }) };
}

export async function gql<T>(
  app: Chronograph,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<GqlResult<T>> {
  const response = await app.yoga.fetch('http://chronograph/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as GqlResult<T>;
}

/** The data of a GraphQL result that must have no errors. */
export function ok<T>(result: GqlResult<T>): T {
  if (result.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
  return result.data as T;
}

/** The single error code of a GraphQL result that must have failed. */
export function errorCode(result: GqlResult): string | undefined {
  if (!result.errors?.length) throw new Error(`expected an error, got ${JSON.stringify(result.data)}`);
  return result.errors[0]!.extensions?.code;
}

/** Every task and event row, in id order: equal before and after a refused request when it wrote nothing. */
export async function taskRows(t: TestApp) {
  const prisma = t.app.db.prisma;
  return {
    tasks: await prisma.task.findMany({ orderBy: { id: 'asc' } }),
    events: await prisma.taskEvent.findMany({ orderBy: { id: 'asc' } }),
  };
}
