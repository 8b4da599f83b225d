import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { GRAPHIQL_ASSETS_PATH, graphiqlAsset } from '../graphql/graphiqlPage.js';
import type { Logger } from '../logger.js';
import type { Readiness } from './checkReadiness.js';
import { isDashboardPath, serveDashboard } from './dashboardFiles.js';
import type { Metrics } from './Metrics.js';
import { requestOperations } from './useRequestMetrics.js';

export interface OpsEndpoints {
  logger: Logger;
  metrics: Metrics;
  readiness: () => Promise<Readiness>;
  workerId: string;
  /** Bearer token required by /metrics; undefined leaves it open. */
  metricsToken?: string;
  /** One info line per request. */
  logRequests: boolean;
}

const ROUTES = new Set(['/graphql', '/health', '/ready', '/metrics']);

/**
 * The HTTP server's request listener: `/health`, `/ready`, `/metrics` and GraphiQL's static assets are
 * answered here (and the dashboard's page and assets, see dashboardFiles.ts), before yoga, so that probes and scrapes never depend on GraphQL plugins, the schema
 * or a request body; everything else goes to `next` (yoga). Every request is timed into
 * `chronograph_http_request_duration_seconds` and, with LOG_REQUESTS, logged in one line with the
 * GraphQL operation that yoga saw (useRequestMetrics).
 *
 * `/health` says the process is alive and serving (liveness: restart it when this fails); `/ready`
 * says whether it can do its job now (readiness: route traffic to it only when this is 200).
 */
export function createRequestListener(ops: OpsEndpoints, next: RequestListener): RequestListener {
  return (req, res) => {
    const started = performance.now();
    const path = (req.url ?? '/').split('?')[0]!;
    res.once('close', () => {
      const seconds = (performance.now() - started) / 1000;
      const status = res.writableFinished ? res.statusCode : 499; // 499: the client went away first
      ops.metrics.observeHttp(routeOf(path), req.method ?? 'GET', status, seconds);
      if (ops.logRequests) {
        const operation = requestOperations.get(req);
        ops.logger.info(
          {
            method: req.method,
            path,
            status,
            ms: Math.round(seconds * 1000),
            ...(operation?.name && { operation: operation.name }),
            ...(operation?.type && { operationType: operation.type }),
            ...(operation?.errorCodes && { errors: operation.errorCodes }),
          },
          'request',
        );
      }
    });
    const handled = route(ops, req, res, path);
    if (!handled) return next(req, res);
    handled.catch((error: unknown) => {
      ops.logger.error({ err: error, path }, 'request failed');
      if (!res.headersSent) send(res, 500, 'application/json', JSON.stringify({ error: 'internal error' }));
      else res.destroy();
    });
  };
}

function routeOf(path: string): string {
  if (ROUTES.has(path)) return path;
  if (path.startsWith(GRAPHIQL_ASSETS_PATH)) return GRAPHIQL_ASSETS_PATH;
  if (isDashboardPath(path)) return '/dashboard/';
  return 'other';
}

/** Answers the ops endpoints; undefined when `path` is not one of them. */
function route(ops: OpsEndpoints, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> | undefined {
  const read = req.method === 'GET' || req.method === 'HEAD';
  if (path === '/health') return read ? health(ops, res) : notAllowed(res);
  if (path === '/ready') return read ? ready(ops, res) : notAllowed(res);
  if (path === '/metrics') return read ? metrics(ops, req, res) : notAllowed(res);
  if (path.startsWith(GRAPHIQL_ASSETS_PATH)) return read ? asset(req, res, path) : notAllowed(res);
  if (isDashboardPath(path)) return read ? serveDashboard(req, res, path) : notAllowed(res);
  return undefined;
}

async function health(ops: OpsEndpoints, res: ServerResponse) {
  send(res, 200, 'application/json', JSON.stringify({ status: 'ok', worker: ops.workerId, uptimeSeconds: Math.round(process.uptime()) }));
}

async function ready(ops: OpsEndpoints, res: ServerResponse) {
  const readiness = await ops.readiness();
  if (!readiness.ready) ops.logger.warn({ reason: readiness.reason }, 'not ready');
  const { ready: ok, ...rest } = readiness;
  send(res, ok ? 200 : 503, 'application/json', JSON.stringify({ status: ok ? 'ready' : 'not ready', ...rest }));
}

async function metrics(ops: OpsEndpoints, req: IncomingMessage, res: ServerResponse) {
  if (ops.metricsToken && !bearerMatches(req.headers.authorization, ops.metricsToken)) {
    res.setHeader('www-authenticate', 'Bearer realm="metrics"');
    send(res, 401, 'text/plain; charset=utf-8', 'a valid METRICS_TOKEN bearer token is required\n');
    return;
  }
  const { contentType, body } = await ops.metrics.render();
  send(res, 200, contentType, body);
}

async function asset(req: IncomingMessage, res: ServerResponse, path: string) {
  const file = await graphiqlAsset(path);
  if (!file) {
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    return;
  }
  const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gzip ? await file.gzipped() : file.body;
  res.writeHead(200, {
    'content-type': file.contentType,
    'content-length': body.length,
    // The path names the content's hash: it never changes under this URL.
    'cache-control': 'public, max-age=31536000, immutable',
    vary: 'accept-encoding',
    ...(gzip && { 'content-encoding': 'gzip' }),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

async function notAllowed(res: ServerResponse) {
  res.setHeader('allow', 'GET, HEAD');
  send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
}

function send(res: ServerResponse, status: number, contentType: string, body: string) {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** Constant-time comparison of `Authorization: Bearer <token>` with the configured token. */
function bearerMatches(header: string | undefined, token: string): boolean {
  const given = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
  if (!given) return false;
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(given), digest(token));
}
