import v8 from 'node:v8';
import type { PGlite } from '@electric-sql/pglite';
import type { PrismaPg } from '@prisma/adapter-pg';
import type pg from 'pg';
import type { PrismaPGlite } from 'pglite-prisma-adapter';
import type { Config } from '../config.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { makeDirectory } from '../ops/makeDirectory.js';
import { DataDirLock } from './DataDirLock.js';
import { migrate, shippedMigrations } from './migrate.js';
import { DURABLE_START_PARAMS, syncToDisk } from './pgliteDurability.js';
import { forgetEmptyStatistics, maintainCheckpoints, maintainStatistics, maintainVacuum, PGLITE_MAX_WAL_SIZE } from './pgliteStatistics.js';
import { copyTemplate, dropTemplateDatabases } from './pgliteTemplate.js';
import { openPgPool, type SqlPool } from './SqlPool.js';
import { openPgSession, pgliteSession, type SqlSession } from './SqlSession.js';

export type NotificationHandler = (payload: string) => void;

/**
 * The one database Chronograph runs on, embedded or shared. Everything above this file talks to Prisma
 * and to `listen`, and never asks which kind it is; `kind` exists for logs and benchmarks.
 */
export interface Database {
  kind: 'pglite' | 'postgres';
  prisma: PrismaClient;
  /** The scheduler's hot path: prepared statements on the `pg` driver (PostgreSQL), or PGlite itself. */
  sql: SqlPool;
  /** Subscribes to a NOTIFY channel; returns the unsubscribe function. */
  listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>>;
  /** The LISTEN connection: `idle` when nothing listens, `disconnected` while it reconnects. For readiness. */
  listenerState(): ListenerState;
  close(): Promise<void>;
}

export type ListenerState = 'connected' | 'disconnected' | 'idle';

export interface DatabaseOptions {
  /** postgres:// URL; when absent the embedded PGlite database is used. */
  databaseUrl?: string;
  /** Where PGlite keeps its files; `memory://` keeps nothing (tests). */
  dataDir: string;
  logger: Logger;
  /**
   * PostgreSQL cancels any statement that runs longer (statement_timeout of every pooled connection),
   * so a request that is given up cannot keep the database busy. PGlite cannot interrupt a statement.
   */
  statementTimeoutMs?: number;
  /** Called with every SQL statement Prisma runs (tests, and LOG_LEVEL=trace). */
  onQuery?: (event: QueryEvent) => void;
  /** PGLITE_OPTIMIZE (default true): let V8 optimise PGlite's hottest WebAssembly (see pgliteCompiler). */
  pgliteOptimize?: boolean;
  /**
   * `memory://` only: a dump (PGlite's dumpDataDir) of a new data directory to start from instead of
   * running initdb, which takes seconds in WebAssembly. The test suite makes one per run
   * (test/support/globalSetup.ts) and starts each in-memory database of createTestApp from it.
   */
  pgliteImage?: Blob;
  /**
   * How often PGlite's stand-ins for autovacuum and the checkpointer look (pgliteStatistics.ts), and the
   * WAL after which a checkpoint is due; their defaults are autovacuum's and the constants there (tests).
   */
  pgliteMaintenance?: { analyzeMs?: number; vacuumMs?: number; checkpointMs?: number; checkpointWalBytes?: number };
}

export interface QueryEvent {
  query: string;
  params: string;
  durationMs: number;
}

/** The database options of an instance's configuration; `onQuery` defaults to logging every statement at trace level. */
export function databaseOptions(config: Config, logger: Logger, onQuery?: (event: QueryEvent) => void): DatabaseOptions {
  const sqlLogger = logger.child({ component: 'sql' });
  return {
    databaseUrl: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    logger,
    statementTimeoutMs: config.REQUEST_TIMEOUT_MS,
    pgliteOptimize: config.PGLITE_OPTIMIZE,
    onQuery: onQuery ?? (logger.isLevelEnabled('trace') ? (event) => sqlLogger.trace(event, 'sql') : undefined),
  };
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options) : openPglite(options.dataDir, options);
}

/**
 * The Prisma client every part of Chronograph uses. Work done on behalf of a request uses it through
 * scopedPrisma (src/db/requestScope.ts), which stops an abandoned request's work at its next statement.
 */
async function createPrisma(adapter: PrismaPg | PrismaPGlite, onQuery?: (event: QueryEvent) => void): Promise<PrismaClient> {
  // Loaded once the database is open: main.ts opens it while the rest of Chronograph's modules load.
  const { PrismaClient } = await import('../generated/prisma/client.js');
  const base = new PrismaClient({ adapter, ...(onQuery && { log: [{ emit: 'event' as const, level: 'query' as const }] }) });
  if (onQuery) {
    (base as unknown as { $on(event: 'query', fn: (e: { query: string; params: string; duration: number }) => void): void }).$on(
      'query',
      (e) => onQuery({ query: e.query, params: e.params, durationMs: e.duration }),
    );
  }
  return base;
}

