import path from 'node:path';
import type { Page, WebSocketRoute } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS_DIR, chromiumAvailable, type IsolatedBrowser, launchIsolatedChromium } from './support/chromium.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * The dashboard as a person uses it on a machine without internet: a real headless chromium whose only
 * reachable host is 127.0.0.1, against a Chronograph on a real port with authentication on. The page
 * comes from the instance, uses only the public GraphQL API with the pasted key, shows a task going
 * SCHEDULED → RUNNING → SUCCEEDED live, and pauses a task from the page.
 */
const ADMIN_KEY = 'chronograph-dashboard-test-admin-key-0123456789';
const EDITOR = (t: TestApp) =>
  t.gql(
    `mutation { createApiKey(input: { name: "dashboard", tenantId: "default", role: EDITOR }) { secret } }`,
    {},
    { authorization: `Bearer ${ADMIN_KEY}` },
  );

describe.runIf(chromiumAvailable()).each(backends)('the dashboard in a browser, offline (%s)', (backend) => {
  let t: TestApp;
  let port: number;
  let chromium: IsolatedBrowser;
  let key: string;

  beforeAll(async () => {
    t = await createTestApp(backend, {
      env: { ADMIN_API_KEY: ADMIN_KEY },
      setup(app) {
        app.handlers.register('test.slow', async (args: Record<string, unknown>) => {
          await new Promise((r) => setTimeout(r, Number(args.ms ?? 1500)));
          return { done: true };
        });
      },
    });
    await t.app.templateSvc.forTenant('default').create({ fullName: 'tasks.Slow', title: 'Slow', funcName: 'test.slow' });
    key = ok(await EDITOR(t)).createApiKey.secret;
    ({ port } = await t.app.listen(0, '127.0.0.1'));
    chromium = await launchIsolatedChromium();
  }, 120_000);

  afterAll(async () => {
    await chromium?.close();
    await t?.close();
  });

  /** A new page of the test's browser, and the errors its scripts throw. */
  async function openPage() {
    const page = await chromium.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    return { page, errors };
  }

  /** Gives the page the test's EDITOR key, as a person pastes it. */
  async function signIn(page: Page) {
    await page.locator('input[name=apiKey]').fill(key);
    await page.getByRole('button', { name: 'Use key' }).click();
  }

  it('serves the page under a strict CSP without caching it, and its hashed assets for good', async () => {
    const base = `http://127.0.0.1:${port}`;
    for (const pathname of ['/', '/dashboard']) {
      const moved = await fetch(base + pathname, { redirect: 'manual' });
      expect(moved.status).toBe(302);
      expect(moved.headers.get('location')).toBe('/dashboard/');
    }
    const page = await fetch(`${base}/dashboard/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    // Sockets to this instance only: no scheme-only ws:/wss: (any host); CSP3 'self' covers its own ws/wss.
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp.split(';').map((directive) => directive.trim())).toContain("connect-src 'self'");
    const html = await page.text();
    const script = /<script type="module" crossorigin src="([^"]+\.js)"/.exec(html)?.[1];
    expect(script).toMatch(/^\/dashboard\/assets\/[\w-]+\.js$/);
    const js = await fetch(base + script!);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(js.headers.get('x-content-type-options')).toBe('nosniff');
    expect((await fetch(`${base}/dashboard/assets/nothing-here.js`)).status).toBe(404);
    expect((await fetch(`${base}/dashboard/assets/..%2F..%2Fpackage.json`)).status).toBe(404);
    expect((await fetch(`${base}/dashboard/`, { method: 'POST' })).status).toBe(405);
  });

  it("lets the page's scripts open WebSockets to this instance only", async () => {
    const { page, errors } = await openPage();
    await page.goto(`http://127.0.0.1:${port}/dashboard/`);
    const own = `ws://127.0.0.1:${port}/graphql`;
    const foreign = ['ws://example.com/graphql', 'wss://example.com/graphql', `ws://127.0.0.1:${port + 1}/graphql`];
    // What the browser refused by the page's CSP: a violation report, or (older engines) a SecurityError.
    const refused = await page.evaluate(
      async (urls) => {
        const seen: string[] = [];
        document.addEventListener('securitypolicyviolation', (event) => {
          if (event.effectiveDirective === 'connect-src') seen.push(event.blockedURI);
        });
        for (const url of urls) {
          try {
            const socket = new WebSocket(url, 'graphql-transport-ws');
            socket.onerror = () => {};
            setTimeout(() => socket.close(), 200);
          } catch {
            seen.push(url);
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
        return seen;
      },
      [own, ...foreign],
    );
    for (const url of foreign)
      expect(
        refused.some((blocked) => url.startsWith(blocked)),
        `${url} in ${JSON.stringify(refused)}`,
      ).toBe(true);
    expect(
      refused.some((blocked) => own.startsWith(blocked)),
      JSON.stringify(refused),
    ).toBe(false);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('shows a task moving through its statuses live, pauses one from the page, and opens its page', async () => {
    const { page, errors } = await openPage();
    // What the page's API calls got, said when the header does not come (seen once under a loaded CI
    // machine: still "not signed in" 15 s after the key was given).
    const calls: string[] = [];
    const started = Date.now();
    page.on('requestfinished', (request) => {
      if (request.url().endsWith('/graphql'))
        void request.response().then((r) => calls.push(`${Date.now() - started} ms ${r?.status()} ${request.postData()?.slice(0, 60)}`));
    });
    page.on('requestfailed', (request) => calls.push(`${Date.now() - started} ms failed ${request.failure()?.errorText} ${request.url()}`));
    const response = await page.goto(`http://127.0.0.1:${port}/`);
    expect(page.url()).toBe(`http://127.0.0.1:${port}/dashboard/`);
    expect(response?.headers()['content-security-policy']).toContain("default-src 'self'");

    // Without a key the API refuses; with the pasted key the page reads and subscribes as that EDITOR.
    await signIn(page);
    try {
      await expect.poll(() => page.getByTestId('who').textContent(), { timeout: 30_000 }).toBe('EDITOR · default');
    } catch (error) {
      throw new Error(
        `${(error as Error).message}; the page's API calls: ${JSON.stringify(calls)}; page errors: ${JSON.stringify(errors)}`,
      );
    }
    await expect.poll(() => page.getByTestId('stream').textContent(), { timeout: 15_000 }).toBe('live');

    // A task created through the API, due in two seconds: its row goes SCHEDULED → RUNNING → SUCCEEDED.
    const svc = t.app.taskSvc.forTenant('default');
    const task = await svc.createTimerTask({
      fullName: 'tasks.Slow',
      startTime: new Date(Date.now() + 2000).toISOString(),
      argDict: { ms: 1500 },
    });
    const cell = page.locator(`tr[data-task="${task.id}"] [data-testid=status]`);
    const seen: string[] = [];
    await waitFor(
      async () => {
        const status = ((await cell.textContent({ timeout: 1000 }).catch(() => null)) ?? '').trim();
        if (status && seen.at(-1) !== status) seen.push(status);
        return status === 'SUCCEEDED';
      },
      { timeoutMs: 20_000, intervalMs: 50, what: 'the row to show SUCCEEDED' },
    );
    expect(seen).toEqual(['SCHEDULED', 'RUNNING', 'SUCCEEDED']);
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, `dashboard-tasks-${backend}.png`), fullPage: true });

    // Pause a future task from its row: the API shows it PAUSED, the row too.
    const later = await svc.createTimerTask({ fullName: 'tasks.Slow', startTime: '2099-01-01T00:00:00Z' });
    const row = page.locator(`tr[data-task="${later.id}"]`);
    await row.getByRole('button', { name: 'Pause' }).click();
    await waitFor(async () => (await t.app.db.prisma.task.findUniqueOrThrow({ where: { id: later.id } })).status === 'PAUSED', {
      what: 'PAUSED',
    });
    await expect.poll(() => row.getByTestId('status').textContent(), { timeout: 10_000 }).toBe('PAUSED');
    const paused = await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: later.id, toStatus: 'PAUSED' } });
    expect(paused.actor).toMatch(/^key:/);

    // The task's page: its runs with the result, its events.
    await page.locator(`tr[data-task="${task.id}"] a`).first().click();
    await expect.poll(() => page.getByTestId('runs').textContent(), { timeout: 10_000 }).toContain('SUCCEEDED');
    expect(await page.getByTestId('events').textContent()).toContain('RUNNING');
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, `dashboard-task-${backend}.png`), fullPage: true });

    expect(chromium.blocked).toEqual([]);
    expect(errors).toEqual([]);
  }, 90_000);

  it('keeps what was read with the key just given when the keyless reads at page load answer after it', async () => {
    const page = await chromium.context.newPage();
    // The reads the page makes before it has a key are held until the read of `me` made with the key has
    // answered, then delivered (each is refused: UNAUTHENTICATED).
    let keyedAnswered!: () => void;
    const keyed = new Promise<void>((resolve) => {
      keyedAnswered = resolve;
    });
    let held = 0;
    let delivered = 0;
    await page.route(/\/graphql$/, async (route) => {
      const request = route.request();
      const response = await route.fetch();
      // The page renders once it knows where its event stream starts: that read goes through.
      if (request.headers().authorization || request.postData()?.includes('taskEvents(last: 1)')) {
        await route.fulfill({ response });
        if (request.headers().authorization && request.postData()?.includes('me {')) keyedAnswered();
        return;
      }
      held++;
      await keyed;
      await new Promise((resolve) => setTimeout(resolve, 100));
      await route.fulfill({ response });
      delivered++;
    });
    await page.goto(`http://127.0.0.1:${port}/dashboard/`);
    await signIn(page);
    await waitFor(() => held > 0 && delivered === held, { timeoutMs: 15_000, what: 'the keyless answers, delivered last' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(held).toBeGreaterThanOrEqual(3); // me, the counts and the task list at least
    expect(await page.getByTestId('who').textContent()).toBe('EDITOR · default');
    expect(await page.locator('p.error').allTextContents()).toEqual([]);
    await page.close();
  }, 60_000);

  it('reads `me` again after a 503 SERVER_BUSY, showing the error meanwhile, without the key being given again', async () => {
    const { page, errors } = await openPage();
    // Admission control sheds the reads of `me` made with the key until the page has shown the refusal;
    // then they go through. The keyless read at page load is refused UNAUTHENTICATED by the server.
    let busy = true;
    let refused = 0;
    let keyless = 0;
    await page.route(/\/graphql$/, async (route) => {
      const request = route.request();
      if (request.postData()?.includes('me {')) {
        if (!request.headers().authorization) keyless++;
        else if (busy) {
          refused++;
          return route.fulfill({
            status: 503,
            headers: { 'content-type': 'application/json; charset=utf-8', 'retry-after': '1' },
            body: JSON.stringify({
              errors: [{ message: 'This Chronograph instance is busy; retry shortly', extensions: { code: 'SERVER_BUSY' } }],
            }),
          });
        }
      }
      return route.continue();
    });
    await page.goto(`http://127.0.0.1:${port}/dashboard/`);
    await expect.poll(() => page.getByTestId('who').textContent(), { timeout: 15_000 }).toBe('not signed in');
    await signIn(page);
    await waitFor(() => refused > 0, { what: 'the read of `me` with the key to be refused' });
    const state = async () => `${await page.getByTestId('who').textContent()} | ${await page.locator('header').textContent()}`;
    try {
      // The header says why it has no identity yet, and that it is trying again.
      await expect
        .poll(async () => ((await page.getByTestId('who-error').count()) ? page.getByTestId('who-error').textContent() : ''), {
          timeout: 15_000,
        })
        .toContain('SERVER_BUSY');
      busy = false;
      // It signs in by itself: nobody gives the key again.
      await expect.poll(() => page.getByTestId('who').textContent(), { timeout: 30_000 }).toBe('EDITOR · default');
    } catch (error) {
      throw new Error(`${(error as Error).message}; header: ${await state()}; refused reads of me: ${refused}`);
    }
    expect(await page.getByTestId('who-error').count()).toBe(0);
    // The keyless read refused UNAUTHENTICATED at page load was not tried again.
    expect(keyless).toBe(1);
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);

  it('does not read again what the server would refuse again (BAD_USER_INPUT), and does not say it is trying', async () => {
    const { page, errors } = await openPage();
    let keyed = 0;
    await page.route(/\/graphql$/, async (route) => {
      const request = route.request();
      if (request.postData()?.includes('me {') && request.headers().authorization) {
        keyed++;
        return route.fulfill({
          status: 200,
          headers: { 'content-type': 'application/json; charset=utf-8' },
          body: JSON.stringify({ errors: [{ message: 'test: refused as bad input', extensions: { code: 'BAD_USER_INPUT' } }] }),
        });
      }
      return route.continue();
    });
    await page.goto(`http://127.0.0.1:${port}/dashboard/`);
    await expect.poll(() => page.getByTestId('who').textContent(), { timeout: 15_000 }).toBe('not signed in');
    await signIn(page);
    await expect
      .poll(async () => ((await page.getByTestId('who-error').count()) ? page.getByTestId('who-error').textContent() : ''), {
        timeout: 15_000,
      })
      .toContain('BAD_USER_INPUT');
    // Retries would come after 0.25-0.5 s, then 0.5-1 s, ...: three seconds later it has asked once.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(keyed).toBe(1);
    expect(await page.getByTestId('who-error').textContent()).not.toContain('trying again');
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('says the stream is refused when the server refuses its subscription (a revoked key), instead of resubscribing every second', async () => {
    const { page, errors } = await openPage();
    // The connection is accepted, but each subscription is refused as on a connection whose key was revoked.
    let subscribes = 0;
    await page.routeWebSocket(/\/graphql$/, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((message) => {
        const frame = JSON.parse(String(message));
        if (frame.type === 'subscribe' && frame.payload.query.includes('taskStatusChanged')) {
          subscribes++;
          ws.send(
            JSON.stringify({
              type: 'error',
              id: frame.id,
              payload: [{ message: 'The credential of this connection is no longer valid', extensions: { code: 'UNAUTHENTICATED' } }],
            }),
          );
          return;
        }
        server.send(message);
      });
    });
    await page.goto(`http://127.0.0.1:${port}/dashboard/`);
    await signIn(page);
    // (Before the key the socket itself was refused: the stream said so already.)
    await waitFor(() => subscribes > 0, { what: 'the stream to subscribe with the key' });
    await expect.poll(() => page.getByTestId('stream').textContent(), { timeout: 15_000 }).toBe('refused');
    const seen = subscribes;
    // A resubscription would come after a second: three seconds later there is none.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(subscribes).toBe(seen);
    expect(await page.getByTestId('stream').textContent()).toBe('refused');
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('reads `me` again after an unexpected error (a database restart looks so), without the key being given again', async () => {
    const { page, errors } = await openPage();
    let failed = 0;
    await page.route(/\/graphql$/, async (route) => {
      const request = route.request();
      if (request.postData()?.includes('me {') && request.headers().authorization && failed === 0) {
        failed++;
        return route.fulfill({
          status: 200,
          headers: { 'content-type': 'application/json; charset=utf-8' },
          body: JSON.stringify({ errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] }),
        });
      }
      return route.continue();
    });
    await page.goto(`http://127.0.0.1:${port}/dashboard/`);
    await expect.poll(() => page.getByTestId('who').textContent(), { timeout: 15_000 }).toBe('not signed in');
    await signIn(page);
    await waitFor(() => failed > 0, { what: 'the read of `me` with the key to fail' });
    await expect.poll(() => page.getByTestId('who').textContent(), { timeout: 30_000 }).toBe('EDITOR · default');
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('when the read of where the live stream starts gets a 503, reads it again, subscribes after it and reads the views again', async () => {
    await t.app.taskSvc.forTenant('default').createTimerTask({ fullName: 'tasks.Slow', startTime: '2099-01-01T00:00:00Z' });
    const { page, errors } = await openPage();
    // The first read of the newest event made with the key is shed (503 SERVER_BUSY); later ones pass.
    let refused = 0;
    let taskReads = 0;
    await page.route(/\/graphql$/, async (route) => {
      const request = route.request();
      if (request.headers().authorization && request.postData()?.includes('query Tasks')) taskReads++;
      if (request.headers().authorization && request.postData()?.includes('taskEvents(last: 1)') && refused === 0) {
        refused++;
        return route.fulfill({
          status: 503,
          headers: { 'content-type': 'application/json; charset=utf-8', 'retry-after': '1' },
          body: JSON.stringify({
            errors: [{ message: 'This Chronograph instance is busy; retry shortly', extensions: { code: 'SERVER_BUSY' } }],
          }),
        });
      }
      return route.continue();
    });
    const subscribes: (string | null)[] = [];
    await page.routeWebSocket(/\/graphql$/, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((message) => {
        const frame = JSON.parse(String(message));
        if (frame.type === 'subscribe' && frame.payload.query.includes('taskStatusChanged'))
          subscribes.push(frame.payload.variables?.after ?? null);
        server.send(message);
      });
    });
    await page.goto(`http://127.0.0.1:${port}/dashboard/`);
    await signIn(page);
    await waitFor(() => refused > 0, { what: 'the read of the newest event to be refused' });
    const newest = (await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { tenantId: 'default' }, orderBy: { id: 'desc' } })).id;
    try {
      await expect.poll(() => subscribes.at(-1), { timeout: 30_000 }).toBe(newest.toString());
    } catch (error) {
      throw new Error(`${(error as Error).message}; subscriptions (after): ${JSON.stringify(subscribes)}; task list reads: ${taskReads}`);
    }
    // The views read again once the stream knows where it starts (the first read may have missed a change).
    await expect.poll(() => taskReads, { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);

  it('does not say the stream is live, nor reconnect, while the server refuses the key; connects once one is given', async () => {
    const { page, errors } = await openPage();
    let sockets = 0;
    await page.routeWebSocket(/\/graphql$/, (ws) => {
      sockets++;
      ws.connectToServer();
    });
    // No key: the WebSocket is closed 4403 Forbidden; the stream says so and waits for a key.
    await page.goto(`http://127.0.0.1:${port}/dashboard/`);
    await expect.poll(() => page.getByTestId('stream').textContent(), { timeout: 15_000 }).toBe('refused');
    // A reconnect would come within its first retry wait (250 ms); two seconds later there is still one socket.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(sockets).toBe(1);
    await signIn(page);
    await expect.poll(() => page.getByTestId('stream').textContent(), { timeout: 15_000 }).toBe('live');
    expect(sockets).toBe(2);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('after a dropped WebSocket, subscribes again after the last event it saw and shows what changed meanwhile', async () => {
    const { page, errors } = await openPage();
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
          subscribes.push({ after: frame.payload.variables?.after ?? null });
        server.send(message);
      });
    });
    await page.goto(`http://127.0.0.1:${port}/dashboard/`);
    await signIn(page);
    await expect.poll(() => page.getByTestId('stream').textContent(), { timeout: 15_000 }).toBe('live');
    await waitFor(() => subscribes.length > 0, { what: 'the subscription' });

    const svc = t.app.taskSvc.forTenant('default');
    const task = await svc.createTimerTask({ fullName: 'tasks.Slow', startTime: '2099-01-01T00:00:00Z' });
    const status = page.locator(`tr[data-task="${task.id}"] [data-testid=status]`);
    await expect.poll(() => status.textContent(), { timeout: 10_000 }).toBe('SCHEDULED');
    const lastSeen = (
      await t.app.db.prisma.taskEvent.findFirstOrThrow({ where: { taskId: task.id }, orderBy: { id: 'desc' } })
    ).id.toString();
    const before = subscribes.length;

    // The connection drops and stays down while the task is paused through the API.
    refuse = true;
    await routes.at(-1)!.close({ code: 1012, reason: 'test: service restart' });
    await svc.pauseTask(task.id);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await status.textContent()).toBe('SCHEDULED');

    // Back up: the page subscribes after the last event it had, so the pause it missed arrives.
    refuse = false;
    await expect.poll(() => status.textContent(), { timeout: 30_000 }).toBe('PAUSED');
    expect(subscribes.length).toBeGreaterThan(before);
    expect(subscribes.at(-1)!.after).toBe(lastSeen);
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);
});
