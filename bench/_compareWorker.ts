// One worker process of `npm run bench -- compare`: either graphile-worker (COMPARE_KIND=gw) or a
// Chronograph instance (COMPARE_KIND=cg) on DATABASE_URL with COMPARE_CONCURRENCY handlers at once,
// running no-op jobs. Prints "ready" once it is waiting for work; stops on SIGTERM.
import { Logger, run } from 'graphile-worker';
import { chronographApi } from './support.js';

const kind = process.env.COMPARE_KIND;
const concurrency = Number(process.env.COMPARE_CONCURRENCY ?? 24);
const url = process.env.DATABASE_URL!;

if (kind === 'gw') {
  const runner = await run({
    connectionString: url,
    concurrency,
    // A pool at least as large as the concurrency, as graphile-worker's docs advise.
    maxPoolSize: concurrency + 2,
    pollInterval: 2000,
    noHandleSignals: true,
    // Errors only: the default logger prints a line per job, which would slow it down.
    logger: new Logger(() => (level, message) => {
      if (level === 'error') console.error(message);
    }),
    taskList: { noop: async () => {} },
  });
  console.log('ready');
  process.on('SIGTERM', () => void runner.stop().then(() => process.exit(0)));
} else if (kind === 'cg') {
  // The bundle the parent built (compare.ts), as `npm start` runs it; BENCH_FROM_SOURCE=1 passes through.
  const { Chronograph, loadConfig } = await chronographApi();
  const app = await Chronograph.create({
    config: loadConfig({
      ...process.env,
      APP_DIR: '/nonexistent',
      LOG_LEVEL: 'warn',
      CONCURRENCY: String(concurrency),
      SCHEDULER_ENABLED: 'true',
    }),
  });
  console.log('ready');
  process.on('SIGTERM', () => void app.stop().then(() => process.exit(0)));
} else {
  throw new Error('COMPARE_KIND must be gw or cg');
}