/**
 * PGlite's own start parameters, and a smaller buffer pool than initdb's 128 MB: PGlite touches all of it
 * at start, so it is resident memory from the first second, and the files under it are in the operating
 * system's cache anyway (as with PostgreSQL's double buffering).
 */
export const PGLITE_SHARED_BUFFERS = '32MB';

/**
 * How much of a WebAssembly function's code must run before V8 optimises it (`--wasm-tiering-budget`,
 * roughly bytes executed): 200 times V8's own default (1,800,000). A start runs five of PostgreSQL's
 * functions (the SQL parser, copyObject, equal, expression_tree_walker and one more) just past 100 times
 * that default: at 100× V8 optimised all five during the start (0.3-0.57 s of TurboFan on the one helper
 * thread, while the start needed both of the machine's two cores); at 200× most or all of them are
 * optimised after the first answer, once the instance has run more SQL. On the slow 2-core VM of
 * 2026-12-07 evening that made the first answer 0.3-0.4 s sooner (medians of six interleaved starts: 1.90 s
 * against 2.24; `npm run bench -- startup` against the build before: 1.61 s against 2.02). A fresh
 * process's first drain, where the optimiser has the most left to do, did not measurably slow down (four
 * fresh processes each, in turns: 3,339-4,554 tasks/s at 200×, 3,127-3,765 at 100×; docs/benchmarks.md).
 */
const PGLITE_TIERING_BUDGET = 360_000_000;

/**
 * Which of V8's WebAssembly compilers runs PGlite (PostgreSQL compiled to WebAssembly), set before its
 * module is compiled. V8 compiles every function with its baseline compiler (Liftoff) and, by default,
 * re-compiles the ones that run most with its optimising compiler (TurboFan) in background threads.
 * Starting PostgreSQL runs enough of its code to send thousands of functions to TurboFan at once at V8's
 * own threshold: on a 2-core machine that took about a second of the start-up, and its memory stayed
 * resident (about 90 MB, in the compiler threads' malloc arenas). So PGlite runs tiered with a threshold
 * 200 times V8's (PGLITE_TIERING_BUDGET): start-up sends few or none of PostgreSQL's functions to
 * TurboFan, and what a busy instance runs over and over is optimised within seconds. On the 2-core VM of
 * 2026-12-07 that drained (at 100×) at 0.81-1.01 of PostgreSQL's rate (medians 0.91-0.93) where the
 * baseline compiler alone drained at 0.60-0.79, with `npm start` (one V8 helper thread, see package.json)
 * idle at 225-239 MB against 205-211 MB (`npm run bench -- startup`, `npm run bench -- compare pglite`;
 * docs/benchmarks.md). PGLITE_OPTIMIZE=false keeps the baseline
 * compiler alone, for the least memory and the quickest start. The choice is made when PGlite's module is
 * compiled: turning the optimiser on later does not reach a module compiled for the baseline compiler alone,
 * and turning it off later does not stop PGlite's module from optimising. The flags are
 * process-wide, so they also apply to the other WebAssembly this process compiles after them (Prisma's
 * query compiler); with DATABASE_URL (PostgreSQL) nothing changes.
 */
export function pgliteCompiler(optimize: boolean): 'liftoff' | 'tiered' {
  v8.setFlagsFromString(optimize ? '--no-liftoff-only' : '--liftoff-only');
  if (optimize) v8.setFlagsFromString(`--wasm-tiering-budget=${PGLITE_TIERING_BUDGET}`);
  return optimize ? 'tiered' : 'liftoff';
}

/**
 * Releases the data directory's lock after a failed start; a release that fails too (its lock file
 * unreadable, say) is only logged, so that the caller reports the start's own error.
 */
async function releaseAfterFailure(lock: DataDirLock | undefined, logger: Logger): Promise<void> {
  try {
    await lock?.release();
  } catch (error) {
    logger.warn({ err: error }, 'PGlite: could not release the lock of DATA_DIR after a failed start');
  }
}

/**
 * Ends an open that failed after PGlite started, so that its caller reports the failure's own error: PGlite
 * is closed unless it closed itself (its "PGlite is closed" would hide the cause), a close that fails too
 * is only logged, and the data directory's lock is released either way.
 */
async function abandonOpen(pglite: PGlite, lock: DataDirLock | undefined, logger: Logger): Promise<void> {
  try {
    if (!pglite.closed) await pglite.close();
  } catch (error) {
    logger.warn({ err: error }, 'PGlite: could not close the database after a failed start');
  } finally {
    await releaseAfterFailure(lock, logger);
  }
}

