import { badInput, ChronographError } from '../errors.js';
import { RepeatType } from '../generated/prisma/client.js';
import { assertIntRange, assertText, isStorableDate, MAX_LABEL_LENGTH } from '../tasks/validate.js';
import { CronExpression, MAX_CRON_LENGTH } from './CronExpression.js';
import { assertTimezone, parseTime } from './parseTime.js';
import { formatClock, formatLocal, formatOffset, TimeZone, type Transition } from './TimeZone.js';

/** What decides when a task runs; the columns of the same names on `task`. */
export interface Schedule {
  repeatType: RepeatType;
  cronExpression: string | null;
  intervalSeconds: number | null;
  timezone: string;
}

/** One run time as previews show it: the instant, its wall-clock time and offset in the task's zone. */
export interface ScheduledTime {
  at: Date;
  /** Wall-clock time in the schedule's zone, `2030-03-10T03:00:00`. */
  local: string;
  /** UTC offset in effect then, `-04:00`. */
  offset: string;
  /** Set when a DST change decided this time, e.g. "spring-forward: moved to 03:00 (02:30 does not exist)". */
  note: string | null;
}

interface Found {
  at: number;
  /** Set when `at` is the jump of a spring-forward gap that held an occurrence (the first one, local ms). */
  gap?: { transition: Transition; scheduled: number };
}

/**
 * The one place that says when a schedule fires next: the first occurrence strictly after `after`.
 * CRON: by the expression in the schedule's zone, with the DST rules below. INTERVAL: on the grid
 * `anchor + k·interval` of real time (DST does not move it). ONCE and DATE_FIELD: null (they have one
 * time, set when they are created). The scheduler, createTimerTask, rescheduleTask, misfire handling,
 * ALLOW-overlap firing and the previews all come here.
 */
export function nextOccurrence(schedule: Schedule, after: Date, anchor: Date = after): Date | null {
  const found = find(schedule, after.getTime(), anchor.getTime());
  return found ? new Date(found.at) : null;
}

/** The first occurrence at or after `from` (a recurring task's first run); `from` itself for other repeat types. */
export function firstOccurrence(schedule: Schedule, from: Date): Date | null {
  if (schedule.repeatType !== RepeatType.CRON) return from;
  return nextOccurrence(schedule, new Date(from.getTime() - 1));
}

function find(schedule: Schedule, after: number, anchor: number): Found | null {
  switch (schedule.repeatType) {
    case RepeatType.CRON: {
      const cron = storedCron(schedule);
      return cron && nextCron(cron, TimeZone.get(schedule.timezone), after);
    }
    case RepeatType.INTERVAL: {
      const step = schedule.intervalSeconds! * 1000;
      const k = Math.max(1, Math.floor((after - anchor) / step) + 1);
      return { at: anchor + k * step };
    }
    default:
      return null;
  }
}

/**
 * The cron expression of a stored schedule. New schedules are validated before they are stored; one
 * that no longer reads (stored by an older version with other rules) has no next occurrence, so its
 * task ends instead of failing every time the scheduler looks at it.
 */
function storedCron(schedule: Schedule): CronExpression | null {
  try {
    return CronExpression.parse(schedule.cronExpression ?? '');
  } catch (error) {
    if (error instanceof ChronographError) return null;
    throw error;
  }
}

/**
 * DST rules, the same for every zone (whole-hour and half-hour shifts alike), applied on top of croner,
 * which only ever matches local times (see CronExpression):
 *
 * - Local times the clocks jump over (spring forward) do not exist. If the expression matches any of
 *   them, the job runs once, at the moment of the jump (`30 2 * * *` in New York runs at 03:00 EDT).
 * - Local times the clocks go back over (fall back) exist twice. A fixed-time job (one second, one
 *   minute, not every hour: `30 1 * * *`) runs once, at the first occurrence. Any other job (several
 *   times an hour, or every hour: `*\/15 * * * *`, `0 * * * *`) runs at every real instant whose local
 *   time matches, in both copies, so its runs are never further apart than its period.
 *
 * The search walks the stretches of constant UTC offset from `after`, asking croner for the next local
 * match in each; a stretch ends at a transition, where the gap (if any) is checked.
 */
