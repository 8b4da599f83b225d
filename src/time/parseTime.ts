import { DateTime } from 'luxon';
import { isValidTimezone } from '../config.js';
import { ChronographError } from '../errors.js';
import { formatClock, formatLocal, formatOffset, TimeZone } from './TimeZone.js';

/** An instant read from a client's date-time, with a note when its wall-clock time needed a DST decision. */
export interface ParsedTime {
  at: Date;
  note: string | null;
}

/**
 * A date-time text: either an instant (it carried an offset or zone) or a wall-clock time (local ms, read
 * as UTC). An invalid one says why when it can be said in the client's terms (a day that does not exist,
 * an unknown zone, a year past 9999); `why` is null when the text is simply in no form Chronograph reads.
 */
export type DateTimeText = { kind: 'instant'; at: number } | { kind: 'wall'; local: number } | { kind: 'invalid'; why: string | null };

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
/** A UTC offset after a time of day (`…T10:00:00+02:00`, `… 10:00:00 -0500`): sign, hours, minutes. */
const TIME_OFFSET = /\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s?([+-])(\d{2}):?(\d{2})$/;

/**
 * Reads ISO 8601 (`2030-01-01T10:00:00Z`, with or without an offset) or the seed's `2030-01-01 10:00:00`.
 * Impossible calendar dates (2030-02-30, 25:00) are invalid rather than rolled over. Whether the text
 * carried its own offset is told by reading it at two different offsets: an instant reads the same.
 */
export function readDateTime(text: string): DateTimeText {
  const fast = readUtcInstant(text);
  if (fast !== null) return { kind: 'instant', at: fast };
  // luxon takes any two-digit offset: +25:00 read as an instant a day off. Offsets in use run from
  // -12:00 to +14:00; past 14 hours (or 59 minutes) it is a typo, not a place.
  const offset = TIME_OFFSET.exec(text);
  if (offset && (Number(offset[2]) > 14 || Number(offset[3]) > 59)) {
    return { kind: 'invalid', why: `the offset ${offset[1]}${offset[2]}:${offset[3]} does not exist` };
  }
  const read = (zone: string) => {
    const iso = DateTime.fromISO(text, { zone });
    if (iso.isValid || DATE_ONLY.test(text)) return { parsed: iso, refusals: [iso] };
    const sql = DateTime.fromSQL(text, { zone });
    return { parsed: sql, refusals: [iso, sql] };
  };
  const { parsed: utc, refusals } = read('UTC');
  if (!utc.isValid) return { kind: 'invalid', why: whyInvalid(text, refusals) };
  return utc.toMillis() === read('Etc/GMT-14').parsed.toMillis()
    ? { kind: 'instant', at: utc.toMillis() }
    : { kind: 'wall', local: utc.toMillis() };
}

/**
 * Why a text luxon refused is not a date-time, in the client's terms, or null when it is in no form
 * Chronograph reads. Not luxon's own explanation: after the ISO 8601 attempt it is that of the SQL-style
 * form (`2030-01-01 10:00:00`), "can't be parsed as SQL", for input that never was SQL.
 */
function whyInvalid(text: string, refusals: DateTime[]): string | null {
  const year = /^(\d{5,})-\d/.exec(text)?.[1];
  if (year !== undefined && Number(year) > 9999) return `the year ${Number(year)} is outside 1970-9999`;
  for (const refused of refusals) {
    const explanation = refused.invalidExplanation ?? '';
    if (refused.invalidReason === 'unit out of range') {
      const unit = /you specified (\S+) \(of type \w+\) as an? (\w+)/.exec(explanation);
      return unit ? `${unit[2]} ${unit[1]} does not exist` : 'a part of it is out of range';
    }
    if (refused.invalidReason === 'unsupported zone') {
      const zone = /the zone "([^"]*)"/.exec(explanation)?.[1];
      return zone === undefined ? 'its time zone is unknown' : `${JSON.stringify(zone)} is not an IANA time zone`;
    }
  }
  return null;
}

const UTC_INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?Z$/;

/**
 * The form programs send most (`Date.prototype.toISOString`: 2030-01-01T10:00:00.000Z), read without
 * luxon, which takes ~50 µs for it (bulk creation reads thousands). Only a time that exists is taken
 * (every field read back unchanged); anything else, valid or not, is left to luxon (null).
 */
