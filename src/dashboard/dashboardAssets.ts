import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

/** Where the dashboard's built files are served; its page is also `/`. */
export const DASHBOARD_PATH = '/dashboard';
const ASSETS_PATH = `${DASHBOARD_PATH}/assets/`;

export interface DashboardFile {
  contentType: string;
  body: Buffer;
  /** Asset names carry a content hash (Vite): such a file never changes under its URL. */
  immutable: boolean;
  gzipped: () => Promise<Buffer>;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

/**
 * The page's Content-Security-Policy: the built page loads only its own scripts and styles, and talks
 * only to this origin (GraphQL over HTTP and WebSocket; Chromium counts same-origin ws: as 'self').
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'none'",
].join('; ');

/** The package's root: the nearest folder above this module with package.json (works from src/ and from compiled output). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
  return dir;
}

/** dashboard/dist, written by `npm run build:dashboard` (postinstall runs it). */
export const DASHBOARD_DIST = path.join(packageRoot(), 'dashboard', 'dist');

/** Each folder's files, read once it is built. */
const loaded = new Map<string, Promise<Map<string, DashboardFile>>>();

/**
 * The built dashboard, read into memory on first use (it is ~50 KB). While it is not built, nothing is
 * cached, so a build made while the instance runs is picked up by the next request.
 */
function loadFiles(dir: string): Promise<Map<string, DashboardFile> | undefined> {
  let files = loaded.get(dir);
  if (!files) {
    if (!existsSync(path.join(dir, 'index.html'))) return Promise.resolve(undefined);
    files = (async () => {
      const map = new Map<string, DashboardFile>();
      const add = async (relative: string, immutable: boolean) => {
        const body = await readFile(path.join(dir, relative));
        let compressed: Promise<Buffer> | undefined;
        map.set(relative, {
          contentType: CONTENT_TYPES[path.extname(relative)] ?? 'application/octet-stream',
          body,
          immutable,
          gzipped: () => (compressed ??= promisify(gzip)(body)),
        });
      };
      await add('index.html', false);
      const assets = await readdir(path.join(dir, 'assets')).catch(() => []);
      for (const name of assets) await add(`assets/${name}`, true);
      return map;
    })();
    loaded.set(dir, files);
    files.catch(() => loaded.delete(dir));
  }
  return files;
}

/** Whether `pathname` is the dashboard's: its page (`/`, `/dashboard`, `/dashboard/`) or one of its assets. */
export function isDashboardPath(pathname: string): boolean {
  return pathname === '/' || pathname === DASHBOARD_PATH || pathname === `${DASHBOARD_PATH}/` || pathname.startsWith(ASSETS_PATH);
}

export type DashboardAnswer = { kind: 'file'; file: DashboardFile } | { kind: 'not-built' } | { kind: 'not-found' };

/** What to answer for a dashboard path, from the build in `dir` (DASHBOARD_DIR). */
export async function dashboardFile(dir: string, pathname: string): Promise<DashboardAnswer> {
  const files = await loadFiles(dir);
  if (!files) return { kind: 'not-built' };
  const relative = pathname.startsWith(ASSETS_PATH) ? `assets/${pathname.slice(ASSETS_PATH.length)}` : 'index.html';
  const file = files.get(relative);
  return file ? { kind: 'file', file } : { kind: 'not-found' };
}

/** The page shown at `/` while dashboard/dist is missing. */
export const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chronograph</title></head>
<body>
<h1>Chronograph</h1>
<p>The dashboard is not built on this instance: its folder (<code>DASHBOARD_DIR</code>, by default <code>dashboard/dist</code>) has no <code>index.html</code>.
Run <code>npm run build:dashboard</code> (<code>npm ci</code> runs it) and reload this page.</p>
<p>The GraphQL API is at <a href="/graphql">/graphql</a>, where GraphiQL also runs.</p>
</body></html>
`;
