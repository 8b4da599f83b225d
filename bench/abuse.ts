// Abuse benchmark: `npm run bench -- abuse [pglite|postgres]` (default pglite).
// Starts a real instance as `npm start` does (dist/main.js, rebuilt if src/ changed; REQUEST_TIMEOUT_MS half a phase) on 127.0.0.1 with tasks that
// carry 100 KB argDicts, then runs
// one phase after another, each for BENCH_SECONDS (default 8): abusive clients hammer the instance
// (BENCH_ABUSERS at a time, default 20) while one normal client sends a dashboard query in a loop and
// times it (BENCH_PHASES=word,word runs only the phases whose names contain one of the words). Prints, per phase, the normal client's latency, what the abusive requests got back, and the
// server's RSS (from /proc). The abusive clients run in a thread of their own, so that the work of
// building their requests (2 MB bodies, thousands of sockets) does not delay the normal client's timing
// on this process's event loop. Traffic goes to 127.0.0.1 only; every loop is bounded in time and count.
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { buildIfStale, scratchDatabase, startCommand } from './support.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ABUSERS = Number(process.env.BENCH_ABUSERS ?? 20);
const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 2000);
const root = path.resolve(import.meta.dirname, '..');

const NORMAL = '{ tasks(first: 20) { edges { node { id status fullName nextRunAt } } } taskStats { total scheduled running } }';
const chain = (levels: number) => {
  let selection = 'id';
  for (let i = 0; i < levels; i++) selection = `id events { task { ${selection} } }`;
  return selection;
};
const aliases = (n: number, field: string) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ')} }`;

interface Phase {
  name: string;
  /** One abusive request; resolves with what it got (a status or an error code). */
  abuse?: (port: number) => Promise<string>;
  abusers?: number;
  seconds?: number;
}

const PHASES: Phase[] = [
  { name: 'baseline (normal client alone)' },
  {
    name: 'deep task → events → task queries (12 levels)',
    abuse: (port) => gql(port, `{ tasks(first: 500) { edges { node { ${chain(12)} } } } }`),
  },
  {
    name: '1000 aliases of tasks(first: 500) { id argDict }',
    abuse: (port) => gql(port, aliases(1000, 'tasks(first: 500) { edges { node { id argDict } } }')),
  },
  {
    name: 'costly pages: 5 × tasks(first: 500) { argDict }',
    abuse: (port) => gql(port, aliases(5, 'tasks(first: 500) { edges { node { id argDict } } }')),
  },
  { name: 'id-only listings of 500 tasks (allowed)', abuse: (port) => gql(port, '{ tasks(first: 500) { edges { node { id } } } }') },
  {
    name: '2 MB argDict mutations',
    abuse: (port) =>
      gql(port, 'mutation($i: TimerTaskInput!) { createTimerTask(input: $i) { id } }', {
        i: { fullName: 'tasks.Echo', startTime: '2099-01-01 10:00:00', argDict: { big: 'x'.repeat(2_000_000) } },
      }),
  },
  { name: 'form-post mutations from a foreign origin', abuse: (port) => formPost(port) },
  { name: 'vanishing clients (send a page query, hang up at once)', abuse: (port) => vanish(port) },
  { name: `${CONCURRENT} concurrent requests at once, repeatedly`, abuse: (port) => burst(port, CONCURRENT), abusers: 1 },
  { name: `${CONCURRENT} slow clients (headers never finished)`, abuse: (port) => slowloris(port, CONCURRENT), abusers: 1 },
  { name: `${CONCURRENT} clients that ask for 500 KB and never read it`, abuse: (port) => stalledReaders(port, CONCURRENT), abusers: 1 },
  // BENCH_AFTER_SECONDS: how long the instance is watched after the abuse, to see its memory settle.
  { name: 'after the abuse (normal client alone)', seconds: Number(process.env.BENCH_AFTER_SECONDS ?? SECONDS) },
];

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
/**
 * BENCH_NORMAL=fresh: the normal client opens a new connection for every request (as curl or a serverless
 * function would), so its latency includes the wait to be accepted behind a crowd of connections.
 */
const normalAgent = process.env.BENCH_NORMAL === 'fresh' ? new http.Agent({ keepAlive: false }) : agent;

