import { ChronographError, notFound } from '../../errors.js';
import { eventFromRow } from '../../events/eventRows.js';
import { parseEventCursor, TaskEventFilter } from '../../events/TaskEventFilter.js';
import { isStreamEnd } from '../../events/TaskEventSubscription.js';
import { builder } from '../builder.js';
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
    subscribe: async (_root, args, ctx) => {
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
        return await ctx.taskEvents.subscribe(filter, after, lease);
      } catch (error) {
        lease.release();
        throw error;
      }
    },
    // The stream carries the event's and its task's columns; a selection reaching further (the run,
    // the template, argDict) reads the event here, once for all who selected the same.
    resolve: async (query, item, _args, ctx) => {
      if (isStreamEnd(item))
        throw new ChronographError(item.end, END_MESSAGES[item.end], {
          lastCursor: item.lastCursor,
          ...(item.oldestCursor !== undefined && { oldestCursor: item.oldestCursor }),
        });
      // Usually the columns the stream read with the event are all that is selected: no read at all.
      const fromRow = item.row && eventFromRow(item.row, query);
      if (fromRow) return fromRow as never;
      const event = await ctx.taskEvents.readShared(item.id, query, () =>
        ctx.prisma.taskEvent.findUnique({ ...query, where: { id: item.id } }),
      );
      if (!event) throw notFound('TaskEvent (deleted with its task)', item.id.toString());
      return event;
    },
  }),
}));
