import { MisfirePolicy, OverlapPolicy, RepeatType } from '../generated/prisma/client.js';
import { nextCronOccurrence } from '../tasks/time.js';

export interface Schedule {
  repeatType: RepeatType;
  cronExpression: string | null;
  intervalSeconds: number | null;
  timezone: string;
}

/** The first occurrence of a recurring schedule strictly after `after`; null for one-off tasks. */
export function occurrenceAfter(schedule: Schedule, after: Date, anchor: Date): Date | null {
  switch (schedule.repeatType) {
    case RepeatType.CRON:
      return nextCronOccurrence(schedule.cronExpression!, schedule.timezone, after);
    case RepeatType.INTERVAL: {
      // Occurrences stay on the grid anchor + k·interval, so runs do not drift by their own duration.
      const step = schedule.intervalSeconds! * 1000;
      const k = Math.floor((after.getTime() - anchor.getTime()) / step) + 1;
      return new Date(anchor.getTime() + Math.max(k, 1) * step);
    }
    default:
      return null;
  }
}

export interface NextRunInput extends Schedule {
  /** The occurrence that just ran (the task's nextRunAt when it was claimed). */
  scheduledFor: Date;
  runStartedAt: Date;
  now: Date;
  misfirePolicy: MisfirePolicy;
  overlapPolicy: OverlapPolicy;
  endTime: Date | null;
  maxRuns: number | null;
  /** Runs completed including this one. */
  runCount: number;
}

/**
 * When a recurring task runs next after an occurrence finished, or null when its schedule is over.
 *
 * - Misfire RUN_ALL walks every occurrence after the one that ran, so missed ones run back to back.
 * - Otherwise occurrences that came due while the task was down or running are collapsed: overlap
 *   BUFFER_ONE runs once more right away if any came due during the run; SKIP (and the default
 *   RUN_ONCE misfire) continue with the first occurrence after now.
 */
export function nextRunAfter(input: NextRunInput): Date | null {
  if (input.repeatType === RepeatType.ONCE || input.repeatType === RepeatType.DATE_FIELD) return null;
  if (input.maxRuns != null && input.runCount >= input.maxRuns) return null;
  const anchor = input.scheduledFor;
  let next: Date | null;
  if (input.misfirePolicy === MisfirePolicy.RUN_ALL) {
    next = occurrenceAfter(input, input.scheduledFor, anchor);
  } else {
    const firstDuringRun = occurrenceAfter(input, input.scheduledFor, anchor);
    const cameDueDuringRun = firstDuringRun != null && firstDuringRun <= input.now && firstDuringRun > input.runStartedAt;
    next = input.overlapPolicy === OverlapPolicy.BUFFER_ONE && cameDueDuringRun ? input.now : occurrenceAfter(input, input.now, anchor);
  }
  if (next && input.endTime && next > input.endTime) return null;
  return next;
}

/** Exponential backoff with equal jitter: half the delay is fixed, half random; capped at an hour. */
export function retryDelayMs(baseMs: number, attempt: number, random = Math.random): number {
  const delay = Math.min(3_600_000, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(delay / 2 + random() * (delay / 2));
}
