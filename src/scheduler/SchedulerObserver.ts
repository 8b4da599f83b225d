import type { ClaimedTask, Completion } from './sql.js';

/**
 * What the scheduler reports as it works, for metrics. Calls are synchronous and must be cheap; an
 * observer that throws is logged and otherwise ignored, so it can never stop the scheduler.
 */
export interface SchedulerObserver {
  /** Tasks this instance claimed, one new attempt each; lateness is `claimedAt - nextRunAt`. */
  claimed(tasks: readonly ClaimedTask[]): void;
  /** Tasks whose attempt this instance ended because their worker's lease expired (they retry later, or fail). */
  recovered(tasks: readonly { queue: string }[]): void;
  /** An attempt's end was recorded (not called when its result was discarded or the task was handed back). */
  completed(task: ClaimedTask, outcome: { runStatus: Completion['runStatus']; durationMs: number }): void;
}