function nextCron(cron: CronExpression, zone: TimeZone, after: number): Found | null {
  let from = after + 1; // inclusive
  for (let stretch = 0; stretch < 100_000; stretch++) {
    const [jump] = zone.transitionsBetween(from - 1, from);
    if (jump && jump.offsetAfter > jump.offsetBefore) {
      const inGap = cron.nextLocal(jump.at + jump.offsetBefore - 1);
      if (inGap !== null && inGap < jump.at + jump.offsetAfter) return { at: from, gap: { transition: jump, scheduled: inGap } };
    }
    const offset = zone.offsetMs(from);
    let afterLocal = from + offset - 1;
    if (cron.fixedTime) {
      // In the second copy of a repeated stretch a fixed-time job has already run: go on after it.
      const back = zone.transitionBefore(from);
      if (back && back.offsetAfter < back.offsetBefore) afterLocal = Math.max(afterLocal, back.at + back.offsetBefore - 1);
    }
    const local = cron.nextLocal(afterLocal);
    if (local === null) return null;
    const candidate = local - offset;
    // The stretch ends at the next transition; the search goes on from there (its gap is checked above).
    const [transition] = zone.transitionsBetween(from, candidate);
    if (!transition) return { at: candidate };
    from = transition.at;
  }
  throw new Error(`no occurrence of ${cron.expression} found within 100000 offset changes in ${zone.name}`);
}

/** `at` as previews show it, with the DST note that applies when `at` is an occurrence of the schedule. */
export function scheduledTime(schedule: Schedule, at: Date): ScheduledTime {
  const zone = TimeZone.get(schedule.timezone);
  const ms = at.getTime();
  const offset = zone.offsetMs(ms);
  let note: string | null = null;
  const cron = schedule.repeatType === RepeatType.CRON ? storedCron(schedule) : null;
  if (cron) {
    const found = nextCron(cron, zone, ms - 1);
    if (found?.at === ms) {
      if (found.gap) {
        const { transition, scheduled } = found.gap;
        note = `spring-forward: moved to ${formatClock(transition.at + transition.offsetAfter)} (${formatClock(scheduled)} does not exist)`;
      } else {
        const resolved = zone.resolve(ms + offset);
        if (resolved.kind === 'repeated') note = `repeated hour: ${resolved.first === ms ? 'first' : 'second'} occurrence`;
      }
    }
  }
  return { at, local: formatLocal(ms + offset), offset: formatOffset(offset), note };
}

/**
 * The longest cron expression taken (a task's is stored and shown with it): room for long lists
 * (0,1,2,…,59 spelled out in both the seconds and the minutes field is 339 characters), not for megabytes.
 */

/** A schedule as clients give it (createTimerTask, previewSchedule), its defaults already applied. */
export interface ScheduleInput {
  repeatType: RepeatType;
  cronExpression?: string | null;
  intervalSeconds?: number | null;
  timezone: string;
  startTime?: string | null;
  endTime?: string | null;
  maxRuns?: number | null;
  /**
   * Where `repeatType` came from, for the error that refuses a field of another repeat type, e.g.
   * "template tasks.Echo gives repeatType ONCE". Default: "repeatType is <repeatType>".
   */
  repeatTypeFrom?: string;
}

/** A validated schedule with its first run. */
export interface ResolvedSchedule extends Schedule {
  startTime: Date;
  endTime: Date | null;
  maxRuns: number | null;
  /** The first run: startTime, or for CRON its first occurrence at or after startTime. */
  nextRunAt: Date;
  /** What DST decided about wall-clock startTime / endTime (for the task's CREATED event). */
  notes: string[];
}

