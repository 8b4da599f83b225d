import { ChronographError } from '../../errors.js';
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

/** previewSchedule's cost: `count` times its selection, plus PREVIEW_YEAR_COST per year its runs cover. */
function previewCost(args: { input?: { cronExpression?: string | null; repeatType?: string | null } | null; count?: number | null }) {
  const count = typeof args.count === 'number' && args.count >= 0 ? args.count : 10;
  const expression = args.input?.cronExpression;
  let years = 0;
  if (expression && (args.input?.repeatType ?? 'CRON') === 'CRON') {
    try {
      // A list never looks further than UPCOMING_HORIZON_YEARS (time/schedule.ts), so neither does its cost.
      years = CronExpression.parse(expression).yearsCovered(count, UPCOMING_HORIZON_YEARS);
    } catch (error) {
      if (!(error instanceof ChronographError)) throw error; // refused when it runs, with its code
    }
  }
  return { field: 1 + Math.ceil(years * PREVIEW_YEAR_COST), multiplier: count };
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
    description:
      'The next `count` (1-1000) runs: nextRunAt, then the schedule within endTime and maxRuns, over the next 100 years at most. Empty for a paused or finished task.',
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
    resolve: (task, args, ctx) => ctx.taskSvc.upcomingRuns(task, args.count ?? 5),
  }),
);
