// `npm run bench -- metrics [postgres|pglite]`: how long a /metrics scrape and a /ready probe take
// over HTTP as the due backlog grows (BENCH_BACKLOGS, default 0,100000,1000000 due tasks, scheduler
// off so they stay due). The cluster gauges are read at scrape time, so this is their cost.
import { Chronograph } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { insertTasksSql, scratchDatabase } from './support.js';

const backend = process.argv[2] === 'pglite' ? 'pglite' : 'postgres';
const backlogs = (process.env.BENCH_BACKLOGS ?? '0,100000,1000000').split(',').map(Number);
const SAMPLES = 30;

const database = backend === 'postgres' ? await scratchDatabase() : undefined;
const app = await Chronograph.create({
  config: loadConfig({
    DATABASE_URL: database?.url,
    DATA_DIR: 'memory://',
    APP_DIR: 'app',
    LOG_LEVEL: 'silent',
    SCHEDULER_ENABLED: 'false',
    PORT: '0',
  }),
});
try {
  const { port } = await app.listen(0, '127.0.0.1');
  const seed = await app.getElement('services.TaskSvc').createTimerTask({ fullName: 'tasks.Echo', startTime: '2020-01-01T00:00:00Z' });
  const columns = (
    await app.db.prisma.$queryRawUnsafe<{ name: string }[]>(
      `SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'task' AND column_name NOT IN ('id', 'unique_key') ORDER BY ordinal_position`,
    )
  ).map((c) => c.name);
  let have = 1;
  console.log(`${backend}: ${SAMPLES} sequential requests each, milliseconds over HTTP`);
  console.log('due tasks | /metrics p50 | p95 | max | /ready p50 | p95');
  for (const backlog of backlogs) {
    while (have < backlog) {
      const n = Math.min(100_000, backlog - have);
      await app.db.prisma.$executeRawUnsafe(
        insertTasksSql(
          ['id', ...columns],
          `SELECT gen_random_uuid(), ${columns.map((c) => `t.${c}`).join(', ')} FROM task t, generate_series(1, $1) WHERE t.id = $2::uuid`,
        ),
        n,
        seed.id,
      );
      have += n;
    }
    await app.db.prisma.$executeRawUnsafe('ANALYZE task_spec, task_state');
    const metrics = await timings(`http://127.0.0.1:${port}/metrics`);
    const ready = await timings(`http://127.0.0.1:${port}/ready`);
    console.log(
      `${String(backlog).padStart(9)} | ${metrics.p50.toFixed(1).padStart(12)} | ${metrics.p95.toFixed(1).padStart(5)} | ${metrics.max.toFixed(1).padStart(5)} | ${ready.p50.toFixed(1).padStart(10)} | ${ready.p95.toFixed(1).padStart(5)}`,
    );
  }
} finally {
  await app.stop();
  await database?.drop();
}

async function timings(url: string) {
  // A keep-alive socket left idle while the inserts above blocked PGlite's (in-process) event loop
  // may be closed by the server just as it is reused; one warm-up request absorbs that reset.
  await fetch(url)
    .then((r) => r.text())
    .catch(() => {});
  const ms: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const started = performance.now();
    const response = await fetch(url);
    await response.text();
    if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
    ms.push(performance.now() - started);
  }
  ms.sort((a, b) => a - b);
  return { p50: ms[Math.floor(ms.length / 2)]!, p95: ms[Math.floor(ms.length * 0.95)]!, max: ms[ms.length - 1]! };
}