/**
 * Checks a schedule and computes its first run; createTimerTask(s), updateTask and previewSchedule share
 * it, so they refuse the same input with the same codes: INVALID_TIMEZONE, INVALID_CRON, INVALID_START_TIME
 * (also for a wall-clock time in a DST gap), BAD_USER_INPUT (interval, maxRuns, endTime, DATE_FIELD).
 *
 * A cronExpression or intervalSeconds given is checked whatever the repeat type (a bad one is refused as
 * such), and refused when the repeat type does not use it (BAD_USER_INPUT naming it, and saying where the
 * repeat type came from): a field that does not apply is the caller's mistake, not something to drop. A
 * blank cronExpression counts as none. Callers pass only the defaults that apply (a CRON template's
 * cronExpression is not given to the INTERVAL task an input makes of it).
 */
export function resolveSchedule(input: ScheduleInput, now: Date): ResolvedSchedule {
  const { repeatType, timezone } = input;
  // Lengths first: the checks below name the text they refuse.
  assertText(timezone, 'timezone', MAX_LABEL_LENGTH);
  if (input.startTime != null) assertText(input.startTime, 'startTime', MAX_LABEL_LENGTH);
  if (input.endTime != null) assertText(input.endTime, 'endTime', MAX_LABEL_LENGTH);
  if (input.cronExpression != null) assertText(input.cronExpression, 'cronExpression', MAX_CRON_LENGTH);
  assertTimezone(timezone);
  if (repeatType === RepeatType.DATE_FIELD) {
    throw badInput('DATE_FIELD tasks are created by saveDateFieldTask, not createTimerTask', 'repeatType');
  }
  const notFor = (field: 'cronExpression' | 'intervalSeconds', type: RepeatType) =>
    badInput(
      `${field} applies only to ${type} tasks, and ${input.repeatTypeFrom ?? `repeatType is ${repeatType}`}; give repeatType: ${type} to make it a ${type} task, or leave ${field} out`,
      field,
    );
  const cronExpression = input.cronExpression?.trim() || null;
  if (cronExpression !== null) {
    CronExpression.parse(cronExpression);
    if (repeatType !== RepeatType.CRON) throw notFor('cronExpression', RepeatType.CRON);
  } else if (repeatType === RepeatType.CRON) {
    throw new ChronographError('INVALID_CRON', 'A CRON task needs a cronExpression', { field: 'cronExpression' });
  }
  const intervalSeconds = input.intervalSeconds ?? null;
  if (intervalSeconds !== null) {
    assertIntRange(intervalSeconds, 'intervalSeconds', 1, 10 * 365 * 86_400);
    if (repeatType !== RepeatType.INTERVAL) throw notFor('intervalSeconds', RepeatType.INTERVAL);
  } else if (repeatType === RepeatType.INTERVAL) {
    throw badInput('An INTERVAL task needs intervalSeconds', 'intervalSeconds');
  }
  const notes: string[] = [];
  let startTime = now;
  if (input.startTime != null) {
    const start = parseTime(input.startTime, timezone, 'startTime');
    startTime = start.at;
    if (start.note) notes.push(start.note);
  } else if (repeatType === RepeatType.ONCE) {
    throw new ChronographError('INVALID_START_TIME', 'startTime is required for a one-off task', { field: 'startTime' });
  }
  let endTime: Date | null = null;
  if (input.endTime != null) {
    const end = parseTime(input.endTime, timezone, 'endTime');
    endTime = end.at;
    if (end.note) notes.push(end.note);
    if (endTime <= startTime) throw badInput('endTime must be after startTime', 'endTime');
  }
  const maxRuns = input.maxRuns != null ? assertIntRange(input.maxRuns, 'maxRuns', 1, 2_147_483_647) : null;
  const schedule = { repeatType, cronExpression, intervalSeconds, timezone };
  const nextRunAt = firstOccurrence(schedule, startTime);
  if (!nextRunAt)
    throw new ChronographError('INVALID_START_TIME', `${cronExpression} has no occurrence after startTime before the year 3000`, {
      field: 'startTime',
    });
  if (endTime && nextRunAt > endTime) throw badInput('The schedule has no occurrence before endTime', 'endTime');
  // Not `{ ...schedule, startTime, … }`: fields after a spread cost ~1 µs each on Node 20 (recurrence.ts), per created task.
  return { repeatType, cronExpression, intervalSeconds, timezone, startTime, endTime, maxRuns, nextRunAt, notes };
}

