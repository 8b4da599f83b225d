import { describe, expect, it } from 'vitest';
import { isStorableDate } from '../src/tasks/validate.js';
import { CronExpression } from '../src/time/CronExpression.js';
import { nextOccurrence, type ScheduledTime, scheduledTime, UPCOMING_HORIZON_YEARS, upcomingRuns } from '../src/time/schedule.js';
import { cronGenerator } from './support/cronGenerator.js';
import { offsetAt } from './support/cronOracle.js';

// upcomingRuns (src/time/schedule.ts) keeps the CRON lists it walked last, keyed with continueAfter
// floored to the second. Every answer must be what a fresh walk from the caller's own instants gives:
// here a kept list is first made from one millisecond of a second, then asked for from another (and
// longer, shorter, with endTime), and compared with a plain loop of nextOccurrence and scheduledTime.

// Besides the usual DST zones: 45-minute offsets, a negative DST (Dublin), a skipped day (Apia, 2011),
// and offsets with seconds (New York before 1883, Amsterdam before 1937: a 28-second jump).
const ZONES: [string, number, number][] = [
  ['America/New_York', 2026, 2034],
  ['Europe/London', 2026, 2034],
  ['Australia/Lord_Howe', 2026, 2034],
  ['America/Santiago', 2026, 2034],
  ['America/Havana', 2026, 2034],
  ['Pacific/Chatham', 2026, 2034],
  ['Europe/Dublin', 2026, 2034],
  ['Africa/Casablanca', 2026, 2030],
  ['Pacific/Apia', 2011, 2011],
  ['America/New_York', 1883, 1883],
  ['Europe/Amsterdam', 1937, 1937],
  ['Asia/Kolkata', 2026, 2030],
];
const DAY = 86_400_000;

const changeCache = new Map<string, number[]>();

/** Where the clocks change in `zone` in `year`, to the second. */
function changes(zone: string, year: number): number[] {
  const key = `${zone} ${year}`;
  const known = changeCache.get(key);
  if (known) return known;
  const found: number[] = [];
  changeCache.set(key, found);
  for (let day = Date.UTC(year, 0, 1); day < Date.UTC(year + 1, 0, 1); day += DAY) {
    if (offsetAt(zone, day) === offsetAt(zone, day + DAY)) continue;
    let low = day;
    let high = day + DAY;
    while (high - low > 1000) {
      const mid = Math.floor((low + high) / 2000) * 1000;
      if (offsetAt(zone, mid) === offsetAt(zone, day)) low = mid;
      else high = mid;
    }
    found.push(high);
  }
  return found;
}

type Schedule = Parameters<typeof upcomingRuns>[0];

/** What upcomingRuns lists, walked here with no list kept. */
function freshWalk(schedule: Schedule, first: Date, continueAfter: Date | undefined, endTime: Date | null, count: number): ScheduledTime[] {
  const runs: ScheduledTime[] = [];
  const horizon = new Date(first);
  horizon.setUTCFullYear(horizon.getUTCFullYear() + UPCOMING_HORIZON_YEARS);
  let at: Date | null = first;
  let after = continueAfter && continueAfter > first ? continueAfter : first;
  while (at && runs.length < count && (!endTime || at <= endTime) && at <= horizon && isStorableDate(at)) {
    runs.push(scheduledTime(schedule, at));
    at = nextOccurrence(schedule, after);
    if (at) after = at;
  }
  return runs;
}

/** A readable random expression in a random zone, and an instant its clocks change (mid-year when they do not). */
function randomCase({ int, pick, expression }: ReturnType<typeof cronGenerator>) {
  const [zone, y0, y1] = pick(ZONES);
  const around = changes(zone, int(y0, y1));
  const text = expression();
  try {
    CronExpression.parse(text);
  } catch {
    return null;
  }
  const schedule = { repeatType: 'CRON' as const, cronExpression: text, intervalSeconds: null, timezone: zone };
  return { zone, text, schedule, change: around.length ? pick(around) : Date.UTC(y0, 6, 1) };
}

const plain = (runs: ScheduledTime[]) => runs.map((r) => ({ ...r, at: r.at.toISOString() }));

