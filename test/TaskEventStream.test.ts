import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { eventFromRow } from '../src/events/eventRows.js';
import { TaskEventFilter } from '../src/events/TaskEventFilter.js';
import { isTaskEvent, type StreamItem } from '../src/events/TaskEventSubscription.js';
import { TaskStatus } from '../src/generated/prisma/client.js';
import { recordEvents, transition } from '../src/tasks/statusMachine.js';
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

describe.each(backends)('TaskEventStream (%s)', (backend) => {
  let t: TestApp;
  const open: Collector<StreamItem>[] = [];

  beforeAll(async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await streamIdle(t.app);
  });

  async function subscribe(after?: bigint) {
    const collector = new Collector(await t.app.taskEvents.subscribe(all, after));
    open.push(collector);
    return collector;
  }

  it('answers from the columns it read what a read of the event would answer, and leaves selections reaching further to a read', async () => {
    const live = await subscribe();
    const task = await t.app.taskSvc.createTimerTask({ ...future, argDict: { big: 'x' } });
    await t.app.taskSvc.forcedEnd(task.id);
    const items = await live.until((items) => items.length >= 2, 'two events');
    for (const item of items) {
      if (!isTaskEvent(item) || !item.row) throw new Error('expected a live event with its row');
      const read = (query: object) => t.app.db.prisma.taskEvent.findUnique({ ...query, where: { id: item.id } });
      const served = [
        {
          select: { id: true, fromStatus: true, toStatus: true, type: true, nextRunAt: true, createdAt: true, message: true, actor: true },
        },
        { select: { id: true, task: { select: { id: true, fullName: true, startTime: true, runCount: true, funcName: true } } } },
        { select: { id: true, attempt: true, workerId: true, runStatus: true, durationMs: true, error: true } },
      ];
      // `task: true` and `include` want every task column, argDict too: not carried, so not served; nor
      // is a whole event, which has a run's result (Json) since runs are kept in their events.
      const notServed = [
        {},
        { select: { id: true, task: true } },
        { include: { task: true } },
        { select: { id: true, run: true } },
        { select: { task: { select: { argDict: true } } } },
      ];
      for (const query of served) expect(eventFromRow(item.row, query)).toMatchObject((await read(query))!);
      for (const query of notServed) expect(eventFromRow(item.row, query)).toBeUndefined();
    }
    // The task as the stream read it with the event: after that event, so the last one shows where it ended.
    const last = items[1]!;
    expect(isTaskEvent(last) && eventFromRow(last.row!, { select: { task: { select: { status: true } } } })).toMatchObject({
      task: { status: 'FORCED_END' },
    });
  });

  it('skips an id whose transaction rolled back and delivers what follows it', async () => {
    const live = await subscribe();
    const task = await t.app.taskSvc.createTimerTask(future);
    await expect(
      t.app.db.prisma.$transaction(async (tx) => {
        await recordEvents(tx, [
          { taskId: task.id, tenantId: 'default', fromStatus: 'SCHEDULED', toStatus: 'SCHEDULED', message: 'never commits' },
        ]);
        throw new Error('rolled back on purpose');
      }),
    ).rejects.toThrow('rolled back on purpose');
    await t.app.taskSvc.forcedEnd(task.id);
    const [created, ended] = ids(await live.until((r) => r.length === 2));
    // The id between them was drawn by the rolled-back transaction: a hole the stream had to settle.
    expect(ended! - created!).toBe(2n);
    expect(t.app.taskEvents.status().waiting).toBeUndefined();
  });

  it('replays from a cursor, then continues live, and stops listening when the last subscriber leaves', async () => {
    const tasks = await t.app.taskSvc.createTimerTasks([future, future, future]);
    const stored = (await t.app.db.prisma.taskEvent.findMany({ orderBy: { id: 'asc' }, select: { id: true } })).map((e) => e.id);
    const resumed = await subscribe(stored[stored.length - 3]!);
    await t.app.taskSvc.forcedEnd(tasks[0]!.id);
    const got = ids(await resumed.until((r) => r.length === 3));
    expect(got.slice(0, 2)).toEqual(stored.slice(-2));
    expect(got[2]).toBeGreaterThan(stored[stored.length - 1]!);
    await resumed.close();
    await streamIdle(t.app);
  });
});

/**
 * Transactions that commit out of id order need a second connection that keeps one open, so these
 * run on PostgreSQL only (PGlite has a single session: an open transaction there blocks every query).
 */
describe.runIf(backends.includes('postgres'))('TaskEventStream with transactions committing out of id order (postgres)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp('postgres', { env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(() => t?.close());

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

  /** Commits a newer event while `held` is open and waits until the stream has read it and holds it back. */
  async function newerEventWhile(held: { id: bigint }, taskId: string) {
    await t.app.taskSvc.forcedEnd(taskId);
    const newer = (await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId, toStatus: 'FORCED_END' } })).id;
    expect(newer).toBeGreaterThan(held.id);
    await waitFor(() => BigInt(t.app.taskEvents.status().waiting?.upTo ?? -1) >= newer, {
      what: 'the stream to hold the newer event back',
    });
    return newer;
  }

  it.each([true, false])(
    'holds newer events back while an older id is in flight, then delivers in id order (commit: %s)',
    async (commit) => {
      const live = new Collector(await t.app.taskEvents.subscribe(all));
      const [a, b] = await t.app.taskSvc.createTimerTasks([future, future]);
      const [first, second] = ids(await live.until((r) => r.length === 2));
      const held = await holdEvent(a!.id);
      const newer = await newerEventWhile(held, b!.id);
      expect(ids(live.items)).toEqual([first, second]);

      // A subscriber resuming from before the hole joins while it is open.
      const resumed = new Collector(await t.app.taskEvents.subscribe(all, first));
      await held.end(commit);
      const expected = commit ? [held.id, newer] : [newer];
      expect(ids(await live.until((r) => r.length === 2 + expected.length))).toEqual([first, second, ...expected]);
      expect(ids(await resumed.until((r) => r.length === 1 + expected.length))).toEqual([second, ...expected]);

      await t.app.taskSvc.createTimerTask(future);
      const next = ids(await live.until((r) => r.length === 3 + expected.length)).at(-1)!;
      expect(ids(await resumed.until((r) => r.length === 2 + expected.length)).at(-1)).toBe(next);
      await Promise.all([live.close(), resumed.close()]);
      await streamIdle(t.app);
    },
  );

  it('starting while an older id is in flight, a resuming subscriber still receives it', async () => {
    await streamIdle(t.app);
    const [a, b] = await t.app.taskSvc.createTimerTasks([future, future]);
    const cursor = (await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: b!.id } })).id;
    const held = await holdEvent(a!.id);
    await t.app.taskSvc.forcedEnd(b!.id);
    const newer = (await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: b!.id, toStatus: 'FORCED_END' } })).id;
    // The stream starts now, below the hole, and is not ready until the hole settles.
    const subscribing = t.app.taskEvents.subscribe(all, cursor);
    await waitFor(() => t.app.taskEvents.status().waiting !== undefined, { what: 'the starting stream to wait for the open transaction' });
    await held.end(true);
    const resumed = new Collector(await subscribing);
    expect(ids(await resumed.until((r) => r.length === 2))).toEqual([held.id, newer]);
    await resumed.close();
    await streamIdle(t.app);
  });
});