function request(
  port: number,
  body: string,
  headers: Record<string, string> = { 'content-type': 'application/json' },
  via = agent,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/graphql',
        method: 'POST',
        agent: via,
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function gql(port: number, query: string, variables?: object, via = agent): Promise<string> {
  const { status, body } = await request(port, JSON.stringify({ query, variables }), undefined, via);
  const code = (JSON.parse(body) as { errors?: { extensions?: { code?: string; limit?: string } }[] }).errors?.[0]?.extensions;
  return code ? `${code.code}${code.limit ? ` ${code.limit}` : ''}` : `${status} ok`;
}

async function formPost(port: number): Promise<string> {
  const body = new URLSearchParams({
    query: 'mutation { createTimerTask(input: { fullName: "tasks.Echo", startTime: "2099-01-01 10:00:00" }) { id } }',
  }).toString();
  const { status } = await request(port, body, { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' });
  return `HTTP ${status}`;
}

function vanish(port: number): Promise<string> {
  return new Promise((resolve) => {
    const body = JSON.stringify({ query: '{ tasks(first: 500) { edges { node { id argDict } } } }' });
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(
        `POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      setImmediate(() => {
        socket.destroy();
        resolve('hung up');
      });
    });
    socket.on('error', () => resolve('connect error'));
  });
}

async function burst(port: number, n: number): Promise<string> {
  const results = await Promise.allSettled(
    Array.from({ length: n }, () => gql(port, '{ tasks(first: 20) { edges { node { id status } } } }')),
  );
  const ok = results.filter((r) => r.status === 'fulfilled' && r.value === '200 ok').length;
  return `${ok}/${n} answered`;
}

async function slowloris(port: number, n: number): Promise<string> {
  const sockets = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Socket | undefined>((resolve) => {
          const socket = net.connect(port, '127.0.0.1', () => {
            socket.write('POST /graphql HTTP/1.1\r\nHost: x\r\nX-Slow: ');
            socket.resume(); // read, so that the server's 408 and close are seen
            resolve(socket);
          });
          socket.on('error', () => resolve(undefined));
        }),
    ),
  );
  const open = sockets.filter(Boolean) as net.Socket[];
  // Hold them for the phase; the server's headersTimeout decides how long they last.
  const closedByServer = await Promise.all(
    open.map(
      (socket) =>
        new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), (SECONDS + 5) * 1000);
          socket.once('close', () => {
            clearTimeout(timer);
            resolve(true);
          });
        }),
    ),
  );
  open.forEach((socket) => socket.destroy());
  return `${open.length} held, ${closedByServer.filter(Boolean).length} cut off by the server`;
}

async function stalledReaders(port: number, n: number): Promise<string> {
  const body = JSON.stringify({ query: '{ tasks(first: 5) { edges { node { id argDict } } } }' });
  const sockets = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Socket | undefined>((resolve) => {
          const socket = net.connect(port, '127.0.0.1', () => {
            socket.pause();
            socket.write(
              `POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
            );
            resolve(socket);
          });
          socket.on('error', () => resolve(undefined));
        }),
    ),
  );
  const open = sockets.filter(Boolean) as net.Socket[];
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
  open.forEach((socket) => socket.destroy());
  return `${open.length} held for the phase`;
}

/** The server's own view of its memory (prom-client's default metrics): V8 heap used, external memory, array buffers. */
function heapMb(port: number): Promise<string> {
  return new Promise((resolve) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics', agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const mb = (name: string) => {
            const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
            return match ? (Number(match[1]) / 2 ** 20).toFixed(0) : '?';
          };
          // Answers the instance finished, by status (a request whose client went away still counts).
          const answered = [
            ...text.matchAll(/^chronograph_http_request_duration_seconds_count\{[^}]*route="\/graphql"[^}]*status="(\d+)"[^}]*\} (\d+)$/gm),
          ]
            .map((m) => `${m[1]}: ${m[2]}`)
            .join(', ');
          resolve(
            `heap ${mb('nodejs_heap_size_used_bytes')}/${mb('nodejs_heap_size_total_bytes')}, external ${mb('nodejs_external_memory_bytes')} MB; /graphql answers so far ${answered}`,
          );
        });
      })
      .on('error', () => resolve('heap ?'));
  });
}

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : 0;
}

function percentile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN;
}

