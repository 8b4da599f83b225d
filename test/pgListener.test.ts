import net from 'node:net';
import pg from 'pg';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../src/db/Database.js';
import { createTestDatabase, type TestDatabase } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * The LISTEN connection on PostgreSQL (PgListener in src/db/Database.ts) reconnects with backoff when it
 * drops, LISTENs every channel again and tells each handler to re-read (an empty payload). A dropped
 * connection emits 'error' more than once: before, each started a reconnection of its own, and a timer
 * left behind by the first opened a connection after close().
 */
describe.runIf(process.env.TEST_DATABASE_URL)('the LISTEN connection (postgres)', () => {
  let database: TestDatabase | undefined;
  let db: Database | undefined;
  let admin: pg.Client | undefined;
  let proxyServer: net.Server | undefined;
  const proxied = new Set<net.Socket>();
  afterEach(async () => {
    await db?.close();
    await admin?.end();
    await database?.drop();
    // close() waits for the connections it accepted: none is left to end by itself.
    for (const socket of proxied) socket.destroy();
    proxied.clear();
    const server = proxyServer;
    if (server) await new Promise((resolve) => server.close(resolve));
    db = undefined;
    admin = undefined;
    database = undefined;
    proxyServer = undefined;
  });

  /**
   * A TCP proxy to TEST_DATABASE_URL's server that drops (both sides of) a connection as its client sends
   * a query whose text contains `dropOn.text`, instead of passing the query on: the connection is lost
   * while that query is in flight. `via` turns a database's URL into one through the proxy.
   */
  async function proxy() {
    const target = new URL(process.env.TEST_DATABASE_URL!);
    const dropOn: { text?: string } = {};
    const server = net.createServer((client) => {
      const upstream = net.connect(Number(target.port || 5432), target.hostname);
      for (const socket of [client, upstream]) proxied.add(socket.on('close', () => proxied.delete(socket)));
      const drop = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('data', (chunk) => {
        if (dropOn.text && chunk.includes(dropOn.text)) drop();
        else upstream.write(chunk);
      });
      upstream.on('data', (chunk) => client.write(chunk));
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
    proxyServer = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const via = (url: string) => {
      const through = new URL(url);
      through.hostname = '127.0.0.1';
      through.port = String((server.address() as net.AddressInfo).port);
      return through.toString();
    };
    return { via, dropOn };
  }

  async function open(via?: (url: string) => string) {
    database = await createTestDatabase('postgres');
    db = await openDatabase({
      databaseUrl: via ? via(database.url!) : database.url,
      dataDir: 'memory://',
      logger: pino({ level: 'silent' }),
    });
    admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await admin.connect();
    const name = new URL(database.url!).pathname.slice(1);
    const listeners = async () =>
      (
        await admin!.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%'`, [name])
      ).rows.map((r) => r.pid);
    const connections = async () =>
      Number((await admin!.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1`, [name])).rows[0]!.n);
    return { db, listeners, connections };
  }

  it('reconnects once after its connection is terminated, LISTENs again and tells each handler once', async () => {
    const { db, listeners } = await open();
    const received: string[] = [];
    await db.listen('chronograph_test', (payload) => received.push(payload));
    const [pid] = await listeners();
    expect(pid).toBeDefined();
    await admin!.query('SELECT pg_terminate_backend($1)', [pid]);
    await waitFor(async () => (await listeners()).some((p) => p !== pid) && db.listenerState() === 'connected', {
      what: 'a new LISTEN connection',
    });
    // Long enough for a second reconnection (100 ms backoff) to have shown.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await listeners()).toHaveLength(1);
    expect(received).toEqual(['']);
    const notifier = new pg.Client({ connectionString: database!.url });
    await notifier.connect();
    await notifier.query(`NOTIFY chronograph_test, 'after'`).finally(() => notifier.end());
    await waitFor(() => received.includes('after'), { what: 'the notification after the reconnect' });
  });

  it('opens no connection after close(), even when it closes during the backoff of a reconnection', async () => {
    const { db: opened, listeners, connections } = await open();
    await opened.listen('chronograph_test', () => {});
    const [pid] = await listeners();
    await admin!.query('SELECT pg_terminate_backend($1)', [pid]);
    await waitFor(() => opened.listenerState() === 'disconnected', { what: 'the listener to see its connection lost' });
    db = undefined; // closed here, not again after the test
    await opened.close();
    // Past the backoff (100 ms) and the connection a timer left behind would have opened.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await connections()).toBe(0);
  });

  // pg (8.23) emits 'error' when the socket ends under a query too, and listen() reports the failed LISTEN
  // as a lost connection as well: the two must make one reconnection, one LISTEN of every channel, and one
  // re-read.
  it('reconnects once when its connection drops while a LISTEN is in flight, and LISTENs every channel again', async () => {
    const { via, dropOn } = await proxy();
    const { db, listeners } = await open(via);
    const first: string[] = [];
    await db.listen('chronograph_first', (payload) => first.push(payload));
    dropOn.text = 'LISTEN "chronograph_second"';
    await expect(db.listen('chronograph_second', () => {})).rejects.toThrow();
    dropOn.text = undefined;
    await waitFor(async () => db.listenerState() === 'connected' && (await listeners()).length === 1, {
      what: 'the listener to reconnect',
    });
    // The channel that was listening is told to re-read, once, and notifications reach both channels again.
    await waitFor(() => first.includes(''), { what: 'the re-read after the reconnect' });
    // Long enough for a second reconnection (100 ms backoff) to have shown.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(first).toEqual(['']);
    expect(await listeners()).toHaveLength(1);
    const second: string[] = [];
    await db.listen('chronograph_second', (payload) => second.push(payload));
    const notifier = new pg.Client({ connectionString: database!.url });
    await notifier.connect();
    await notifier
      .query(`NOTIFY chronograph_first, 'one'`)
      .then(() => notifier.query(`NOTIFY chronograph_second, 'two'`))
      .finally(() => notifier.end());
    await waitFor(() => first.includes('one') && second.includes('two'), { what: 'both notifications after the reconnect' });
  });
});
