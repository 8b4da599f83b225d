import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { PGlite } from '@electric-sql/pglite';
import type { Logger } from '../logger.js';
import { type Migration, migrate } from './migrate.js';

/**
 * A fresh PGlite DATA_DIR is a copy of this directory: initdb'd and migrated once, when Chronograph is
 * built (scripts/build.mjs), instead of at the first start of every data directory. initdb in
 * WebAssembly takes seconds and peaks near 900 MB; copying some 25 MB of files does not.
 *
 * The same path from src/db (tsx, tests) and dist/db (npm start): both are two levels below the root.
 */
export const TEMPLATE_DIR = fileURLToPath(new URL('../../dist/pglite-template', import.meta.url));

/** What the template holds, written beside it once it is complete; no manifest, no template. */
interface Manifest {
  pglite: string;
  /** How buildTemplate made it: a build remakes a template made another way. */
  recipe?: number;
  migrations: { name: string; checksum: string }[];
}

/**
 * 2: no VACUUM FREEZE at the end, which recorded every table as measured and empty (see
 * pgliteStatistics.ts); a template of recipe 1 still starts a data directory, whose statistics
 * forgetEmptyStatistics resets at start-up.
 * 3: without the databases template0 and template1 (see TEMPLATE_DATABASES); a template of recipe 2
 * still starts a data directory, only with more files to copy.
 * 4: with the migrator's chronograph_breaking_migrations table (src/db/migrate.ts); a template of recipe 3
 * still starts a data directory, whose first start creates the table.
 */
const RECIPE = 4;

/**
 * initdb makes three databases; PGlite uses only `postgres`. The other two (template0 and template1,
 * the sources of CREATE DATABASE, which Chronograph never runs on PGlite) were 600 of the template's
 * 1,050 files and 14 of its 40 MB: a new DATA_DIR copied them, each file written and flushed, on the
 * way to the first answered request.
 */
const TEMPLATE_DATABASES = ['template0', 'template1'];

/**
 * Drops template0 and template1 where they are (initdb made them; the template has none since recipe 3).
 * A data directory made before still has them, and nothing ever VACUUMs them: their datfrozenxid would
 * hold the cluster's oldest transaction id back for good, so pg_xact would never be truncated and, some
 * two billion transactions on, every transaction would warn of wraparound (pgliteStatistics.ts VACUUMs
 * only the database PGlite uses). Returns the databases dropped.
 */
export async function dropTemplateDatabases(pglite: PGlite): Promise<string[]> {
  const { rows } = await pglite.query<{ datname: string }>(
    'SELECT datname FROM pg_database WHERE datname = ANY($1::text[]) AND datname <> current_database() ORDER BY datname',
    [TEMPLATE_DATABASES],
  );
  for (const { datname } of rows) {
    // A template database cannot be dropped; each DROP DATABASE runs outside a transaction.
    await pglite.query('UPDATE pg_database SET datistemplate = false WHERE datname = $1', [datname]);
    await pglite.exec(`DROP DATABASE "${datname}"`);
  }
  return rows.map((r) => r.datname);
}

const manifestFile = (dir: string) => `${dir}.json`;

