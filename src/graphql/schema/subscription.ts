import { ChronographError, notFound } from '../../errors.js';
import { eventFromRow } from '../../events/eventRows.js';
import type { TaskEventRef } from '../../events/TaskEventFilter.js';
import { parseEventCursor, TaskEventFilter } from '../../events/TaskEventFilter.js';
import { isStreamEnd, isStreamProgress, type StreamItem } from '../../events/TaskEventSubscription.js';
import { assertIntRange } from '../../tasks/validate.js';
import { builder, type Context } from '../builder.js';
import { TaskEventTypeEnum, TaskSourceEnum, TaskStatusEnum } from './enums.js';

const TaskEventFilterInput = builder.inputType('TaskEventFilter', {
  description: 'Which status changes to receive; every field narrows, an omitted one matches all.',
  fields: (t) => ({
    taskId: t.id({ description: 'Only this task.' }),
    fullName: t.string({ description: 'Only tasks of this template, e.g. tasks.DataBackup.' }),
    funcName: t.string({ description: 'Only tasks running this handler.' }),
    source: t.field({ type: TaskSourceEnum }),
    statuses: t.field({ type: [TaskStatusEnum], description: 'Only changes to any of these statuses (toStatus).' }),
    types: t.field({ type: [TaskEventTypeEnum] }),
  }),
});

const END_MESSAGES = {
  SUBSCRIBER_TOO_SLOW:
    'This subscription fell too far behind and was ended; subscribe again with after: lastCursor to resume without a gap',
  SHUTTING_DOWN: 'This Chronograph instance is shutting down; subscribe again with after: lastCursor to resume without a gap',
  UNAUTHENTICATED:
    'The credential of this subscription was revoked or has expired; subscribe again with a valid one (after: lastCursor resumes without a gap)',
  CURSOR_EXPIRED:
    'Events this subscription was replaying were pruned meanwhile (history retention); subscribe again with after: oldestCursor, or without after',
} as const;

/** What taskStatusChanged and taskEventFeed share: the checks of `after`, then the subscription, held by the credential. */
async function subscribe(
  args: { filter?: Parameters<typeof TaskEventFilter.parse>[1]; after?: string | null },
  ctx: Context,
  progressMs?: number,
) {
  const filter = TaskEventFilter.parse(ctx.tenantId, args.filter);
  const after = parseEventCursor(args.after);
  if (after !== undefined) {
    // A cursor this database never gave (another database's, one restored from a backup older than
    // the cursor): live events would be delivered only once their ids passed it, all others dropped
    // without a word.
    if (after > (await ctx.taskEvents.newestEventId()))
      throw new ChronographError(
        'BAD_USER_INPUT',
        `after is a cursor beyond the newest event of this database; resume from a cursor it gave, or without after`,
        {
          field: 'after',
        },
      );
    // Events up to here were pruned: resuming from before it would skip them without saying so.
    const pruned = await ctx.taskEvents.prunedThrough(ctx.tenantId);
    if (pruned != null && after < pruned) {
      throw new ChronographError(
        'CURSOR_EXPIRED',
        `Events up to ${pruned} were pruned (history retention); resume from ${pruned}, or without after`,
        {
          field: 'after',
          oldestCursor: pruned.toString(),
        },
      );
    }
  }
  // Held while the subscription is open: it ends (UNAUTHENTICATED) when its credential is revoked or expires.
  const lease = ctx.credentials.watch(ctx.identity);
  try {
    return await ctx.taskEvents.subscribe(filter, after, lease, progressMs);
  } catch (error) {
    lease.release();
    throw error;
  }
}

/** A stream's end, handed to the client as the subscription's last result: an error with where to resume. */
function endError(item: StreamItem): ChronographError | undefined {
  if (!isStreamEnd(item)) return undefined;
  return new ChronographError(item.end, END_MESSAGES[item.end], {
    lastCursor: item.lastCursor,
    ...(item.oldestCursor !== undefined && { oldestCursor: item.oldestCursor }),
  });
}

/**
 * The stream carries the event's and its task's columns; a selection reaching further (the run, the
 * template, argDict) reads the event here, once for all who selected the same.
 */
