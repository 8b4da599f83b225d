import { Writable } from 'node:stream';
import type { Client } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createLogger } from '../src/logger.js';
import { TaskSvc } from '../src/tasks/TaskSvc.js';
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

  it('counts an operation until it ends, not until the client completes it: completing in a loop runs no more than the limit', async () => {
    // A raw socket: graphql-ws's client never sends a subscribe it was told to stop before sending it.
    const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    const messages: { type: string; id?: string; payload?: unknown }[] = [];
    socket.on('message', (data) => messages.push(JSON.parse(String(data))));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init' }));
    await waitFor(() => messages.some((m) => m.type === 'connection_ack'), { what: 'connection_ack' });
    // Queries held in their resolver: each one executing counts against the connection's 100.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let started = 0;
    const stats = TaskSvc.prototype.stats;
    let finished = 0;
    TaskSvc.prototype.stats = async function (this: TaskSvc) {
      started++;
      await held;
      try {
        return await stats.call(this);
      } finally {
        finished++;
      }
    };
    try {
      for (let i = 0; i < 130; i++) {
        // Subscribe, then complete at once: graphql-ws forgets the operation, which goes on executing.
        socket.send(JSON.stringify({ id: `q${i}`, type: 'subscribe', payload: { query: '{ taskStats { total } }' } }));
        socket.send(JSON.stringify({ id: `q${i}`, type: 'complete' }));
      }
      await waitFor(() => started >= 100, { what: '100 queries executing' });
      // Give the other 30 time to arrive: they are refused, none of them starts.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(started).toBe(100);
    } finally {
      release();
      TaskSvc.prototype.stats = stats;
    }
    // Once they end (100 reads of the database at once), the connection may run operations again.
    await waitFor(() => finished === 100, { timeoutMs: 30_000, what: 'the held queries to end' });
    let attempt = 0;
    await waitFor(
      async () => {
        const id = `last${attempt++}`;
        socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query: '{ taskStats { total } }' } }));
        await waitFor(() => messages.some((m) => m.id === id && (m.type === 'next' || m.type === 'error')), { what: `an answer to ${id}` });
        return messages.some((m) => m.id === id && m.type === 'next');
      },
      { what: 'an answer once they ended' },
    );
    socket.close();
  });

  it('cuts a refusal quoting a huge value, in the answer and in the log, as over HTTP', async () => {
    logs.length = 0;
    const huge = 'Z'.repeat(100_000);
    for (const [query, variables] of [
      [`{ tasks(first: "${huge}") { totalCount } }`, undefined],
      ['query($f: Int) { tasks(first: $f) { totalCount } }', { f: huge }],
    ] as const) {
      const refused = new Collector<Result>(ws().iterate({ query, variables }) as AsyncIterable<Result>);
      await refused.finished();
      const errors = refused.error as { message: string }[];
      expect(errors[0]!.message.length).toBeLessThan(1_100);
    }
    expect(logs.every((line) => JSON.stringify(line).length < 5_000)).toBe(true);
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