/** The installed PGlite's version: a template made by another may hold another PostgreSQL's files. */
export function pgliteVersion(): string {
  const require = createRequire(import.meta.url);
  let dir = path.dirname(require.resolve('@electric-sql/pglite'));
  for (;;) {
    try {
      const pkg = require(path.join(dir, 'package.json')) as { name?: string; version: string };
      if (pkg.name === '@electric-sql/pglite') return pkg.version;
    } catch {
      // not at the package's root yet
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the version of @electric-sql/pglite');
    dir = up;
  }
}

async function readManifest(dir: string): Promise<Manifest | undefined> {
  try {
    return JSON.parse(await readFile(manifestFile(dir), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

/**
 * Whether the template can start a data directory for this code: made by the same PGlite, and every
 * migration in it is one this code has, unchanged. Migrations added since are applied at start-up as
 * for any existing data directory; a template holding a migration that was since edited or removed
 * would make that start-up refuse the database, so it is not used (initdb runs instead).
 */
function usable(manifest: Manifest | undefined, migrations: Migration[]): string | undefined {
  if (!manifest) return 'no template (npm run build makes it)';
  const version = pgliteVersion();
  if (manifest.pglite !== version) return `template made by PGlite ${manifest.pglite}, not ${version}`;
  const current = new Map(migrations.map((m) => [m.name, m.checksum]));
  const stale = manifest.migrations.find((m) => current.get(m.name) !== m.checksum);
  if (stale) return `template holds migration ${stale.name} as it no longer is`;
  return undefined;
}

/**
 * The copying thread, evaluated (no file to find from dist/ or src/) as CommonJS or, under
 * `--input-type=module`, as an ES module: hence getBuiltinModule. Sixteen files at a time, PG_VERSION last.
 */
const COPY_THREAD = `
const { constants } = process.getBuiltinModule('node:fs');
const { copyFile, mkdir, open, readdir } = process.getBuiltinModule('node:fs/promises');
const path = process.getBuiltinModule('node:path');
const { template, dataDir } = process.getBuiltinModule('node:worker_threads').workerData;
// On disk before PostgreSQL starts on it: PGlite now flushes its commits (pgliteDurability.ts), and a
// commit flushed onto catalog files still in the OS cache would not survive a power cut either.
const sync = async (file) => { const handle = await open(file, 'r'); try { await handle.sync(); } finally { await handle.close(); } };
(async () => {
  const entries = await readdir(template, { recursive: true, withFileTypes: true });
  const relative = (e) => path.relative(template, path.join(e.parentPath, e.name));
  const dirs = entries.filter((e) => e.isDirectory()).map(relative);
  for (const dir of dirs) await mkdir(path.join(dataDir, dir), { recursive: true });
  const copy = async (file) => {
    await copyFile(path.join(template, file), path.join(dataDir, file), constants.COPYFILE_FICLONE);
    await sync(path.join(dataDir, file));
  };
  const next = entries.filter((e) => e.isFile()).map(relative).filter((f) => f !== 'PG_VERSION').values();
  await Promise.all(Array.from({ length: 16 }, async () => { for (const file of next) await copy(file); }));
  for (const dir of dirs) await sync(path.join(dataDir, dir));
  await copy('PG_VERSION');
  await sync(dataDir);
  await sync(path.dirname(dataDir));
})().catch((error) => { process.exitCode = 1; throw error; });
`;

/**
 * Copies the template into `dataDir` when it holds no database yet (no PG_VERSION, PGlite's own test)
 * and the template fits; returns false when PGlite must run initdb itself. PG_VERSION is copied last:
 * a copy cut short by a crash leaves a directory without it, which the next start copies into again.
 */
export async function copyTemplate(dataDir: string, migrations: Migration[], logger: Logger, template = TEMPLATE_DIR): Promise<boolean> {
  if (await exists(path.join(dataDir, 'PG_VERSION'))) return false;
  const why = usable(await readManifest(template), migrations);
  if (why) {
    logger.info({ dataDir, reason: why }, 'new PGlite data directory: running initdb');
    return false;
  }
  const started = Date.now();
  // In a thread of its own: the copy goes on while the main thread loads Chronograph's modules (main.ts),
  // whose evaluation would otherwise hold up every next file.
  const worker = new Worker(COPY_THREAD, { eval: true, workerData: { template, dataDir } });
  const failure = await new Promise<Error | undefined>((resolve) => {
    let error: Error | undefined;
    worker.once('error', (e) => (error = e));
    worker.once('exit', (code) => resolve(error ?? (code === 0 ? undefined : new Error(`the copying thread exited with ${code}`))));
  });
  if (failure) throw new Error(`cannot copy the PGlite data directory template into ${dataDir}: ${failure.message}`);
  logger.info({ dataDir, ms: Date.now() - started }, 'new PGlite data directory: copied from the initialised template');
  return true;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Makes the template (at build time): initdb, every migration, a clean shutdown. Kept when an earlier
 * build made it for the same PGlite, recipe and migrations. The manifest is removed first and written last, so
 * an interrupted build leaves no template to use rather than a half-made one.
 */
export async function buildTemplate(migrations: Migration[], logger: Logger, template = TEMPLATE_DIR): Promise<boolean> {
  const wanted: Manifest = {
    pglite: pgliteVersion(),
    recipe: RECIPE,
    migrations: migrations.map(({ name, checksum }) => ({ name, checksum })),
  };
  const current = await readManifest(template);
  if (current && JSON.stringify(current) === JSON.stringify(wanted) && (await exists(path.join(template, 'PG_VERSION')))) return false;
  await rm(manifestFile(template), { force: true });
  const scratch = `${template}.tmp-${process.pid}`;
  await rm(scratch, { recursive: true, force: true });
  await mkdir(path.dirname(scratch), { recursive: true });
  const { PGlite } = await import('@electric-sql/pglite');
  const { pgliteSession } = await import('./SqlSession.js');
  const pglite = await PGlite.create(scratch);
  try {
    await migrate(pgliteSession(pglite), logger, migrations);
    await dropTemplateDatabases(pglite);
    // No VACUUM or ANALYZE: the tables stay "never measured" (pg_class.reltuples = -1), as initdb leaves
    // them, so the planner assumes some pages rather than none until they are ANALYZEd with rows in
    // them (pgliteStatistics.ts). A VACUUM here made generic plans sequential scans that stayed so.
    await pglite.exec('CHECKPOINT');
  } finally {
    await pglite.close();
  }
  // Left by the single-user backend; no process owns a copy of the template.
  await rm(path.join(scratch, 'postmaster.pid'), { force: true });
  await rm(template, { recursive: true, force: true });
  await rename(scratch, template);
  await writeFile(`${manifestFile(template)}.tmp`, `${JSON.stringify(wanted, null, 2)}\n`);
  await rename(`${manifestFile(template)}.tmp`, manifestFile(template));
  return true;
}
