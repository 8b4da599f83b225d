import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_QUEUE_LABELS, OTHER_QUEUES } from '../src/ops/Metrics.js';
import { wsClient } from './support/subscriptions.js';
import { backends, createTestApp, createTestDatabase, type TestApp, withClient } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * /health, /ready and /metrics as an operator's probes and Prometheus see them: over a real port,
 * with tasks created over GraphQL and run by the scheduler, and — on PostgreSQL — after the database
 * itself disappears.
 */
const METRICS_TOKEN = 'metrics-token-for-tests-0123456789';

describe.each(backends)('operations endpoints on %s', (backend) => {
  let t: TestApp;
  let base: string;
  const logLines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
        done();
      },
    });
    t = await createTestApp(backend, { logger: pino({ level: 'info' }, sink), env: { METRICS_TOKEN, LOG_REQUESTS: 'true' } });
    const { port } = await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(() => t?.close());

  async function graphql(query: string, operationName?: string) {
    const response = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, operationName }),
    });
    return { status: response.status, body: (await response.json()) as { data?: any; errors?: any[] } };
  }

  async function scrape(): Promise<string> {
    const response = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    return response.text();
  }

  it('answers /health and /ready with JSON, and only to GET and HEAD', async () => {
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });
    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: 'ready',
      checks: {
        database: { ok: true, ms: expect.any(Number) },
        migrations: { ok: true },
        notifications: { ok: true, state: 'connected' },
        scheduler: { ok: true, enabled: true, running: true },
        shutdown: { ok: true },
      },
    });
    expect((await fetch(`${base}/ready`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${base}/health`, { method: 'HEAD' })).status).toBe(200);
  });

  it('refuses /metrics without the METRICS_TOKEN bearer token', async () => {
    const none = await fetch(`${base}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toContain('Bearer');
    expect((await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer wrong-token-wrong-token-0000' } })).status).toBe(401);
    expect(await scrape()).toContain('# TYPE chronograph_tasks_claimed_total counter');
  });

  it('counts tasks created, claimed and completed, their durations and lateness, requests and GraphQL errors', async () => {
    const before = await scrape();
    const create = (funcName: string) =>
      graphql(
        `mutation Create { createTimerTask(input: { fullName: "tasks.DataSync", funcName: "${funcName}", startTime: "2020-01-01T00:00:00Z", maxAttempts: 1 }) { id } }`,
        'Create',
      );
    const created = await Promise.all([create('chronograph.echo'), create('chronograph.echo'), create('chronograph.fail')]);
    const svc = t.app.getElement('services.TaskSvc');
    for (const { body } of created) await svc.waitForTask(body.data.createTimerTask.id);
    expect((await graphql('{ nope }')).body.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    const ws = wsClient(`${base}/graphql`);
    try {
      const answer = await ws.iterate({ query: 'query OverWs { task(id: "00000000-0000-0000-0000-000000000000") { id } }' }).next();
      expect(answer.value).toEqual({ data: { task: null } });
      const bad = await ws.iterate({ query: '{ task(id: "not-a-uuid") { id } }' }).next();
      expect(bad.value.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    } finally {
      await ws.dispose();
    }

    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
    expect(delta('chronograph_tasks_created_total', { queue: 'default', source: 'API' })).toBe(3);
    expect(delta('chronograph_tasks_claimed_total', { queue: 'default' })).toBe(3);
    expect(delta('chronograph_tasks_completed_total', { queue: 'default', status: 'SUCCEEDED' })).toBe(2);
    expect(delta('chronograph_tasks_completed_total', { queue: 'default', status: 'FAILED' })).toBe(1);
    expect(delta('chronograph_task_run_duration_seconds_count', { queue: 'default', status: 'SUCCEEDED' })).toBe(2);
    expect(delta('chronograph_task_lateness_seconds_count', { queue: 'default' })).toBe(3);
    // Due since 2020: every claim was years late, so all three sit above the largest finite bucket.
    expect(delta('chronograph_task_lateness_seconds_bucket', { queue: 'default', le: '300' })).toBe(0);
    expect(
      delta('chronograph_http_request_duration_seconds_count', { route: '/graphql', method: 'POST', status: '200' }),
    ).toBeGreaterThanOrEqual(3);
    expect(delta('chronograph_graphql_operation_duration_seconds_count', { type: 'mutation', transport: 'http' })).toBe(3);
    expect(delta('chronograph_graphql_errors_total', { code: 'GRAPHQL_VALIDATION_FAILED', transport: 'http' })).toBe(1);
    expect(delta('chronograph_graphql_operation_duration_seconds_count', { type: 'query', transport: 'ws' })).toBe(2);
    expect(delta('chronograph_graphql_errors_total', { code: 'BAD_USER_INPUT', transport: 'ws' })).toBe(1);
    expect(value(after, 'chronograph_database_up')).toBe(1);
    expect(after).toMatch(/^process_cpu_seconds_total \d/m);

    const lines = logLines.filter((l) => l.msg === 'request' && l.operation === 'Create');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({
      level: 30,
      method: 'POST',
      path: '/graphql',
      status: 200,
      operationType: 'mutation',
      ms: expect.any(Number),
    });
    expect(logLines.filter((l) => l.msg === 'request' && JSON.stringify(l.errors) === '["GRAPHQL_VALIDATION_FAILED"]')).toHaveLength(1);
  });

  it('reports the due backlog from the database, and is not ready while the scheduler is stopped', async () => {
    await t.app.scheduler.stop(0);
    try {
      const svc = t.app.getElement('services.TaskSvc');
      await svc.createTimerTask({ fullName: 'tasks.DataSync', startTime: new Date(Date.now() - 60_000).toISOString(), queue: 'reports' });
      const text = await scrape();
      expect(value(text, 'chronograph_tasks_due', { queue: 'reports' })).toBe(1);
      expect(value(text, 'chronograph_tasks_oldest_due_age_seconds', { queue: 'reports' })).toBeGreaterThanOrEqual(59);
      expect(value(text, 'chronograph_scheduler_running_handlers')).toBe(0);
      const ready = await fetch(`${base}/ready`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({
        status: 'not ready',
        reason: 'the scheduler is enabled but not running',
        checks: { scheduler: { ok: false } },
      });
    } finally {
      await t.app.scheduler.start();
    }
    await waitFor(async () => (await fetch(`${base}/ready`)).status === 200, { what: 'ready again' });
    await waitFor(async () => value(await scrape(), 'chronograph_tasks_due', { queue: 'reports' }) === 0, { what: 'the backlog to drain' });
  });

  it('gives at most MAX_QUEUE_LABELS queues label values of their own; the queues after them count as (other)', async () => {
    await t.app.scheduler.stop(0);
    const svc = t.app.getElement('services.TaskSvc');
    const created = await svc.createTimerTasks(
      Array.from({ length: MAX_QUEUE_LABELS + 5 }, (_, i) => ({
        fullName: 'tasks.DataSync',
        startTime: '2099-01-01 10:00:00',
        queue: `q${i}`,
      })),
    );
    try {
      // Waiting tasks (due later) are not in the due gauges: make them due, then read the gauges.
      await t.app.db.prisma.task.updateMany({
        where: { id: { in: created.map((c) => c.id) } },
        data: { nextRunAt: new Date(Date.now() - 1000) },
      });
      const text = await scrape();
      const queues = new Set(
        text
          .split('\n')
          .filter((line) => line.startsWith('chronograph_tasks_due{'))
          .map((line) => /queue="([^"]*)"/.exec(line)?.[1]),
      );
      expect(queues.size).toBeLessThanOrEqual(MAX_QUEUE_LABELS + 1);
      expect(value(text, 'chronograph_tasks_due', { queue: OTHER_QUEUES })).toBeGreaterThanOrEqual(5);
    } finally {
      for (const task of created) await svc.cancelTask(task.id).catch(() => {});
      await t.app.scheduler.start();
    }
  });
});

describe.runIf(backends.includes('postgres'))('readiness when PostgreSQL goes away', () => {
  it('turns /ready to 503 with the reason while /health and /metrics keep answering', async () => {
    const database = await createTestDatabase('postgres');
    const t = await createTestApp('postgres', { database, env: { LEASE_MS: '1000' } });
    try {
      const { port } = await t.app.listen(0, '127.0.0.1');
      const base = `http://127.0.0.1:${port}`;
      expect((await fetch(`${base}/ready`)).status).toBe(200);

      const name = new URL(database.url!).pathname.slice(1);
      await withClient(process.env.TEST_DATABASE_URL!, (c) => c.query(`DROP DATABASE "${name}" WITH (FORCE)`));

      const ready = await waitFor(
        async () => {
          const response = await fetch(`${base}/ready`);
          return response.status === 503 ? ((await response.json()) as any) : undefined;
        },
        { what: '/ready to answer 503' },
      );
      expect(ready).toMatchObject({
        status: 'not ready',
        checks: { database: { ok: false, error: expect.any(String) }, migrations: { ok: false } },
      });
      expect(ready.reason).toMatch(/^the database is unreachable: /);
      await waitFor(async () => ((await (await fetch(`${base}/ready`)).json()) as any).checks.notifications.ok === false, {
        what: 'the LISTEN connection to count as down',
      });
      expect((await fetch(`${base}/health`)).status).toBe(200);
      const metrics = await fetch(`${base}/metrics`);
      expect(metrics.status).toBe(200);
      const text = await metrics.text();
      expect(value(text, 'chronograph_database_up')).toBe(0);
      expect(text).not.toContain('chronograph_tasks_due{');
    } finally {
      await t.close();
      await database.drop();
    }
  }, 60_000);
});

/** The value of one sample in Prometheus text format (0 when absent); `labels` must match exactly. */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    const keys = Object.keys(found);
    if (keys.length === Object.keys(labels).length && keys.every((k) => found[k] === labels[k])) return Number(m[3]);
  }
  return 0;
}
