import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { followTaskEvents, type TaskStatusChange } from '../examples/followTaskEvents.js';
import { type ChronographProcess, freePort, post, root, startChronograph } from './support/chronographProcess.js';
import { Collector, sseSubscribe, wsClient } from './support/subscriptions.js';
import type { GqlResult } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * SIGTERM as an operator sends it, to the real process (src/main.ts), with clients of every kind
 * attached: one that reads its WebSocket, one on SSE, and one whose socket has stopped reading.
 */
const dirs: string[] = [];
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function dataDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chronograph-shutdown-'));
  dirs.push(dir);
  return dir;
}

const SUB = 'subscription($after: String) { taskStatusChanged(after: $after) { cursor toStatus } }';
const CREATE = 'mutation { createTimerTask(input: { fullName: "tasks.Echo", startTime: "2099-01-01 10:00:00" }) { id } }';

/** A graphql-ws client that subscribes, then stops reading its socket (its TCP buffer fills; it never answers a close). */
async function stalledSubscriber(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url, 'graphql-transport-ws');
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  socket.send(JSON.stringify({ type: 'connection_init' }));
  await new Promise((resolve) => socket.once('message', resolve));
  socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: SUB } }));
  return socket;
}

async function stopped(server: ChronographProcess): Promise<number | null> {
  return Promise.race([
    server.exited,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`did not exit:\n${server.output()}`)), 20_000)),
  ]);
}

