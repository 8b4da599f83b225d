import { parentPort, workerData } from 'node:worker_threads';
import pg from 'pg';
import { readRuns } from './sharedRuns.js';

/**
 * The heartbeat thread (see LeaseKeeper.ts): its own PostgreSQL connection, its own timer, so leases are
 * extended even while a handler blocks the main event loop — but only while the main thread still shows
 * signs of life (the timestamp it writes into `ping`), so that a hung instance loses its leases.
 */
export interface LeaseKeeperThreadData {
  url: string;
  workerId: string;
  leaseMs: number;
  intervalMs: number;
  watchdogMs: number;
  sql: string;
  ping: SharedArrayBuffer;
  /** The runs to extend, written by the main thread (sharedRuns.ts); a larger buffer replaces it in a 'runs' message. */
  runs: SharedArrayBuffer;
}

export type KeeperReport =
  | { type: 'beat'; sentAt: number; asked: string[]; held: string[] }
  | { type: 'ready' }
  | { type: 'failed'; error: string }
  | { type: 'blocked'; ms: number };

const data = workerData as LeaseKeeperThreadData;
const lastPing = new Float64Array(data.ping);
let runs = data.runs;
let client: pg.Client | undefined;
let beating = false;

parentPort!.on('message', (message: { type: 'runs'; buffer: SharedArrayBuffer } | { type: 'stop' }) => {
  if (message.type === 'runs') runs = message.buffer;
  else {
    clearInterval(timer);
    void client?.end().catch(() => {});
    parentPort!.close();
  }
});

const report = (r: KeeperReport) => parentPort!.postMessage(r);

async function connection(): Promise<pg.Client> {
  if (client) return client;
  const c = new pg.Client({
    connectionString: data.url,
    application_name: `chronograph-heartbeat:${data.workerId}`,
    query_timeout: data.intervalMs * 2,
    connectionTimeoutMillis: data.intervalMs * 2,
  });
  c.on('error', () => {
    if (client === c) client = undefined;
  });
  await c.connect();
  client = c;
  return c;
}

async function beat() {
  if (beating) return;
  const asked = readRuns(runs);
  if (!asked?.length) return;
  const blockedMs = Date.now() - lastPing[0]!;
  if (blockedMs > data.watchdogMs) {
    report({ type: 'blocked', ms: blockedMs });
    return;
  }
  beating = true;
  const sentAt = Date.now();
  try {
    const c = await connection();
    const result = await c.query<{ runId: string }>(data.sql, [
      data.workerId,
      asked.map((r) => r.taskId),
      asked.map((r) => r.runId),
      data.leaseMs,
    ]);
    report({ type: 'beat', sentAt, asked: asked.map((r) => r.runId), held: result.rows.map((r) => r.runId) });
  } catch (error) {
    const c = client;
    client = undefined;
    void c?.end().catch(() => {});
    report({ type: 'failed', error: (error as Error).message });
  } finally {
    beating = false;
  }
}

const timer = setInterval(() => void beat(), data.intervalMs);
// Connected and beating: the scheduler claims nothing before this (a lease must not depend on a thread still starting).
connection().then(
  () => report({ type: 'ready' }),
  (error: Error) => report({ type: 'failed', error: error.message }),
);
