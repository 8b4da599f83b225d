import { DateTime } from 'luxon';
import { isValidTimezone } from '../config.js';
import { badInput, ChronographError } from '../errors.js';
import { Prisma, type TaskTemplate } from '../generated/prisma/client.js';
import { assertIntRange, assertName, MAX_NAME_LENGTH } from '../tasks/validate.js';
import { readDateTime, wallClockInstant } from '../time/parseTime.js';
import { TimeZone } from '../time/TimeZone.js';
import { assertFieldPath, type Condition, isPlainObject, readPath, validateCondition } from './condition.js';

export const OFFSET_UNITS = ['MINUTES', 'HOURS', 'DAYS'] as const;
export type OffsetUnit = (typeof OFFSET_UNITS)[number];
export const OFFSET_DIRECTIONS = ['BEFORE', 'AFTER'] as const;
export type OffsetDirection = (typeof OFFSET_DIRECTIONS)[number];

export interface DateOffset {
  amount: number;
  unit: OffsetUnit;
  direction: OffsetDirection;
}

/** What a DATE_FIELD template stores in `date_rule`, beside its `sourceModel` and `sourceField`. */
export interface DateRule {
  /** When the task runs relative to the date: DAYS are calendar days in the time zone, so 09:00 stays 09:00 across DST. */
  offset: DateOffset;
  /** Wall-clock time (HH:mm or HH:mm:ss) the run is moved to on the day the offset lands on. */
  timeOfDay: string | null;
  /** A record field holding an IANA zone (the owner's); the template's timezone when empty. */
  timezoneField: string | null;
  /** Only records matching it have a task (see condition.ts). */
  condition: Condition | null;
  /** A repeating task stops at the date shifted by this offset (no time-of-day applied). */
  endOffset: DateOffset | null;
  /** A repeating task stops after this many runs. */
  maxRuns: number | null;
}

/** A DATE_FIELD template's `dateField` as clients send it (GraphQL, TaskSvc, template files). */
export interface DateFieldRuleInput {
  model: string;
  field: string;
  offset?: { amount: number; unit: string; direction?: string | null } | null;
  timeOfDay?: string | null;
  timezoneField?: string | null;
  condition?: unknown;
  endOffset?: { amount: number; unit: string; direction?: string | null } | null;
  maxRuns?: number | null;
}

export interface DateFieldConfig {
  sourceModel: string;
  sourceField: string;
  dateRule: DateRule;
}

const TIME_OF_DAY = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/;
const UNIT_ALIASES: Record<string, OffsetUnit> = {
  minute: 'MINUTES',
  minutes: 'MINUTES',
  hour: 'HOURS',
  hours: 'HOURS',
  day: 'DAYS',
  days: 'DAYS',
};

/** Validates a `dateField` input; every problem is BAD_USER_INPUT naming the offending field. */
export function validateDateFieldInput(input: unknown, field = 'dateField'): DateFieldConfig {
  if (!isPlainObject(input)) throw badInput(`A DATE_FIELD template needs ${field}: { model, field, offset, ... }`, field);
  const value = input as Partial<DateFieldRuleInput>;
  const model = typeof value.model === 'string' ? value.model.trim() : '';
  if (!model) throw badInput(`${field}.model must name the model whose records the tasks follow, e.g. models.Contract`, `${field}.model`);
  assertName(model, `${field}.model`);
  const sourceField = typeof value.field === 'string' ? value.field.trim() : '';
  if (!sourceField) throw badInput(`${field}.field must name the record's date field, e.g. expireDate`, `${field}.field`);
  assertFieldName(sourceField, `${field}.field`);
  const timeOfDay = value.timeOfDay?.trim() || null;
  if (timeOfDay !== null && !TIME_OF_DAY.test(timeOfDay)) {
    throw badInput(
      `${field}.timeOfDay ${JSON.stringify(timeOfDay)} must be a wall-clock time such as 09:00 or 17:30:00`,
      `${field}.timeOfDay`,
    );
  }
  const timezoneField = value.timezoneField?.trim() || null;
  if (timezoneField !== null) assertFieldName(timezoneField, `${field}.timezoneField`);
  const offset =
    value.offset == null
      ? { amount: 0, unit: 'DAYS' as const, direction: 'AFTER' as const }
      : validateOffset(value.offset, `${field}.offset`);
  const endOffset = value.endOffset == null ? null : validateOffset(value.endOffset, `${field}.endOffset`);
  if (endOffset && !timeOfDay && signedMinutes(endOffset) <= signedMinutes(offset)) {
    throw badInput(`${field}.endOffset must fall after the offset of the first run`, `${field}.endOffset`);
  }
  const maxRuns = value.maxRuns == null ? null : assertIntRange(value.maxRuns, `${field}.maxRuns`, 1, 2_147_483_647);
  return {
    sourceModel: model,
    sourceField,
    dateRule: { offset, timeOfDay, timezoneField, condition: validateCondition(value.condition, `${field}.condition`), endOffset, maxRuns },
  };
}

