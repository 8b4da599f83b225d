import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Where browser tests leave screenshots (git-ignored). */
export const ARTIFACTS_DIR = path.resolve(import.meta.dirname, '../../test-artifacts');

/**
 * Debian's chromium, when installed (`.ci/run` installs it). Without it, browser tests skip with a
 * message, except under CI, where a missing browser fails the run instead of hiding the tests.
 */
export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  if (process.env.CI) throw new Error(`${CHROMIUM_PATH} is missing: CI must install Debian's chromium (see .ci/run)`);
  console.warn(`${CHROMIUM_PATH} is not installed (apt-get install chromium): browser tests are skipped`);
  return false;
}

export interface IsolatedBrowser {
  /** The browser's one context, on a fresh profile. */
  context: BrowserContext;
  /** Requests to anything but 127.0.0.1 that were aborted. */
  blocked: string[];
  close(): Promise<void>;
}

/**
 * Headless chromium on a fresh profile (`--user-data-dir`) and no network but this machine's loopback:
 * the browser's own background traffic is switched off by flags, its host resolver maps every name but
 * 127.0.0.1 to nothing, and every page request to another host is aborted and recorded, so a test can
 * assert that a page needed nothing from outside.
 */
export async function launchIsolatedChromium(): Promise<IsolatedBrowser> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const profile = mkdtempSync(path.join(os.tmpdir(), 'chronograph-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
  const blocked: string[] = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1') return route.continue();
    blocked.push(url.href);
    return route.abort('internetdisconnected');
  });
  return {
    context,
    blocked,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
