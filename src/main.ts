import { Chronograph } from './app.js';
import { type CompiledApp, compileApp } from './boot/compileApp.js';
import { registerTypeScriptApp } from './boot/typescriptApp.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { DataDirLockedError } from './db/DataDirLock.js';
import { MigrationError } from './db/migrate.js';
import { createLogger } from './logger.js';
import { limitHeapGrowth } from './ops/heap.js';

/** `npm start` (dist/main.js, compiled by `npm run build`; `npm run dev` runs this file): configuration from the environment, clean shutdown on SIGINT/SIGTERM. */
async function main() {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.LOG_LEVEL);
  limitHeapGrowth(config.HEAP_GROWTH_PERCENT);
  let app: Chronograph;
  try {
    let compiled: CompiledApp | undefined;
    try {
      compiled = await compileApp(config.APP_DIR);
      if (compiled)
        logger.debug({ dir: compiled.dir, compiled: compiled.compiled }, 'APP_DIR holds TypeScript: loading its compiled modules');
    } catch (error) {
      // An app that cannot be compiled here (a read-only APP_DIR, …) is loaded as before, through tsx.
      logger.warn({ err: error }, 'APP_DIR holds TypeScript that could not be compiled: loading it through tsx');
      if (await registerTypeScriptApp(config.APP_DIR)) logger.debug('APP_DIR holds TypeScript: loaded through tsx');
    }
    app = await Chronograph.create({ config, logger, appModuleUrl: compiled?.moduleUrl });
    await app.listen();
  } catch (error) {
    if (error instanceof DataDirLockedError) {
      logger.fatal(error.message);
      process.exit(1);
    }
    logger.fatal({ err: error }, error instanceof MigrationError ? 'database migration refused' : 'Chronograph could not start');
    process.exit(1);
  }

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    // However the shutdown goes (a client that never drains, a database that hangs), the process ends.
    setTimeout(() => {
      logger.error({ graceMs: config.SHUTDOWN_GRACE_MS }, 'shutdown did not finish within SHUTDOWN_GRACE_MS + 1 s; exiting');
      process.exit(1);
    }, config.SHUTDOWN_GRACE_MS + 1000).unref();
    app.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

void main();
