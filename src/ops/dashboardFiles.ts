import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where `npm install` (scripts/build-dashboard.mjs) puts the built dashboard. */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../dashboard/dist/', import.meta.url));
export const DASHBOARD_PATH = '/dashboard/';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

/**
 * The page may load only this instance's scripts and styles and talk only to this instance (HTTP and
 * WebSocket): nothing from a CDN, nothing injected. `connect-src 'self'` alone: in CSP Level 3 'self'
 * also matches ws: and wss: to the page's own host and port (the page opens its socket from `location`),
 * whereas the scheme sources `ws:` `wss:` would let a script reach any host. The policy names no host,
 * so it is the same whatever Host header a request carries.
 */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/**
 * Serves the dashboard: `/` and `/dashboard` lead to `/dashboard/`, which is the page; its assets are
 * under `/dashboard/assets/<name>-<hash>.<ext>` and cached forever (the hash names the content). The
 * page itself is never cached, so a new build shows at the next load. Answers 503 with a note when the
 * dashboard was not built (an install without devDependencies).
 */
export async function serveDashboard(req: IncomingMessage, res: ServerResponse, urlPath: string): Promise<void> {
  if (urlPath === '/' || urlPath === '/dashboard') {
    res.writeHead(302, { location: DASHBOARD_PATH, 'cache-control': 'no-store', 'content-length': 0 });
    res.end();
    return;
  }
  const relative = urlPath === DASHBOARD_PATH ? 'index.html' : urlPath.slice(DASHBOARD_PATH.length);
  // Only plain file names under assets/ (no .., no encoded separators).
  if (relative !== 'index.html' && !/^assets\/[\w.-]+$/.test(relative)) return notFound(res);
  let body: Buffer;
  try {
    body = await readFile(path.join(DASHBOARD_DIR, relative));
  } catch {
    if (relative !== 'index.html') return notFound(res);
    const note = 'The dashboard is not built. Run `npm run build:dashboard` (it needs the devDependencies), then reload.\n';
    res.writeHead(503, {
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(note),
    });
    res.end(req.method === 'HEAD' ? undefined : note);
    return;
  }
  const page = relative === 'index.html';
  res.writeHead(200, {
    'content-type': TYPES[path.extname(relative)] ?? 'application/octet-stream',
    'content-length': body.length,
    'cache-control': page ? 'no-cache' : 'public, max-age=31536000, immutable',
    'x-content-type-options': 'nosniff',
    ...(page && { 'content-security-policy': CSP, 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer' }),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function notFound(res: ServerResponse): void {
  const body = 'not found\n';
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'content-length': body.length });
  res.end(body);
}

/** Whether `urlPath` is the dashboard's (or the root, which leads there). */
export function isDashboardPath(urlPath: string): boolean {
  return urlPath === '/' || urlPath === '/dashboard' || urlPath.startsWith(DASHBOARD_PATH);
}
