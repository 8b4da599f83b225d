// Subscription benchmark: `npm run bench -- subscriptions [pglite|postgres]` (no argument: both).
// WebSocket subscribers (BENCH_SUBSCRIBERS, default "100,1000": each count in turn, one socket each) on
// one instance receive a steady stream of status changes (BENCH_EVENTS_PER_SECOND, default 5, for
// BENCH_SECONDS, default 10) selecting BENCH_QUERY, delivered by Chronograph and, beside it in the same
// run, by a bare `ws` + `graphql-ws` server fed by the same NOTIFY of the same commits
// (bench/_bareSubscriptions.ts). BENCH_ROUNDS rounds (default 3), alternating which goes first. Prints
// the delay from transaction commit to client receipt (every subscriber, every event) of both, their
// ratio (Chronograph ÷ bare, per round, then the median) and Chronograph's memory. The servers run in
// their own process (bench/_subscriptionServer.ts; BENCH_PROF=1 writes a CPU profile of each measured
// stream to /tmp/prof/<chronograph|bare>-<subscribers>-<time>.cpuprofile);
// PostgreSQL uses a scratch database created under BENCH_DATABASE_URL and dropped afterwards.
import { type ChildProcess, fork } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import type { ServerReply, ServerRequest } from './_subscriptionServer.js';
import { scratchDatabase } from './support.js';