/** Where a list of upcoming runs starts and what bounds it. */
export interface UpcomingFrom {
  /** The next run. */
  first: Date;
  /** Occurrences after the first continue after this instant (default: the first run). */
  continueAfter?: Date;
  endTime: Date | null;
  /** Runs left (maxRuns minus runs done), or null for no limit. */
  runsLeft: number | null;
  count: number;
}

/**
 * How far ahead a list of upcoming runs looks. Each next run is bounded (15 years at most: see
 * CronExpression), but `count` of them were not: Task.upcomingRuns(count: 1000) over tasks with a yearly
 * cron walked a thousand years of the zone's offsets per task, a VIEWER's way to hold the instance.
 */
export const UPCOMING_HORIZON_YEARS = 100;

/**
 * The CRON lists walked most recently, by everything that decides them but how many runs they hold.
 * A list of a thousand runs walks the zone for 20-40 ms, and the same list is asked for again and again:
 * by every alias of `upcomingRuns` in a query, and by every subscriber whose document selects it on the
 * task of an event (documents that differ do not share an execution). Kept, a list answers any shorter
 * one, and any longer one when it ended before its own limit. Only CRON lists: an INTERVAL list steps
 * by addition.
 */
const recentLists = new Map<string, { runs: ScheduledTime[]; limit: number }>();
const RECENT_LISTS = 64;

/**
 * What decides a CRON list besides its length. `continueAfter` counts to the second: cron times are whole
 * seconds and each next one is looked for strictly after `after`, so any instant of one second finds the
 * same next time as the second's start (callers pass `now`, different for every call).
 */
function listKey(schedule: Schedule, from: UpcomingFrom): string {
  const after = from.continueAfter && from.continueAfter > from.first ? Math.floor(from.continueAfter.getTime() / 1000) : null;
  return JSON.stringify([schedule.cronExpression, schedule.timezone, from.first.getTime(), after, from.endTime?.getTime() ?? null]);
}

/** The next `count` runs of a schedule from `first`, within its endTime and run limit, and a century. */
export function upcomingRuns(schedule: Schedule, from: UpcomingFrom): ScheduledTime[] {
  const limit = Math.min(from.count, from.runsLeft ?? Infinity);
  if (schedule.repeatType !== RepeatType.CRON) return walkRuns(schedule, from, limit);
  const key = listKey(schedule, from);
  let kept = recentLists.get(key);
  recentLists.delete(key);
  if (!kept || (kept.limit < limit && kept.runs.length === kept.limit)) kept = { runs: walkRuns(schedule, from, limit), limit };
  recentLists.set(key, kept);
  if (recentLists.size > RECENT_LISTS) recentLists.delete(recentLists.keys().next().value!);
  // Copies: the caller's objects are its own (TaskSvc is public, to handlers and embedders), and an edit
  // of one, or of its Date, must not change what every later caller of the same list gets.
  return kept.runs.slice(0, limit).map(copyRun);
}

/** About 60 µs for a thousand runs, against 20-40 ms for walking them. */
function copyRun(run: ScheduledTime): ScheduledTime {
  return { at: new Date(run.at.getTime()), local: run.local, offset: run.offset, note: run.note };
}

function walkRuns(schedule: Schedule, from: UpcomingFrom, limit: number): ScheduledTime[] {
  const runs: ScheduledTime[] = [];
  // Not the caller's own Date (a kept list outlives the call, and the caller may change its Date).
  let at: Date | null = new Date(from.first.getTime());
  let after = from.continueAfter && from.continueAfter > from.first ? from.continueAfter : from.first;
  const horizon = new Date(from.first);
  horizon.setUTCFullYear(horizon.getUTCFullYear() + UPCOMING_HORIZON_YEARS);
  // Nor past what a DateTime can be (years 1-9999): a preview from 9990 listed runs in the year 10009.
  while (at && runs.length < limit && (!from.endTime || at <= from.endTime) && at <= horizon && isStorableDate(at)) {
    runs.push(scheduledTime(schedule, at));
    at = nextOccurrence(schedule, after, at);
    if (at) after = at;
  }
  return runs;
}
