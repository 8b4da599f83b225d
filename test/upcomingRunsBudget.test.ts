import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CronExpression } from '../src/time/CronExpression.js';
import { Collector, sseSubscribe, wsClient } from './support/subscriptions.js';
import { backends, createTestApp, type GqlResult, ok, type TestApp } from './support/testApp.js';

// Task.upcomingRuns is measured by `count` before a query runs, but what it walks depends on each task's
// cron expression: a page of yearly tasks in as many zones, `count: 1000` each, was measured at about
// 40,000 (under MAX_QUERY_COST 50,000) and walked a century of each zone's offsets per task (tens of
// seconds of a blocked event loop). Each list now charges the query's budget (QueryBudget: what the
// measured cost left of MAX_QUERY_COST) as previewSchedule is priced, 500 a year its runs cover, before it
// walks. Nothing here measures time; the timeouts only stop a regression from hanging the run.
const NOW = new Date('2029-06-01T00:00:00Z');
const GUARD = { timeout: 60_000 };
const CREATE_MANY = `mutation($inputs: [TimerTaskInput!]!) { createTimerTasks(inputs: $inputs) { id } }`;
const PAGE = `query($n: Int, $count: Int) { tasks(first: $n) { edges { node { id repeatType upcomingRuns(count: $count) { at } } } } }`;

// biome-ignore format: a table
const ZONES = [
  'America/New_York', 'America/Chicago', 'America/Denver', 'America/Los_Angeles', 'America/Anchorage', 'America/Halifax',
  'America/St_Johns', 'America/Sao_Paulo', 'America/Santiago', 'America/Mexico_City', 'America/Havana', 'America/Asuncion',
  'Europe/London', 'Europe/Paris', 'Europe/Berlin', 'Europe/Madrid', 'Europe/Rome', 'Europe/Athens', 'Europe/Helsinki',
  'Europe/Kyiv', 'Europe/Dublin', 'Europe/Lisbon', 'Europe/Warsaw', 'Europe/Prague', 'Africa/Cairo', 'Africa/Casablanca',
  'Asia/Beirut', 'Asia/Jerusalem', 'Asia/Tehran', 'Asia/Damascus', 'Australia/Sydney', 'Australia/Melbourne',
  'Australia/Adelaide', 'Australia/Hobart', 'Australia/Lord_Howe', 'Pacific/Auckland', 'Pacific/Chatham', 'Atlantic/Azores',
  'America/Nuuk', 'Antarctica/Troll',
];

type Edge = { node: { id: string; repeatType: string; upcomingRuns: { at: string }[] } };