async function openPglite(
  dataDir: string,
  { logger, onQuery, pgliteOptimize = true, pgliteImage, pgliteMaintenance: every = {} }: DatabaseOptions,
): Promise<Database> {
  const wasmCompiler = pgliteCompiler(pgliteOptimize);
  // Each kind of database loads only its own driver (start-up time and memory), while the data directory
  // is locked and, when new, copied from the template.
  const drivers = Promise.all([import('@electric-sql/pglite'), import('pglite-prisma-adapter'), import('./pglitePool.js')]);
  drivers.catch(() => {}); // awaited below
  let lock: DataDirLock | undefined;
  if (!dataDir.startsWith('memory://')) {
    await makeDirectory(dataDir);
    // Before PGlite touches the files: a second process on the same directory is refused here.
    lock = await DataDirLock.acquire(dataDir, (why) =>
      logger.fatal({ dataDir }, `lost the lock of DATA_DIR: ${why}; another process may be writing it`),
    );
  }
  let pglite: PGlite;
  let migrations: Awaited<ReturnType<typeof shippedMigrations>>;
  try {
    migrations = await shippedMigrations();
    // A new data directory starts as a copy of the initialised, migrated template (npm run build), not initdb.
    if (lock) await copyTemplate(dataDir, migrations, logger);
    const { PGlite } = (await drivers)[0];
    pglite = await PGlite.create(dataDir, {
      startParams: [
        ...PGlite.defaultStartParams,
        '-c',
        `shared_buffers=${PGLITE_SHARED_BUFFERS}`,
        '-c',
        `max_wal_size=${PGLITE_MAX_WAL_SIZE}`,
        ...(lock ? DURABLE_START_PARAMS : []),
      ],
      ...(pgliteImage && !lock && { loadDataDir: pgliteImage }),
    });
  } catch (error) {
    // No PGlite to close (nothing after create() in this block, or a failure would leave it open).
    await releaseAfterFailure(lock, logger);
    throw error;
  }
  try {
    if (lock) syncToDisk(pglite);
    await migrate(pgliteSession(pglite), logger, migrations);
    // PGlite has no autovacuum: statistics that say a table is empty would keep the generic plans of
    // prepared statements and foreign-key checks on sequential scans as it grows (pgliteStatistics.ts).
    const forgotten = await forgetEmptyStatistics(pglite);
    if (forgotten.length) logger.info({ tables: forgotten }, 'PGlite statistics of empty tables reset to unknown');
    // A data directory made before the template lost them (or by initdb, when there was no template).
    // Housekeeping: a failure is logged, and the instance starts all the same, unless the database no
    // longer answers (then the start fails, as it would have at its next statement).
    if (lock) {
      await dropTemplateDatabases(pglite).then(
        (dropped) => dropped.length && logger.info({ databases: dropped }, 'PGlite: dropped the databases nothing uses or VACUUMs'),
        async (error: unknown) => {
          await pglite.query('SELECT 1').catch(() => {
            throw error;
          });
          logger.warn({ err: error }, 'PGlite: could not drop template0 and template1; they are left as they are');
        },
      );
    }
  } catch (error) {
    await abandonOpen(pglite, lock, logger);
    throw error;
  }
  let prisma: PrismaClient;
  let sql: SqlPool;
  try {
    const [, { PrismaPGlite }, { pglitePool }] = await drivers;
    prisma = await createPrisma(new PrismaPGlite(pglite), onQuery);
    sql = pglitePool(pglite);
  } catch (error) {
    await abandonOpen(pglite, lock, logger);
    throw error;
  }
  const statistics = maintainStatistics(pglite, logger, every.analyzeMs);
  const vacuum = maintainVacuum(pglite, logger, every.vacuumMs);
  const checkpoints = maintainCheckpoints(pglite, logger, every.checkpointMs, every.checkpointWalBytes);
  logger.info({ dataDir, wasmCompiler }, 'using embedded PGlite database');
  return {
    kind: 'pglite',
    prisma,
    sql,
    async listen(channel, handler) {
      const unlisten = await pglite.listen(channel, handler);
      return async () => {
        if (!pglite.closed) await unlisten();
      };
    },
    listenerState: () => (pglite.closed ? 'disconnected' : 'connected'),
    async close() {
      await statistics.stop();
      await vacuum.stop();
      await checkpoints.stop();
      await prisma.$disconnect();
      await pglite.close();
      await lock?.release();
    },
  };
}

