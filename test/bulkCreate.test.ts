import { DateTime } from 'luxon';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TASK_EVENT_CHANNEL, WAKE_CHANNEL } from '../src/tasks/statusMachine.js';
import { readDateTime } from '../src/time/parseTime.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

const CREATE_MANY = `mutation($inputs: [TimerTaskInput!]!) { createTimerTasks(inputs: $inputs) { id status nextRunAt } }`;

/**
 * createTimerTasks' bulk path (src/tasks/bulkInsert.ts): one statement inserts the tasks, their CREATED
 * events and the events' NOTIFYs. What it returns must be what the database holds, every task must get
 * exactly one event, and a bad input must leave nothing behind.
 */
describe.each(backends)('bulk task creation (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend);
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    await t.app.db.prisma.task.deleteMany({});
  });

  const counts = async () => ({ tasks: await t.app.db.prisma.task.count(), events: await t.app.db.prisma.taskEvent.count() });

  it('returns exactly the rows it wrote, each with one CREATED event in input order', async () => {
    const base = Date.parse('2031-01-01T00:00:00Z');
    const inputs = Array.from({ length: 1500 }, (_, i) => {
      switch (i % 5) {
        case 0:
          return { fullName: 'tasks.DataSync', startTime: new Date(base + i * 60_000).toISOString(), argDict: { i } };
        case 1:
          return { fullName: 'tasks.DataBackup', startTime: '2031-03-01 09:30:00', timezone: 'Europe/Paris', priority: 5, queue: 'q' };
        case 2:
          return {
            fullName: 'tasks.DataSync',
            repeatType: 'CRON' as const,
            cronExpression: '0 3 * * *',
            startTime: '2031-01-01T00:00:00Z',
          };
        case 3:
          // An ambiguous wall-clock time: the first occurrence is taken and the event says so.
          return { fullName: 'tasks.DataSync', startTime: '2031-10-26 02:30:00', timezone: 'Europe/Berlin', maxAttempts: 2 };
        default:
          return {
            fullName: 'tasks.DataSync',
            repeatType: 'INTERVAL' as const,
            intervalSeconds: 90,
            startTime: '2031-01-01T00:00:00Z',
            endTime: '2031-02-01T00:00:00Z',
            maxRuns: 7,
            argDict: { nested: { list: [1, 'two', null], ok: true } },
            timeoutMs: 1234,
            uniqueKey: `k${i}`,
          };
      }
    });
    const created = await t.app.taskSvc.createTimerTasks(inputs);
    expect(created).toHaveLength(inputs.length);
    const stored = await t.app.db.prisma.task.findMany({ where: { id: { in: created.map((c) => c.id) } } });
    const byId = new Map(stored.map((s) => [s.id, s]));
    for (const task of created) {
      const { deduplicated, ...fields } = task;
      expect(deduplicated).toBe(false);
      expect(fields).toEqual(byId.get(task.id));
    }
    expect(created[1]).toMatchObject({ timezone: 'Europe/Paris', startTime: new Date('2031-03-01T08:30:00Z'), priority: 5, queue: 'q' });
    expect(created[2]!.nextRunAt).toEqual(new Date('2031-01-01T03:00:00Z'));
    expect(created[4]).toMatchObject({ repeatType: 'INTERVAL', intervalSeconds: 90, maxRuns: 7, timeoutMs: 1234, uniqueKey: 'k4' });
    // Ids increase in input order (UUIDv7), like the events' ids.
    expect(created.map((c) => c.id)).toEqual([...created.map((c) => c.id)].sort());

    const events = await t.app.db.prisma.taskEvent.findMany({ orderBy: { id: 'asc' } });
    expect(events.map((e) => e.taskId)).toEqual(created.map((c) => c.id));
    for (const [i, e] of events.entries()) {
      expect(e).toMatchObject({
        type: 'CREATED',
        fromStatus: null,
        toStatus: 'SCHEDULED',
        tenantId: 'default',
        nextRunAt: created[i]!.nextRunAt,
        runId: null,
        actor: null,
      });
      if (i % 5 === 3) expect(e.message).toMatch(/^created; startTime 2031-10-26T02:30:00 occurs twice in Europe\/Berlin/);
      else expect(e.message).toBe('created');
    }
  });

  it('gives one-task creates distinct, increasing ids, past the random pool small batches share', async () => {
    // 300 one-task creates and a few small batches take more than the 256 ids' randomness the pool holds.
    const ids: string[] = [];
    for (let i = 0; i < 300; i++)
      ids.push((await t.app.taskSvc.createTimerTask({ fullName: 'tasks.DataSync', startTime: '2031-01-01 00:00:00' })).id);
    for (let i = 0; i < 5; i++) {
      const inputs = Array.from({ length: 7 }, () => ({ fullName: 'tasks.DataSync', startTime: '2031-01-01 00:00:00' }));
      ids.push(...(await t.app.taskSvc.createTimerTasks(inputs)).map((c) => c.id));
    }
    expect(new Set(ids).size).toBe(335);
    expect(ids).toEqual([...ids].sort());
    // The last 6 bytes are random bytes alone (the time and the sequence come before): not repeated either.
    expect(new Set(ids.map((id) => id.replaceAll('-', '').slice(20))).size).toBe(335);
  });

  it("announces the batch's events in one notification naming their tasks, and wakes the schedulers once", async () => {
    const seen: string[] = [];
    const wakes: string[] = [];
    const stopEvents = await t.app.db.listen(TASK_EVENT_CHANNEL, (payload) => seen.push(payload));
    const stopWake = await t.app.db.listen(WAKE_CHANNEL, (payload) => wakes.push(payload));
    try {
      const tasks = await t.app.taskSvc.forTenant('default', 'key:k1').createTimerTasks(
        Array.from({ length: 40 }, (_, i) => ({
          fullName: 'tasks.DataSync',
          startTime: `2031-01-01T00:00:${String(i).padStart(2, '0')}Z`,
        })),
      );
      await expect.poll(() => seen.length, { timeout: 5000 }).toBe(1);
      const events = await t.app.db.prisma.taskEvent.findMany({ where: { actor: 'key:k1' }, orderBy: { id: 'asc' } });
      expect(events).toHaveLength(40);
      expect(events.every((e) => e.actor === 'key:k1')).toBe(true);
      // task_event's trigger: one NOTIFY per statement, its events' task ids in event order.
      expect(seen[0]!.split(',')).toEqual(events.map((e) => e.taskId));
      expect(events.map((e) => e.taskId)).toEqual(tasks.map((task) => task.id));
      await expect.poll(() => wakes.length, { timeout: 5000 }).toBe(1);
      // A status change through the API (Prisma, recordEvents) is announced by the same trigger.
      await t.app.taskSvc.forTenant('default', 'key:k1').cancelTask(tasks[0]!.id);
      await expect.poll(() => seen.length, { timeout: 5000 }).toBe(2);
      expect(seen[1]).toBe(tasks[0]!.id);
    } finally {
      await stopEvents();
      await stopWake();
    }
  });

  it('refuses a batch with one bad input, naming it, and writes nothing', async () => {
    const good = (i: number) => ({ fullName: 'tasks.DataSync', startTime: new Date(Date.parse('2031-01-01T00:00:00Z') + i).toISOString() });
    const cases: [Record<string, unknown>, string, string][] = [
      [{ fullName: 'tasks.DataSync', startTime: '2031-02-30 10:00:00' }, 'INVALID_START_TIME', 'startTime'],
      [{ fullName: 'tasks.DataSync', startTime: '2031-03-30 02:30:00', timezone: 'Europe/Berlin' }, 'INVALID_START_TIME', 'startTime'],
      [{ fullName: 'tasks.DataSync', startTime: '2031-01-01T00:00:00Z', funcName: 'no.such' }, 'UNKNOWN_FUNC', 'funcName'],
      [{ fullName: 'tasks.DataSync', startTime: '2031-01-01T00:00:00Z', timezone: 'Mars/Olympus' }, 'INVALID_TIMEZONE', 'timezone'],
      [{ fullName: 'tasks.DataSync', repeatType: 'CRON', cronExpression: '61 * * * *' }, 'INVALID_CRON', 'cronExpression'],
      [{ fullName: 'tasks.DataSync', startTime: '2031-01-01T00:00:00Z', priority: 5000 }, 'BAD_USER_INPUT', 'priority'],
      [{ fullName: 'no.Such', startTime: '2031-01-01T00:00:00Z' }, 'UNKNOWN_TEMPLATE', 'fullName'],
    ];
    for (const [bad, code, field] of cases) {
      const inputs = [...Array.from({ length: 300 }, (_, i) => good(i)), bad, good(301)];
      const result = await t.gql(CREATE_MANY, { inputs });
      expect(result.data).toBeNull();
      expect(result.errors).toHaveLength(1);
      expect(result.errors![0]!.extensions).toMatchObject({ code, field, index: 300 });
      expect(result.errors![0]!.message).toMatch(/^inputs\[300\]: /);
      expect(await counts()).toEqual({ tasks: 0, events: 0 });
    }
    // Text PostgreSQL cannot store (GraphQL refuses it before the resolver; handlers call the service
    // directly) is refused up front rather than failing, or being mangled, in the insert.
    for (const [extra, field] of [
      [{ uniqueKey: 'a\u0000b' }, 'uniqueKey'],
      [{ queue: 'q\ud800' }, 'queue'],
    ] as const) {
      await expect(t.app.taskSvc.createTimerTasks([good(0), { ...good(1), ...extra }])).rejects.toMatchObject({
        code: 'BAD_USER_INPUT',
        details: { field, index: 1 },
      });
    }
    expect(await counts()).toEqual({ tasks: 0, events: 0 });
    // The same inputs without the bad one go through, over GraphQL.
    const tasks = ok(await t.gql(CREATE_MANY, { inputs: Array.from({ length: 301 }, (_, i) => good(i)) })).createTimerTasks;
    expect(tasks).toHaveLength(301);
    expect(tasks[7]).toEqual({ id: expect.any(String), status: 'SCHEDULED', nextRunAt: '2031-01-01T00:00:00.007Z' });
    expect(await counts()).toEqual({ tasks: 301, events: 301 });
  });

  // More than 2,000 inputs go in one transaction of one statement per 2,000 (TaskSvc.insertInChunks).
  it('writes a batch of several parts as one: every row and event in input order, or nothing', async () => {
    const base = Date.parse('2031-01-01T00:00:00Z');
    const good = (i: number) => ({ fullName: 'tasks.DataSync', startTime: new Date(base + i * 1000).toISOString(), argDict: { i } });
    const seen: string[] = [];
    const wakes: string[] = [];
    const stopEvents = await t.app.db.listen(TASK_EVENT_CHANNEL, (payload) => seen.push(payload));
    const stopWake = await t.app.db.listen(WAKE_CHANNEL, (payload) => wakes.push(payload));
    try {
      // A bad input in the last part (after two parts were written in the transaction), or in the first.
      for (const at of [4_400, 10]) {
        const inputs = Array.from({ length: 4_500 }, (_, i) => (i === at ? { ...good(i), priority: 5000 } : good(i)));
        const result = await t.gql(CREATE_MANY, { inputs });
        expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'priority', index: at });
        expect(await counts()).toEqual({ tasks: 0, events: 0 });
      }
      const inputs = Array.from({ length: 4_500 }, (_, i) => good(i));
      const created = await t.app.taskSvc.createTimerTasks(inputs);
      expect(created.map((c) => (c.argDict as { i: number }).i)).toEqual(inputs.map((_, i) => i));
      expect(created.map((c) => c.id)).toEqual([...created.map((c) => c.id)].sort());
      const stored = await t.app.db.prisma.task.findMany({ orderBy: { id: 'asc' } });
      expect(stored).toEqual(created.map(({ deduplicated: _, ...task }) => task));
      // One transaction: one created_at for all.
      expect(new Set(stored.map((s) => s.createdAt.getTime())).size).toBe(1);
      const events = await t.app.db.prisma.taskEvent.findMany({ orderBy: { id: 'asc' } });
      expect(events.map((e) => e.taskId)).toEqual(created.map((c) => c.id));
      expect(events.every((e) => e.type === 'CREATED' && e.message === 'created')).toBe(true);
      // Three statements of more than 100 events each: '' ("events were written, read them"), which
      // PostgreSQL delivers once per transaction; the two batches that rolled back announced nothing.
      await expect.poll(() => seen.length, { timeout: 10_000 }).toBe(1);
      expect(seen).toEqual(['']);
      await expect.poll(() => wakes.length, { timeout: 5000 }).toBe(1);
    } finally {
      await stopEvents();
      await stopWake();
    }
  });

  it('builds a batch of several parts again when a template changed since it was read', async () => {
    const inputs = Array.from({ length: 4_100 }, (_, i) => ({
      fullName: 'tasks.DataSync',
      startTime: '2031-01-01T00:00:00Z',
      argDict: { i },
    }));
    expect((await t.app.taskSvc.createTimerTasks(inputs.slice(0, 1)))[0]!.priority).toBe(0);
    // Behind the kept copy's back: the first part's statement finds the template changed and the batch
    // is built again from a fresh read; nothing of the first attempt stays.
    await t.app.db.prisma.$executeRawUnsafe(`UPDATE task_template SET priority = 4 WHERE full_name = 'tasks.DataSync'`);
    try {
      const created = await t.app.taskSvc.createTimerTasks(inputs);
      expect(created.every((c) => c.priority === 4)).toBe(true);
      expect(await counts()).toEqual({ tasks: 4_101, events: 4_101 });
      expect(await t.app.db.prisma.task.count({ where: { priority: 4 } })).toBe(4_100);
    } finally {
      await t.app.db.prisma.$executeRawUnsafe(`UPDATE task_template SET priority = 0 WHERE full_name = 'tasks.DataSync'`);
    }
  });

  it('returns the live task for a uniqueKey that is taken, inside the batch or before it, and records no event for it', async () => {
    const [held] = await t.app.taskSvc.createTimerTasks([
      { fullName: 'tasks.DataSync', startTime: '2031-01-01T00:00:00Z', uniqueKey: 'a' },
    ]);
    const batch = await t.app.taskSvc.createTimerTasks([
      { fullName: 'tasks.DataSync', startTime: '2031-01-02T00:00:00Z', uniqueKey: 'a' },
      { fullName: 'tasks.DataSync', startTime: '2031-01-03T00:00:00Z', uniqueKey: 'b' },
      { fullName: 'tasks.DataSync', startTime: '2031-01-04T00:00:00Z', uniqueKey: 'b' },
      { fullName: 'tasks.DataSync', startTime: '2031-01-05T00:00:00Z' },
    ]);
    expect(batch.map((b) => b.deduplicated)).toEqual([true, false, true, false]);
    expect(batch[0]!.id).toBe(held!.id);
    expect(batch[2]!.id).toBe(batch[1]!.id);
    expect(batch[2]!.startTime).toEqual(new Date('2031-01-03T00:00:00Z'));
    expect(await counts()).toEqual({ tasks: 3, events: 3 });
  });
});

describe('readDateTime', () => {
  it('reads toISOString text as luxon does', () => {
    const luxon = (text: string) => {
      const read = DateTime.fromISO(text, { zone: 'UTC' });
      return read.isValid ? read.toMillis() : null;
    };
    const texts = [
      '2030-02-29T00:00:00Z',
      '2028-02-29T00:00:00.000Z',
      '2030-01-01T24:00:00Z',
      '2030-01-01T23:59:60Z',
      '2030-13-01T00:00:00Z',
      '2030-01-01T10:00:00.5Z',
      '2030-01-01T10:00:00.05Z',
      '0099-06-01T00:00:00Z',
      ...Array.from({ length: 20_000 }, () => new Date(Math.random() * 253_402_300_799_999).toISOString()),
    ];
    for (const text of texts) {
      const read = readDateTime(text);
      expect([text, read.kind === 'instant' ? read.at : null]).toEqual([text, luxon(text)]);
    }
  });
});
