// Shared by the benchmarks (bench/index.ts does not run this file).

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { SHARED_COLUMNS, SPEC_COLUMNS } from '../src/tasks/taskTables.js';
import { root, startCommand } from '../test/support/chronographProcess.js';

export { startCommand };

/** The PostgreSQL server benchmarks use: BENCH_DATABASE_URL, or the machine's local one. */
export const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';

/** A fresh database on ADMIN_URL's server, dropped (even with connections open) by `drop`. */
export async function scratchDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `chronograph_bench_${randomBytes(4).toString('hex')}`;
  await withAdmin((c) => c.query(`CREATE DATABASE "${name}"`));
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => withAdmin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)) };
}

async function withAdmin(fn: (client: pg.Client) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * The environment of a Chronograph started as `npm start` for a benchmark: quiet, open (no credentials),
 * on 127.0.0.1:`port`; PGlite unless `env` names a DATABASE_URL.
 */
export function instanceEnv(port: number, env: Record<string, string>): Record<string, string | undefined> {
  const childEnv: Record<string, string | undefined> = {
    ...process.env,
    LOG_LEVEL: 'warn',
    AUTH_DISABLED: 'true',
    PORT: String(port),
    HOST: '127.0.0.1',
    ...env,
  };
  if (!env.DATABASE_URL) delete childEnv.DATABASE_URL;
  return childEnv;
}

/** What `npm start` does first (its prestart): compile src/ again if it changed since the last build. */
export function buildIfStale(checkout = root): void {
  const built = spawnSync(process.execPath, [path.join(checkout, 'scripts', 'build.mjs'), '--if-stale'], {
    cwd: checkout,
    stdio: 'inherit',
  });
  if (built.status !== 0) throw new Error('npm run build failed');
}

/**
 * Chronograph's public API (src/index.ts) as `npm start` and the apps it loads run it: dist/index.js, the
 * compiled bundle (built first when src/ changed), not src/ through tsx, whose transform (esbuild's
 * keepNames among it) costs time on every call. BENCH_FROM_SOURCE=1 loads src/ instead, to compare.
 */
export async function chronographApi(checkout = root): Promise<typeof import('../src/index.js')> {
  if (process.env.BENCH_FROM_SOURCE) return import('../src/index.js');
  buildIfStale(checkout);
  return (await import(pathToFileURL(path.join(checkout, 'dist', 'index.js')).href)) as typeof import('../src/index.js');
}

/**
 * The PGlite data directory template as a fresh install has it: `--if-stale` leaves the template alone,
 * so after a migration changed, a "fresh PGlite directory" would run initdb instead of copying it. Made
 * again only when the migrations or PGlite changed (buildTemplate compares its manifest).
 */
export function buildTemplateIfStale(checkout = root): void {
  const built = spawnSync(process.execPath, [path.join(checkout, 'scripts', 'build-pglite-template.mjs')], {
    cwd: checkout,
    stdio: 'inherit',
  });
  if (built.status !== 0) throw new Error('the PGlite data directory template could not be made');
}

/**
 * POSTs a JSON body with node:http on `agent` (keep-alive, the lean client of the latency benchmarks) and
 * resolves with the answer's text once it has all arrived.
 */
export function postJson(url: string, agent: http.Agent, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/**
 * An INSERT of tasks straight into their two tables (src/tasks/taskTables.ts), for benchmarks that queue
 * many rows in SQL: the view `task` takes inserts through a trigger row by row, which for a backlog of a
 * million took most of a minute. `select` yields `columns` (the view's names, `id` among them) in order;
 * a missing tenant_id is 'default', as the view's default.
 */
export function insertTasksSql(columns: readonly string[], select: string): string {
  const all = columns.includes('tenant_id') ? columns : [...columns, 'tenant_id'];
  const rows = columns.includes('tenant_id') ? select : `SELECT x.*, 'default' AS tenant_id FROM (${select}) x`;
  const spec = all.filter((c) => c === 'id' || SHARED_COLUMNS.has(c) || SPEC_COLUMNS.has(c));
  const state = all.filter((c) => c === 'id' || SHARED_COLUMNS.has(c) || !SPEC_COLUMNS.has(c));
  return `WITH rows AS MATERIALIZED (SELECT * FROM (${rows}) r (${all.join(', ')})),
    spec AS (INSERT INTO task_spec (${spec.join(', ')}) SELECT ${spec.join(', ')} FROM rows)
    INSERT INTO task_state (${state.map((c) => (c === 'id' ? 'task_id' : c)).join(', ')}) SELECT ${state.join(', ')} FROM rows`;
}
