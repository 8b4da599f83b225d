import { DateTime } from 'luxon';
import cron from 'node-cron';
import { isValidTimezone } from '../config.js';
import { ChronographError } from '../errors.js';

/**
 * Parses a start/end time as clients send it: ISO 8601 (`2024-01-01T10:00:00Z`, with or without an
 * offset) or the seed's `2024-01-01 10:00:00`. A time without an offset is wall-clock time in `zone`.
 * Impossible calendar dates (2024-02-30, 25:00) are refused instead of being rolled over.
 */
export function parseTime(value: string, zone: string, field: string): Date {
  const text = value.trim();
  let parsed = DateTime.fromISO(text, { zone, setZone: false });
  if (!parsed.isValid) parsed = DateTime.fromSQL(text, { zone, setZone: false });
  if (!parsed.isValid) {
    const why = parsed.invalidExplanation ?? parsed.invalidReason ?? 'unrecognised format';
    throw new ChronographError(
      'INVALID_START_TIME',
      `${field} ${JSON.stringify(value)} is not a valid date-time (${why}); use ISO 8601 such as ` +
        `2030-01-01T10:00:00Z, or "2030-01-01 10:00:00" for wall-clock time in the task's time zone`,
      { field },
    );
  }
  if (parsed.year < 1970 || parsed.year > 9999) {
    throw new ChronographError('INVALID_START_TIME', `${field} ${JSON.stringify(value)} is outside the years 1970-9999`, {
      field,
    });
  }
  return parsed.toJSDate();
}

export function assertTimezone(zone: string, field = 'timezone'): void {
  if (!isValidTimezone(zone)) {
    throw new ChronographError('INVALID_TIMEZONE', `${field} ${JSON.stringify(zone)} is not an IANA time zone (e.g. Europe/Paris)`, {
      field,
    });
  }
}

/** Validates a 5-field (minute) or 6-field (second) cron expression, naming the bad field. */
export function assertCron(expression: string, field = 'cronExpression'): void {
  const fields = expression.trim().split(/\s+/).length;
  const result = fields === 5 || fields === 6 ? cron.validateDetailed(expression) : undefined;
  if (!result?.valid) {
    const detail = result?.errors.map((e) => `${e.field}: ${e.message}`).join('; ') ?? `it has ${fields} fields, not 5 or 6`;
    throw new ChronographError('INVALID_CRON', `${field} ${JSON.stringify(expression)} is not a valid cron expression (${detail})`, {
      field,
    });
  }
}

interface TimeMatcher {
  getNextMatch(after: Date): Date;
}

const matchers = new Map<string, TimeMatcher>();

/**
 * The first occurrence of `expression` in `zone` strictly after `after`, computed by node-cron (so DST
 * gaps and repeats follow its rules). node-cron's public API only looks forward from "now"; its task
 * object carries the matcher that looks forward from any date, and test/time.test.ts pins that.
 */
export function nextCronOccurrence(expression: string, zone: string, after: Date): Date {
  const key = `${zone}\u0000${expression}`;
  let matcher = matchers.get(key);
  if (!matcher) {
    const task = cron.createTask(expression, () => {}, { timezone: zone });
    matcher = (task as unknown as { timeMatcher?: TimeMatcher }).timeMatcher;
    void task.destroy();
    if (typeof matcher?.getNextMatch !== 'function') throw new Error('node-cron no longer exposes its time matcher');
    if (matchers.size > 10_000) matchers.clear();
    matchers.set(key, matcher);
  }
  return matcher.getNextMatch(after);
}
