import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

const MUTATION = 'mutation { createTimerTask(input: { fullName: "tasks.DataSync", startTime: "2099-01-01 10:00:00" }) { id } }';
const ALLOWED = 'https://dashboard.example.com';
const EVIL = 'https://evil.example';

/** A browser's view of the API, on a real port: what a page of another site can and cannot make it do. */
describe.each(backends)('web safety (%s)', (backend) => {
  let t: TestApp;
  let url: string;
  beforeAll(async () => {
    t = await createTestApp(backend, { env: { CORS_ORIGINS: ALLOWED, SCHEDULER_ENABLED: 'false' } });
    url = (await t.app.listen(0, '127.0.0.1')).url;
  });
  afterAll(() => t?.close());

  const tasks = () => t.app.db.prisma.task.count();

  it('runs no mutation from a form post or a text/plain body, the requests a page can send without a preflight', async () => {
    const before = await tasks();
    const form = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: EVIL },
      body: new URLSearchParams({ query: MUTATION }),
    });
    expect(form.status).toBe(403);
    expect(((await form.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe('BAD_REQUEST');
    const text = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', origin: EVIL },
      body: JSON.stringify({ query: MUTATION }),
    });
    expect(text.status).toBe(403);
    const multipart = new FormData();
    multipart.set('operations', JSON.stringify({ query: MUTATION }));
    multipart.set('map', '{}');
    expect((await fetch(url, { method: 'POST', headers: { origin: EVIL }, body: multipart })).status).toBe(403);
    expect(await tasks()).toBe(before);
  });

  it("still serves JSON clients, GraphiQL's page and GET queries that carry the CSRF header", async () => {
    const json = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: new URL(url).origin },
      body: JSON.stringify({ query: '{ taskTypes }' }),
    });
    expect(json.status).toBe(200);
    const page = await fetch(url, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('GraphiQL');
    const get = await fetch(`${url}?query=${encodeURIComponent('{ taskTypes }')}`, { headers: { 'x-graphql-yoga-csrf': '1' } });
    expect(get.status).toBe(200);
    expect((await fetch(`${url}?query=${encodeURIComponent('{ taskTypes }')}`)).status).toBe(403);
  });

  it('gives CORS headers only to listed origins, with their own origin and never *', async () => {
    const preflight = (origin: string) =>
      fetch(url, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
    const evil = await preflight(EVIL);
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    expect(evil.headers.get('access-control-allow-credentials')).toBeNull();
    const listed = await preflight(ALLOWED);
    expect(listed.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(listed.headers.get('access-control-allow-credentials')).toBe('true');
    const answer = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: EVIL },
      body: JSON.stringify({ query: '{ taskTypes }' }),
    });
    expect(answer.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('opens WebSockets for its own origin, listed origins and non-browser clients, and refuses other origins', async () => {
    const upgrade = (headers: Record<string, string>) =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws', { headers });
        socket.once('open', () => {
          socket.close();
          resolve(101);
        });
        socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
        socket.once('error', () => resolve(0));
      });
    expect(await upgrade({ origin: EVIL })).toBe(403);
    expect(await upgrade({ origin: 'null' })).toBe(403);
    expect(await upgrade({ origin: new URL(url).origin })).toBe(101);
    expect(await upgrade({ origin: ALLOWED })).toBe(101);
    expect(await upgrade({})).toBe(101);
  });

  it('does not say what it runs on', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ taskTypes }' }),
    });
    for (const header of ['x-powered-by', 'server', 'x-yoga-id']) expect(response.headers.get(header)).toBeNull();
    ok((await response.json()) as { data?: unknown });
  });
});

describe('CORS_ORIGINS', () => {
  it('takes origins only: no wildcard, no paths', async () => {
    const { loadConfig } = await import('../src/config.js');
    expect(loadConfig({ CORS_ORIGINS: 'https://a.example, http://localhost:5173' }).CORS_ORIGINS).toEqual([
      'https://a.example',
      'http://localhost:5173',
    ]);
    for (const bad of ['*', 'https://a.example/app', 'a.example', 'ftp://a.example'])
      expect(() => loadConfig({ CORS_ORIGINS: bad })).toThrow(/CORS_ORIGINS/);
  });
});
