import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TaskSvc } from '../src/tasks/TaskSvc.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/** Makes TaskSvc.stats wait until released, so that a request holds its slot as long as the test wants. */
function holdStats() {
  const original = TaskSvc.prototype.stats;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let entered = 0;
  TaskSvc.prototype.stats = async function (this: TaskSvc, ...args: Parameters<TaskSvc['stats']>) {
    entered++;
    await released;
    return original.apply(this, args);
  };
  return {
    entered: () => entered,
    release,
    restore: () => {
      TaskSvc.prototype.stats = original;
    },
  };
}

async function post(url: string, query: string, variables?: object) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as any };
}

/** chronograph_http_requests from /metrics (served outside admission control): GraphQL requests active and queued. */
async function httpRequests(url: string): Promise<{ active: number; queued: number; shed: number }> {
  const metrics = await (await fetch(url.replace('/graphql', '/metrics'))).text();
  const value = (name: string) => Number(new RegExp(`${name} (\\d+)`).exec(metrics)?.[1] ?? 0);
  return {
    active: value('chronograph_http_requests\\{state="active"\\}'),
    queued: value('chronograph_http_requests\\{state="queued"\\}'),
    shed: value('chronograph_http_overload_total\\{action="shed"\\}'),
  };
}

describe.each(backends)('admission control (%s)', (backend) => {
  let t: TestApp;
  let url: string;
  let restore = () => {};
  beforeAll(async () => {
    t = await createTestApp(backend, {
      env: {
        SCHEDULER_ENABLED: 'false',
        MAX_CONCURRENT_REQUESTS: '1',
        MAX_QUEUE_WAIT_MS: '300',
        MAX_UNSENT_BYTES: '2000000',
        MAX_RECEIVING_BYTES: '700000',
      },
    });
    ({ url } = await t.app.listen(0, '127.0.0.1'));
  });
  afterEach(() => restore());
  afterAll(() => t?.close());

  it('queues requests beyond MAX_CONCURRENT_REQUESTS and runs them when a slot frees', async () => {
    const hold = holdStats();
    restore = hold.restore;
    const first = post(url, '{ taskStats { total } }');
    await waitFor(() => hold.entered() === 1);
    const second = post(url, '{ taskTypes }');
    await waitFor(async () => (await httpRequests(url)).queued === 1, { what: 'the second request to queue' });
    expect(await httpRequests(url)).toMatchObject({ active: 1, queued: 1 });
    hold.release();
    const [a, b] = await Promise.all([first, second]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(b.body.data.taskTypes.length).toBeGreaterThan(0);
    expect(await httpRequests(url)).toMatchObject({ active: 0, queued: 0 });
  });

  it('sheds a request that waited longer than MAX_QUEUE_WAIT_MS with 503 SERVER_BUSY, and runs nothing of it', async () => {
    const hold = holdStats();
    restore = hold.restore;
    const before = await t.app.db.prisma.task.count();
    const first = post(url, '{ taskStats { total } }');
    await waitFor(() => hold.entered() === 1);
    const shed = await post(
      url,
      'mutation { createTimerTask(input: { fullName: "tasks.DataSync", startTime: "2099-01-01 10:00:00" }) { id } }',
    );
    expect(shed.status).toBe(503);
    expect(shed.retryAfter).toBe('1');
    expect(shed.body.errors[0].extensions.code).toBe('SERVER_BUSY');
    hold.release();
    expect((await first).status).toBe(200);
    expect(await t.app.db.prisma.task.count()).toBe(before);
    // The slot is free again: the same mutation now runs.
    const again = await post(
      url,
      'mutation { createTimerTask(input: { fullName: "tasks.DataSync", startTime: "2099-01-01 10:00:00" }) { id } }',
    );
    expect(again.status).toBe(200);
    expect(await t.app.db.prisma.task.count()).toBe(before + 1);
  });

  it('under a burst serves the newest requests and sheds the rest, instead of serving the burst one by one', async () => {
    const hold = holdStats();
    restore = hold.restore;
    const first = post(url, '{ taskStats { total } }');
    await waitFor(() => hold.entered() === 1);
    const { shed } = await httpRequests(url);
    const burst = Array.from({ length: 50 }, () => post(url, '{ taskTypes }'));
    // All of them seen (waiting, or shed already when a loaded machine sent them slowly), and then the queue
    // stays non-empty for more than 100 ms: it is congested, so requests older than 50 ms are shed.
    await waitFor(
      async () => {
        const now = await httpRequests(url);
        return now.queued + now.shed - shed === 50;
      },
      { what: 'the burst to arrive' },
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const late = post(url, '{ taskTypes }');
    await new Promise((resolve) => setTimeout(resolve, 10));
    hold.release();
    const answers = await Promise.all(burst);
    expect((await first).status).toBe(200);
    expect((await late).status).toBe(200);
    // Every one is answered, and most of the burst (all that had waited in the congested queue) is shed.
    expect(answers.every((a) => a.status === 200 || a.status === 503)).toBe(true);
    expect(answers.filter((a) => a.status === 503).length).toBeGreaterThanOrEqual(25);
  });

  it('a slow upload holds memory within MAX_RECEIVING_BYTES, not the slot for large requests', async () => {
    // Large bodies (256 KiB or more) have one slot here (MAX_CONCURRENT_REQUESTS 1); these uploads stall
    // 10 KB short of their 300 KB. What counts against MAX_RECEIVING_BYTES is what has arrived.
    const slowUpload = () =>
      new Promise<net.Socket>((resolve) => {
        const socket = net.connect(Number(new URL(url).port), '127.0.0.1', () => {
          socket.write(`POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 300000\r\n\r\n{"query":"`);
          socket.write('x'.repeat(290_000), () => resolve(socket));
        });
      });
    const large = () => post(url, '{ taskTypes }', { pad: 'x'.repeat(270_000) });
    const stalled = [await slowUpload()];
    try {
      // 290,000 + 270,000 bytes received fit in 700,000: served at once, the stalled upload holds no slot.
      const served = await large();
      expect(served.status).toBe(200);
      expect(served.body.data.taskTypes).toEqual(expect.any(Array));
      // 580,000 + 270,000 do not: refused at once, before its body is read.
      stalled.push(await slowUpload());
      await new Promise((resolve) => setTimeout(resolve, 50));
      const refused = await large();
      expect(refused.status).toBe(503);
      expect(refused.body.errors[0].extensions.code).toBe('SERVER_BUSY');
      // Small requests never wait for large ones.
      expect((await post(url, '{ taskTypes }')).status).toBe(200);
    } finally {
      for (const socket of stalled) socket.destroy();
    }
  });

  it('a subscription over SSE holds its slot only until its stream starts', async () => {
    const controller = new AbortController();
    const stream = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: 'subscription { taskStatusChanged { eventId } }' }),
      signal: controller.signal,
    });
    expect(stream.headers.get('content-type')).toMatch(/text\/event-stream/);
    try {
      const answer = await post(url, '{ taskTypes }');
      expect(answer.status).toBe(200);
    } finally {
      controller.abort();
    }
  });
});

