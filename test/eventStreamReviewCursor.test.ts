import { afterEach, describe, expect, it } from 'vitest';
import { TaskEventFilter } from '../src/events/TaskEventFilter.js';
import { isStreamEnd, isTaskEvent, type StreamItem, type TaskEventSubscription } from '../src/events/TaskEventSubscription.js';
import { sseSubscribe } from './support/subscriptions.js';
import { backends, createTestApp, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const future = { fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00' };
const SUB = `subscription($after: String, $taskId: ID) { taskStatusChanged(after: $after, filter: { taskId: $taskId }) { cursor toStatus } }`;

function describeItem(item: StreamItem): string {
  if (isStreamEnd(item)) return `${item.end} ${item.lastCursor}${item.oldestCursor ? ` ${item.oldestCursor}` : ''}`;
  return isTaskEvent(item) ? String(item.id) : `progress ${item.progress}`;
}

/**
 * A narrowly filtered subscription examines many events it does not deliver. Where it says to resume
 * (the end message's lastCursor) is how far it has examined the stream, not only its last matching
 * event: that one may be long pruned by history retention while nothing matching was missed, and
 * resuming from it was refused with CURSOR_EXPIRED.
 */
describe.each(backends)('the cursor of a narrowly filtered subscription (%s)', (backend) => {
  let t: TestApp | undefined;
  const subs: TaskEventSubscription[] = [];
  afterEach(async () => {
    await Promise.all(subs.splice(0).map((s) => s.return()));
    await t?.close().catch(() => {});
    t = undefined;
  });

  async function lastEventOf(taskId: string): Promise<bigint> {
    return (await t!.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId }, orderBy: { id: 'desc' }, select: { id: true } })).id;
  }

  /** Finished tasks whose events the filter does not match; the id of the newest event. */
  async function unmatched(n: number): Promise<bigint> {
    const tasks = await t!.app.taskSvc.createTimerTasks(Array.from({ length: n }, () => future));
    for (const task of tasks) await t!.app.taskSvc.forcedEnd(task.id);
    return lastEventOf(tasks.at(-1)!.id);
  }

  /** Subscribes `filter` live, with a lease the test ends (UNAUTHENTICATED) to make the server end it. */
  async function subscribeLive(filter: TaskEventFilter) {
    const abort = new AbortController();
    const sub = await t!.app.taskEvents.subscribe(filter, undefined, { signal: abort.signal, release: () => {} });
    subs.push(sub);
    return { sub, end: () => abort.abort() };
  }

  async function drain(sub: TaskEventSubscription): Promise<string[]> {
    const got: string[] = [];
    for (;;) {
      const r = await sub.next();
      if (r.done) return got;
      got.push(describeItem(r.value));
    }
  }

  it('ends with the cursor of the last event it examined; resuming from it after unmatched events were pruned is no CURSOR_EXPIRED', async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    const app = t.app;
    const a = await app.taskSvc.createTimerTask(future);
    const { sub, end } = await subscribeLive(TaskEventFilter.parse('default', { taskId: a.id }));
    await app.taskSvc.pauseTask(a.id);
    const paused = await lastEventOf(a.id);
    const newest = await unmatched(5);
    await waitFor(() => BigInt(app.taskEvents.status().floor) >= newest, { what: 'the unmatched events to pass the stream' });
    end();
    expect(await drain(sub)).toEqual([String(paused), `UNAUTHENTICATED ${newest}`]);

    // Retention prunes everything so far, the matching event included: nothing matching was missed.
    await app.history.pruneBefore(new Date(Date.now() + 60_000), 'default');
    const pruned = (await app.db.prisma.tenant.findUniqueOrThrow({ where: { id: 'default' } })).eventsPrunedThrough!;
    expect(pruned).toBeGreaterThan(paused);
    const resumed = await sseSubscribe(app, SUB, { after: String(newest), taskId: a.id });
    await app.taskSvc.resumeTask(a.id);
    const first = (await resumed.results.next()).value!;
    await resumed.close();
    expect(first.errors).toBeUndefined();
    expect(first.data.taskStatusChanged.cursor).toBe(String(await lastEventOf(a.id)));
  });

  it('still answers CURSOR_EXPIRED when a matching event after the cursor was pruned', async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    const app = t.app;
    const a = await app.taskSvc.createTimerTask(future);
    const { sub, end } = await subscribeLive(TaskEventFilter.parse('default', { taskId: a.id }));
    const newest = await unmatched(2);
    await waitFor(() => BigInt(app.taskEvents.status().floor) >= newest, { what: 'the unmatched events to pass the stream' });
    end();
    expect(await drain(sub)).toEqual([`UNAUTHENTICATED ${newest}`]);
    // A matching event after the cursor, then pruned: a real gap.
    await app.taskSvc.pauseTask(a.id);
    await app.history.pruneBefore(new Date(Date.now() + 60_000), 'default');
    const pruned = (await app.db.prisma.tenant.findUniqueOrThrow({ where: { id: 'default' } })).eventsPrunedThrough!;
    const resumed = await sseSubscribe(app, SUB, { after: String(newest), taskId: a.id });
    const first = (await resumed.results.next()).value!;
    await resumed.close();
    expect(first.errors?.[0]?.extensions).toMatchObject({ code: 'CURSOR_EXPIRED', oldestCursor: String(pruned) });
  });

  // A replay checks events_pruned_through after each page: against what it has read, not against the last
  // event it handed out, which for a narrow filter is far behind.
  it('a replay does not end CURSOR_EXPIRED when only events it had already read past are pruned', async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    const app = t.app;
    const a = await app.taskSvc.createTimerTask(future);
    const created = await lastEventOf(a.id);
    await unmatched(5);
    const sub = await app.taskEvents.subscribe(TaskEventFilter.parse('default', { taskId: a.id }), created - 1n);
    subs.push(sub);
    const first = await sub.next();
    expect(describeItem(first.value as StreamItem)).toBe(String(created));
    // Pruned after the replay had read through them (and handed out all it matched).
    await app.history.pruneBefore(new Date(Date.now() + 60_000), 'default');
    // The floor moves on, so the replay reads another page before it goes live.
    const other = await app.taskSvc.createTimerTask(future);
    const otherEvent = await lastEventOf(other.id);
    await waitFor(() => BigInt(app.taskEvents.status().floor) >= otherEvent, { what: 'the stream to pass the new event' });
    const next = sub.next();
    await app.taskSvc.pauseTask(a.id);
    expect(describeItem((await next).value as StreamItem)).toBe(String(await lastEventOf(a.id)));
  });

  // A subscriber cut off for falling behind is told the last event it was given: the events dropped from its
  // buffer and everything examined after them must come again on resuming.
  it('SUBSCRIBER_TOO_SLOW names the last event handed out, not events examined after the dropped ones', async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false', SUBSCRIPTION_BUFFER_SIZE: '2' } });
    const app = t.app;
    const a = await app.taskSvc.createTimerTask(future);
    const { sub } = await subscribeLive(TaskEventFilter.parse('default', { taskId: a.id }));
    await app.taskSvc.pauseTask(a.id);
    const paused = await lastEventOf(a.id);
    expect(describeItem((await sub.next()).value as StreamItem)).toBe(String(paused));
    // Unmatched events examined while nothing waits: the cursor moves on with them.
    const examined = await unmatched(1);
    await app.taskSvc.resumeTask(a.id);
    await app.taskSvc.pauseTask(a.id);
    await unmatched(1);
    await app.taskSvc.resumeTask(a.id); // a third waiting event: over the buffer of 2
    const newest = await lastEventOf(a.id);
    await waitFor(() => BigInt(app.taskEvents.status().floor) >= newest, { what: 'the stream to pass the events' });
    expect(await drain(sub)).toEqual([`SUBSCRIBER_TOO_SLOW ${examined}`]);
  });
});
