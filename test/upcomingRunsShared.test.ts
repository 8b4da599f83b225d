import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CronExpression } from '../src/time/CronExpression.js';
import { Collector, sseSubscribe } from './support/subscriptions.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

// A list of a thousand cron runs walks the task's zone for 20-40 ms. Every alias of upcomingRuns in a
// query, and every subscriber whose document selects it on an event's task (different documents share
// no execution), asked for the same walk again: thirty aliases times a hundred subscriptions on one
// socket made one event a minute and a half of blocked event loop. The lists walked last are kept
// (src/time/schedule.ts) and answer the same list, or a shorter one, again. Counted here in croner steps
// (CronExpression.nextLocal); nothing measures time.
const NOW = new Date('2029-06-01T00:00:00.400Z');
const CREATE = `mutation($start: String!) {
  createTimerTask(input: { fullName: "tasks.Every", repeatType: CRON, cronExpression: "*/5 * * * *", timezone: "America/New_York", startTime: $start }) { id }
}`;

describe.each(backends)('upcomingRuns lists are walked once for all who ask (%s)', (backend) => {
  let t: TestApp;
  // The kept lists are the process's: each backend's tasks start at other hours, so none finds the other's.
  const hour = backend === 'pglite' ? '00' : '12';
  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW });
    await t.app.templateSvc.create({ fullName: 'tasks.Every', title: 'Every', funcName: 'chronograph.noop' });
  });
  afterAll(() => t?.close());

  const create = async (start: string) => (ok(await t.gql(CREATE, { start })).createTimerTask as { id: string }).id;
  const lists = (id: string, aliases: string[], count: number) =>
    t.gql(
      `query($id: ID!) { task(id: $id) { ${aliases.map((a) => `${a}: upcomingRuns(count: ${count}) { at local note }`).join(' ')} } }`,
      { id },
    );

  it('walks a list once for every alias of a query, and answers a shorter list from a longer one, as a fresh walk would', async () => {
    const walked = vi.spyOn(CronExpression.prototype, 'nextLocal');
    try {
      // A task like the next one, listed once: what one walk costs.
      ok(await lists(await create(`2029-11-02T${hour}:00:00Z`), ['one'], 1000));
      const once = walked.mock.calls.length;
      expect(once).toBeGreaterThan(1000);

      walked.mockClear();
      const id = await create(`2029-11-03T${hour}:00:00Z`);
      const aliases = Array.from({ length: 10 }, (_, i) => `a${i}`);
      const task = ok(await lists(id, aliases, 1000)).task as Record<string, { at: string; local: string; note: string | null }[]>;
      expect(walked.mock.calls.length).toBeLessThan(once * 1.2);
      for (const alias of aliases) expect(task[alias]).toEqual(task.a0);
      expect(task.a0).toHaveLength(1000);
      // Across the autumn DST change (4 November): the repeated hour's runs carry their note.
      expect(task.a0!.some((run) => run.note?.startsWith('repeated hour'))).toBe(true);

      // A shorter list comes from the kept one, and is its beginning.
      walked.mockClear();
      const short = ok(await lists(id, ['s'], 10)).task as { s: unknown[] };
      expect(walked.mock.calls.length).toBeLessThan(20);
      expect(short.s).toEqual(task.a0!.slice(0, 10));
    } finally {
      walked.mockRestore();
    }
  });

  it('a longer list than the one kept is walked in full, and matches a walk from a cold start', async () => {
    const id = await create(`2029-09-01T${hour}:00:00Z`);
    const ten = (ok(await lists(id, ['l'], 10)).task as { l: { at: string }[] }).l;
    const long = (ok(await lists(id, ['l'], 300)).task as { l: { at: string }[] }).l;
    expect(long).toHaveLength(300);
    expect(long.slice(0, 10)).toEqual(ten);
    expect(new Set(long.map((run) => run.at)).size).toBe(300);
  });

  it('walks once per event for subscribers whose documents differ', async () => {
    const id = await create(`2029-10-01T${hour}:00:00Z`);
    const subscribers = await Promise.all(
      Array.from({ length: 5 }, async (_, i) => {
        const sub = await sseSubscribe(
          t.app,
          `subscription($id: ID!) { taskStatusChanged(filter: { taskId: $id }) { toStatus task { runs${i}: upcomingRuns(count: 1000) { at } } } }`,
          { id },
        );
        return new Collector(sub.results);
      }),
    );
    const walked = vi.spyOn(CronExpression.prototype, 'nextLocal');
    try {
      ok(await t.gql(`mutation($id: ID!) { updateTask(taskId: $id, patch: { priority: 5 }) { id } }`, { id }));
      const got = await Promise.all(subscribers.map((s) => s.until((items) => items.length >= 1, 'the UPDATED event')));
      const runs = got.map((items, i) => (ok(items[0]!).taskStatusChanged.task[`runs${i}`] as unknown[]).length);
      expect(runs).toEqual([1000, 1000, 1000, 1000, 1000]);
      // One walk of 1000 runs (each run is two steps: the walk and its note), not five.
      expect(walked.mock.calls.length).toBeLessThan(1000 * 2 * 1.5);
    } finally {
      walked.mockRestore();
      await Promise.all(subscribers.map((s) => s.close()));
    }
  });
});
