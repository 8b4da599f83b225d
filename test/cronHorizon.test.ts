import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

// Cron expressions whose matches can be decades apart used to make every next-occurrence search walk
// croner and the DST transitions up to the year 3000 (seconds of a blocked event loop per call). A search
// now looks HORIZON_YEARS (15) ahead at most, and an expression that can go longer without a match is
// refused. The timeouts below only stop a regression from hanging the run; nothing here measures time.
const NOW = new Date('2029-06-01T00:00:00Z');
const PREVIEW = `query($input: ScheduleInput!, $count: Int) { previewSchedule(input: $input, count: $count) { at local } }`;
const CREATE = `mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id nextRunAt } }`;
const UPCOMING = `query($id: ID!) { task(id: $id) { status upcomingRuns(count: 1000) { at } } }`;
const GUARD = { timeout: 30_000 };

describe.each(backends)('cron expressions with decades between matches (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW });
  });
  afterAll(() => t?.close());

  it('refuses the QA repro (29 February that is a Monday) in previewSchedule with INVALID_CRON naming cronExpression', GUARD, async () => {
    const result = await t.gql(PREVIEW, {
      input: { cronExpression: '0 0 29 2 +1', timezone: 'America/New_York' },
      count: 1000,
    });
    expect(errorCode(result)).toBe('INVALID_CRON');
    expect(result.errors![0]!.extensions!.field).toBe('cronExpression');
    expect(result.errors![0]!.message).toContain('has no occurrence between');
    expect(result.errors![0]!.message).toContain('at least once every 15 years');
  });

  it('refuses it in createTimerTask too, and the Quartz L-n form of the same kind', GUARD, async () => {
    for (const cronExpression of ['0 0 29 2 +1', '0 0 L-28 2 +1']) {
      const result = await t.gql(CREATE, {
        input: { fullName: 'tasks.DataSync', repeatType: 'CRON', cronExpression, timezone: 'America/New_York' },
      });
      expect([errorCode(result), result.errors?.[0]?.extensions?.field]).toEqual(['INVALID_CRON', 'cronExpression']);
    }
  });

  it('still previews a leap-day schedule, which comes back within 8 years', async () => {
    const runs = ok(
      await t.gql(PREVIEW, {
        input: { cronExpression: '0 12 29 2 *', timezone: 'Europe/Paris', startTime: '2095-01-01 00:00:00' },
        count: 3,
      }),
    ).previewSchedule;
    expect(runs.map((r: { local: string }) => r.local)).toEqual(['2096-02-29T12:00:00', '2104-02-29T12:00:00', '2108-02-29T12:00:00']);
  });

  it('charges previewSchedule for the years its runs cover: 1000 runs of a yearly job are refused before running', GUARD, async () => {
    const yearly = await t.gql(PREVIEW, { input: { cronExpression: '0 0 1 1 *', timezone: 'Europe/Berlin' }, count: 1000 });
    expect(errorCode(yearly)).toBe('QUERY_TOO_COMPLEX');
    expect(
      ok(await t.gql(PREVIEW, { input: { cronExpression: '0 0 1 1 *', timezone: 'Europe/Berlin' }, count: 20 })).previewSchedule,
    ).toHaveLength(20);
    expect(
      ok(await t.gql(PREVIEW, { input: { cronExpression: '*/15 * * * *', timezone: 'Europe/London' }, count: 1000 })).previewSchedule,
    ).toHaveLength(1000);
  });

  it('costs a preview by the years its runs really cover: runs bunched on one day a year are not a minute apart', GUARD, async () => {
    // Ten runs a minute apart every 1 January: 1,000 of them cover a century.
    const bunched = await t.gql(PREVIEW, { input: { cronExpression: '0-9 0 1 1 *', timezone: 'Europe/Paris' }, count: 1000 });
    expect(errorCode(bunched)).toBe('QUERY_TOO_COMPLEX');
    expect(ok(await t.gql(PREVIEW, { input: { cronExpression: '0-9 0 1 1 *' }, count: 20 })).previewSchedule).toHaveLength(20);
  });

  it("refuses a cron expression over 500 characters by its length, before reading it, even in a query's cost", GUARD, async () => {
    const long = `${Array.from({ length: 300 }, () => '0').join(',')} * * * *`;
    const result = await t.gql(PREVIEW, { input: { cronExpression: long }, count: 5 });
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'cronExpression' });
    expect(result.errors?.[0]?.message).toContain(String(long.length));
  });

  it('previews no run past the year 9999', GUARD, async () => {
    const runs = ok(await t.gql(PREVIEW, { input: { intervalSeconds: 315_360_000, startTime: '9990-01-01T00:00:00Z' }, count: 5 }))
      .previewSchedule as { at: string }[];
    expect(runs.map((r) => r.at)).toEqual(['9990-01-01T00:00:00.000Z', '9999-12-30T00:00:00.000Z']);
  });

  it("prices a yearly task's upcoming runs by the years they cover: a century is over the default MAX_QUERY_COST", GUARD, async () => {
    const created = ok(
      await t.gql(CREATE, {
        input: { fullName: 'tasks.DataSync', repeatType: 'CRON', cronExpression: '0 0 1 1 *', timezone: 'Europe/Berlin' },
      }),
    ).createTimerTask;
    // count 1000 would list 101 runs (the 100-year horizon; test/upcomingRunsBudget lists them with a raised
    // limit), which costs 500 a year: refused before any is listed.
    const refused = await t.gql(UPCOMING, { id: created.id });
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'MAX_QUERY_COST', field: 'count' });
    const runs = ok(await t.gql(UPCOMING.replace('count: 1000', 'count: 50'), { id: created.id })).task.upcomingRuns as { at: string }[];
    // From 2030-01-01 (Berlin), one a year.
    expect(runs).toHaveLength(50);
    expect(runs.at(-1)!.at).toBe('2078-12-31T23:00:00.000Z');
  });

  it('ends a stored task whose expression is now refused after its next run, instead of searching to the year 3000', GUARD, async () => {
    const created = ok(
      await t.gql(CREATE, {
        input: { fullName: 'tasks.DataSync', repeatType: 'CRON', cronExpression: '0 0 29 2 *', timezone: 'America/New_York' },
      }),
    ).createTimerTask;
    // As an older version would have stored it.
    await t.app.db.prisma.task.update({ where: { id: created.id }, data: { cronExpression: '0 0 29 2 +1' } });
    const task = ok(await t.gql(UPCOMING, { id: created.id })).task;
    expect(task.upcomingRuns).toEqual([{ at: created.nextRunAt }]);
  });
});