function readUtcInstant(text: string): number | null {
  const m = UTC_INSTANT.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const at = new Date(0);
  at.setUTCFullYear(year, month - 1, day);
  at.setUTCHours(hour, minute, second, Number((m[7] ?? '').padEnd(3, '0')));
  const same =
    at.getUTCFullYear() === year &&
    at.getUTCMonth() === month - 1 &&
    at.getUTCDate() === day &&
    at.getUTCHours() === hour &&
    at.getUTCMinutes() === minute &&
    at.getUTCSeconds() === second;
  return same ? at.getTime() : null;
}

/** A wall-clock time in `zone` as one instant, by Chronograph's rules, and what was decided on the way. */
export type WallClockInstant =
  | { kind: 'single'; at: number }
  | { kind: 'repeated'; at: number; note: string }
  | { kind: 'gap'; at: number; note: string; gap: string; jumpOffset: string };

/**
 * A time that exists once is that instant. A time the clocks go back over (it exists twice) is its first
 * occurrence. A time the clocks jump over (spring forward) does not exist: callers refuse it (API input)
 * or take the moment of the jump (record dates, which cannot be refused).
 */
export function wallClockInstant(local: number, zone: string): WallClockInstant {
  const resolved = TimeZone.get(zone).resolve(local);
  if (resolved.kind === 'single') return { kind: 'single', at: resolved.at };
  const t = resolved.transition;
  const from = formatClock(t.at + t.offsetBefore);
  const to = formatClock(t.at + t.offsetAfter);
  if (resolved.kind === 'repeated') {
    return {
      kind: 'repeated',
      at: resolved.first,
      note: `${formatLocal(local)} occurs twice in ${zone} (the clocks go back from ${from} to ${to}): used the first occurrence, ${formatLocal(local)}${formatOffset(t.offsetBefore)}`,
    };
  }
  const gap = `on ${formatLocal(t.at + t.offsetBefore).slice(0, 10)} the clocks jump from ${from} to ${to}`;
  return {
    kind: 'gap',
    at: t.at,
    gap,
    jumpOffset: `${formatLocal(t.at + t.offsetAfter)}${formatOffset(t.offsetAfter)}`,
    note: `spring-forward: ${formatLocal(local)} does not exist in ${zone} (${gap}); moved to ${to}`,
  };
}

/**
 * A start or end time as clients send it (see readDateTime); a time without an offset is wall-clock
 * time in `zone`. INVALID_START_TIME naming `field` for anything unreadable, outside 1970-9999, or a
 * wall-clock time that does not exist in the zone (the message names the gap and the offset form that
 * says what was meant). A time that exists twice is its first occurrence, and `note` says so.
 */
export function parseTime(value: string, zone: string, field: string): ParsedTime {
  const read = readDateTime(value.trim());
  if (read.kind === 'invalid') {
    throw new ChronographError(
      'INVALID_START_TIME',
      `${field} ${JSON.stringify(value)} is not a valid date-time${read.why ? ` (${read.why})` : ''}; use ISO 8601 such as ` +
        `2030-01-01T10:00:00Z, or "2030-01-01 10:00:00" for wall-clock time in the task's time zone`,
      { field },
    );
  }
  const year = new Date(read.kind === 'instant' ? read.at : read.local).getUTCFullYear();
  if (year < 1970 || year > 9999) {
    throw new ChronographError('INVALID_START_TIME', `${field} ${JSON.stringify(value)} is outside the years 1970-9999`, { field });
  }
  if (read.kind === 'instant') return { at: new Date(read.at), note: null };
  const resolved = wallClockInstant(read.local, zone);
  if (resolved.kind === 'gap') {
    throw new ChronographError(
      'INVALID_START_TIME',
      `${field} ${JSON.stringify(value)} does not exist in ${zone}: ${resolved.gap} (spring forward). ` +
        `Give the instant with its UTC offset instead, e.g. ${resolved.jumpOffset} for the moment the clocks jump`,
      { field },
    );
  }
  return { at: new Date(resolved.at), note: resolved.kind === 'repeated' ? `${field} ${resolved.note}` : null };
}

export function assertTimezone(zone: string, field = 'timezone'): void {
  if (!isValidTimezone(zone)) {
    throw new ChronographError('INVALID_TIMEZONE', `${field} ${JSON.stringify(zone)} is not an IANA time zone (e.g. Europe/Paris)`, {
      field,
    });
  }
}
