import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS_DIR, chromiumAvailable, type IsolatedBrowser, launchIsolatedChromium } from './support/chromium.js';
import { createTestApp, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

/**
 * GraphiQL as a person opens it on a machine without internet: a real headless chromium whose only
 * reachable host is 127.0.0.1, against a Chronograph on a real port. The page must come entirely from
 * the instance (no CDN), show its title and default query, run a query over HTTP and a subscription
 * over WebSocket, and carry the header editor's Authorization to both (graphql-ws connectionParams).
 */
const ADMIN_KEY = 'chronograph-graphiql-test-admin-key-0123456789';

describe.runIf(chromiumAvailable())('GraphiQL in a browser, offline', () => {
  let t: TestApp;
  let port: number;
  let chromium: IsolatedBrowser;

  beforeAll(async () => {
    // ADMIN_API_KEY configures the identity layer's bootstrap credential where it exists; the page sends it.
    t = await createTestApp('pglite', { env: { ADMIN_API_KEY: ADMIN_KEY } });
    ({ port } = await t.app.listen(0, '127.0.0.1'));
    chromium = await launchIsolatedChromium();
  }, 120_000);

  afterAll(async () => {
    await chromium?.close();
    await t?.close();
  });

  it('renders from the instance, runs a query over HTTP and a subscription over WebSocket with the pasted key', async () => {
    const page = await chromium.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    const posts: { authorization?: string; body: string }[] = [];
    page.on('request', (request) => {
      if (request.method() === 'POST' && request.url().endsWith('/graphql'))
        posts.push({ authorization: request.headers().authorization, body: request.postData() ?? '' });
    });
    const sockets: { url: string; sent: string[]; received: string[] }[] = [];
    page.on('websocket', (ws) => {
      const socket = { url: ws.url(), sent: [] as string[], received: [] as string[] };
      sockets.push(socket);
      ws.on('framesent', (frame) => socket.sent.push(String(frame.payload)));
      ws.on('framereceived', (frame) => socket.received.push(String(frame.payload)));
    });

    await page.goto(`http://127.0.0.1:${port}/graphql`);
    await page.waitForSelector('.graphiql-container .graphiql-query-editor .view-lines', { timeout: 60_000 });
    expect(await page.title()).toBe('Chronograph');
    await expect.poll(() => editorText(page, '.graphiql-query-editor')).toContain('query Overview');
    expect(await page.locator('.graphiql-logo').innerText()).toContain('Chronograph');
    expect(await editorText(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden)')).toContain('"Authorization": "Bearer <API key>"');
    // The placeholder is not a credential: the schema request that GraphiQL sends at once goes without it.
    await waitFor(() => posts.length > 0, { what: 'the introspection request' });
    expect(posts[0]!.authorization).toBeUndefined();

    // The user pastes a key into the header editor and runs the default query.
    await replaceEditorText(
      page,
      '.graphiql-editor-tool .graphiql-editor:not(.hidden)',
      JSON.stringify({ Authorization: `Bearer ${ADMIN_KEY}` }),
    );
    await page.click('.graphiql-execute-button');
    await expect.poll(() => page.locator('.graphiql-response').innerText(), { timeout: 20_000 }).toContain('chronograph.echo');
    const overview = posts.find((p) => p.body.includes('Overview'));
    expect(overview?.authorization).toBe(`Bearer ${ADMIN_KEY}`);

    // A subscription, then a task that runs: its status changes arrive over the WebSocket.
    await replaceEditorText(
      page,
      '.graphiql-query-editor',
      'subscription Watch { taskStatusChanged(filter: { fullName: "tasks.DataSync" }) { toStatus task { fullName argDict } } }',
    );
    await page.click('.graphiql-execute-button');
    const socket = await waitFor(() => sockets.find((s) => s.sent.some((f) => f.includes('"subscribe"'))), {
      what: 'a graphql-ws subscribe message',
    });
    expect(new URL(socket.url).pathname).toBe('/graphql');
    await waitFor(() => t.app.taskEvents.status().live > 0, { what: 'the subscription to go live' });
    const init = JSON.parse(socket.sent.find((f) => f.includes('connection_init'))!);
    expect(init.payload.authorization).toBe(`Bearer ${ADMIN_KEY}`);
    const task = await t.app
      .getElement('services.TaskSvc')
      .createTimerTask({ fullName: 'tasks.DataSync', startTime: new Date().toISOString(), argDict: { from: 'graphiql' } });
    await t.app.getElement('services.TaskSvc').waitForTask(task.id);
    await expect.poll(() => page.locator('.graphiql-response').innerText(), { timeout: 20_000 }).toContain('SUCCEEDED');
    expect(await page.locator('.graphiql-response').innerText()).toContain('graphiql');
    expect(socket.received.some((f) => f.includes('"next"') && f.includes('RUNNING'))).toBe(true);

    await page.screenshot({ path: path.join(ARTIFACTS_DIR, 'graphiql.png') });
    expect(chromium.blocked).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);
});

/** The text of a Monaco editor, as rendered (Monaco draws spaces as non-breaking ones). */
async function editorText(page: Page, selector: string): Promise<string> {
  return (await page.locator(`${selector} .view-lines`).first().innerText()).replace(/\u00a0/g, ' ');
}

/** Replaces an editor's content the way a paste does (no auto-closed brackets or quotes). */
async function replaceEditorText(page: Page, selector: string, text: string): Promise<void> {
  await page.locator(`${selector} .view-lines`).first().click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
  await expect.poll(() => editorText(page, selector)).toContain(text.slice(0, 20));
}