describe('SIGTERM (the src/main.ts process)', () => {
  it('refuses new work with 503, ends subscriptions on both transports with SHUTTING_DOWN and their cursor, and exits although a client stopped reading', async () => {
    const port = await freePort();
    const server = startChronograph({
      PORT: String(port),
      DATA_DIR: dataDir(),
      APP_DIR: path.join(root, 'app'),
      SHUTDOWN_GRACE_MS: '1500',
    });
    await server.listening;
    const url = `http://127.0.0.1:${port}/graphql`;
    const client = wsClient(url);
    try {
      const overWs = new Collector(client.iterate({ query: SUB }));
      const overSse = new Collector((await sseSubscribe(url, SUB)).results);
      const stalled = await stalledSubscriber(url.replace(/^http/, 'ws'));
      // The subscribers are live once an event created now reaches both of them.
      await waitFor(
        async () => {
          await post(port, CREATE);
          return overWs.items.length > 0 && overSse.items.length > 0;
        },
        { what: 'both subscribers to receive events' },
      );
      (stalled as unknown as { _socket: { pause(): void } })._socket.pause();
      await post(port, CREATE);
      const newest = (await post(port, '{ taskEvents(last: 1) { edges { node { cursor } } } }')).data.taskEvents.edges[0].node
        .cursor as string;
      await waitFor(
        () => [overWs, overSse].every((c) => c.items.some((r) => (r as GqlResult).data?.taskStatusChanged?.cursor === newest)),
        { what: 'the newest event on both transports' },
      );

      server.child.kill('SIGTERM');
      await waitFor(() => server.output().includes('shutting down'), { what: 'the signal to arrive' });
      // On a new connection: the instance closes idle keep-alive connections as it begins to shut down,
      // and a request sent on one just then would meet the close instead of the answer.
      const refused = await new Promise<{ status: number; body: GqlResult }>((resolve, reject) => {
        const request = http.request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as GqlResult }));
        });
        request.on('error', reject);
        request.end(JSON.stringify({ query: '{ taskTypes }' }));
      });
      expect(refused.status).toBe(503);
      expect(refused.body.errors?.[0]?.extensions?.code).toBe('SHUTTING_DOWN');
      const upgrade = await new Promise<number>((resolve) => {
        const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
        socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
        socket.once('open', () => resolve(101));
        socket.once('error', () => resolve(0));
      });
      expect(upgrade).toBe(503);

      for (const subscriber of [overWs, overSse]) {
        const results = (await subscriber.finished()) as GqlResult[];
        expect(results.at(-1)!.errors?.[0]?.extensions).toEqual({ code: 'SHUTTING_DOWN', lastCursor: newest });
      }
      expect(await stopped(server)).toBe(0);
      expect(server.output()).toContain('Chronograph stopped');
      stalled.terminate();
    } finally {
      await client.dispose();
      server.child.kill('SIGKILL');
    }
  }, 120_000);

  it('answers 503 SHUTTING_DOWN on /ready and /graphql while a handler finishes, then exits', async () => {
    const port = await freePort();
    const server = startChronograph({
      PORT: String(port),
      DATA_DIR: dataDir(),
      APP_DIR: path.join(root, 'app'),
      SHUTDOWN_GRACE_MS: '8000',
    });
    try {
      await server.listening;
      const get = (pathname: string) =>
        new Promise<number>((resolve, reject) => {
          http
            .get({ host: '127.0.0.1', port, path: pathname, agent: false }, (response) => {
              response.resume();
              response.on('end', () => resolve(response.statusCode ?? 0));
            })
            .on('error', reject);
        });
      const created = await post(
        port,
        'mutation { createTimerTask(input: { fullName: "tasks.Echo", funcName: "chronograph.sleep", argDict: { ms: 3000 }, startTime: "2000-01-01T00:00:00Z" }) { id } }',
      );
      expect(created.errors).toBeUndefined();
      await waitFor(
        async () =>
          (await post(port, '{ tasks(filter: { status: [RUNNING] }, first: 5) { edges { node { id } } } }')).data?.tasks?.edges?.length ===
          1,
        {
          what: 'the sleep to start',
        },
      );
      server.child.kill('SIGTERM');
      await waitFor(() => server.output().includes('shutting down'), { what: 'the signal to arrive' });
      // No request is in flight: before, the port closed here, and the process lived on for the handler.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await get('/ready')).toBe(503);
      expect(await get('/graphql?query=%7BtaskTypes%7D')).toBe(503);
      expect(server.output()).not.toContain('Chronograph stopped');
      expect(await stopped(server)).toBe(0);
      expect(server.output()).toContain('Chronograph stopped');
    } finally {
      server.child.kill('SIGKILL');
    }
  }, 60_000);

  it("the README's graphql-ws loop (examples/followTaskEvents.ts) follows every event across a restart, without gap or duplicate", async () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const example = readFileSync(path.join(root, 'examples/followTaskEvents.ts'), 'utf8');
    expect(readme).toContain(`\`\`\`ts\n${example}\`\`\``);

    const port = await freePort();
    const env = { PORT: String(port), DATA_DIR: dataDir(), APP_DIR: path.join(root, 'app'), SHUTDOWN_GRACE_MS: '1000' };
    const first = startChronograph(env);
    await first.listening;
    const seen: TaskStatusChange[] = [];
    const stop = new AbortController();
    const following = followTaskEvents({
      url: `ws://127.0.0.1:${port}/graphql`,
      after: '0',
      signal: stop.signal,
      onEvent: (event) => void seen.push(event),
    });
    try {
      for (let i = 0; i < 3; i++) await post(port, CREATE);
      await waitFor(() => seen.length >= 3, { what: 'three events before the restart' });
      first.child.kill('SIGTERM');
      expect(await stopped(first)).toBe(0);

      const second = startChronograph(env);
      try {
        await second.listening;
        const { id } = (await post(port, CREATE)).data.createTimerTask as { id: string };
        await post(port, 'mutation($id: ID!) { forcedEnd(taskId: $id) { status } }', { id });
        const all = (
          (await post(port, '{ taskEvents(first: 500) { edges { node { cursor } } } }')).data.taskEvents.edges as {
            node: { cursor: string };
          }[]
        ).map((e) => e.node.cursor);
        await waitFor(() => seen.length >= all.length, { what: `all ${all.length} events after the restart` });
        expect(seen.map((e) => e.cursor)).toEqual(all);
        stop.abort();
        await following;
      } finally {
        second.child.kill('SIGTERM');
        await second.exited;
      }
    } finally {
      stop.abort();
      first.child.kill('SIGKILL');
    }
  }, 120_000);
});