describe('kept upcomingRuns lists answer as a fresh walk does', () => {
  it('CRON occurrences are whole seconds and the same from every millisecond of a second', () => {
    const generate = cronGenerator(7_340_011);
    const { rnd, int } = generate;
    let checked = 0;
    for (let i = 0; i < 800; i++) {
      const found = randomCase(generate);
      if (!found) continue;
      const { zone, text, schedule, change } = found;
      // A second within two hours of the change, often the one just before it.
      const second = rnd() < 0.3 ? change - 1000 * int(0, 2) : Math.floor((change - 2 * 3_600_000 + rnd() * 4 * 3_600_000) / 1000) * 1000;
      const base = nextOccurrence(schedule, new Date(second))?.getTime() ?? null;
      if (base !== null) expect(Math.abs(base % 1000), `${text} in ${zone} after ${new Date(second).toISOString()}`).toBe(0);
      for (const ms of [1, int(2, 998), 999]) {
        const got = nextOccurrence(schedule, new Date(second + ms))?.getTime() ?? null;
        expect(got, `${text} in ${zone} after ${new Date(second + ms).toISOString()}`).toBe(base);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1500);
  }, 120_000);

  it('a list kept from one millisecond answers another, shorter, longer and with endTime, as a fresh walk', () => {
    const generate = cronGenerator(20_261_206);
    const { rnd, int, pick } = generate;
    let compared = 0;
    for (let i = 0; i < 400; i++) {
      const found = randomCase(generate);
      if (!found) continue;
      const { zone, text, schedule, change } = found;
      const near = Math.floor((change - 3 * 3_600_000 + rnd() * 3 * 3_600_000) / 1000) * 1000;
      // The task's nextRunAt: an occurrence, or (a retry, a reschedule) any millisecond.
      const occurrence = nextOccurrence(schedule, new Date(near - 1));
      if (!occurrence) continue;
      const first = rnd() < 0.5 ? occurrence : new Date(near - int(0, 3_600_000));
      // `now`, after the first run (overdue) or not, within the same second for both callers.
      const second = Math.floor((first.getTime() + (rnd() - 0.3) * 2 * 3_600_000) / 1000) * 1000;
      const caA = new Date(second + int(0, 999));
      const caB = new Date(second + int(0, 999));
      const endTime = rnd() < 0.3 ? new Date(first.getTime() + int(1, 48) * 3_600_000 + int(0, 999)) : null;
      const from = (continueAfter: Date, count: number) => ({ first, continueAfter, endTime, runsLeft: null, count });
      const [nA, nB] = pick([
        [30, 30],
        [30, 10],
        [10, 30],
      ] as const);
      const runsA = upcomingRuns(schedule, from(caA, nA));
      const runsB = upcomingRuns(schedule, from(caB, nB));
      const context = `${text} in ${zone}, first ${first.toISOString()}, after ${caA.toISOString()} then ${caB.toISOString()}`;
      expect(plain(runsA), context).toEqual(plain(freshWalk(schedule, first, caA, endTime, nA)));
      expect(plain(runsB), context).toEqual(plain(freshWalk(schedule, first, caB, endTime, nB)));
      compared++;
    }
    expect(compared).toBeGreaterThan(250);
  }, 120_000);

  it('what a caller does with its list (or with its own first Date) does not change the next answer', () => {
    const schedule = { repeatType: 'CRON' as const, cronExpression: '30 2 * * *', intervalSeconds: null, timezone: 'America/New_York' };
    // Across the spring-forward change of 2031 (9 March): one run carries a note.
    const first = new Date('2031-03-05T07:30:00.000Z');
    const from = () => ({ first, continueAfter: new Date('2031-03-05T08:00:00.250Z'), endTime: null, runsLeft: null, count: 10 });
    const expected = plain(freshWalk(schedule, new Date(first), from().continueAfter, null, 10));
    expect(expected.some((run) => run.note?.startsWith('spring-forward'))).toBe(true);

    const mine = upcomingRuns(schedule, from());
    expect(plain(mine)).toEqual(expected);
    // A handler or an embedder holding TaskSvc edits what it got, as its own objects.
    for (const run of mine) {
      run.at.setUTCFullYear(1999);
      run.note = 'mine';
      run.local = 'mine';
    }
    first.setTime(Date.parse('2031-03-06T07:30:00.000Z'));
    const again = upcomingRuns(schedule, { ...from(), first: new Date('2031-03-05T07:30:00.000Z') });
    expect(plain(again)).toEqual(expected);
  });
});
