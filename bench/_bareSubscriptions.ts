// The baseline of bench/subscriptions.ts: a bare `ws` + `graphql-ws` server, no Chronograph in the
// delivery path. It LISTENs to the same NOTIFY channel Chronograph's TaskEventStream does (the same
// commit signal, from the same transactions), reads the events newer than the last it pushed with their
// tasks (one query for all subscribers, as Chronograph does; the benchmark's one writer commits them in
// id order, so it needs none of the stream's care for ids that commit out of order) and pushes each to
// every subscriber, where graphql-ws runs
// the subscriber's document over it as any plain graphql-ws server does (one execution and one frame per
// subscriber). What Chronograph adds on top of this is what the benchmark's ratio measures.
import http from 'node:http';
import { buildSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { Database } from '../src/db/Database.js';
import { TASK_EVENT_CHANNEL } from '../src/tasks/statusMachine.js';

const schema = buildSchema(`
  type Task { id: ID! status: String! }
  type TaskEvent { id: ID! cursor: String! toStatus: String! task: Task! }
  type Query { ok: Boolean }
  type Subscription { taskStatusChanged: TaskEvent! }
`);

interface BareEvent {
  id: string;
  cursor: string;
  toStatus: string;
  task: { id: string; status: string };
}

/** One subscriber's queue, as the async iterator graphql-js consumes. */
class Queue implements AsyncIterableIterator<{ taskStatusChanged: BareEvent }> {
  private readonly items: BareEvent[] = [];
  private waiter?: (result: IteratorResult<{ taskStatusChanged: BareEvent }>) => void;
  constructor(private readonly onEnd: () => void) {}
  [Symbol.asyncIterator]() {
    return this;
  }
  push(event: BareEvent) {
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) waiter({ value: { taskStatusChanged: event }, done: false });
    else this.items.push(event);
  }
  next(): Promise<IteratorResult<{ taskStatusChanged: BareEvent }>> {
    const item = this.items.shift();
    if (item) return Promise.resolve({ value: { taskStatusChanged: item }, done: false });
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }
  return(): Promise<IteratorResult<{ taskStatusChanged: BareEvent }>> {
    this.onEnd();
    this.waiter?.({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }
}

export interface BareServer {
  port: number;
  subscribers(): number;
  close(): Promise<void>;
}

export async function startBareServer(db: Database): Promise<BareServer> {
  const queues = new Set<Queue>();
  // Announcements in commit order; each event read once, then pushed to everyone in that order.
  let chain: Promise<void> = Promise.resolve();
  let last = 0n;
  // Where delivery starts: the newest event when the first subscriber comes (nothing is read meanwhile,
  // so that it does no work while Chronograph is measured).
  const startFromNow = () => {
    chain = chain.then(async () => {
      const [row] = await db.prisma.$queryRaw<{ newest: string }[]>`SELECT coalesce(max(id), 0)::text AS newest FROM task_event`;
      last = BigInt(row!.newest);
    });
  };
  const unlisten = await db.listen(TASK_EVENT_CHANNEL, () => {
    if (queues.size === 0) return;
    chain = chain.then(async () => {
      const rows = await db.prisma.$queryRaw<{ id: string; to_status: string; task_id: string; status: string }[]>`
        SELECT e.id::text AS id, e.to_status::text AS to_status, t.id AS task_id, t.status::text AS status
          FROM task_event e JOIN task t ON t.id = e.task_id WHERE e.id > ${last} ORDER BY e.id`;
      for (const row of rows) {
        last = BigInt(row.id);
        const event: BareEvent = { id: row.id, cursor: row.id, toStatus: row.to_status, task: { id: row.task_id, status: row.status } };
        for (const queue of queues) queue.push(event);
      }
    });
  });
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, path: '/graphql' });
  useServer(
    {
      schema,
      roots: {
        subscription: {
          taskStatusChanged: () => {
            const queue: Queue = new Queue(() => queues.delete(queue));
            if (queues.size === 0) startFromNow();
            queues.add(queue);
            return queue;
          },
        },
      },
    },
    wss,
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    subscribers: () => queues.size,
    async close() {
      await unlisten();
      for (const socket of wss.clients) socket.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