/**
 * A record field a template names (its date field, its time-zone field): stored in the template and in
 * every task's source_field, so at most MAX_NAME_LENGTH characters, as other names (assertName).
 */
function assertFieldName(path: string, field: string): string {
  if (path.length > MAX_NAME_LENGTH) {
    throw badInput(`${field} is ${path.length} characters long; a field name has at most ${MAX_NAME_LENGTH}`, field);
  }
  return assertFieldPath(path, field);
}

function validateOffset(value: unknown, field: string): DateOffset {
  if (!isPlainObject(value)) throw badInput(`${field} must be { amount, unit, direction }`, field);
  const amount = value.amount;
  if (typeof amount !== 'number') throw badInput(`${field}.amount must be a whole number`, `${field}.amount`);
  assertIntRange(amount, `${field}.amount`, 0, 1_000_000);
  const rawUnit = typeof value.unit === 'string' ? value.unit.trim() : '';
  const unit = UNIT_ALIASES[rawUnit.toLowerCase()];
  if (!unit) throw badInput(`${field}.unit ${JSON.stringify(value.unit)} is not a unit; use ${OFFSET_UNITS.join(', ')}`, `${field}.unit`);
  const rawDirection = value.direction == null ? 'AFTER' : String(value.direction).trim().toUpperCase();
  if (!(OFFSET_DIRECTIONS as readonly string[]).includes(rawDirection)) {
    throw badInput(`${field}.direction ${JSON.stringify(value.direction)} must be BEFORE or AFTER`, `${field}.direction`);
  }
  return { amount, unit, direction: rawDirection as OffsetDirection };
}

function signedMinutes(offset: DateOffset): number {
  const per = offset.unit === 'DAYS' ? 1440 : offset.unit === 'HOURS' ? 60 : 1;
  return (offset.direction === 'BEFORE' ? -1 : 1) * offset.amount * per;
}

/** The date-field configuration of a stored DATE_FIELD template. */
export function configOf(template: Pick<TaskTemplate, 'sourceModel' | 'sourceField' | 'dateRule' | 'fullName'>): DateFieldConfig {
  if (!template.sourceModel || !template.sourceField || !isPlainObject(template.dateRule)) {
    throw new ChronographError('CONFLICT', `Task template ${template.fullName} is DATE_FIELD but has no date-field rule`);
  }
  return { sourceModel: template.sourceModel, sourceField: template.sourceField, dateRule: template.dateRule as unknown as DateRule };
}

/** The template columns of a validated configuration (all null for templates of other repeat types). */
export function dateFieldColumns(config: DateFieldConfig | null) {
  return {
    sourceModel: config?.sourceModel ?? null,
    sourceField: config?.sourceField ?? null,
    dateRule: config ? (config.dateRule as unknown as Prisma.InputJsonObject) : Prisma.DbNull,
  };
}

/** The stored configuration as input again, so an update can change one part of it. */
export function configToInput(config: DateFieldConfig): DateFieldRuleInput {
  const { dateRule: r } = config;
  return {
    model: config.sourceModel,
    field: config.sourceField,
    offset: r.offset,
    timeOfDay: r.timeOfDay,
    timezoneField: r.timezoneField,
    condition: r.condition,
    endOffset: r.endOffset,
    maxRuns: r.maxRuns,
  };
}