async function resolveEvent(query: unknown, item: TaskEventRef, ctx: Context) {
  // Usually the columns the stream read with the event are all that is selected: no read at all.
  const fromRow = item.row && eventFromRow(item.row, query);
  if (fromRow) return fromRow as never;
  const event = await ctx.taskEvents.readShared(item.id, query, () =>
    ctx.sharedPrisma.taskEvent.findUnique({ ...(query as object), where: { id: item.id } }),
  );
  if (!event) throw notFound('TaskEvent (deleted with its task)', item.id.toString());
  return event;
}

/** One item of taskEventFeed: an event, or (event null) the subscription's progress. */
interface FeedItem {
  cursor: string;
  event: TaskEventRef | null;
}

const TaskEventFeedItem = builder.objectRef<FeedItem>('TaskEventFeedItem').implement({
  description:
    'One item of taskEventFeed. Keep `cursor` and resume with taskEventFeed(after: cursor): every event up to it that the filter matches has been delivered.',
  fields: (t) => ({
    cursor: t.string({
      description: "The event's cursor, or for a progress item (event null) how far the subscription has looked through the stream.",
      resolve: (item) => item.cursor,
    }),
    progress: t.boolean({
      description:
        'True for a progress item, which carries no event; false for an event, even one that could not be read (`event` null with an error).',
      resolve: (item) => item.event === null,
    }),
    event: t.prismaField({
      type: 'TaskEvent',
      nullable: true,
      description:
        'The status change; null for a progress item (`progress` true). An event that cannot be read (deleted with its task meanwhile) is null too, with `progress` false and an error at this path.',
      resolve: (query, item, _args, ctx) => (item.event ? resolveEvent(query, item.event, ctx) : null),
    }),
  }),
});

const MAX_PROGRESS_SECONDS = 3600;
const DEFAULT_PROGRESS_SECONDS = 30;

builder.subscriptionFields((t) => ({
  taskStatusChanged: t.prismaField({
    authScopes: { viewer: true },
    type: 'TaskEvent',
    description:
      "Every status change of the caller's tenant that matches `filter`, from any instance, in event order (so each task's changes arrive in order). " +
      'With `after` (a TaskEvent cursor), stored events after it come first, then live ones, with no gap and no duplicate between them; ' +
      'without it, changes committed from now on. A subscriber that falls too far behind gets a SUBSCRIBER_TOO_SLOW error whose lastCursor resumes it.',
    args: {
      filter: t.arg({ type: TaskEventFilterInput }),
      after: t.arg.string({ description: 'Resume after this event cursor (TaskEvent.cursor).' }),
    },
    extensions: { paging: { cursor: 'event' } },
    subscribe: (_root, args, ctx) => subscribe(args, ctx),
    resolve: (query, item, _args, ctx) => {
      const end = endError(item);
      if (end) throw end;
      return resolveEvent(query, item as TaskEventRef, ctx);
    },
  }),
  taskEventFeed: t.field({
    authScopes: { viewer: true },
    type: TaskEventFeedItem,
    description:
      'taskStatusChanged with progress: the same events, each as an item with its cursor, and while none matches, an item without an event every `progressSeconds` ' +
      'whose cursor is how far the subscription has looked through the stream. A client that keeps the last cursor it got resumes past the events its filter ' +
      'passed over, so a narrow filter is not refused CURSOR_EXPIRED after a dropped connection because history retention pruned its last matching event.',
    args: {
      filter: t.arg({ type: TaskEventFilterInput }),
      after: t.arg.string({ description: "Resume after this cursor (an item's cursor, or TaskEvent.cursor)." }),
      progressSeconds: t.arg.int({
        description: `At most one progress item per this many seconds, 1 to ${MAX_PROGRESS_SECONDS}; only when events were passed over since the last item.`,
        defaultValue: DEFAULT_PROGRESS_SECONDS,
      }),
    },
    extensions: { paging: { cursor: 'event' } },
    subscribe: (_root, args, ctx) =>
      subscribe(
        args,
        ctx,
        assertIntRange(args.progressSeconds ?? DEFAULT_PROGRESS_SECONDS, 'progressSeconds', 1, MAX_PROGRESS_SECONDS) * 1000,
      ),
    resolve: (item: StreamItem): FeedItem => {
      const end = endError(item);
      if (end) throw end;
      if (isStreamProgress(item)) return { cursor: item.progress, event: null };
      const event = item as TaskEventRef;
      return { cursor: event.id.toString(), event };
    },
  }),
}));
