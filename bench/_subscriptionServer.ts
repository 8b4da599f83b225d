// The server half of bench/subscriptions.ts, in its own process so its memory is the server's alone.
// Driven over IPC: it starts a Chronograph and, beside it on the same database, the bare graphql-ws
// baseline (bench/_bareSubscriptions.ts, on its own port); produces status changes on request
// (recording when each transaction committed) and reports its memory. Only one of the two has
// subscribers at a time; the other then does nothing (Chronograph's stream stops without subscribers,
// the baseline reads nothing).
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { Chronograph } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { startBareServer } from './_bareSubscriptions.js';

export type ServerRequest =
  | { type: 'status' }
  | { type: 'memory'; gc?: boolean }
  | { type: 'produce'; eventsPerSecond: number; seconds: number; profile?: string }
  | { type: 'produceOne' }
  | { type: 'stop' };

export type ServerReply =
  | { type: 'ready'; port: number; barePort: number; database: string }
  | { type: 'status'; live: number; subscriptions: number; bare: number }
  | { type: 'memory'; rss: number; heapUsed: number; peakRss: number; peakHeapUsed: number }
  | { type: 'produced'; commits: [key: string, committedAt: number][] }
  | { type: 'stopped' };

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
const now = () => performance.timeOrigin + performance.now();

const send = (reply: ServerReply) => process.send!(reply);

const app = await Chronograph.create({
  config: loadConfig({
    APP_DIR: '/nonexistent',
    LOG_LEVEL: 'warn',
    DATA_DIR: 'memory://',
    SCHEDULER_ENABLED: 'false',
    DATABASE_URL: process.env.DATABASE_URL,
    SUBSCRIPTION_BUFFER_SIZE: process.env.SUBSCRIPTION_BUFFER_SIZE,
  }),
});
await app.templateSvc.create({ fullName: 'bench.Task', title: 'Benchmark task', funcName: 'chronograph.noop' });
const taskSvc = app.taskSvc;
const future = { fullName: 'bench.Task', startTime: '2100-01-01T00:00:00Z' };

let peakRss = 0;
let peakHeapUsed = 0;
const sampler = setInterval(() => {
  const { rss, heapUsed } = process.memoryUsage();
  peakRss = Math.max(peakRss, rss);
  peakHeapUsed = Math.max(peakHeapUsed, heapUsed);
}, 50);

/**
 * A steady stream of status changes: every tick one transaction, alternately creating a task (its
 * CREATED event) and force-ending the previous one (FORCED_END). The commit time is taken when the
 * transaction has returned, the moment a client could first have been told.
 */
async function produce(eventsPerSecond: number, seconds: number, commits: [string, number][]) {
  const interval = 1000 / eventsPerSecond;
  const total = Math.round(eventsPerSecond * seconds);
  const start = performance.now();
  let open: string | undefined;
  for (let i = 0; i < total; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (open) {
      await taskSvc.forcedEnd(open);
      commits.push([`${open}:FORCED_END`, now()]);
      open = undefined;
    } else {
      const task = await taskSvc.createTimerTask(future);
      commits.push([`${task.id}:SCHEDULED`, now()]);
      open = task.id;
    }
  }
}

process.on('message', (request: ServerRequest) => {
  void (async () => {
    switch (request.type) {
      case 'status': {
        const status = app.taskEvents.status();
        send({ type: 'status', live: status.live, subscriptions: status.subscriptions, bare: bare.subscribers() });
        break;
      }
      case 'memory': {
        if (request.gc) globalThis.gc?.();
        const { rss, heapUsed } = process.memoryUsage();
        send({ type: 'memory', rss, heapUsed, peakRss, peakHeapUsed });
        peakRss = rss;
        peakHeapUsed = heapUsed;
        break;
      }
      case 'produceOne': {
        const commits: [string, number][] = [];
        const task = await taskSvc.createTimerTask(future);
        commits.push([`${task.id}:SCHEDULED`, now()]);
        send({ type: 'produced', commits });
        break;
      }
      case 'produce': {
        const commits: [string, number][] = [];
        // BENCH_PROF: a CPU profile of this stream alone (then of the deliveries still in flight), one file per run.
        const session = request.profile ? new Session() : undefined;
        if (session) {
          session.connect();
          await session.post('Profiler.enable');
          await session.post('Profiler.start');
        }
        await produce(request.eventsPerSecond, request.seconds, commits);
        if (session) {
          await new Promise((resolve) => setTimeout(resolve, 1000));
          const { profile } = await session.post('Profiler.stop');
          await writeFile(request.profile!, JSON.stringify(profile));
          session.disconnect();
        }
        send({ type: 'produced', commits });
        break;
      }
      case 'stop':
        clearInterval(sampler);
        await bare.close();
        await app.stop();
        send({ type: 'stopped' });
        process.disconnect();
        break;
    }
  })();
});

const { port } = await app.listen(0, '127.0.0.1');
const bare = await startBareServer(app.db);
send({ type: 'ready', port, barePort: bare.port, database: app.db.kind });
