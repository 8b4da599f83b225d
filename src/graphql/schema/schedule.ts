import { ChronographError } from '../../errors.js';
import { RepeatType } from '../../generated/prisma/client.js';
import { UPCOMING_STATUSES, type UpcomingTask } from '../../tasks/TaskSvc.js';
import { CronExpression } from '../../time/CronExpression.js';
import { type ScheduledTime as ScheduledTimeShape, UPCOMING_HORIZON_YEARS } from '../../time/schedule.js';
import { builder } from '../builder.js';
import { RepeatTypeEnum } from './enums.js';

const ScheduledTime = builder.objectRef<ScheduledTimeShape>('ScheduledTime').implement({
  description: "One run time of a schedule, in UTC and in the schedule's time zone.",
  fields: (t) => ({
    at: t.expose('at', { type: 'DateTime' }),
    local: t.exposeString('local', { description: "Wall-clock time in the schedule's zone, e.g. 2030-03-10T03:00:00." }),
    offset: t.exposeString('offset', { description: 'UTC offset in effect at that moment, e.g. -04:00.' }),
    note: t.exposeString('note', {
      nullable: true,
      description:
        'Why a DST change decided this time, e.g. "spring-forward: moved to 03:00 (02:30 does not exist)" or "repeated hour: first occurrence".',
    }),
  }),
});

const ScheduleInput = builder.inputType('ScheduleInput', {
  description: 'A schedule as createTimerTask takes it (see TimerTaskInput), checked the same way.',
  fields: (t) => ({
    repeatType: t.field({
      type: RepeatTypeEnum,
      description: 'Default: CRON with a cronExpression, INTERVAL with intervalSeconds, else ONCE.',
    }),
    cronExpression: t.string(),
    intervalSeconds: t.int(),
    timezone: t.string({ description: 'IANA time zone; default DEFAULT_TIMEZONE.' }),
    startTime: t.string({
      description: 'First possible run; a CRON schedule starts at its first occurrence at or after it. Default: now.',
    }),
    endTime: t.string(),
    maxRuns: t.int(),
  }),
});

/**
 * What previewing one year of a CRON schedule costs, in query-cost units (a plain field is 1): the DST walk
 * reads the zone's offset every 6 hours of the stretch its runs cover (about 1,500 reads a year the zone
 * has not seen yet), so a preview costs with the years it covers, not only with `count`. At the default
 * MAX_QUERY_COST (50,000) one query previews about a century: `count: 1000` of a daily job (3 years)
 * costs about 5,500, of a yearly one (1,000 years) 500,000 and is refused.
 */
export const PREVIEW_YEAR_COST = 500;

/** The most runs a list of run times gives (previewSchedule, Task.upcomingRuns); a larger `count` is refused. */
const MAX_RUNS_LISTED = 1000;

/**
 * What listing `count` runs of a cron expression costs beyond its fields: PREVIEW_YEAR_COST per year
 * the runs cover (from 2000-01-01: the walk's length, priced the same for every start and zone), 0 for
 * an expression that does not read (refused, or ending the list, when it runs). Only for a count a list
 * takes: the years are walked match by match (CronExpression.yearsCovered), and a `count` of a billion
 * (refused by the cost, but measured first) of `* * * * * *` took as many croner steps.
 */
function cronListCost(expression: string, count: number): number {
  if (!Number.isInteger(count) || count < 1 || count > MAX_RUNS_LISTED) return 0;
  try {
    // A list never looks further than UPCOMING_HORIZON_YEARS (time/schedule.ts), so neither does its cost.
    return Math.ceil(CronExpression.parse(expression).yearsCovered(count, UPCOMING_HORIZON_YEARS) * PREVIEW_YEAR_COST);
  } catch (error) {
    if (!(error instanceof ChronographError)) throw error;
    return 0;
  }
}

/** previewSchedule's cost: `count` times its selection, plus PREVIEW_YEAR_COST per year its runs cover. */
function previewCost(args: { input?: { cronExpression?: string | null; repeatType?: string | null } | null; count?: number | null }) {
  const count = typeof args.count === 'number' && args.count >= 0 ? args.count : 10;
  const expression = args.input?.cronExpression;
  // An expression that does not read is refused when the preview runs, with its code.
  const years = expression && (args.input?.repeatType ?? 'CRON') === 'CRON' ? cronListCost(expression, count) : 0;
  return { field: 1 + years, multiplier: count };
}

/**
 * What `Task.upcomingRuns(count)` charges the request's QueryBudget before it lists anything: the task's
 * own schedule decides how much of its zone the list walks, which the query's measured cost (by `count`)
 * cannot see. A CRON task is priced as previewSchedule is (cronListCost) for the runs it can list
 * (`count`, at most what maxRuns leaves); every other task nothing: an INTERVAL list steps in real time
 * and reads one offset per run (its fields' cost already counts them), ONCE and DATE_FIELD tasks have one
 * run, a paused or finished task none. An upper bound, as the measured cost is: endTime is not read.
 */
export function upcomingRunsCost(task: UpcomingTask, count: number): number {
  if (task.repeatType !== RepeatType.CRON || !task.cronExpression || !task.nextRunAt || !UPCOMING_STATUSES.includes(task.status)) return 0;
  // What maxRuns leaves (one more than a RUNNING task lists; none left lists none and costs nothing).
  return cronListCost(task.cronExpression, task.maxRuns == null ? count : Math.min(count, task.maxRuns - task.runCount));
}

builder.queryFields((t) => ({
  previewSchedule: t.field({
    authScopes: { viewer: true },
    type: [ScheduledTime],
    description:
      'The next `count` (1-1000) run times of a schedule, computed exactly as the scheduler will, without creating anything. ' +
      'Bad input is refused with the codes createTimerTask uses. Its query cost grows with the years the runs cover ' +
      '(500 a year: about a century per query at the default MAX_QUERY_COST), so `count: 1000` of a yearly schedule is refused.',
    complexity: (args) => previewCost(args),
    args: {
      input: t.arg({ type: ScheduleInput, required: true }),
      count: t.arg.int({ defaultValue: 10 }),
    },
    resolve: (_root, args, ctx) => ctx.taskSvc.previewSchedule(args.input, args.count ?? 10),
  }),
}));

builder.prismaObjectField('Task', 'upcomingRuns', (t) =>
  t.field({
    type: [ScheduledTime],
    // Null where it is refused: the rest of a page (and of a subscription's event) still comes.
    nullable: true,
    description:
      'The next `count` (1-1000) runs: nextRunAt, then the schedule within endTime and maxRuns, over the next 100 years at most. Empty for a paused or finished task. ' +
      "A CRON task's list costs what previewSchedule costs for its expression (500 a year the runs cover), taken from what the query's cost " +
      'left of MAX_QUERY_COST: once the lists of a query take more, this field and every later one are null with a QUERY_TOO_COMPLEX error (field: count); the rest of the answer comes.',
    args: { count: t.arg.int({ defaultValue: 5 }) },
    select: {
      status: true,
      nextRunAt: true,
      runCount: true,
      maxRuns: true,
      endTime: true,
      misfirePolicy: true,
      repeatType: true,
      cronExpression: true,
      intervalSeconds: true,
      timezone: true,
    },
    resolve: (task, args, ctx) => {
      const count = args.count ?? 5;
      ctx.queryBudget.charge(
        upcomingRunsCost(task, count),
        'count',
        'Task.upcomingRuns costs 500 a year its runs cover (as previewSchedule): ask fewer runs, or the runs of fewer yearly or monthly tasks at once.',
      );
      return ctx.taskSvc.upcomingRuns(task, count);
    },
  }),
);
