import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TaskEventFilter } from '../src/events/TaskEventFilter.js';
import { isTaskEvent, type StreamItem } from '../src/events/TaskEventSubscription.js';
import { TaskStatus } from '../src/generated/prisma/client.js';
import { transition } from '../src/tasks/statusMachine.js';
import { Collector, streamIdle } from './support/subscriptions.js';
import { backends, createTestApp, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const future = { fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00' };
const all = TaskEventFilter.parse('default');

function ids(items: StreamItem[]): bigint[] {
  return items.map((item) => {
    if (!isTaskEvent(item)) throw new Error(`unexpected item: ${JSON.stringify(item)}`);
    return item.id;
  });
}

/**
 * The first subscriber of an instance, subscribing without `after` while a transaction that wrote an
 * event is open (its id below an event already committed): the stream starts below that hole and is
 * not ready until it settles. The event commits after the subscription was asked for, while it waits,
 * so it is an event "from now on" and must be delivered. It used to be read by the starting stream and
 * handed to nobody (the subscription joined only once the floor had passed it).
 * PostgreSQL only: holding a transaction open needs a second session.
 */
describe.runIf(backends.includes('postgres'))('the first subscriber while an event is in flight (postgres)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp('postgres', { env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(() => t?.close());
  const open: Collector<StreamItem>[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  });
  function collect(sub: AsyncIterable<StreamItem>) {
    const collector = new Collector(sub);
    open.push(collector);
    return collector;
  }

  /** Pauses `taskId` in a transaction that stays open, its event id drawn, until told to end. */
  async function holdEvent(taskId: string) {
    let decide!: (commit: boolean) => void;
    const decision = new Promise<boolean>((resolve) => (decide = resolve));
    let drawn!: (id: bigint) => void;
    const id = new Promise<bigint>((resolve) => (drawn = resolve));
    const done = t.app.db.prisma
      .$transaction(
        async (tx) => {
          const task = await tx.task.findUniqueOrThrow({ where: { id: taskId } });
          await transition(tx, { task, to: TaskStatus.PAUSED, message: 'held open' });
          drawn((await tx.taskEvent.findFirstOrThrow({ where: { taskId, message: 'held open' } })).id);
          if (!(await decision)) throw new Error('rolled back on purpose');
        },
        { timeout: 60_000 },
      )
      .catch((error: Error) => {
        if (error.message !== 'rolled back on purpose') throw error;
      });
    return { id: await id, end: (commit: boolean) => (decide(commit), done) };
  }

  it('delivers an event whose transaction was open when it subscribed and commits while the stream starts', async () => {
    await streamIdle(t.app);
    const [a, b] = await t.app.taskSvc.createTimerTasks([future, future]);
    const held = await holdEvent(a!.id);
    // A newer event commits while the held one is open: the stream must start below the hole.
    await t.app.taskSvc.forcedEnd(b!.id);
    const newer = (await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: b!.id, toStatus: 'FORCED_END' } })).id;
    expect(newer).toBeGreaterThan(held.id);

    const subscribing = t.app.taskEvents.subscribe(all);
    await waitFor(() => t.app.taskEvents.status().waiting !== undefined, {
      what: 'the starting stream to wait for the open transaction',
    });
    // Committed after the subscription was asked for (and after the stream read where it starts).
    await held.end(true);
    const live = collect(await subscribing);
    const c = await t.app.taskSvc.createTimerTask(future);
    const created = (await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: c.id } })).id;
    const got = ids(await live.until((items) => ids(items).includes(created), 'the event committed after subscribing'));
    // The held event, then the new one; not the events that had committed before the subscription began.
    expect(got).toEqual([held.id, created]);
    await live.close();
    await streamIdle(t.app);
  });

  it('a second subscriber joining while the stream starts gets the held event too, and nothing twice', async () => {
    await streamIdle(t.app);
    const [a, b] = await t.app.taskSvc.createTimerTasks([future, future]);
    const held = await holdEvent(a!.id);
    await t.app.taskSvc.forcedEnd(b!.id);
    const first = t.app.taskEvents.subscribe(all);
    await waitFor(() => t.app.taskEvents.status().waiting !== undefined, {
      what: 'the starting stream to wait for the open transaction',
    });
    const second = t.app.taskEvents.subscribe(all);
    await held.end(true);
    const subs = [collect(await first), collect(await second)];
    const c = await t.app.taskSvc.createTimerTask(future);
    const created = (await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: c.id } })).id;
    for (const sub of subs) {
      expect(ids(await sub.until((items) => ids(items).includes(created), 'the event committed after subscribing'))).toEqual([
        held.id,
        created,
      ]);
    }
    await Promise.all(subs.map((s) => s.close()));
    await streamIdle(t.app);
  });

  it('subscribing while the stream starts and the open transaction rolls back delivers what commits next', async () => {
    await streamIdle(t.app);
    const [a, b] = await t.app.taskSvc.createTimerTasks([future, future]);
    const held = await holdEvent(a!.id);
    await t.app.taskSvc.forcedEnd(b!.id);
    const subscribing = t.app.taskEvents.subscribe(all);
    await waitFor(() => t.app.taskEvents.status().waiting !== undefined, {
      what: 'the starting stream to wait for the open transaction',
    });
    await held.end(false);
    const live = collect(await subscribing);
    const c = await t.app.taskSvc.createTimerTask(future);
    const created = (await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: c.id } })).id;
    expect(ids(await live.until((items) => ids(items).includes(created), 'the next event'))).toEqual([created]);
    await live.close();
    await streamIdle(t.app);
  });
});