async function main() {
  const backend = process.argv[2] === 'postgres' ? 'postgres' : 'pglite';
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'chronograph-abuse-'));
  const database = backend === 'postgres' ? await scratchDatabase() : undefined;
  const port = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  // BENCH_NODE_ARGS: extra arguments for the instance's node (say, --cpu-prof to see where its time goes).
  const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  buildIfStale();
  const child = spawn(process.execPath, [...nodeArgs, ...startCommand()], {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      SCHEDULER_ENABLED: 'false',
      // Short enough that the instance drops stalled clients within a phase.
      REQUEST_TIMEOUT_MS: String(Math.max(1000, (SECONDS * 1000) / 2)),
      ...(database && { DATABASE_URL: database.url }),
    },
    // BENCH_SERVER_OUT=<file>: the instance's standard output goes there (its log, or --trace-gc's lines).
    stdio: ['ignore', process.env.BENCH_SERVER_OUT ? openSync(process.env.BENCH_SERVER_OUT, 'w') : 'ignore', 'inherit'],
  });
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      try {
        await gql(port, '{ taskTypes }');
        break;
      } catch {
        if (Date.now() > deadline) throw new Error('the instance did not start');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    const blob = 'x'.repeat(100_000);
    for (let i = 0; i < 5; i++) {
      await gql(port, 'mutation($inputs: [TimerTaskInput!]!) { createTimerTasks(inputs: $inputs) { id } }', {
        inputs: Array.from({ length: 100 }, () => ({ fullName: 'tasks.Echo', startTime: '2099-01-01 10:00:00', argDict: { blob } })),
      });
    }
    // BENCH_SETTLE_SECONDS (default 5): the instance is left alone after that setup, so that the baseline's
    // memory is not the setup's garbage.
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.BENCH_SETTLE_SECONDS ?? 5) * 1000));
    console.log(
      `${backend}: 500 tasks with 100 KB argDicts; ${os.cpus().length} CPUs shared by server and clients; ${SECONDS} s per phase; ` +
        `server RSS before the first phase ${rssMb(child.pid!).toFixed(0)} MB, ${await heapMb(port)}\n`,
    );
    console.log(
      'phase | normal client p50 / p99 / max (n) | abusive requests got | server RSS peak / end | heap used/total, external at the end',
    );
    const only = process.env.BENCH_PHASES?.split(',').map((s) => s.trim().toLowerCase());
    for (const phase of PHASES) {
      if (only && !only.some((word) => phase.name.toLowerCase().includes(word))) continue;
      const until = Date.now() + (phase.abuse ? SECONDS : (phase.seconds ?? SECONDS)) * 1000;
      const latencies: number[] = [];
      const outcomes = new Map<string, number>();
      let peak = rssMb(child.pid!);
      const sampler = setInterval(() => (peak = Math.max(peak, rssMb(child.pid!))), 100);
      const normal = (async () => {
        while (Date.now() < until) {
          const started = performance.now();
          const result = await gql(port, NORMAL, undefined, normalAgent).catch((error: Error) => error.message);
          latencies.push(performance.now() - started);
          if (result !== '200 ok') outcomes.set(`normal client: ${result}`, (outcomes.get(`normal client: ${result}`) ?? 0) + 1);
        }
      })();
      const abusers = phase.abuse ? [abuseInThread(phase, port, until, outcomes)] : [];
      await Promise.all([normal, ...abusers]);
      clearInterval(sampler);
      const sorted = latencies.sort((a, b) => a - b);
      const got = [...outcomes].map(([outcome, n]) => `${n}× ${outcome}`).join(', ') || '-';
      console.log(
        `${phase.name} | ${percentile(sorted, 0.5).toFixed(1)} / ${percentile(sorted, 0.99).toFixed(1)} / ${(sorted.at(-1) ?? NaN).toFixed(1)} ms (${sorted.length}) | ${got} | ${peak.toFixed(0)} / ${rssMb(child.pid!).toFixed(0)} MB | ${await heapMb(port)}`,
      );
    }
  } finally {
    agent.destroy();
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    rmSync(dataDir, { recursive: true, force: true });
    await database?.drop();
  }
}

/** Runs a phase's abusive clients in a worker thread until `until`; adds what they got to `outcomes`. */
function abuseInThread(phase: Phase, port: number, until: number, outcomes: Map<string, number>): Promise<void> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./_abuseThread.mjs', import.meta.url), { workerData: { phase: phase.name, port, until } });
    worker.once('message', (got: [string, number][]) => {
      for (const [outcome, n] of got) outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + n);
    });
    worker.once('error', reject);
    worker.once('exit', () => resolve());
  });
}

async function abuse({ phase: name, port, until }: { phase: string; port: number; until: number }) {
  const phase = PHASES.find((p) => p.name === name)!;
  const outcomes = new Map<string, number>();
  await Promise.all(
    Array.from({ length: phase.abusers ?? ABUSERS }, async () => {
      while (Date.now() < until) {
        const outcome = await phase.abuse!(port).catch((error: Error) => `failed: ${error.message}`);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    }),
  );
  parentPort!.postMessage([...outcomes]);
  agent.destroy();
}

if (isMainThread) await main();
else await abuse(workerData);
