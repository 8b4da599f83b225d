// `npm run bench -- create`: bulk creation through the public API. A Chronograph started as `npm start`
// does (its own process, so its memory is the server's alone) receives BENCH_CREATE_TOTAL tasks (default
// 1,000,000) as GraphQL createTimerTasks mutations of BENCH_CREATE_BATCH inputs (default 10,000) over HTTP,
// one after another, and the bench prints the rate (per batch and overall) and the server's resident
// memory: before the first batch (after start-up and a warm-up batch of 100), its peak, and after the last,
// with the growth. Issue 12 goal 3: ≥ 20,000 tasks/s; RSS grows by < 200 MB over 1,000,000 tasks.
//
// BENCH_CREATE_DB: `postgres` (a scratch database on BENCH_DATABASE_URL's server), `pglite` (a fresh
// DATA_DIR on disk), or `both` (default). BENCH_CREATE_STARTS: `distinct` (default: every task its own
// start time, as toISOString writes it) or `same` (one start time for all, as `bench compare` does).
// At the end the server is asked how many tasks and CREATED events it holds. BENCH_CREATE_NODE_ARGS adds
// node options to the server (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to see where its time goes).
// The server's CPU time per task (user and system, all its threads, from /proc) is printed with the rate.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, root } from '../test/support/chronographProcess.js';
import { buildIfStale, instanceEnv, scratchDatabase, startCommand } from './support.js';

const TOTAL = Number(process.env.BENCH_CREATE_TOTAL ?? 1_000_000);
const BATCH = Number(process.env.BENCH_CREATE_BATCH ?? 10_000);
const DB = process.env.BENCH_CREATE_DB ?? 'both';
const STARTS = process.env.BENCH_CREATE_STARTS ?? 'distinct';
const TEMPLATE = 'bench.Create';

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const mb = (bytes: number) => `${fmt(bytes / 1_048_576)} MB`;

/** CPU time (user + system, all threads) a process has used so far, in seconds. */
function cpu(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rss(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return kb * 1024;
}

async function gql<T>(port: number, query: string, variables?: unknown): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: unknown[] };
  if (body.errors?.length || !body.data) throw new Error(`GraphQL error: ${JSON.stringify(body.errors ?? body).slice(0, 500)}`);
  return body.data;
}

async function waitForAnswer(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the server exited with ${child.signalCode ?? child.exitCode}: ${stderr()}`);
    }
    try {
      await gql(port, '{ __typename }');
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('the server did not answer within 300 s');
}

const CREATE = 'mutation($inputs: [TimerTaskInput!]!) { createTimerTasks(inputs: $inputs) { id } }';

function inputs(from: number, count: number, base: number) {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return {
      fullName: TEMPLATE,
      startTime: new Date(STARTS === 'same' ? base : base + i * 1000).toISOString(),
      argDict: { i },
    };
  });
}

async function run(label: string, env: Record<string, string>): Promise<void> {
  const port = await freePort();
  const childEnv = instanceEnv(port, env);
  const nodeArgs = process.env.BENCH_CREATE_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, ...startCommand()], { cwd: root, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const keep = (d: Buffer) => (stderr = (stderr + d).slice(-4000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exit = '';
  const exited = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      exit = `exited with ${signal ?? code}`;
      resolve();
    }),
  );
  let peak = 0;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rss(child.pid!));
    } catch {
      // exited
    }
  }, 100);
  try {
    await waitForAnswer(port, child, () => stderr);
    await gql(port, 'mutation($input: TaskTemplateInput!) { createTaskTemplate(input: $input) { fullName } }', {
      input: { fullName: TEMPLATE, title: 'Bulk creation benchmark', funcName: 'chronograph.noop' },
    });
    const base = Date.now() + 86_400_000;
    await gql(port, CREATE, { inputs: inputs(TOTAL, 100, base) }); // warm-up, not counted
    await new Promise((r) => setTimeout(r, 1000));
    const before = rss(child.pid!);
    peak = before;
    console.log(`\n## ${label}: ${fmt(TOTAL)} tasks in batches of ${fmt(BATCH)} (${STARTS} start times); RSS before ${mb(before)}`);
    const rates: number[] = [];
    let busy = 0;
    const cpuBefore = cpu(child.pid!);
    const reportEvery = Math.max(BATCH, Math.round(TOTAL / 10 / BATCH) * BATCH);
    for (let done = 0; done < TOTAL; ) {
      const count = Math.min(BATCH, TOTAL - done);
      const body = inputs(done, count, base);
      const t0 = performance.now();
      const created = await gql<{ createTimerTasks: { id: string }[] }>(port, CREATE, { inputs: body });
      const seconds = (performance.now() - t0) / 1000;
      if (created.createTimerTasks.length !== count) throw new Error(`asked for ${count} tasks, got ${created.createTimerTasks.length}`);
      busy += seconds;
      rates.push(count / seconds);
      done += count;
      if (done % reportEvery === 0 || done === TOTAL) {
        console.log(
          `${fmt(done).padStart(11)} tasks: last batch ${fmt(count / seconds)} tasks/s, overall ${fmt(done / busy)} tasks/s, RSS ${mb(rss(child.pid!))} (peak ${mb(peak)})`,
        );
      }
    }
    const cpuUsed = cpu(child.pid!) - cpuBefore;
    await new Promise((r) => setTimeout(r, 1000));
    const after = rss(child.pid!);
    const sorted = [...rates].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    console.log(
      `rate: overall ${fmt(TOTAL / busy)} tasks/s, median batch ${fmt(median)} tasks/s (slowest ${fmt(sorted[0]!)}, fastest ${fmt(sorted.at(-1)!)}); the server's CPU ${fmt((cpuUsed * 1e6) / TOTAL, 1)} µs per task`,
    );
    console.log(
      `RSS: before ${mb(before)}, peak ${mb(peak)}, after ${mb(after)}: grew ${mb(after - before)} (peak ${mb(peak - before)} above before)`,
    );
    const stats = await gql<{ taskStats: { total: number; scheduled: number }; taskEvents: { totalCount: number } }>(
      port,
      `{ taskStats { total scheduled } taskEvents(first: 1, filter: { types: [CREATED] }) { totalCount } }`,
    );
    console.log(
      `the server holds ${fmt(stats.taskStats.total)} tasks (${fmt(stats.taskStats.scheduled)} SCHEDULED) and ${fmt(stats.taskEvents.totalCount)} CREATED events (${fmt(TOTAL + 100)} expected)`,
    );
  } catch (error) {
    console.error(`the server ${exit || 'is running'}; its last output:\n${stderr}`);
    throw error;
  } finally {
    clearInterval(sampler);
    child.kill('SIGTERM');
    await exited;
  }
}

buildIfStale();
if (DB === 'postgres' || DB === 'both') {
  const db = await scratchDatabase();
  const dir = mkdtempSync(path.join(tmpdir(), 'chronograph-create-'));
  try {
    await run('PostgreSQL', { DATABASE_URL: db.url, DATA_DIR: dir, APP_DIR: path.join(dir, 'app'), BACKUP_DIR: path.join(dir, 'backups') });
  } finally {
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}
if (DB === 'pglite' || DB === 'both') {
  const dir = mkdtempSync(path.join(tmpdir(), 'chronograph-create-'));
  try {
    await run('PGlite', { DATA_DIR: dir, APP_DIR: path.join(dir, 'app'), BACKUP_DIR: path.join(dir, 'backups') });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