describe.each(backends)('Task.upcomingRuns charges the query budget by the years its runs cover (%s)', (backend) => {
  let t: TestApp;
  let url: string;
  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW });
    url = (await t.app.listen(0, '127.0.0.1')).url;
  });
  afterAll(() => t?.close());

  /**
   * Requests acting on `tenant` (no credential is configured: x-tenant-id picks it), which gets a
   * tasks.DataSync template of its own: each test lists its own tasks.
   */
  async function as(tenant: string) {
    const gql = (query: string, variables?: Record<string, unknown>) => t.gql(query, variables, { 'x-tenant-id': tenant });
    ok(
      await gql(`mutation($input: TaskTemplateInput!) { createTaskTemplate(input: $input) { fullName } }`, {
        input: { fullName: 'tasks.DataSync', title: 'Data sync', funcName: 'chronograph.echo' },
      }),
    );
    return gql;
  }

  async function create(gql: Awaited<ReturnType<typeof as>>, inputs: Record<string, unknown>[]): Promise<string[]> {
    return (ok(await gql(CREATE_MANY, { inputs })).createTimerTasks as { id: string }[]).map((task) => task.id);
  }

  it(
    'refuses the 40-zone repro (yearly tasks, count: 1000) with QUERY_TOO_COMPLEX naming count, instead of walking 40 centuries',
    GUARD,
    async () => {
      const gql = await as('zones');
      await create(
        gql,
        ZONES.map((timezone) => ({ fullName: 'tasks.DataSync', repeatType: 'CRON', cronExpression: '0 0 1 1 *', timezone })),
      );
      const result = await gql(PAGE, { n: 40, count: 1000 });
      // The first list does not fit, and the budget is then spent: every list is null with its error, the page comes.
      const edges = (result.data as { tasks: { edges: { node: { upcomingRuns: unknown } }[] } }).tasks.edges;
      expect(edges.map(({ node }) => node.upcomingRuns)).toEqual(Array(40).fill(null));
      expect(result.errors).toHaveLength(40);
      const [error] = result.errors!;
      expect(error!.path).toEqual(['tasks', 'edges', 0, 'node', 'upcomingRuns']);
      expect(error!.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'MAX_QUERY_COST', allowed: 50_000, field: 'count' });
      // The measured cost (about 40,000 for 40 lists of 1000) plus a century of the first list (50,000).
      expect(error!.extensions!.measured).toBeGreaterThan(90_000);
      expect(error!.message).toContain('500 a year');
    },
  );

  it('lists an ordinary page: 5 runs of each daily task, and a yearly task limited by maxRuns', GUARD, async () => {
    const gql = await as('daily');
    await create(gql, [
      ...ZONES.slice(0, 19).map((timezone) => ({ fullName: 'tasks.DataSync', repeatType: 'CRON', cronExpression: '30 9 * * *', timezone })),
      // Three runs left: charged for three years, not for the hundred `count` could ask.
      { fullName: 'tasks.DataSync', repeatType: 'CRON', cronExpression: '0 0 1 1 *', timezone: 'Europe/Paris', maxRuns: 3 },
    ]);
    const lengths = async (count: number) =>
      (ok(await gql(PAGE, { n: 20, count })).tasks.edges as Edge[]).map(({ node }) => node.upcomingRuns.length).sort((a, b) => a - b);
    expect(await lengths(5)).toEqual([3, ...Array(19).fill(5)]);
    // 1000 days of each daily task (about 1,370 each) and the yearly one's 3 years fit beside the measured 20,000.
    expect(await lengths(1000)).toEqual([3, ...Array(19).fill(1000)]);
  });

  it('charges nothing for INTERVAL tasks, which walk no zone: a page of yearly intervals lists a century each', GUARD, async () => {
    const gql = await as('intervals');
    await create(
      gql,
      ZONES.slice(0, 20).map((timezone) => ({
        fullName: 'tasks.DataSync',
        repeatType: 'INTERVAL',
        intervalSeconds: 365 * 86_400,
        timezone,
        startTime: '2030-01-01 00:00:00',
      })),
    );
    const edges = ok(await gql(PAGE, { n: 20, count: 100 })).tasks.edges as Edge[];
    expect(edges.map(({ node }) => node.upcomingRuns.length)).toEqual(Array(20).fill(100));
  });

  it('refuses only the lists past the budget: the first three yearly lists of 30 fit, the later ones are refused', GUARD, async () => {
    const gql = await as('mix');
    const ids = await create(
      gql,
      ZONES.slice(0, 5).map((timezone) => ({ fullName: 'tasks.DataSync', repeatType: 'CRON', cronExpression: '0 0 1 1 *', timezone })),
    );
    // In a list, in list order: the fourth is the first refused, and the fifth after it; the first three come.
    const page = await gql(`{ tasks(first: 5) { edges { node { upcomingRuns(count: 30) { at } } } } }`);
    expect(
      (page.data!.tasks.edges as { node: { upcomingRuns: unknown[] | null } }[]).map(({ node }) => node.upcomingRuns?.length ?? null),
    ).toEqual([30, 30, 30, null, null]);
    expect(page.errors?.map((error) => [error.path, error.extensions?.code])).toEqual([
      [['tasks', 'edges', 3, 'node', 'upcomingRuns'], 'QUERY_TOO_COMPLEX'],
      [['tasks', 'edges', 4, 'node', 'upcomingRuns'], 'QUERY_TOO_COMPLEX'],
    ]);
    // The same over graphql-ws, whose operations get a context (and a budget) each.
    const client = wsClient(url, { tenantId: 'mix' });
    try {
      const overWs = (await new Collector(
        client.iterate({ query: `{ tasks(first: 5) { edges { node { upcomingRuns(count: 30) { at } } } } }` }),
      ).finished()) as GqlResult[];
      expect(overWs.map((r) => r.errors?.map((error) => [error.path, error.extensions?.code]))).toEqual([
        [
          [['tasks', 'edges', 3, 'node', 'upcomingRuns'], 'QUERY_TOO_COMPLEX'],
          [['tasks', 'edges', 4, 'node', 'upcomingRuns'], 'QUERY_TOO_COMPLEX'],
        ],
      ]);
    } finally {
      await client.dispose();
    }
    const [interval] = await create(gql, [{ fullName: 'tasks.DataSync', repeatType: 'INTERVAL', intervalSeconds: 3600 }]);
    // 30 runs of a yearly job cover 30 years: 15,001 each; three fit in what the measured cost leaves, four do not.
    const aliased = `query(${ids.map((_, i) => `$t${i}: ID!`).join(', ')}, $interval: ID!) {
      ${ids.map((_, i) => `t${i}: task(id: $t${i}) { upcomingRuns(count: 30) { at } }`).join('\n')}
      interval: task(id: $interval) { upcomingRuns(count: 30) { at } }
    }`;
    const result = await gql(aliased, { ...Object.fromEntries(ids.map((id, i) => [`t${i}`, id])), interval });
    const data = result.data as Record<string, { upcomingRuns: unknown[] | null }>;
    const listed = ids.map((_, i) => `t${i}`).filter((alias) => data[alias]!.upcomingRuns !== null);
    const refused = ids.map((_, i) => `t${i}`).filter((alias) => data[alias]!.upcomingRuns === null);
    // Which three depends on which task the database answered first; how many does not.
    expect(listed).toHaveLength(3);
    for (const alias of listed) expect(data[alias]!.upcomingRuns).toHaveLength(30);
    expect(result.errors?.map((error) => error.path)).toEqual(expect.arrayContaining(refused.map((alias) => [alias, 'upcomingRuns'])));
    expect(result.errors).toHaveLength(2);
    for (const error of result.errors!) {
      expect(error.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'MAX_QUERY_COST', allowed: 50_000, field: 'count' });
      expect(error.extensions!.measured).toBeGreaterThan(50_000);
    }
    // An INTERVAL list is charged nothing, so even after the budget is spent it is not refused.
    expect(data.interval!.upcomingRuns).toHaveLength(30);

    // Each request has a budget of its own: one list of 30 years at a time is always listed.
    for (const id of ids) {
      expect(ok(await gql(`query($id: ID!) { task(id: $id) { upcomingRuns(count: 30) { at } } }`, { id })).task.upcomingRuns).toHaveLength(
        30,
      );
    }
  });

  it(
    'charges each subscription event anew, over SSE and graphql-ws, and refuses a list past the budget in every event',
    GUARD,
    async () => {
      const gql = await as('live');
      const [id] = await create(gql, [
        { fullName: 'tasks.DataSync', repeatType: 'CRON', cronExpression: '0 0 1 1 *', timezone: 'Asia/Tehran' },
      ]);
      await gql(`mutation($id: ID!) { pauseTask(taskId: $id) { id } }`, { id });
      await gql(`mutation($id: ID!) { resumeTask(taskId: $id) { id } }`, { id });
      // From the first stored event: CREATED, then PAUSED and SCHEDULED again (the task lists runs in the first and last).
      const subscription = (count: number) =>
        `subscription($id: ID!) { taskStatusChanged(after: "0", filter: { taskId: $id }) { toStatus task { upcomingRuns(count: ${count}) { at } } } }`;
      const results = async (over: 'sse' | 'ws', count: number): Promise<GqlResult[]> => {
        if (over === 'sse') {
          const sse = await sseSubscribe(t.app, subscription(count), { id }, { 'x-tenant-id': 'live' });
          const collector = new Collector(sse.results);
          try {
            return [...(await collector.until((items) => items.length >= 3, 'three events'))];
          } finally {
            await sse.close();
          }
        }
        const client = wsClient(url, { tenantId: 'live' });
        const collector = new Collector(client.iterate({ query: subscription(count), variables: { id } }));
        try {
          return [...(await collector.until((items) => items.length >= 3, 'three events'))] as GqlResult[];
        } finally {
          await collector.close();
          await client.dispose();
        }
      };
      for (const over of ['sse', 'ws'] as const) {
        // 60 years (30,000) fit in one event's budget, not in two: every event lists them.
        const fitting = await results(over, 60);
        expect(fitting.map((result) => result.errors ?? [])).toEqual([[], [], []]);
        const first = fitting[0]!.data as { taskStatusChanged: { task: { upcomingRuns: unknown[] } } };
        expect(first.taskStatusChanged.task.upcomingRuns).toHaveLength(60);
        expect((fitting[2]!.data as typeof first).taskStatusChanged.task.upcomingRuns).toHaveLength(60);
        // A century does not fit in any event: each one that lists runs answers QUERY_TOO_COMPLEX naming count.
        const over100 = await results(over, 1000);
        const refusals = over100.flatMap((result) => result.errors ?? []);
        expect(refusals.length).toBeGreaterThanOrEqual(2);
        for (const error of refusals) {
          expect(error.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'MAX_QUERY_COST', field: 'count' });
          expect(error.path).toEqual(['taskStatusChanged', 'task', 'upcomingRuns']);
        }
      }
    },
  );

  it('prices a list by walking at most the 1000 runs a list may have: a larger count is refused, not walked first', GUARD, async () => {
    // The cost is measured before `count` is checked: previewSchedule(count: 1000000) of an every-second
    // schedule walked a million matches (3 s) to price a query refused anyway; two billion, two hours.
    const gql = await as('counts');
    const walked = vi.spyOn(CronExpression.prototype, 'nextLocal');
    try {
      const preview = await gql(`{ previewSchedule(input: { cronExpression: "* * * * * *" }, count: 1000000) { at } }`);
      expect(preview.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'MAX_QUERY_COST' });
      const [id] = await create(gql, [{ fullName: 'tasks.DataSync', repeatType: 'CRON', cronExpression: '* * * * * *' }]);
      const upcoming = await gql(`query($id: ID!) { task(id: $id) { upcomingRuns(count: 40000) { at } } }`, { id });
      expect(upcoming.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'count' });
      expect(walked.mock.calls.length).toBeLessThan(1000);
    } finally {
      walked.mockRestore();
    }
  });
});

