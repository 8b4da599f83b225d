import { MisfirePolicy, OverlapPolicy, RepeatType } from '../generated/prisma/client.js';
import { nextOccurrence, type Schedule } from '../time/schedule.js';

/** What of a task decides its next run. */
export interface RecurringTask extends Schedule {
  misfirePolicy: MisfirePolicy;
  overlapPolicy: OverlapPolicy;
  endTime: Date | null;
  maxRuns: number | null;
}

/**
 * The occurrence that ended. A separate argument rather than fields spread onto the task: on Node 20's V8,
 * an object literal that spreads one object and then sets fields (`{ ...task, now }`) costs about 1 µs
 * per field set after the spread (a slow path), which the scheduler paid on every completion.
 */
export interface EndedOccurrence {
  /** The occurrence that just ran (ClaimedTask.scheduledFor: for a retry, the occurrence it retried). */
  scheduledFor: Date;
  runStartedAt: Date;
  now: Date;
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
export function nextRunAfter(task: RecurringTask, ended: EndedOccurrence): Date | null {
  if (task.repeatType === RepeatType.ONCE || task.repeatType === RepeatType.DATE_FIELD) return null;
  if (task.maxRuns != null && ended.runCount >= task.maxRuns) return null;
  const anchor = ended.scheduledFor;
  // Never at or before the occurrence that ran: `now` is this process' clock, and the database's, which
  // decided that the occurrence was due, may be ahead of it; from a clock behind by more than the run
  // took, "the first occurrence after now" was that same occurrence, due again at once and run twice.
  const now = new Date(Math.max(ended.now.getTime(), ended.scheduledFor.getTime()));
  let next: Date | null;
  if (task.misfirePolicy === MisfirePolicy.RUN_ALL) {
    next = nextOccurrence(task, ended.scheduledFor, anchor);
  } else {
    const firstDuringRun = nextOccurrence(task, ended.scheduledFor, anchor);
    const cameDueDuringRun = firstDuringRun != null && firstDuringRun <= now && firstDuringRun > ended.runStartedAt;
    next = task.overlapPolicy === OverlapPolicy.BUFFER_ONE && cameDueDuringRun ? now : nextOccurrence(task, now, anchor);
  }
  if (next && task.endTime && next > task.endTime) return null;
  return next;
}

/** Exponential backoff with equal jitter: half the delay is fixed, half random; capped at an hour. */
export function retryDelayMs(baseMs: number, attempt: number, random = Math.random): number {
  const delay = Math.min(3_600_000, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(delay / 2 + random() * (delay / 2));
}
