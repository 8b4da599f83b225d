import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TaskEventFilter, type TaskEventRef } from '../src/events/TaskEventFilter.js';
import type { TaskEventStream } from '../src/events/TaskEventStream.js';
import { isStreamProgress, isTaskEvent, type StreamItem, TaskEventSubscription } from '../src/events/TaskEventSubscription.js';

/** What a live TaskEventSubscription uses of its stream: no database, events offered by hand. */
function fakeStream(floor: bigint): TaskEventStream {
  const live = new Set<unknown>();
  return {
    floor,
    isClosed: false,
    goLive: (s: unknown) => live.add(s),
    leaveLive: (s: unknown) => live.delete(s),
    remove: (s: unknown) => live.delete(s),
  } as unknown as TaskEventStream;
}

const narrow = TaskEventFilter.parse('default', { fullName: 'tasks.Narrow' });
const event = (id: bigint, fullName = 'tasks.Busy') =>
  ({
    id,
    taskId: 't',
    tenantId: 'default',
    type: 'STATUS_CHANGED',
    toStatus: 'RUNNING',
    fullName,
    funcName: 'f',
    source: 'API',
  }) as TaskEventRef;
const show = (item: StreamItem | undefined) =>
  item === undefined ? 'done' : isTaskEvent(item) ? `event ${item.id}` : isStreamProgress(item) ? `progress ${item.progress}` : item.end;

/**
 * TaskEventSubscription's progress items (taskEventFeed) at the unit level: their order against
 * buffered events, their timer, and the clock that spaces them.
 */
describe('taskEventFeed progress items (TaskEventSubscription.reportProgress)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2026-12-06T12:00:00Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  async function take(subscription: TaskEventSubscription, waitMs: number): Promise<string> {
    const next = subscription.next();
    await vi.advanceTimersByTimeAsync(waitMs);
    return show((await next).value);
  }

  it('hands out buffered matches first: a progress item never passes an event still waiting for the consumer', async () => {
    const subscription = new TaskEventSubscription(fakeStream(10n), narrow, undefined, 10);
    subscription.reportProgress(1_000);
    for (const [id, fullName] of [[11n, 'tasks.Narrow'], [12n], [13n, 'tasks.Narrow'], [14n]] as const)
      subscription.offer(event(id, fullName));
    vi.advanceTimersByTime(5_000);
    expect([await take(subscription, 0), await take(subscription, 0), await take(subscription, 1_000)]).toEqual([
      'event 11',
      'event 13',
      'progress 14',
    ]);
    // Nothing passed over since: no timer while the consumer waits.
    const waiting = subscription.next();
    expect(vi.getTimerCount()).toBe(0);
    await subscription.return();
    expect((await waiting).done).toBe(true);
  });

  it('leaves no timer behind once the consumer has gone or the server ended the subscription', async () => {
    for (const end of ['return', 'finish'] as const) {
      const subscription = new TaskEventSubscription(fakeStream(10n), narrow, undefined, 10);
      subscription.reportProgress(60_000);
      const waiting = subscription.next();
      subscription.offer(event(11n));
      expect(vi.getTimerCount()).toBe(1);
      if (end === 'return') await subscription.return();
      else subscription.finish('SHUTTING_DOWN');
      expect(vi.getTimerCount()).toBe(0);
      await waiting;
      subscription.offer(event(12n));
      expect(vi.getTimerCount()).toBe(0);
    }
  });

  it('spaces progress items by a monotonic clock: a wall clock stepped back an hour does not hold them back an hour', async () => {
    const subscription = new TaskEventSubscription(fakeStream(10n), narrow, undefined, 10);
    subscription.reportProgress(1_000);
    const waiting = subscription.next();
    subscription.offer(event(11n));
    vi.setSystemTime(Date.now() - 3_600_000); // NTP steps the clock back, a VM resumes
    let got: string | undefined;
    void waiting.then((r) => (got = show(r.value)));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(got).toBe('progress 11');
    await subscription.return();
  });
});