describe.each(backends)('admission control: answers nobody reads (%s)', (backend) => {
  let t: TestApp;
  let url: string;
  let port: number;
  beforeAll(async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false', MAX_UNSENT_BYTES: '2000000' } });
    ({ url, port } = await t.app.listen(0, '127.0.0.1'));
  });
  afterAll(() => t?.close());

  it('drops the sockets of clients that stop reading once their unsent answers pass MAX_UNSENT_BYTES', async () => {
    // Answers of about 9 MB each: more than the kernel's socket buffers take in for a client that does not read.
    const blob = 'x'.repeat(900_000);
    ok(
      await t.gql('mutation($inputs: [TimerTaskInput!]!) { createTimerTasks(inputs: $inputs) { id } }', {
        inputs: Array.from({ length: 10 }, () => ({ fullName: 'tasks.DataSync', startTime: '2099-01-01 10:00:00', argDict: { blob } })),
      }),
    );
    // 2 MB of unsent answers are allowed; these clients never read theirs.
    const body = JSON.stringify({ query: '{ tasks(first: 10) { edges { node { id argDict } } } }' });
    const sockets = await Promise.all(
      Array.from(
        { length: 8 },
        () =>
          new Promise<net.Socket>((resolve, reject) => {
            const socket = net.connect(port, '127.0.0.1', () => {
              socket.pause();
              socket.write(
                `POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
              );
              resolve(socket);
            });
            socket.on('error', reject);
          }),
      ),
    );
    const evicted = async () => {
      const metrics = await (await fetch(url.replace('/graphql', '/metrics'))).text();
      return Number(/chronograph_http_overload_total\{action="evicted"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    };
    try {
      await waitFor(async () => (await evicted()) >= 7, { what: 'stalled answers dropped' });
      // Their sockets are closed by the server: a client that reads again finds the connection gone.
      const ended = await Promise.all(
        sockets.map(
          (socket) =>
            new Promise<boolean>((resolve) => {
              socket.once('close', () => resolve(true));
              socket.on('error', () => {});
              socket.resume();
            }),
        ),
      );
      expect(ended.every(Boolean)).toBe(true);
      expect((await post(url, '{ taskTypes }')).status).toBe(200);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });
});
