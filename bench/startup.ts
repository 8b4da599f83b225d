// `npm run bench -- startup [rounds]`: how long `npm start` takes, from spawning the process on a fresh
// data directory (PGlite) or a fresh database (PostgreSQL) to the first answered GraphQL request, and the
// process's resident memory once it has been idle for a few seconds, and its peak. Several rounds each;
// figures are medians and ranges. Issue 12's goal: first answer ≤ 2 s, idle RSS ≤ 250 MB.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, root } from '../test/support/chronographProcess.js';
import { instanceEnv, scratchDatabase } from './support.js';

const rounds = Number(process.argv[2] ?? 3);
const IDLE_MS = 5000;

/** The same command as `npm start` in package.json, without npm's own start-up in the figure. */
function startCommand(): string[] {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const [cmd, ...args] = pkg.scripts.start.split(/\s+/);
  if (cmd !== 'node') throw new Error(`bench/startup expects "start" to run node, not: ${pkg.scripts.start}`);
  return args;
}

/** Resident memory now (VmRSS) and at its highest so far (VmHWM), in MB. */
function memoryMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1]) / 1024;
  return { rss: mb('VmRSS'), peak: mb('VmHWM') };
}

async function firstAnswer(port: number, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      const body = (await response.json()) as { data?: { __typename?: string } };
      if (body.data?.__typename) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('no answer within 60 s');
}

type Result = { ms: number; rss: number; peak: number };

async function round(env: Record<string, string>): Promise<Result> {
  const port = await freePort();
  const started = performance.now();
  const childEnv = instanceEnv(port, env);
  const child = spawn(process.execPath, startCommand(), {
    cwd: root,
    env: childEnv,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    await Promise.race([
      firstAnswer(port, Date.now() + 60_000),
      exited.then((code) => Promise.reject(new Error(`exited with ${code}: ${stderr}`))),
    ]);
    const ms = performance.now() - started;
    await new Promise((r) => setTimeout(r, IDLE_MS));
    return { ms, ...memoryMb(child.pid!) };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

function summary(label: string, results: Result[]) {
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const ms = results.map((r) => r.ms);
  const rss = results.map((r) => r.rss);
  const peak = results.map((r) => r.peak);
  console.log(
    `${label.padEnd(15)} first answer median ${(med(ms) / 1000).toFixed(2)} s (${(Math.min(...ms) / 1000).toFixed(2)}–${(Math.max(...ms) / 1000).toFixed(2)}), ` +
      `idle RSS after ${IDLE_MS / 1000} s median ${med(rss).toFixed(0)} MB (${Math.min(...rss).toFixed(0)}–${Math.max(...rss).toFixed(0)}), ` +
      `peak median ${med(peak).toFixed(0)} MB, ${results.length} rounds`,
  );
}

// What `npm start` does first (its prestart): compile src/ again if it changed since the last build.
const built = spawnSync(process.execPath, [path.join(root, 'scripts', 'build.mjs'), '--if-stale'], { cwd: root, stdio: 'inherit' });
if (built.status !== 0) throw new Error('npm run build failed');
if (!existsSync(path.join(root, 'dist', 'pglite-template.json'))) {
  console.log('no PGlite data directory template (npm run build makes it): a fresh DATA_DIR runs initdb');
}
console.log(`start command: node ${startCommand().join(' ')}`);
const pglite = [];
const pgliteAgain = [];
for (let i = 0; i < rounds; i++) {
  const dir = mkdtempSync(path.join(tmpdir(), 'chronograph-startup-'));
  try {
    const env = { DATA_DIR: dir, APP_DIR: path.join(dir, 'app'), BACKUP_DIR: path.join(dir, 'backups') };
    pglite.push(await round(env));
    // The same directory again: PGlite's initdb and the migrations are done, so this is the restart cost.
    pgliteAgain.push(await round(env));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
summary('PGlite', pglite);
summary('PGlite restart', pgliteAgain);
const postgres = [];
for (let i = 0; i < rounds; i++) {
  const db = await scratchDatabase();
  const dir = mkdtempSync(path.join(tmpdir(), 'chronograph-startup-'));
  try {
    postgres.push(
      await round({ DATABASE_URL: db.url, DATA_DIR: dir, APP_DIR: path.join(dir, 'app'), BACKUP_DIR: path.join(dir, 'backups') }),
    );
  } finally {
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}
summary('PostgreSQL', postgres);
