import { describe, expect, it } from 'vitest';
import { CronExpression } from '../src/time/CronExpression.js';
import { nextOccurrence } from '../src/time/schedule.js';
import { cronGenerator } from './support/cronGenerator.js';
import { isSecondCopy, offsetAt, oracleNext, parseOracle } from './support/cronOracle.js';

const ZONES = [
  'America/New_York',
  'Europe/London',
  'Australia/Lord_Howe',
  'Asia/Kolkata',
  'Asia/Shanghai',
  'America/Santiago',
  'America/Havana',
];
const DAY = 86_400_000;
const LIMIT = 400 * DAY;

/** Roughly where the clocks change in `zone` in `year` (to the hour), found by stepping days, then hours, with Intl. */
function changes(zone: string, year: number): number[] {
  const found: number[] = [];
  for (let day = Date.UTC(year, 0, 1); day < Date.UTC(year + 1, 0, 1); day += DAY) {
    if (offsetAt(zone, day) === offsetAt(zone, day + DAY)) continue;
    for (let at = day; at < day + DAY; at += 3_600_000) if (offsetAt(zone, at) !== offsetAt(zone, at + 3_600_000)) found.push(at);
  }
  return found;
}

describe('nextOccurrence against an independent brute-force search', () => {
  it('finds every matching instant and nothing else, for random expressions around DST changes', () => {
    const { rnd, int, pick, expression } = cronGenerator(20301103);
    const changeCache = new Map<string, number[]>();
    let checked = 0;
    // How many answers lay across a change of offset, and how many were the moment of a spring-forward jump.
    let crossed = 0;
    let _jumps = 0;
    for (let i = 0; i < 400; i++) {
      const zone = pick(ZONES);
      const year = int(2026, 2034);
      const key = `${zone} ${year}`;
      if (!changeCache.has(key)) changeCache.set(key, changes(zone, year));
      const around = changeCache.get(key)!;
      // Mostly within hours of a change of offset, often within a day and a half; otherwise anywhere in the year.
      const near = rnd();
      const base =
        around.length && near < 0.6
          ? pick(around) - 0.25 * DAY + rnd() * 0.3 * DAY
          : around.length && near < 0.85
            ? pick(around) - 1.5 * DAY + rnd() * 3 * DAY
            : Date.UTC(year, 0, 1) + rnd() * 365 * DAY;
      const start = Math.floor(base / 1000) * 1000 + (rnd() < 0.2 ? int(1, 999) : 0);
      const text = expression();
      const oracle = parseOracle(text);
      const schedule = { repeatType: 'CRON' as const, cronExpression: text, intervalSeconds: null, timezone: zone };
      let valid = true;
      try {
        CronExpression.parse(text);
      } catch (error) {
        // Refused as matching no date (e.g. 12W with AND on Saturday): the brute force must agree.
        expect((error as Error).message, text).toContain('matches no date');
        valid = false;
      }
      if (!valid) {
        expect(oracleNext(oracle, zone, start, start + LIMIT), text).toBeNull();
        continue;
      }
      let after = start;
      // Several consecutive occurrences, each checked from the previous one.
      for (let step = 0; step < 4; step++) {
        const expected = oracleNext(oracle, zone, after, start + LIMIT);
        const actual = nextOccurrence(schedule, new Date(after))?.getTime() ?? null;
        const context = `${text} in ${zone} after ${new Date(after).toISOString()}`;
        if (expected === null) {
          expect(actual === null || actual > start + LIMIT, context).toBe(true);
          break;
        }
        expect(actual === null ? null : new Date(actual).toISOString(), context).toBe(new Date(expected).toISOString());
        checked++;
        if (offsetAt(zone, expected) !== offsetAt(zone, after)) crossed++;
        if (offsetAt(zone, expected - 1000) < offsetAt(zone, expected)) _jumps++;
        after = expected;
      }
    }
    expect(checked).toBeGreaterThan(1000);
    expect(crossed).toBeGreaterThan(100);
  }, 120_000);

  it('runs gap times at the jump and repeated times once or in both copies, right at each change of offset', () => {
    const { rnd, int, timeOnly } = cronGenerator(20300310);
    let jumps = 0;
    let repeats = 0;
    for (const zone of ZONES) {
      for (let year = 2026; year <= 2034; year += 2) {
        for (const change of changes(zone, year)) {
          for (let i = 0; i < 4; i++) {
            const text = timeOnly();
            const oracle = parseOracle(text);
            const schedule = { repeatType: 'CRON' as const, cronExpression: text, intervalSeconds: null, timezone: zone };
            let after = change - int(0, 1) * 3_600_000 + Math.floor(rnd() * 3_600) * 1000;
            for (let step = 0; step < 10; step++) {
              const expected = oracleNext(oracle, zone, after, after + 3 * DAY)!;
              const actual = nextOccurrence(schedule, new Date(after));
              expect(actual?.toISOString(), `${text} in ${zone} after ${new Date(after).toISOString()}`).toBe(
                new Date(expected).toISOString(),
              );
              if (offsetAt(zone, expected - 1000) < offsetAt(zone, expected)) jumps++;
              if (isSecondCopy(zone, expected, offsetAt(zone, expected))) repeats++;
              after = expected;
            }
          }
        }
      }
    }
    // The seed is fixed, so these counts are too: they show the cases above did reach the DST rules.
    expect(jumps).toBeGreaterThan(30);
    expect(repeats).toBeGreaterThan(40);
  }, 120_000);
});
