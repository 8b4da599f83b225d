// Subscription benchmark: `npm run bench -- subscriptions [pglite|postgres]` (no argument: both).
// BENCH_SUBSCRIBERS WebSocket subscribers (default 1000, one socket each) on one instance receive a
// steady stream of status changes (BENCH_EVENTS_PER_SECOND, default 5, for BENCH_SECONDS, default 20)
// selecting BENCH_QUERY. Prints the delivery delay from transaction commit to client receipt (every
// subscriber, every event) and the server's memory. The server runs in its own process
// (bench/_subscriptionServer.ts; BENCH_PROF=1 writes its CPU profile to /tmp/prof); PostgreSQL uses a
// scratch database created under BENCH_DATABASE_URL and dropped afterwards.
//
// What bounds it: every delivery is one GraphQL execution and one WebSocket frame per subscriber
// (the event row itself is read once for all of them), about 100-250 µs of server CPU each, so one
// event reaches the last of 1000 subscribers after roughly 100-250 ms of fan-out.
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import type { ServerReply, ServerRequest } from './_subscriptionServer.js';
import { scratchDatabase } from './support.js';

const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
const EVENTS_PER_SECOND = Number(process.env.BENCH_EVENTS_PER_SECOND ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const SUBSCRIPTION = process.env.BENCH_QUERY ?? 'subscription { taskStatusChanged { id cursor toStatus task { id status } } }';

const now = () => performance.timeOrigin + performance.now();
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

class Server {
  private readonly child: ChildProcess;
  private readonly waiting: ((reply: ServerReply) => void)[] = [];

  constructor(env: Record<string, string>) {
    this.child = fork(path.join(import.meta.dirname, '_subscriptionServer.ts'), {
      execArgv: ['--import', 'tsx', '--expose-gc', ...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : [])],
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (reply: ServerReply) => this.waiting.shift()?.(reply));
    this.child.on('exit', (code) => {
      if (code) throw new Error(`benchmark server exited with ${code}`);
    });
  }

  /** The next reply (requests are answered in order, one at a time). */
  reply<T extends ServerReply['type']>(type: T): Promise<Extract<ServerReply, { type: T }>> {
    return new Promise((resolve, reject) =>
      this.waiting.push((reply) =>
        reply.type === type
          ? resolve(reply as Extract<ServerReply, { type: T }>)
          : reject(new Error(`expected ${type}, got ${reply.type}`)),
      ),
    );
  }

  ask<T extends ServerReply['type']>(request: ServerRequest, type: T) {
    const reply = this.reply(type);
    this.child.send(request);
    return reply;
  }
}

async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function percentiles(values: Float64Array) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return `p50 ${at(0.5).toFixed(1)} ms / p90 ${at(0.9).toFixed(1)} ms / p99 ${at(0.99).toFixed(1)} ms / max ${sorted[sorted.length - 1]!.toFixed(1)} ms`;
}

async function run(backend: 'pglite' | 'postgres') {
  let drop = async () => {};
  const env: Record<string, string> = {};
  if (backend === 'postgres') {
    const db = await scratchDatabase();
    env.DATABASE_URL = db.url;
    drop = db.drop;
  }
  const server = new Server(env);
  const clients: Client[] = [];
  try {
    const { port } = await server.reply('ready');
    const idle = await server.ask({ type: 'memory', gc: true }, 'memory');

    // Receipts: key "taskId:status" → when each subscriber got it.
    const receipts = new Map<string, number[]>();
    const errors: unknown[] = [];
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const client = createClient({ url: `ws://127.0.0.1:${port}/graphql`, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0 });
      clients.push(client);
      client.subscribe<{ taskStatusChanged: { toStatus: string; task: { id: string } } }>(
        { query: SUBSCRIPTION },
        {
          next: (result) => {
            const at = now();
            const event = result.data?.taskStatusChanged;
            if (!event) return void errors.push(result.errors);
            const key = `${event.task.id}:${event.toStatus}`;
            const list = receipts.get(key);
            if (list) list.push(at);
            else receipts.set(key, [at]);
          },
          error: (error) => errors.push(error),
          complete: () => {},
        },
      );
    }
    await waitUntil(async () => (await server.ask({ type: 'status' }, 'status')).live === SUBSCRIBERS, `${SUBSCRIBERS} live subscriptions`);
    const subscribed = await server.ask({ type: 'memory', gc: true }, 'memory');

    // Warm-up: one event to every subscriber, then the measured stream.
    const [[warmKey]] = (await server.ask({ type: 'produceOne' }, 'produced')).commits as [[string, number]];
    await waitUntil(() => (receipts.get(warmKey)?.length ?? 0) === SUBSCRIBERS, 'the warm-up event on every subscriber');
    receipts.clear();

    const started = Date.now();
    const { commits } = await server.ask({ type: 'produce', eventsPerSecond: EVENTS_PER_SECOND, seconds: SECONDS }, 'produced');
    const producedIn = (Date.now() - started) / 1000;
    await waitUntil(
      () => errors.length > 0 || commits.every(([key]) => (receipts.get(key)?.length ?? 0) === SUBSCRIBERS),
      'every event on every subscriber',
    );
    const during = await server.ask({ type: 'memory' }, 'memory');

    const delays = new Float64Array(commits.length * SUBSCRIBERS);
    let n = 0;
    for (const [key, committedAt] of commits) for (const at of receipts.get(key) ?? []) delays[n++] = at - committedAt;

    for (const client of clients.splice(0)) await client.dispose();
    await waitUntil(async () => (await server.ask({ type: 'status' }, 'status')).subscriptions === 0, 'subscriptions to be freed');
    const after = await server.ask({ type: 'memory', gc: true }, 'memory');

    console.log(
      `${backend}: ${SUBSCRIBERS} WebSocket subscribers, ${commits.length} status changes at ${(commits.length / producedIn).toFixed(0)}/s (${n} deliveries)`,
    );
    if (errors.length) console.log(`  errors: ${errors.length}, first: ${JSON.stringify(errors[0])}`);
    console.log(`  commit → client receipt: ${percentiles(delays.subarray(0, n))}`);
    console.log(
      `  server memory (after GC): idle RSS ${mb(idle.rss)} heap ${mb(idle.heapUsed)}; ${SUBSCRIBERS} subscribed RSS ${mb(subscribed.rss)} heap ${mb(subscribed.heapUsed)}; after they left RSS ${mb(after.rss)} heap ${mb(after.heapUsed)}`,
    );
    console.log(`  server memory peak while streaming: RSS ${mb(during.peakRss)} heap ${mb(during.peakHeapUsed)}`);
  } finally {
    for (const client of clients) await client.dispose();
    await server.ask({ type: 'stop' }, 'stopped').catch(() => {});
    await drop();
  }
}

const which = process.argv[2];
for (const backend of which ? [which as 'pglite' | 'postgres'] : (['pglite', 'postgres'] as const)) await run(backend);
process.exit(0);
