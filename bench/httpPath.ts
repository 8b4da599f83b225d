// `npm run bench -- httpPath`: where the due-now latency of `compare latency` goes (issue 12, goal 2), for
// a create in-process (TaskSvc), over HTTP with node:http, and over HTTP with fetch (undici), the three
// taking turns job by job as in `compare latency` (one instance on a scratch PostgreSQL database, the
// client in this process, 15 ms between jobs). Each job's path is timed at marks set from outside
// Chronograph (wrapped prototypes, no change to its code): the request's arrival at the HTTP server, the
// resolver's call of TaskSvc.createTimerTask, the insert sent and answered (pg.Client#query, by its prepared
// statement's name, chronograph_insert_tasks_*: a mark whose name changed prints as –),
// the handler's start, the response's end and its arrival at the client. Prints the median of each mark,
// in ms after the client's call, and the median of each stretch between two marks. BENCH_LATENCY jobs
// per transport (default 300); BENCH_GAP_MS the pause after each job (default 15, as compare's: the
// machine goes idle between jobs, and each job's path runs cold).
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { chronographApi, postJson, scratchDatabase } from './support.js';

const { Chronograph, loadConfig } = await chronographApi();
const N = Number(process.env.BENCH_LATENCY ?? 300);
const GAP_MS = Number(process.env.BENCH_GAP_MS ?? 15);
const MARKS = ['server', 'resolver', 'sent', 'answered', 'handler', 'responded', 'received'] as const;
type Mark = (typeof MARKS)[number];
const LABELS: Record<Mark, string> = {
  server: 'request at the HTTP server',
  resolver: 'createTimerTask called',
  sent: 'insert sent to PostgreSQL',
  answered: 'insert answered',
  handler: 'handler started',
  responded: 'response ended (server)',
  received: 'response received (client)',
};

/** The job being timed: its start (performance.now()) and the marks reached so far, each once. */
let job: { t0: number; at: Partial<Record<Mark, number>> } | undefined;
const mark = (m: Mark) => {
  if (job && job.at[m] === undefined) job.at[m] = performance.now() - job.t0;
};

const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (this: http.Server, event: string, ...args: unknown[]) {
  if (event === 'request') {
    mark('server');
    const response = args[1] as http.ServerResponse;
    response.once('finish', () => mark('responded'));
  }
  return (emit as (...a: unknown[]) => boolean).call(this, event, ...args);
} as typeof emit;

const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, config: unknown, ...rest: unknown[]) {
  const name = (config as { name?: string } | undefined)?.name;
  if (job && name?.startsWith('chronograph_insert_tasks')) {
    mark('sent');
    const last = rest.length - 1;
    const callback = rest[last];
    if (typeof callback === 'function') {
      rest[last] = (...a: unknown[]) => {
        mark('answered');
        return callback(...a);
      };
    } else {
      const result = (query as (...a: unknown[]) => unknown).call(this, config, ...rest);
      void (result as Promise<unknown>)?.then?.(
        () => mark('answered'),
        () => {},
      );
      return result;
    }
  }
  return (query as (...a: unknown[]) => unknown).call(this, config, ...rest);
} as typeof query;

const db = await scratchDatabase();
const app = await Chronograph.create({
  config: loadConfig({ APP_DIR: '/nonexistent', LOG_LEVEL: 'error', DATA_DIR: 'memory://', DATABASE_URL: db.url, CONCURRENCY: '24' }),
  setup: (a) => {
    a.handlers.register('bench.latency', () => mark('handler'));
  },
});
await app.templateSvc.create({ fullName: 'bench.Noop', title: 'No-op', funcName: 'chronograph.noop' });
const svc = Object.getPrototypeOf(app.taskSvc) as { createTimerTask: (...args: unknown[]) => Promise<unknown> };
const createTimerTask = svc.createTimerTask;
svc.createTimerTask = function (this: unknown, ...args: unknown[]) {
  mark('resolver');
  return createTimerTask.apply(this, args);
};

const { url } = await app.listen(0, '127.0.0.1');
const document =
  'mutation($args: JSON!) { createTimerTask(input: { fullName: "bench.Noop", funcName: "bench.latency", startTime: "2000-01-01T00:00:00Z", argDict: $args }) { id } }';
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const transports: [string, (i: number) => Promise<void>][] = [
  [
    'in-process',
    async (i) => {
      await app.taskSvc.createTimerTask({
        fullName: 'bench.Noop',
        funcName: 'bench.latency',
        startTime: '2000-01-01T00:00:00Z',
        argDict: { i },
      });
    },
  ],
  [
    'node:http',
    async (i) => {
      const text = await postJson(url, agent, JSON.stringify({ query: document, variables: { args: { i } } }));
      mark('received');
      const answer = JSON.parse(text) as { errors?: unknown };
      if (answer.errors) throw new Error(JSON.stringify(answer.errors));
    },
  ],
  [
    'fetch',
    async (i) => {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: document, variables: { args: { i } } }),
      });
      const answer = (await response.json()) as { errors?: unknown };
      mark('received');
      if (answer.errors) throw new Error(JSON.stringify(answer.errors));
    },
  ],
];

const samples = new Map(transports.map(([name]) => [name, [] as Partial<Record<Mark, number>>[]]));
for (let i = -20; i < N; i++) {
  for (let k = 0; k < transports.length; k++) {
    const [name, add] = transports[(((i + k) % transports.length) + transports.length) % transports.length]!;
    job = { t0: performance.now(), at: {} };
    await add(i);
    const deadline = Date.now() + 10_000;
    while (job.at.handler === undefined) {
      if (Date.now() > deadline) throw new Error(`${name}: job ${i} did not start within 10 s`);
      await sleep(0);
    }
    if (i >= 0) samples.get(name)!.push(job.at);
    job = undefined;
    await sleep(GAP_MS);
  }
}

const median = (values: number[]) => {
  const s = values.sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : undefined;
};
const cell = (value: number | undefined) => (value === undefined ? '–' : value.toFixed(2)).padStart(11);
console.log(`Due-now create → handler start, ${N} jobs per transport, taking turns, ${GAP_MS} ms apart; median ms after the client's call`);
console.log(`${''.padEnd(30)}${transports.map(([name]) => name.padStart(11)).join('')}`);
for (const m of MARKS) {
  console.log(`${LABELS[m].padEnd(30)}${transports.map(([name]) => cell(median(samples.get(name)!.flatMap((s) => s[m] ?? [])))).join('')}`);
}
console.log('\nmedian ms of each stretch');
const stretches: [string, Mark | 't0', Mark][] = [
  ['client → server', 't0', 'server'],
  ['server → resolver', 'server', 'resolver'],
  ['resolver → insert sent', 'resolver', 'sent'],
  ['insert sent → answered', 'sent', 'answered'],
  ['answered → handler', 'answered', 'handler'],
  ['handler → response ended', 'handler', 'responded'],
  ['response ended → received', 'responded', 'received'],
];
for (const [label, from, to] of stretches) {
  const values = (name: string) =>
    samples.get(name)!.flatMap((s) => {
      const start = from === 't0' ? 0 : s[from];
      const end = s[to];
      return start === undefined || end === undefined ? [] : [end - start];
    });
  console.log(`${label.padEnd(30)}${transports.map(([name]) => cell(median(values(name)))).join('')}`);
}
agent.destroy();
await app.stop();
await db.drop();
process.exit(0);
