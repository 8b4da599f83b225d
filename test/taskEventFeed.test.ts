import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaskEventFilter } from '../src/events/TaskEventFilter.js';
import { Collector, sseSubscribe } from './support/subscriptions.js';
import { backends, createTestApp, type GqlResult, type TestApp } from './support/testApp.js';

const FEED = `subscription($after: String, $seconds: Int) {
  taskEventFeed(after: $after, progressSeconds: $seconds, filter: { fullName: "tasks.Narrow" }) { cursor progress event { cursor toStatus task { id } } }
}`;
const CHANGED = `subscription($after: String) { taskStatusChanged(after: $after, filter: { fullName: "tasks.Narrow" }) { cursor } }`;

interface FeedItem {
  cursor: string;
  progress: boolean;
  event: { cursor: string; toStatus: string; task: { id: string } } | null;
}

const feedItems = (results: GqlResult[]): FeedItem[] =>
  results.map((r) => {
    if (r.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(r.errors)}`);
    return r.data.taskEventFeed as FeedItem;
  });

/**
 * taskEventFeed: the events of taskStatusChanged, and while none matches, progress items whose cursor
 * covers the events the filter passed over. A narrowly filtered client that keeps that cursor resumes
 * after a dropped connection even when history retention pruned its last matching event; resuming from
 * that event (all taskStatusChanged gives it) is refused CURSOR_EXPIRED.
 */
describe.each(backends)('taskEventFeed (%s)', (backend) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(backend, { env: { HISTORY_PRUNE_INTERVAL_MS: '3600000' } });
    await t.app.templateSvc.create({ fullName: 'tasks.Narrow', title: 'Narrow', funcName: 'chronograph.noop' });
    await t.app.templateSvc.create({ fullName: 'tasks.Busy', title: 'Busy', funcName: 'chronograph.noop' });
  });
  afterAll(async () => {
    await t?.close();
  });

  async function runOnce(fullName: string) {
    const task = await t.app.taskSvc.createTimerTask({ fullName, startTime: new Date().toISOString() });
    await t.app.taskSvc.waitForTask(task.id, { timeoutMs: 20_000 });
    return task.id;
  }
  const newestEvent = async () => (await t.app.db.prisma.taskEvent.findFirst({ orderBy: { id: 'desc' } }))!.id;

  it('reports progress past events its filter passes over, and a client resuming from it is not refused when retention pruned its last match', async () => {
    const narrow = await runOnce('tasks.Narrow');
    const lastMatch = (await t.app.db.prisma.taskEvent.findFirst({ where: { taskId: narrow }, orderBy: { id: 'desc' } }))!.id;

    const feed = await sseSubscribe(t.app, FEED, { after: String(lastMatch), seconds: 1 });
    const items = new Collector(feed.results);
    for (let i = 0; i < 3; i++) await runOnce('tasks.Busy');
    const newest = await newestEvent();
    await items.until((got) => feedItems(got).some((item) => BigInt(item.cursor) >= newest), 'a progress item past the busy tasks');
    const progress = feedItems(items.items);
    // Nothing matched: only progress items, never more than one a second, each further than the one before.
    expect(progress.every((item) => item.event === null && item.progress)).toBe(true);
    expect(progress.length).toBeLessThanOrEqual(2);
    const cursor = progress.at(-1)!.cursor;
    expect(BigInt(cursor)).toBe(newest);
    // With nothing more passed over, no more progress items (an idle stream stays quiet).
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(feedItems(items.items)).toHaveLength(progress.length);
    await items.close(); // the connection drops

    // History retention takes every finished task, the narrow one's last event with them.
    await t.app.history.pruneBefore(new Date(Date.now() + 60_000));
    const pruned = (await t.app.db.prisma.tenant.findUnique({ where: { id: 'default' } }))!.eventsPrunedThrough!;
    expect(pruned).toBeGreaterThan(lastMatch);
    expect(pruned).toBeLessThanOrEqual(BigInt(cursor));

    // From the last matching event: refused, by either subscription.
    for (const query of [FEED, CHANGED]) {
      const refused = await sseSubscribe(t.app, query, { after: String(lastMatch) });
      const first = (await refused.results.next()).value!;
      await refused.close();
      expect(first.errors?.[0]?.extensions).toMatchObject({ code: 'CURSOR_EXPIRED', oldestCursor: String(pruned) });
    }

    // From the progress cursor: accepted, and the next matching event comes, with no gap.
    const resumed = new Collector((await sseSubscribe(t.app, FEED, { after: cursor, seconds: 1 })).results);
    const next = await runOnce('tasks.Narrow');
    const got = await resumed.until((got) => feedItems(got).some((item) => item.event?.toStatus === 'SUCCEEDED'), 'the next narrow run');
    await resumed.close();
    const events = feedItems(got).filter((item) => item.event !== null);
    expect(events.map((item) => item.event!.toStatus)).toEqual(['SCHEDULED', 'RUNNING', 'SUCCEEDED']);
    expect(events.every((item) => item.event!.task.id === next && item.cursor === item.event!.cursor && !item.progress)).toBe(true);
    expect(feedItems(got).every((item) => item.progress === (item.event === null))).toBe(true);
  });

  it('reports progress when a replay has passed over stored events its filter does not match, before going live', async () => {
    const after = await newestEvent();
    const startTime = new Date(Date.now() + 3_600_000).toISOString();
    await t.app.taskSvc.createTimerTasks(Array.from({ length: 600 }, () => ({ fullName: 'tasks.Busy', startTime })));
    const newest = await newestEvent();
    const filter = TaskEventFilter.parse('default', { fullName: 'tasks.Narrow' });
    const subscription = await t.app.taskEvents.subscribe(filter, after, undefined, 1);
    try {
      const { value } = await subscription.next();
      expect(value).toEqual({ progress: String(newest) });
    } finally {
      await subscription.return();
    }
  });

  it('refuses a progressSeconds outside 1 to 3600 with BAD_USER_INPUT, and subscribes nothing', async () => {
    for (const seconds of [0, 3601]) {
      const refused = await sseSubscribe(t.app, FEED, { seconds });
      const first = (await refused.results.next()).value!;
      await refused.close();
      expect(first.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'progressSeconds' });
    }
    expect(t.app.taskEvents.status().subscriptions).toBe(0);
  });
});