describe('the budget follows MAX_QUERY_COST', () => {
  it('lets a raised limit list a century of a yearly task (the 100-year horizon still ends it), and refuses past it', GUARD, async () => {
    const t = await createTestApp('pglite', { now: () => NOW, env: { MAX_QUERY_COST: '120000' } });
    try {
      const inputs = ZONES.slice(0, 3).map((timezone) => ({
        fullName: 'tasks.DataSync',
        repeatType: 'CRON',
        cronExpression: '0 0 1 1 *',
        timezone,
      }));
      const ids = (ok(await t.gql(CREATE_MANY, { inputs })).createTimerTasks as { id: string }[]).map((task) => task.id);
      const runs = ok(await t.gql(`query($id: ID!) { task(id: $id) { upcomingRuns(count: 1000) { at } } }`, { id: ids[0] })).task
        .upcomingRuns as { at: string }[];
      expect(runs).toHaveLength(101);
      // 50,000 a century each: two fit in 120,000 beside the measured cost, the third does not.
      const page = await t.gql(PAGE, { n: 3, count: 1000 });
      expect(page.errors?.map((error) => [error.path, error.extensions])).toEqual([
        [
          ['tasks', 'edges', 2, 'node', 'upcomingRuns'],
          expect.objectContaining({ code: 'QUERY_TOO_COMPLEX', limit: 'MAX_QUERY_COST', allowed: 120_000, field: 'count' }),
        ],
      ]);
    } finally {
      await t.close();
    }
  });
});