export interface RecordSchedule {
  startTime: Date;
  endTime: Date | null;
  /** The zone the time was computed in (the record's, or the template's). */
  timezone: string;
  /** The record's date, as an ISO string, for the task's arguments. */
  date: string;
  /** Set when the first run's wall-clock time fell in a DST change and was moved (see wallClockInstant). */
  note: string | null;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/**
 * When a record's task first runs: its date, shifted by the offset, moved to the time of day, all in
 * the record's (or the template's) zone. Null when the date is empty. A value that is not a date, or a
 * time-zone field that is not an IANA zone, is BAD_USER_INPUT / INVALID_TIMEZONE naming `prefix.field`.
 *
 * Wall-clock times follow the rules of every other wall-clock time (src/time/parseTime.ts), except that a
 * record cannot be refused the way an API input is: a time the clocks jump over (spring forward) runs at
 * the moment of the jump, and `note` says so; a time that exists twice runs at its first occurrence.
 */
export function scheduleFor(
  config: DateFieldConfig,
  templateZone: string,
  record: Record<string, unknown>,
  prefix: string,
): RecordSchedule | null {
  const { dateRule: rule } = config;
  let zone = templateZone;
  if (rule.timezoneField) {
    const recordZone = readPath(record, rule.timezoneField);
    if (recordZone != null && recordZone !== '') {
      if (typeof recordZone !== 'string' || !isValidTimezone(recordZone)) {
        const where = `${prefix}.${rule.timezoneField}`;
        throw new ChronographError(
          'INVALID_TIMEZONE',
          `${where} ${JSON.stringify(recordZone)} is not an IANA time zone (e.g. Europe/Paris)`,
          { field: where },
        );
      }
      zone = recordZone;
    }
  }
  const date = parseRecordDate(readPath(record, config.sourceField), zone, `${prefix}.${config.sourceField}`);
  if (!date) return null;
  const start = place(date, rule.offset, rule.timeOfDay, zone);
  return {
    startTime: new Date(start.at),
    endTime: rule.endOffset ? new Date(place(date, rule.endOffset, null, zone).at) : null,
    timezone: zone,
    date: DateTime.fromMillis(date.at, { zone }).toISO()!,
    note: start.note,
  };
}

/** The date shifted by `offset` (DAYS: calendar days of wall-clock time; HOURS, MINUTES: real time), at `timeOfDay`. */
function place(date: RecordDate, offset: DateOffset, timeOfDay: string | null, zone: string): { at: number; note: string | null } {
  const amount = offset.direction === 'BEFORE' ? -offset.amount : offset.amount;
  if (amount === 0 && !timeOfDay) return { at: date.at, note: date.note };
  if (offset.unit === 'DAYS') return wallClock(atTimeOfDay(date.local + amount * DAY_MS, timeOfDay), zone);
  const at = date.at + amount * (offset.unit === 'HOURS' ? HOUR_MS : MINUTE_MS);
  return timeOfDay ? wallClock(atTimeOfDay(TimeZone.get(zone).local(at), timeOfDay), zone) : { at, note: null };
}

function atTimeOfDay(local: number, timeOfDay: string | null): number {
  if (!timeOfDay) return local;
  const [hour, minute, second] = timeOfDay.split(':').map(Number);
  return Math.floor(local / DAY_MS) * DAY_MS + hour! * HOUR_MS + minute! * MINUTE_MS + (second ?? 0) * 1000;
}

/** A record's wall-clock time as an instant: never refused; a DST decision is noted. */
function wallClock(local: number, zone: string): { at: number; note: string | null } {
  const resolved = wallClockInstant(local, zone);
  return { at: resolved.at, note: resolved.kind === 'single' ? null : resolved.note };
}

/** A record's date: the instant, and its wall-clock time in the zone (what calendar days and timeOfDay move). */
export interface RecordDate {
  at: number;
  /** Local milliseconds (the wall-clock date and time read as UTC); for a wall-clock value, as written. */
  local: number;
  note: string | null;
}

/**
 * A record's date value: a Date, epoch milliseconds, `2030-03-10` (midnight in `zone`), ISO 8601 with or
 * without an offset, or `2030-03-10 09:00:00` (wall clock in `zone`). Empty (null, undefined, "") is null.
 */
export function parseRecordDate(value: unknown, zone: string, field: string): RecordDate | null {
  if (value === null || value === undefined || value === '') return null;
  const bad = (why: string | null) =>
    badInput(
      `${field} ${JSON.stringify(value)} is not a date${why ? ` (${why})` : ''}; use ISO 8601 such as 2030-03-10 or 2030-03-10T09:00:00Z`,
      field,
    );
  let date: RecordDate;
  if (value instanceof Date || (typeof value === 'number' && Number.isFinite(value))) {
    const at = value instanceof Date ? value.getTime() : value;
    if (Number.isNaN(at)) throw bad('an invalid Date');
    date = { at, local: TimeZone.get(zone).local(at), note: null };
  } else if (typeof value === 'string') {
    const read = readDateTime(value.trim());
    if (read.kind === 'invalid') throw bad(read.why);
    if (read.kind === 'instant') date = { at: read.at, local: TimeZone.get(zone).local(read.at), note: null };
    else date = { ...wallClock(read.local, zone), local: read.local };
  } else {
    throw badInput(`${field} must be a date (a string such as 2030-03-10 or 2030-03-10T09:00:00Z), not ${typeof value}`, field);
  }
  const year = new Date(date.local).getUTCFullYear();
  if (!(year >= 1970 && year <= 9999)) throw badInput(`${field} ${JSON.stringify(value)} is outside the years 1970-9999`, field);
  return date;
}