const SIZES = (process.env.BENCH_SUBSCRIBERS ?? '100,1000').split(',').map(Number);
const EVENTS_PER_SECOND = Number(process.env.BENCH_EVENTS_PER_SECOND ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECT_BATCH = 100;
const SUBSCRIPTION = process.env.BENCH_QUERY ?? 'subscription { taskStatusChanged { id cursor toStatus task { id status } } }';

const now = () => performance.timeOrigin + performance.now();
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

class Server {
  private readonly child: ChildProcess;
  private readonly waiting: ((reply: ServerReply) => void)[] = [];

  constructor(env: Record<string, string>) {
    this.child = fork(path.join(import.meta.dirname, '_subscriptionServer.ts'), {
      execArgv: ['--import', 'tsx', '--expose-gc'],
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

interface Measured {
  p50: number;
  p99: number;
  max: number;
  deliveries: number;
  errors: number;
  /** Chronograph only: server heap and RSS with everyone subscribed (after GC), and the peak while streaming. */
  memory?: string;
}

type Target = 'chronograph' | 'bare';

function at(sorted: Float64Array, q: number) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const ms = (value: number) => `${value.toFixed(1)} ms`;

/** `subscribers` clients subscribe to `target`, then a stream of status changes; commit → receipt of every delivery. */
async function measure(server: Server, ports: Record<Target, number>, target: Target, subscribers: number): Promise<Measured> {
  const clients: Client[] = [];
  const liveOf = (status: Extract<ServerReply, { type: 'status' }>) => (target === 'bare' ? status.bare : status.live);
  try {
    const receipts = new Map<string, number[]>();
    const errors: unknown[] = [];
    // Connected in batches, each acknowledged before the next: a thousand at once can outlast the
    // servers' connection_init timeout on a busy machine.
    let acknowledged = 0;
    for (let i = 0; i < subscribers; i++) {
      if (i % CONNECT_BATCH === 0) await waitUntil(() => errors.length > 0 || acknowledged === i, `${i} connections`);
      const client = createClient({
        url: `ws://127.0.0.1:${ports[target]}/graphql`,
        webSocketImpl: WebSocket,
        lazy: false,
        retryAttempts: 0,
        on: {
          connected: () => void acknowledged++,
          closed: (event) => void (clients.includes(client) && errors.push(`closed: ${(event as { code?: number }).code}`)),
        },
      });
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
    if (errors.length) throw new Error(`${target}: ${JSON.stringify(errors[0])}`);
    await waitUntil(
      async () => liveOf(await server.ask({ type: 'status' }, 'status')) === subscribers,
      `${subscribers} live subscriptions`,
    );
    const subscribed = await server.ask({ type: 'memory', gc: true }, 'memory');

    // Warm-up: one event to every subscriber, then the measured stream.
    const [[warmKey]] = (await server.ask({ type: 'produceOne' }, 'produced')).commits as [[string, number]];
    await waitUntil(() => (receipts.get(warmKey)?.length ?? 0) === subscribers, 'the warm-up event on every subscriber');
    receipts.clear();

    const profile = process.env.BENCH_PROF ? `/tmp/prof/${target}-${subscribers}-${Date.now()}.cpuprofile` : undefined;
    if (profile) await mkdir('/tmp/prof', { recursive: true });
    const { commits } = await server.ask({ type: 'produce', eventsPerSecond: EVENTS_PER_SECOND, seconds: SECONDS, profile }, 'produced');
    await waitUntil(
      () => errors.length > 0 || commits.every(([key]) => (receipts.get(key)?.length ?? 0) === subscribers),
      'every event on every subscriber',
    );
    const during = await server.ask({ type: 'memory' }, 'memory');

    const delays = new Float64Array(commits.length * subscribers);
    let n = 0;
    for (const [key, committedAt] of commits) for (const at of receipts.get(key) ?? []) delays[n++] = at - committedAt;
    const sorted = delays.subarray(0, n).sort();

    for (const client of clients.splice(0)) await client.dispose();
    await waitUntil(async () => {
      const status = await server.ask({ type: 'status' }, 'status');
      return status.subscriptions === 0 && status.bare === 0;
    }, 'subscriptions to be freed');
    return {
      p50: at(sorted, 0.5),
      p99: at(sorted, 0.99),
      max: sorted[n - 1] ?? Number.NaN,
      deliveries: n,
      errors: errors.length,
      ...(target === 'chronograph' && {
        memory: `subscribed RSS ${mb(subscribed.rss)} heap ${mb(subscribed.heapUsed)}, peak streaming RSS ${mb(during.peakRss)} heap ${mb(during.peakHeapUsed)}`,
      }),
    };
  } finally {
    for (const client of clients) await client.dispose();
  }
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
  try {
    const { port, barePort } = await server.reply('ready');
    const ports = { chronograph: port, bare: barePort };
    const idle = await server.ask({ type: 'memory', gc: true }, 'memory');
    console.log(
      `${backend}: ${EVENTS_PER_SECOND} status changes/s for ${SECONDS} s to each count of subscribers, ${ROUNDS} rounds; idle server RSS ${mb(idle.rss)} heap ${mb(idle.heapUsed)}`,
    );
    const results = new Map<number, { chronograph: Measured; bare: Measured }[]>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const subscribers of SIZES) {
        const order: Target[] = round % 2 ? ['chronograph', 'bare'] : ['bare', 'chronograph'];
        const got = {} as Record<Target, Measured>;
        for (const target of order) got[target] = await measure(server, ports, target, subscribers);
        const list = results.get(subscribers) ?? [];
        list.push(got);
        results.set(subscribers, list);
        const { chronograph: c, bare: b } = got;
        console.log(
          `  round ${round}, ${subscribers} subscribers: Chronograph p50 ${ms(c.p50)} p99 ${ms(c.p99)} max ${ms(c.max)} | bare graphql-ws p50 ${ms(b.p50)} p99 ${ms(b.p99)} max ${ms(b.max)} | ratio p50 ${(c.p50 / b.p50).toFixed(2)} p99 ${(c.p99 / b.p99).toFixed(2)}` +
            (c.errors || b.errors ? ` | errors ${c.errors} / ${b.errors}` : ''),
        );
        console.log(`    Chronograph memory: ${c.memory}`);
      }
    }
    console.log(`${backend} medians over ${ROUNDS} rounds (commit → receipt, Chronograph ÷ bare graphql-ws per round):`);
    for (const [subscribers, list] of results) {
      const m = (target: Target, key: 'p50' | 'p99') => median(list.map((r) => r[target][key]));
      console.log(
        `  ${subscribers} subscribers: Chronograph p50 ${ms(m('chronograph', 'p50'))} p99 ${ms(m('chronograph', 'p99'))}; bare p50 ${ms(m('bare', 'p50'))} p99 ${ms(m('bare', 'p99'))}; ratio p50 ${median(list.map((r) => r.chronograph.p50 / r.bare.p50)).toFixed(2)} p99 ${median(list.map((r) => r.chronograph.p99 / r.bare.p99)).toFixed(2)}`,
      );
    }
  } finally {
    await server.ask({ type: 'stop' }, 'stopped').catch(() => {});
    await drop();
  }
}

const which = process.argv[2];
for (const backend of which ? [which as 'pglite' | 'postgres'] : (['pglite', 'postgres'] as const)) await run(backend);
process.exit(0);
