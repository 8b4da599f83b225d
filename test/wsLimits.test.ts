import { Writable } from 'node:stream';
import type { Client } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { Collector, wsClient } from './support/subscriptions.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const CREATE = `mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }`;
const FUTURE = { fullName: 'tasks.DataSync', startTime: '2099-01-01 10:00:00' };
const SUB = `subscription($after: String, $filter: TaskEventFilter) { taskStatusChanged(after: $after, filter: $filter) { cursor } }`;

type Result = { data?: { taskStatusChanged: { cursor: string } } | null; errors?: readonly { message: string; extensions?: any }[] };

/**
 * graphql-ws connections: one may have MAX_SUBSCRIPTIONS_PER_CONNECTION operations at once (the excess
 * subscribe is refused, its others go on), and input errors of its operations are the client's, logged at
 * info as over HTTP.
 */
describe.each(backends)('WebSocket limits and input errors (%s)', (backend) => {
  let t: TestApp;
  let url: string;
  const logs: { level: number; msg: string; code?: string }[] = [];
  const clients: Client[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
        done();
      },
    });
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' }, logger: createLogger('info', sink) });
    ({ url } = await t.app.listen(0, '127.0.0.1'));
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.dispose()));
  });
  afterAll(() => t?.close());

  function ws() {
    const client = wsClient(url);
    clients.push(client);
    return client;
  }
  const subscribe = (client: Client, variables: Record<string, unknown>) =>
    new Collector<Result>(client.iterate({ query: SUB, variables }) as AsyncIterable<Result>);

  it('refuses the 101st subscribe on one connection with QUOTA_EXCEEDED while the first 100 go on delivering', async () => {
    ok(await t.gql(CREATE, { input: FUTURE }));
    const client = ws();
    // From the start of the stream: each one replays the task's events, so none can miss them.
    const first = Array.from({ length: 100 }, () => subscribe(client, { after: '0' }));
    await Promise.all(first.map((c) => c.until((items) => items.length >= 1, 'the replayed event')));

    const refused = subscribe(client, { after: '0' });
    await waitFor(() => refused.ended, { timeoutMs: 10_000, what: 'the 101st subscribe to be refused' });
    expect(refused.items).toEqual([]);
    const errors = refused.error as { extensions?: Record<string, unknown> }[];
    expect(Array.isArray(errors)).toBe(true);
    expect(errors[0]!.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'MAX_SUBSCRIPTIONS_PER_CONNECTION', limit: 100 });

    // The connection and its 100 subscriptions live on: a new task's events reach every one.
    const before = first.map((c) => c.items.length);
    ok(await t.gql(CREATE, { input: FUTURE }));
    await Promise.all(first.map((c, i) => c.until((items) => items.length > before[i]!, 'the new task’s events')));
    expect(first.every((c) => !c.ended && !c.items.some((r) => r.errors?.length))).toBe(true);

    // Once one ends, there is room for another.
    await first[0]!.close();
    const again = subscribe(client, { after: '0' });
    await again.until((items) => items.length >= 1, 'the replayed events');
    expect(again.items[0]!.errors).toBeUndefined();
  });

  it('answers a bad variable of a WebSocket subscription BAD_USER_INPUT and logs it at info, not as an unexpected error', async () => {
    logs.length = 0;
    const refused = subscribe(ws(), { filter: { statuses: ['BOGUS'] } });
    await refused.finished();
    const errors = refused.error as { message: string; extensions?: Record<string, unknown> }[];
    expect(Array.isArray(errors)).toBe(true);
    expect(errors[0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'statuses[0]' });
    expect(errors[0]!.message).toContain('BOGUS');
    await waitFor(() => logs.some((l) => l.msg === 'request refused' && l.code === 'BAD_USER_INPUT'), {
      what: 'the refusal logged at info',
    });
    expect(logs.filter((l) => l.level >= 50)).toEqual([]);
    // The connection is fine: a good subscription on it works.
    ok(await t.gql(CREATE, { input: FUTURE }));
    const good = subscribe(clients[0]!, { after: '0' });
    await good.until((items) => items.length >= 1, 'the replayed events');
    expect(good.items[0]!.errors).toBeUndefined();
  });
});
