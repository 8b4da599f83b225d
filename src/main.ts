import type { Chronograph } from './app.js';
import type { CompiledApp } from './boot/compileApp.js';
import { authConfigProblem, type Config, ConfigError, loadConfig } from './config.js';
import { type Database, databaseOptions, openDatabase } from './db/Database.js';
import { DataDirLockedError } from './db/DataDirLock.js';
import { EXIT_OUTDATED, MigrationError, OutdatedError } from './db/migrate.js';
import { createLogger } from './logger.js';
import { limitHeapGrowth } from './ops/heap.js';

/**
 * `npm start` (dist/main.js, compiled by `npm run build`; `npm run dev` runs this file): configuration from
 * the environment, clean shutdown on SIGINT/SIGTERM. Only configuration, logging and the database are
 * loaded before the database starts opening (a new DATA_DIR copied from the template, PGlite started,
 * migrations applied); the rest of Chronograph's modules (the GraphQL schema, the scheduler, …) and the
 * app load meanwhile.
 */
async function main() {
  // The production server unless told otherwise. Set before graphql-js and the Prisma client load
  // (app.ts and the database's client are imported below, not by this module): graphql-js reads
  // NODE_ENV once, when it loads, and outside production checks every `instanceof` it makes for a
  // second copy of itself (about 12 % of the CPU of creating tasks through the API); Prisma's client
  // formats its errors for a terminal and reads the caller's source file for each one.
  // `npm run dev` (this file through tsx) keeps their development checks.
  if (!process.env.NODE_ENV) process.env.NODE_ENV = import.meta.url.endsWith('.ts') ? 'development' : 'production';
  let config: Config;
  try {
    config = loadConfig();
    const problem = authConfigProblem(config, config.HOST);
    if (problem) throw new ConfigError([problem]);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.LOG_LEVEL);
  limitHeapGrowth(config.HEAP_GROWTH_PERCENT);
  // Until the instance is up, a signal ends the start at once, and says so: opening the database may wait
  // a long time (another instance migrating, a migration retrying behind running work: src/db/migrate.ts),
  // and a migration in progress rolls back with its connection. Nothing has been claimed or served yet.
  const duringStart = (signal: NodeJS.Signals) => {
    logger.warn({ signal }, 'signal while starting: exiting before the instance is up (a migration in progress rolls back)');
    process.exit(0);
  };
  process.once('SIGINT', duringStart);
  process.once('SIGTERM', duringStart);
  const database: Promise<Database> = openDatabase(databaseOptions(config, logger));
  database.catch(() => {}); // reported where it is awaited (Chronograph.create), or closed below
  let app: Chronograph;
  try {
    const [{ Chronograph }, compiled] = await Promise.all([import('./app.js'), loadApp(config, logger)]);
    app = await Chronograph.create({ config, logger, appModuleUrl: compiled?.moduleUrl, databaseOpening: database });
  } catch (error) {
    // Chronograph.create closes the database it was given when it fails; not when it was never called.
    await database.then((db) => db.close()).catch(() => {});
    if (error instanceof DataDirLockedError) {
      logger.fatal(error.message);
      process.exit(1);
    }
    if (error instanceof OutdatedError) {
      logger.fatal(error.message);
      process.exit(EXIT_OUTDATED);
    }
    logger.fatal({ err: error }, error instanceof MigrationError ? 'database migration refused' : 'Chronograph could not start');
    process.exit(1);
  }

  /** The stop under way: the exit code it ends with, and the signals received since it began. */
  let stop: { code: number; signals: number } | undefined;
  const shutdown = (why: NodeJS.Signals | 'outdated') => {
    if (stop) {
      if (why === 'outdated') return; // a signal's stop is under way; it ends with 0
      // An orchestrator replacing an instance that already stops on its own (outdated) sends it a signal:
      // the first one joins that stop, which keeps its exit code; any further one ends the process now.
      if (stop.code === EXIT_OUTDATED && stop.signals++ === 0) {
        logger.info({ signal: why }, 'already stopping (a newer version migrated the database): the signal joins that stop');
        return;
      }
      logger.warn({ signal: why }, 'second signal: exiting now');
      process.exit(1);
    }
    const current = { code: why === 'outdated' ? EXIT_OUTDATED : 0, signals: 0 };
    stop = current;
    if (why !== 'outdated') logger.info({ signal: why }, 'shutting down');
    // However the shutdown goes (a client that never drains, a database that hangs), the process ends.
    setTimeout(() => {
      logger.error({ graceMs: config.SHUTDOWN_GRACE_MS }, 'shutdown did not finish within SHUTDOWN_GRACE_MS + 1 s; exiting');
      process.exit(1);
    }, config.SHUTDOWN_GRACE_MS + 1000).unref();
    app.stop().then(
      () => process.exit(current.code),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.off('SIGINT', duringStart);
  process.off('SIGTERM', duringStart);
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  // The instance stops itself (Chronograph's `outdated`, logged there); the process ends with it.
  void app.outdated.then(() => shutdown('outdated'));
  try {
    await app.listen();
  } catch (error) {
    if (stop) return; // it began to stop while binding its port (listen refuses then): that stop ends the process
    logger.fatal({ err: error }, 'Chronograph could not start');
    await app.db.close().catch(() => {});
    process.exit(1);
  }
}

/** The app's compiled modules when APP_DIR holds TypeScript (src/boot/compileApp.ts), else undefined. */
async function loadApp(config: Config, logger: ReturnType<typeof createLogger>): Promise<CompiledApp | undefined> {
  const { compileApp } = await import('./boot/compileApp.js');
  try {
    const compiled = await compileApp(config.APP_DIR);
    if (compiled)
      logger.debug({ dir: compiled.dir, compiled: compiled.compiled }, 'APP_DIR holds TypeScript: loading its compiled modules');
    return compiled;
  } catch (error) {
    // An app that cannot be compiled here (a read-only APP_DIR, …) is loaded as before, through tsx.
    logger.warn({ err: error }, 'APP_DIR holds TypeScript that could not be compiled: loading it through tsx');
    const { registerTypeScriptApp } = await import('./boot/typescriptApp.js');
    if (await registerTypeScriptApp(config.APP_DIR)) logger.debug('APP_DIR holds TypeScript: loaded through tsx');
    return undefined;
  }
}

void main();
