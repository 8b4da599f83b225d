// Chaos run: `npm run chaos -- --minutes 10 [--instances 3] [--lease-ms 2000] [--rate 4] [--crons 2] [--seed n]`.
// Several `npm start` processes on a scratch PostgreSQL database (BENCH_DATABASE_URL, default the local
// one), with random SIGKILL, SIGSTOP/SIGCONT and SIGTERM, a poison task, a memory hog and unstorable
// results; prints lost occurrences, duplicates by cause and the recovery time after each action.
import { parseArgs } from 'node:util';
import { formatChaosReport, runChaos } from '../test/support/chaos.js';
import { scratchDatabase } from './support.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    instances: { type: 'string', default: '3' },
    'lease-ms': { type: 'string', default: '2000' },
    rate: { type: 'string', default: '4' },
    crons: { type: 'string', default: '2' },
    seed: { type: 'string' },
  },
});
const seed = Number(values.seed ?? Date.now() % 100_000);
const database = await scratchDatabase();
try {
  console.log(`chaos: ${values.minutes} min, ${values.instances} instances, LEASE_MS ${values['lease-ms']}, seed ${seed}`);
  const report = await runChaos({
    databaseUrl: database.url,
    durationMs: Number(values.minutes) * 60_000,
    instances: Number(values.instances),
    leaseMs: Number(values['lease-ms']),
    rate: Number(values.rate),
    crons: Number(values.crons),
    seed,
    log: (line) => console.log(`  ${new Date().toISOString().slice(11, 19)} ${line}`),
  });
  console.log(formatChaosReport(report));
  const failed = report.lost.length > 0 || report.duplicates.bothHeldValidLease > 0 || report.leftRunning > 0 || report.errors.length > 0;
  process.exitCode = failed ? 1 : 0;
} finally {
  await database.drop();
}
