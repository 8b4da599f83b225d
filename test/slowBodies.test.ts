import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * Request bodies that arrive slowly (slowloris: a Content-Length, then a byte now and then) must cost the
 * client a connection, not the server one of its MAX_CONCURRENT_REQUESTS slots: bodies are read before
 * their request takes a slot, within BODY_TIMEOUT_MS and MAX_RECEIVING_PER_CLIENT. PGlite only: this is
 * about the HTTP server, not the database.
 */

interface SlowBody {
  socket: net.Socket;
  /** What the server has sent back so far. */
  answer: () => string;
  closed: () => boolean;
}

/** A POST to /graphql that declares `declared` bytes of body and sends only its first few. */
function slowBody(port: number, declared = 1000): Promise<SlowBody> {
  return new Promise((resolve, reject) => {
    let answer = '';
    let closed = false;
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(
        `POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n{"query":"`,
        () => resolve({ socket, answer: () => answer, closed: () => closed }),
      );
    });
    socket.on('data', (chunk) => (answer += String(chunk)));
    socket.on('close', () => (closed = true));
    socket.on('error', (error) => (closed ? undefined : reject(error)));
  });
}

/** A POST to /graphql with a chunked body (no Content-Length) of which only a first chunk is sent. */
function chunkedBody(port: number): Promise<SlowBody> {
  return new Promise((resolve) => {
    let answer = '';
    let closed = false;
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(
        'POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"qu\r\n',
        () => resolve({ socket, answer: () => answer, closed: () => closed }),
      );
    });
    socket.on('data', (chunk) => (answer += String(chunk)));
    socket.on('close', () => (closed = true));
    socket.on('error', () => {});
  });
}

async function post(url: string, query: string) {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
  return { status: response.status, body: (await response.json()) as any };
}

/** Lets the server read what the sockets sent (they are on loopback: a few turns of its event loop). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 200));

describe('slow request bodies hold no slot', () => {
  let t: TestApp;
  let url: string;
  let port: number;
  beforeAll(async () => {
    t = await createTestApp('pglite', {
      env: {
        SCHEDULER_ENABLED: 'false',
        MAX_CONCURRENT_REQUESTS: '2',
        MAX_QUEUE_WAIT_MS: '300',
        BODY_TIMEOUT_MS: '1500',
        REQUEST_TIMEOUT_MS: '8000',
      },
    });
    ({ url, port } = await t.app.listen(0, '127.0.0.1'));
  });
  afterAll(() => t?.close());

  it('answers a normal request while more slow-body connections are open than there are slots', async () => {
    const slow = await Promise.all(Array.from({ length: 6 }, () => slowBody(port)));
    try {
      await settle();
      for (const s of slow) s.socket.write(' ');
      const answer = await post(url, '{ taskTypes }');
      expect(answer.status).toBe(200);
      expect(answer.body.data.taskTypes).toEqual(expect.any(Array));
      // The slow bodies are still being received: none was answered or cut off meanwhile.
      expect(slow.map((s) => s.answer())).toEqual(slow.map(() => ''));
      expect(slow.some((s) => s.closed())).toBe(false);
    } finally {
      for (const s of slow) s.socket.destroy();
    }
  });

  it('answers a normal request while slow bodies declare, or are sent chunked for, more than MAX_RECEIVING_BYTES', async () => {
    // What counts is what has arrived: four bodies declaring 16 MiB (64 MiB, the whole budget) and four
    // of unknown length hold a few bytes each.
    const slow = [
      ...(await Promise.all(Array.from({ length: 4 }, () => slowBody(port, 16 * 1024 * 1024)))),
      ...(await Promise.all(Array.from({ length: 4 }, () => chunkedBody(port)))),
    ];
    try {
      await settle();
      const answer = await post(url, '{ taskTypes }');
      expect(answer.status).toBe(200);
    } finally {
      for (const body of slow) body.socket.destroy();
    }
  });

  it('serves a body that arrives slowly but within BODY_TIMEOUT_MS', async () => {
    const body = JSON.stringify({ query: '{ taskTypes }' });
    const answer = await new Promise<string>((resolve, reject) => {
      let text = '';
      const socket = net.connect(port, '127.0.0.1', async () => {
        socket.write(
          `POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
        );
        for (const part of [body.slice(0, 5), body.slice(5, 10)]) {
          socket.write(part);
          await new Promise((r) => setTimeout(r, 100));
        }
        socket.end(body.slice(10));
      });
      socket.on('data', (chunk) => (text += String(chunk)));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toContain('"taskTypes"');
  });

  it('answers a body that has not arrived within BODY_TIMEOUT_MS 408 TIMEOUT and closes its connection', async () => {
    const slow = await slowBody(port);
    try {
      // Trickles on, a byte at a time, as the attacker would.
      const trickle = setInterval(() => slow.socket.writable && slow.socket.write(' '), 200);
      await waitFor(() => slow.closed(), { timeoutMs: 6_000, what: 'the server to close the slow connection' }).finally(() =>
        clearInterval(trickle),
      );
      expect(slow.answer()).toMatch(/^HTTP\/1\.1 408 /);
      // Ours (Node's own 408, at REQUEST_TIMEOUT_MS, has no body).
      expect(slow.answer()).toContain('"code":"TIMEOUT"');
      expect(slow.answer()).toContain('BODY_TIMEOUT_MS');
    } finally {
      slow.socket.destroy();
    }
  });
});

describe('slow request bodies per client (MAX_RECEIVING_PER_CLIENT)', () => {
  let t: TestApp;
  let url: string;
  let port: number;
  beforeAll(async () => {
    t = await createTestApp('pglite', {
      env: { SCHEDULER_ENABLED: 'false', MAX_RECEIVING_PER_CLIENT: '3', BODY_TIMEOUT_MS: '8000', REQUEST_TIMEOUT_MS: '8000' },
    });
    ({ url, port } = await t.app.listen(0, '127.0.0.1'));
  });
  afterAll(() => t?.close());

  it('refuses a client more slow bodies at once than the cap, 503 SERVER_BUSY, and still serves its normal requests', async () => {
    const slow = [await slowBody(port), await slowBody(port), await slowBody(port)];
    try {
      await settle();
      const over = await slowBody(port);
      slow.push(over);
      await waitFor(() => over.closed(), { timeoutMs: 5_000, what: 'the slow body over the cap to be refused' });
      expect(over.answer()).toMatch(/^HTTP\/1\.1 503 /);
      expect(over.answer()).toMatch(/retry-after: 1/i);
      expect(over.answer()).toContain('"code":"SERVER_BUSY"');
      // The three within the cap are still being received.
      expect(slow.slice(0, 3).map((s) => [s.answer(), s.closed()])).toEqual([
        ['', false],
        ['', false],
        ['', false],
      ]);
      // A request whose body comes with its headers never counts against the cap.
      const answer = await post(url, '{ taskTypes }');
      expect(answer.status).toBe(200);
    } finally {
      for (const s of slow) s.socket.destroy();
    }
  });
});
