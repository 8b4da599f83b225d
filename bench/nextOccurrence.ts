// `npm run bench -- nextOccurrence`: the cost of computing next occurrences (src/time/schedule.ts), side by
// side with croner computing them in the zone itself (its own DST rules), in the same process and rounds.
// Each figure walks 2,000 consecutive occurrences; the first round warms the zone and expression caches.
import { Cron } from 'croner';
import { nextOccurrence } from '../src/time/schedule.js';

const CASES: [expression: string, zone: string][] = [
  ['*/1 * * * * *', 'America/New_York'],
  ['*/15 * * * *', 'Europe/London'],
  ['0 * * * *', 'Australia/Lord_Howe'],
  ['30 2 * * *', 'America/New_York'],
  ['0 9 * * 1-5', 'Asia/Shanghai'],
  ['0 0 13 * 5', 'Asia/Kolkata'],
  ['0 0 L-2 * *', 'Europe/London'],
];
const STEPS = 2_000;
const START = new Date('2030-01-01T00:00:00Z');

function walk(next: (after: Date) => Date | null): number {
  const t0 = performance.now();
  let at: Date | null = START;
  for (let i = 0; i < STEPS && at; i++) at = next(at);
  return ((performance.now() - t0) * 1000) / STEPS;
}

for (let round = 0; round < 3; round++) {
  console.log(`round ${round + 1}${round === 0 ? ' (cold caches)' : ''}`);
  for (const [expression, zone] of CASES) {
    const schedule = { repeatType: 'CRON' as const, cronExpression: expression, intervalSeconds: null, timezone: zone };
    const ours = walk((after) => nextOccurrence(schedule, after));
    const cron = expression.includes('L-') ? null : new Cron(expression, { timezone: zone });
    const croner = cron ? walk((after) => cron.nextRun(after)) : NaN;
    console.log(
      `  ${expression.padEnd(16)} ${zone.padEnd(20)} nextOccurrence ${ours.toFixed(1).padStart(7)} µs   croner in-zone ${Number.isNaN(croner) ? '    n/a' : croner.toFixed(1).padStart(7)} µs` +
        (Number.isNaN(croner) ? '' : `   ratio ${(ours / croner).toFixed(2)}`),
    );
  }
}