async function openPostgres(databaseUrl: string, { logger, onQuery, statementTimeoutMs }: DatabaseOptions): Promise<Database> {
  const session = await openPgSession(databaseUrl);
  try {
    await migrate(session, logger);
  } finally {
    await session.close();
  }
  const { PrismaPg } = await import('@prisma/adapter-pg');
  const prisma = await createPrisma(
    new PrismaPg({ connectionString: databaseUrl, ...(statementTimeoutMs && { statement_timeout: statementTimeoutMs }) }),
    onQuery,
  );
  const sql = await openPgPool(databaseUrl, { statementTimeoutMs });
  const listener = new PgListener(databaseUrl, logger);
  logger.info({ host: new URL(databaseUrl).host }, 'using PostgreSQL database');
  return {
    kind: 'postgres',
    prisma,
    sql,
    listen: (channel, handler) => listener.listen(channel, handler),
    listenerState: () => listener.state(),
    async close() {
      await listener.close();
      await sql.close();
      await prisma.$disconnect();
    },
  };
}

/**
 * LISTEN needs one connection that stays open, outside Prisma's pool. If it drops, it reconnects with
 * backoff and re-subscribes every channel; handlers get an empty payload after a reconnect, because
 * notifications sent while it was down are lost and whoever listens must re-read the database.
 */
class PgListener {
  private session?: Promise<SqlSession & { client: pg.Client }>;
  private readonly channels = new Map<string, Set<NotificationHandler>>();
  private closed = false;
  private retryTimer?: NodeJS.Timeout;
  /** The open connection, once `session` has resolved to it; undefined while it opens or reconnects. */
  private current?: SqlSession;

  constructor(
    private readonly url: string,
    private readonly logger: Logger,
  ) {}

  async listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>> {
    let handlers = this.channels.get(channel);
    if (!handlers) {
      handlers = new Set();
      this.channels.set(channel, handlers);
      const session = await this.connect();
      try {
        await session.query(`LISTEN ${quoteIdent(channel)}`);
      } catch (error) {
        // The channel is not listened to: reconnect (which LISTENs every channel again), or the channel
        // would stay deaf. A connection that dropped under the LISTEN also emits 'error' (pg 8.23, as the
        // socket ends); lost() acts once per connection.
        this.lost(error as Error, 0, session);
        throw error;
      }
    }
    handlers.add(handler);
    return async () => {
      handlers.delete(handler);
      if (handlers.size === 0 && this.channels.get(channel) === handlers) {
        this.channels.delete(channel);
        if (!this.closed && this.session) await (await this.session).query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => {});
      }
    };
  }

  state(): ListenerState {
    if (this.current) return 'connected';
    return this.channels.size === 0 && !this.retryTimer && !this.session ? 'idle' : 'disconnected';
  }

  private connect(attempt = 0): Promise<SqlSession & { client: pg.Client }> {
    if (this.session) return this.session;
    const opening: Promise<SqlSession & { client: pg.Client }> = openPgSession(this.url).then(
      (session) => {
        session.client.on('notification', (message) => {
          for (const handler of this.channels.get(message.channel) ?? []) handler(message.payload ?? '');
        });
        // A dropped connection may emit more than one 'error': the first one counts.
        session.client.on('error', (error) => this.lost(error, attempt, session));
        if (this.session === opening) this.current = session;
        return session;
      },
      (error) => {
        if (this.session === opening) this.session = undefined;
        throw error;
      },
    );
    this.session = opening;
    return opening;
  }

  /**
   * The connection `dead` (or the one being opened, when it is undefined) is lost: it is closed, and a
   * new one is opened after a backoff. Only once per connection (a dropped one may emit more than one
   * 'error', and one replaced already is no longer current), and never after close().
   */
  private lost(error: Error, attempt: number, dead?: SqlSession) {
    if (this.closed || this.retryTimer || (dead && dead !== this.current)) return;
    this.logger.warn({ err: error }, 'LISTEN connection lost; reconnecting');
    this.current = undefined;
    this.session = undefined;
    void dead?.close().catch(() => {});
    const delay = Math.min(10_000, 100 * 2 ** attempt);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closed) return;
      this.connect(attempt + 1).then(
        async (session) => {
          try {
            for (const channel of this.channels.keys()) await session.query(`LISTEN ${quoteIdent(channel)}`);
          } catch (err) {
            this.lost(err as Error, attempt + 1, session);
            return;
          }
          for (const handlers of this.channels.values()) for (const handler of handlers) handler('');
        },
        (err: Error) => this.lost(err, attempt + 1),
      );
    }, delay);
  }

  async close() {
    this.closed = true;
    this.current = undefined;
    clearTimeout(this.retryTimer);
    const session = this.session;
    this.session = undefined;
    await (await session?.catch(() => undefined))?.close().catch(() => {});
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
