import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { Piscina } from 'piscina';
import { LARGE_BODY_BYTES } from './ops/AdmissionControl.js';

export interface HttpServerOptions {
  host: string;
  port: number;
  /** A request's time budget (REQUEST_TIMEOUT_MS): receiving its body may take no longer. */
  requestTimeoutMs: number;
}

/** How long a client may take to send its request headers: a slow trickle (slowloris) is cut off. */
const HEADERS_TIMEOUT_MS = 10_000;
/** A socket with no traffic in either direction for this long is closed; SSE pings every 12 s. */
const IDLE_MARGIN_MS = 15_000;
/** Connections the kernel may hold for accept(). */
const ACCEPT_BACKLOG = 4096;

/**
 * One HTTP server for GraphQL over HTTP and SSE (graphql-yoga); port 0 picks a free port. Node's
 * limits are set so that a slow or stalled client holds a socket for a bounded time: headers within
 * 10 s, the whole request within the request budget, and no socket silent for longer than the budget
 * plus 15 s (a client that stops reading its response stops the traffic, so it is cut off too).
 * Header size stays at Node's 16 KiB; the body limit is yoga's (MAX_REQUEST_BYTES).
 */
export async function startHttpServer(handler: RequestListener, options: HttpServerOptions): Promise<{ server: Server; port: number }> {
  const server = createServer(
    {
      headersTimeout: Math.min(HEADERS_TIMEOUT_MS, options.requestTimeoutMs),
      requestTimeout: options.requestTimeoutMs,
      maxHeaderSize: 16 * 1024,
      keepAliveTimeout: 5_000,
      // How often those timeouts are checked (Node's default, 30 s, would let a slow client stay 40 s).
      connectionsCheckingInterval: 1_000,
    },
    handler,
  );
  server.setTimeout(options.requestTimeoutMs + IDLE_MARGIN_MS);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // A crowd of connections arriving at once waits in the kernel's accept queue; with Node's default
    // backlog (511) the rest are dropped and the clients retry after 1 s, 3 s, 7 s… (the kernel caps
    // it at net.core.somaxconn).
    server.listen({ port: options.port, host: options.host, backlog: ACCEPT_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : options.port };
}

/** Resolves once `done()` holds or `deadline` (epoch ms) has passed, checking every 10 ms; for shutdown, where nothing signals. */
export async function waitUntil(done: () => boolean, deadline: number): Promise<void> {
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
}

/** The answer to a request that arrives while the instance shuts down. */
export function refuseWhileStopping(_request: IncomingMessage, response: ServerResponse): void {
  const body = JSON.stringify({
    errors: [{ message: 'This Chronograph instance is shutting down; retry on another instance', extensions: { code: 'SHUTTING_DOWN' } }],
  });
  response.writeHead(503, {
    'content-type': 'application/json; charset=utf-8',
    'retry-after': '1',
    connection: 'close',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

/**
 * A request's whole body; `'too large'` past `limit` bytes, `'too slow'` when it has not all arrived
 * within `timeoutMs` (BODY_TIMEOUT_MS: Node's own requestTimeout allows the whole request budget, and a
 * body trickling in byte by byte would hold its connection that long), undefined when the client went
 * away first.
 */
export function readBody(
  request: IncomingMessage,
  limit: number,
  timeoutMs?: number,
  /** Told of each chunk; false stops reading (its caller has answered). */
  onChunk?: (bytes: number) => boolean,
): Promise<Buffer | 'too large' | 'too slow' | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const deadline = timeoutMs === undefined ? undefined : setTimeout(() => finish('too slow'), timeoutMs);
    const finish = (outcome: Buffer | 'too large' | 'too slow' | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      request.off('data', onData);
      resolve(outcome);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) finish('too large');
      else if (onChunk && !onChunk(chunk.length)) finish(undefined);
      else chunks.push(chunk);
    };
    request.on('data', onData);
    request.once('end', () => finish(Buffer.concat(chunks, size)));
    request.once('error', () => finish(undefined));
    request.once('close', () => finish(request.complete ? Buffer.concat(chunks, size) : undefined));
  });
}

/**
 * Hands a body to yoga as `request.body`, parsed when it is a JSON object or array: whatwg-node then uses
 * it as it is, instead of streaming the body through web streams chunk by chunk, which cost ~70 ms of CPU
 * per 2 MB body (and over a second when given as one Buffer). A body of LARGE_BODY_BYTES or more is
 * decoded and parsed in a thread of its own (decoding and parsing 2 MB takes ~10–20 ms, which on the event
 * loop every other request would wait for).
 */
export async function useBody(request: IncomingMessage, bytes: Buffer): Promise<void> {
  (request as IncomingMessage & { body?: unknown }).body = await parsedBody(request, bytes);
}

/** The answer to a body larger than MAX_REQUEST_BYTES (the same as yoga's own). */
export function refuseTooLarge(response: ServerResponse, limit: number): void {
  if (response.headersSent || response.destroyed) return;
  const body = JSON.stringify({
    errors: [
      { message: `Request body too large: at most ${limit} bytes (MAX_REQUEST_BYTES)`, extensions: { code: 'REQUEST_ENTITY_TOO_LARGE' } },
    ],
  });
  response.writeHead(413, {
    'content-type': 'application/json; charset=utf-8',
    connection: 'close',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

/**
 * The answer to a body that did not arrive within BODY_TIMEOUT_MS: 408, and the connection is closed (the
 * rest of the body is never read).
 */
export function refuseTooSlow(response: ServerResponse, timeoutMs: number): void {
  if (response.headersSent || response.destroyed) return;
  const body = JSON.stringify({
    errors: [
      {
        message: `The request body did not arrive within ${timeoutMs} ms (BODY_TIMEOUT_MS); nothing of it ran`,
        extensions: { code: 'TIMEOUT' },
      },
    ],
  });
  response.writeHead(408, {
    'content-type': 'application/json; charset=utf-8',
    connection: 'close',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

/** A JSON object or array as parsed; anything else (other content types, bad JSON, an empty object) as bytes, for yoga to parse and refuse as it does. */
async function parsedBody(request: IncomingMessage, bytes: Buffer): Promise<unknown> {
  if (!/\bjson\b/i.test(request.headers['content-type'] ?? '')) return bytes;
  if (bytes.length >= LARGE_BODY_BYTES) {
    // Copied to the thread (a memcpy), not transferred: the bytes stay here for yoga if they are not an object.
    const parsed = await jsonParser()
      .run(bytes)
      .catch(() => undefined);
    return parsed ?? bytes;
  }
  try {
    const parsed: unknown = JSON.parse(bytes.toString('utf8'));
    // whatwg-node takes a parsed body only when it has keys; otherwise it would read the (consumed) stream.
    if (parsed && typeof parsed === 'object' && Object.keys(parsed).length > 0) return parsed;
  } catch {
    // yoga answers it (400, "POST body sent invalid JSON.")
  }
  return bytes;
}

/** One thread for large bodies, started at the first and ended after 10 s without any, which frees its memory (src/jsonBodyWorker.js). */
let parser: Piscina<Uint8Array, object | undefined> | undefined;
function jsonParser(): Piscina<Uint8Array, object | undefined> {
  parser ??= new Piscina({
    filename: new URL('./jsonBodyWorker.js', import.meta.url).href,
    minThreads: 0,
    maxThreads: 1,
    idleTimeout: 10_000,
  });
  return parser;
}

/** Ends the large-body thread (at shutdown; a later large body starts a new one). */
export async function closeJsonParser(): Promise<void> {
  const pool = parser;
  parser = undefined;
  await pool?.destroy();
}
