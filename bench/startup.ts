// `npm run bench -- startup [rounds]`: how long `npm start` takes, from spawning the process on a fresh
// data directory (PGlite) or a fresh database (PostgreSQL) to the first answered GraphQL request, and the
// process's resident memory once it has been idle for a few seconds, and its peak. Several rounds each;
// figures are medians and ranges. Issue 12's goal: first answer ≤ 2 s, idle RSS ≤ 250 MB. The app is the
// checkout's own app/ (npm start's default APP_DIR: the TypeScript example app).
// BENCH_BASELINE=<another checkout, built> runs the same rounds with it, interleaved, and prints the ratios.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, root } from '../test/support/chronographProcess.js';
import { buildIfStale, buildTemplateIfStale, instanceEnv, scratchDatabase, startCommand } from './support.js';

const rounds = Number(process.argv[2] ?? 3);
const IDLE_MS = 5000;

const baseline = process.env.BENCH_BASELINE ? path.resolve(process.env.BENCH_BASELINE) : undefined;

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

async function round(env: Record<string, string>, checkout = root): Promise<Result> {
  const port = await freePort();
  const started = performance.now();
  const childEnv = instanceEnv(port, { APP_DIR: path.join(checkout, 'app'), ...env });
  const child = spawn(process.execPath, startCommand(checkout), {
    cwd: checkout,
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

buildIfStale();
for (const checkout of baseline ? [root, baseline] : [root]) buildTemplateIfStale(checkout);
if (!existsSync(path.join(root, 'dist', 'pglite-template.json'))) {
  console.log('no PGlite data directory template (npm run build makes it): a fresh DATA_DIR runs initdb');
}
console.log(`start command: node ${startCommand().join(' ')}${baseline ? `; baseline: ${baseline}` : ''}`);
const checkouts = baseline ? [root, baseline] : [root];
const results = new Map(checkouts.map((c) => [c, { pglite: [] as Result[], again: [] as Result[], postgres: [] as Result[] }]));
for (let i = 0; i < rounds; i++) {
  for (const checkout of i % 2 ? [...checkouts].reverse() : checkouts) {
    const r = results.get(checkout)!;
    const dir = mkdtempSync(path.join(tmpdir(), 'chronograph-startup-'));
    try {
      const env = { DATA_DIR: dir, BACKUP_DIR: path.join(dir, 'backups') };
      r.pglite.push(await round(env, checkout));
      // The same directory again: PGlite's initdb and the migrations are done, so this is the restart cost.
      r.again.push(await round(env, checkout));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const db = await scratchDatabase();
    const pgDir = mkdtempSync(path.join(tmpdir(), 'chronograph-startup-'));
    try {
      r.postgres.push(await round({ DATABASE_URL: db.url, DATA_DIR: pgDir, BACKUP_DIR: path.join(pgDir, 'backups') }, checkout));
    } finally {
      await db.drop();
      rmSync(pgDir, { recursive: true, force: true });
    }
  }
}
for (const checkout of checkouts) {
  const r = results.get(checkout)!;
  if (baseline) console.log(checkout === root ? 'this checkout:' : `baseline ${baseline}:`);
  summary('PGlite', r.pglite);
  summary('PGlite restart', r.again);
  summary('PostgreSQL', r.postgres);
}
if (baseline) {
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const mine = results.get(root)!;
  const base = results.get(baseline)!;
  console.log('ratios this ÷ baseline (medians of the per-round ratios): first answer / idle RSS');
  for (const kind of ['pglite', 'again', 'postgres'] as const) {
    const ms = mine[kind].map((m, i) => m.ms / base[kind][i]!.ms);
    const rss = mine[kind].map((m, i) => m.rss / base[kind][i]!.rss);
    console.log(
      `  ${{ pglite: 'PGlite', again: 'PGlite restart', postgres: 'PostgreSQL' }[kind].padEnd(15)} ${med(ms).toFixed(2)} / ${med(rss).toFixed(2)}`,
    );
  }
}
