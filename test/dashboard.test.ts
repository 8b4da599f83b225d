import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WebSocketRoute } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_DIST } from '../src/dashboard/dashboardAssets.js';
import { ARTIFACTS_DIR, chromiumAvailable, type IsolatedBrowser, launchIsolatedChromium } from './support/chromium.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * The live dashboard as a person uses it: a real headless chromium whose only reachable host is
 * 127.0.0.1, against a Chronograph on a real port with an admin key configured. The user pastes the key;
 * the page then reads everything over the public GraphQL API (HTTP) and follows taskStatusChanged over
 * graphql-ws. A task created through the API shows up and its row goes SCHEDULED → RUNNING → SUCCEEDED
 * without a reload; a task is paused from its page.
 */
const ADMIN_KEY = 'chronograph-dashboard-test-admin-key-0123456789';
const AUTH = { authorization: `Bearer ${ADMIN_KEY}` };

beforeAll(() => {
  // npm ci builds it (postinstall); a checkout that skipped install scripts builds it here.
  if (!existsSync(path.join(DASHBOARD_DIST, 'index.html'))) execFileSync('npm', ['run', 'build:dashboard'], { stdio: 'inherit' });
}, 120_000);

describe.runIf(chromiumAvailable()).each(backends)('dashboard in a browser, offline (%s)', (backend) => {
  let t: TestApp;
  let base: string;
  let chromium: IsolatedBrowser;

  beforeAll(async () => {
    t = await createTestApp(backend, { env: { ADMIN_API_KEY: ADMIN_KEY } });
    const { port } = await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${port}`;
    chromium = await launchIsolatedChromium();
  }, 120_000);

  afterAll(async () => {
    await chromium?.close();
    await t?.close();
  });

  it('serves the page at / and /dashboard under a strict CSP, and its hashed assets for good', async () => {
    for (const pathname of ['/', '/dashboard', '/dashboard/']) {
      const response = await fetch(base + pathname);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(response.headers.get('cache-control')).toBe('no-cache');
      expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
      const html = await response.text();
      expect(html).toContain('<div id="app">');
      const script = /<script type="module" crossorigin src="([^"]+\.js)"/.exec(html)?.[1];
      const style = /<link rel="stylesheet" crossorigin href="([^"]+\.css)"/.exec(html)?.[1];
      expect(script).toMatch(/^\/dashboard\/assets\/index-[\w-]+\.js$/);
      const js = await fetch(base + script!, { headers: { 'accept-encoding': 'gzip' } });
      expect(js.status).toBe(200);
      expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect((await js.text()).length).toBeGreaterThan(1000); // fetch undoes the gzip
      const css = await fetch(base + style!);
      expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    }
    expect((await fetch(`${base}/dashboard/assets/nothing-here.js`)).status).toBe(404);
    expect((await fetch(`${base}/dashboard`, { method: 'POST' })).status).toBe(405);
  });

  it('shows a task going SCHEDULED → RUNNING → SUCCEEDED live, and pauses a task from its page', async () => {
    const page = await chromium.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
    const sockets: { sent: string[] }[] = [];
    page.on('websocket', (ws) => {
      const socket = { sent: [] as string[] };
      sockets.push(socket);
      ws.on('framesent', (frame) => socket.sent.push(String(frame.payload)));
    });

    await page.goto(`${base}/dashboard`);
    // Without a key the API refuses (auth is configured) and the page says so.
    await expect.poll(() => page.locator('[role=alert]').innerText()).toContain('paste an API key');
    // That refusal is the one error the browser logs (HTTP 401); nothing else may fail from here on.
    expect(errors).toEqual([expect.stringContaining('401')]);
    errors.length = 0;
    await page.fill('input[name=apiKey]', ADMIN_KEY);
    await page.click('form.key button');
    await page.waitForSelector('[data-live=live]', { timeout: 20_000 });
    await page.waitForSelector('[data-stat=total]');
    const init = JSON.parse(sockets.flatMap((s) => s.sent).find((f) => f.includes('connection_init'))!);
    expect(init.payload.authorization).toBe(`Bearer ${ADMIN_KEY}`);
    expect(await page.evaluate(() => sessionStorage.getItem('chronograph.apiKey'))).toBe(ADMIN_KEY);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    await waitForLiveSubscription(t);

    // A task created through the API, due in 2 s, whose handler takes 1.5 s.
    const startTime = new Date(Date.now() + 2_000).toISOString();
    const created = ok(
      await t.gql<{ createTimerTask: { id: string } }>(
        'mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }',
        { input: { fullName: 'tasks.DataSync', funcName: 'chronograph.sleep', argDict: { ms: 1500 }, startTime } },
        AUTH,
      ),
    ).createTimerTask;
    const row = `tr[data-task-id="${created.id}"]`;
    await page.waitForSelector(`${row} [data-status=SCHEDULED]`, { timeout: 10_000 });
    await page.waitForSelector(`${row} [data-status=RUNNING]`, { timeout: 15_000 });
    await page.waitForSelector(`${row} [data-status=SUCCEEDED]`, { timeout: 15_000 });
    await expect.poll(() => page.locator('[data-stat=succeeded] .count').innerText()).toBe('1');

    // The finished task's page: its run with result and duration, and its events.
    await page.click(`${row} a`);
    await page.waitForSelector(`[data-task-page="${created.id}"]`);
    await expect.poll(() => page.locator('table.runs').innerText()).toContain('sleptMs');
    const events = await page.locator('table.events').innerText();
    for (const step of ['— → SCHEDULED', 'SCHEDULED → RUNNING', 'RUNNING → SUCCEEDED']) expect(events).toContain(step);

    // Pause a waiting task from its page; the API agrees, and its upcoming runs are gone.
    const later = ok(
      await t.gql<{ createTimerTask: { id: string } }>(
        'mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }',
        {
          input: {
            fullName: 'tasks.DataSync',
            repeatType: 'INTERVAL',
            intervalSeconds: 3600,
            startTime: new Date(Date.now() + 3_600_000).toISOString(),
          },
        },
        AUTH,
      ),
    ).createTimerTask;
    await page.goto(`${base}/dashboard#/task/${later.id}`);
    await page.waitForSelector(`[data-task-page="${later.id}"] [data-status=SCHEDULED]`, { timeout: 20_000 });
    expect(await page.locator('ol.upcoming li').count()).toBe(5);
    await page.click('button[data-action=pause]');
    await page.waitForSelector(`[data-task-page="${later.id}"] h2 [data-status=PAUSED]`);
    const paused = ok(await t.gql<{ task: { status: string } }>('query($id: ID!) { task(id: $id) { status } }', { id: later.id }, AUTH));
    expect(paused.task.status).toBe('PAUSED');
    expect(await page.locator('ol.upcoming li').count()).toBe(0);
    await page.click('button[data-action=resume]');
    await page.waitForSelector(`[data-task-page="${later.id}"] h2 [data-status=SCHEDULED]`);

    // Edit it: a new interval, through updateTask; the page shows the UPDATED event.
    await page.click('button[data-action=edit]');
    await page.fill('form.edit input[name=intervalSeconds]', '600');
    await page.click('button[data-action=save]');
    await expect.poll(() => page.locator('.notice').innerText()).toContain('Edited: intervalSeconds');
    const edited = ok(
      await t.gql<{ task: { intervalSeconds: number } }>('query($id: ID!) { task(id: $id) { intervalSeconds } }', { id: later.id }, AUTH),
    );
    expect(edited.task.intervalSeconds).toBe(600);
    await expect.poll(() => page.locator('table.events').innerText()).toContain('UPDATED');
    await expect.poll(() => page.locator('.facts').innerText()).toContain('every 600 s');

    // Back on the list, both tasks with their current status; the key survived the reload in this tab.
    await page.click('header nav a[href="#/"]');
    await page.waitForSelector(`tr[data-task-id="${later.id}"] [data-status=SCHEDULED]`);
    await page.waitForSelector(`tr[data-task-id="${created.id}"] [data-status=SUCCEEDED]`);
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, `dashboard-${backend}.png`), fullPage: true });
    expect(chromium.blocked).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it('after a dropped connection, subscribes again from the last event it saw and shows what changed meanwhile', async () => {
    const page = await chromium.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    // The page's WebSockets pass through the test, which can drop them and refuse new ones.
    let refuse = false;
    const routes: WebSocketRoute[] = [];
    const subscribes: { after: string | null }[] = [];
    await page.routeWebSocket(/\/graphql$/, (ws) => {
      if (refuse) return ws.close({ code: 1012, reason: 'test: service restart' });
      routes.push(ws);
      const server = ws.connectToServer();
      ws.onMessage((message) => {
        const frame = JSON.parse(String(message));
        if (frame.type === 'subscribe' && frame.payload.query.includes('taskStatusChanged'))
          subscribes.push({ after: frame.payload.variables.after });
        server.send(message);
      });
    });
    await page.goto(`${base}/dashboard`);
    await page.evaluate((key) => sessionStorage.setItem('chronograph.apiKey', key), ADMIN_KEY);
    await page.reload();
    await page.waitForSelector('[data-live=live]', { timeout: 20_000 });
    await waitFor(() => subscribes.length === 1, { what: 'the first subscription' });

    const { createTimerTask: task } = ok(
      await t.gql<{ createTimerTask: { id: string } }>(
        'mutation($input: TimerTaskInput!) { createTimerTask(input: $input) { id } }',
        { input: { fullName: 'tasks.DataSync', startTime: new Date(Date.now() + 3_600_000).toISOString() } },
        AUTH,
      ),
    );
    const row = `tr[data-task-id="${task.id}"]`;
    await page.waitForSelector(`${row} [data-status=SCHEDULED]`);
    const lastSeen = ok(
      await t.gql<{ taskEvents: { edges: { node: { cursor: string } }[] } }>(
        'query($id: ID!) { taskEvents(filter: { taskId: $id }, last: 1) { edges { node { cursor } } } }',
        { id: task.id },
        AUTH,
      ),
    ).taskEvents.edges[0]!.node.cursor;

    // The connection drops, and stays down while the task is paused through the API.
    refuse = true;
    await routes.at(-1)!.close({ code: 1012, reason: 'test: service restart' });
    await page.waitForSelector('[data-live=reconnecting]');
    ok(await t.gql('mutation($id: ID!) { pauseTask(taskId: $id) { id } }', { id: task.id }, AUTH));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await page.locator(`${row} [data-status]`).getAttribute('data-status')).toBe('SCHEDULED');

    // Back up: the page resumes after the last event it had, so the pause it missed arrives.
    refuse = false;
    await page.waitForSelector(`${row} [data-status=PAUSED]`, { timeout: 30_000 });
    await page.waitForSelector('[data-live=live]');
    expect(subscribes.length).toBe(2);
    expect(subscribes[1]!.after).toBe(lastSeen);
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);
});

describe('dashboard not built', () => {
  it('says how to build it at /, and the API still answers', async () => {
    const empty = mkdtempSync(path.join(os.tmpdir(), 'chronograph-no-dashboard-'));
    const t = await createTestApp('pglite', { env: { DASHBOARD_DIR: empty } });
    try {
      const { port } = await t.app.listen(0, '127.0.0.1');
      const response = await fetch(`http://127.0.0.1:${port}/`);
      expect(response.status).toBe(503);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(await response.text()).toContain('npm run build:dashboard');
      const api = await fetch(`http://127.0.0.1:${port}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ taskStats { total } }' }),
      });
      expect(await api.json()).toEqual({ data: { taskStats: { total: 0 } } });
    } finally {
      await t.close();
      rmSync(empty, { recursive: true, force: true });
    }
  }, 60_000);
});

async function waitForLiveSubscription(t: TestApp): Promise<void> {
  await expect.poll(() => t.app.taskEvents.status().live, { timeout: 10_000 }).toBeGreaterThan(0);
}
