import { type Client, createClient } from 'graphql-ws';

/**
 * The dashboard's only way to the server: the public GraphQL API, with the user's key as
 * `Authorization: Bearer …` over HTTP and as graphql-ws `connectionParams.authorization` over WebSocket.
 * The key lives in sessionStorage (gone when the tab closes); without one, the server decides (an
 * instance in development mode answers anonymously).
 */
const KEY = 'chronograph.apiKey';

export function getKey(): string {
  return sessionStorage.getItem(KEY) ?? '';
}

export function setKey(key: string): void {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
  const old = socket;
  socket = undefined;
  // The old connection goes (a new key is a new identity); its closing is expected, not an error.
  Promise.resolve(old?.dispose()).catch(() => {});
}

function authorization(): Record<string, string> {
  const key = getKey().trim();
  return key ? { authorization: `Bearer ${key}` } : {};
}

export interface GqlError {
  message: string;
  extensions?: { code?: string; field?: string; [key: string]: unknown };
}

export class ApiError extends Error {
  constructor(
    readonly errors: GqlError[],
    /** The HTTP status of the answer (200 for a GraphQL error in an ordinary answer). */
    readonly status = 200,
    /** What the answer's Retry-After asked for, in ms (admission control's 503 SERVER_BUSY sends one). */
    readonly retryAfterMs?: number,
  ) {
    super(errors.map((e) => (e.extensions?.code ? `${e.extensions.code}: ${e.message}` : e.message)).join('; '));
  }
}

/**
 * Whether a request was refused for its identity (HTTP 401 or 403, UNAUTHENTICATED, FORBIDDEN): asking
 * again with the same key gets the same answer (see mayPassLater); the header then says "not signed in".
 */
export function isAuthFailure(error: unknown): boolean {
  if (!(error instanceof ApiError)) return false;
  if (error.status === 401 || error.status === 403) return true;
  return error.errors.some((e) => e.extensions?.code === 'UNAUTHENTICATED' || e.extensions?.code === 'FORBIDDEN');
}

/** Codes of answers that may differ if the same request is sent again later. */
const TRANSIENT_CODES = new Set(['SERVER_BUSY', 'SHUTTING_DOWN', 'TIMEOUT', 'INTERNAL_SERVER_ERROR']);

/**
 * Whether a failed request may pass if it is sent again unchanged, so that a read is worth retrying: the
 * network failed (fetch's TypeError), the server was busy, shutting down or out of time, it hit an
 * unexpected error (INTERNAL_SERVER_ERROR: a database connection lost or restarting looks so), or the
 * answer was a 5xx that is not GraphQL (a proxy, a restart). Not a refused identity (a new key reads
 * again), nor an answer the server will give again (BAD_USER_INPUT, NOT_FOUND, a validation error after a
 * deploy): retried, those would repeat for as long as the page is open (at most every 15 s).
 */
export function mayPassLater(error: unknown): boolean {
  if (!(error instanceof ApiError)) return error instanceof TypeError;
  if (isAuthFailure(error)) return false;
  if (error.errors.some((e) => TRANSIENT_CODES.has(e.extensions?.code ?? ''))) return true;
  return error.status >= 500 && error.errors.every((e) => !e.extensions?.code);
}

/**
 * How long to wait before trying a failed read again, the `attempt`th time (0 first): 0.5 s doubling to
 * 15 s at most, half of it random (so pages refused together do not come back together), and never less
 * than the answer's Retry-After.
 */
export function retryDelay(attempt: number, error: unknown): number {
  const ceiling = Math.min(15_000, 500 * 2 ** Math.min(attempt, 10));
  const jittered = ceiling / 2 + (Math.random() * ceiling) / 2;
  const asked = error instanceof ApiError ? (error.retryAfterMs ?? 0) : 0;
  return Math.max(jittered, Math.min(asked, 15_000));
}

// biome-ignore lint/suspicious/noExplicitAny: answers are shaped by each query.
export async function gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<T> {
  const response = await fetch('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...authorization() },
    body: JSON.stringify({ query, variables }),
  });
  const seconds = Number(response.headers.get('retry-after'));
  const retryAfterMs = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined;
  let body: { data?: T; errors?: GqlError[] };
  try {
    body = await response.json();
  } catch {
    // Not GraphQL: a proxy's error page, a cut answer.
    throw new ApiError([{ message: `HTTP ${response.status} ${response.statusText}`.trim() }], response.status, retryAfterMs);
  }
  if (body.errors?.length) throw new ApiError(body.errors, response.status, retryAfterMs);
  if (!response.ok)
    throw new ApiError([{ message: `HTTP ${response.status} ${response.statusText}`.trim() }], response.status, retryAfterMs);
  return body.data as T;
}

let socket: Client | undefined;
/** Whether `socket` is connected (acknowledged) now. */
let socketConnected = false;

/**
 * Whether a WebSocket was closed because the server refused its credential (4403 Forbidden: none, an
 * unknown one, or one revoked or expired while connected): connecting again with the same key gets the
 * same answer, so the stream waits for a new key instead.
 */
function refusedByServer(event: unknown): boolean {
  return typeof event === 'object' && event !== null && (event as { code?: unknown }).code === 4403;
}

function client(): Client {
  if (socket) return socket;
  const mine: Client = createClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`,
    connectionParams: () => authorization(),
    lazy: true,
    // Reconnect after a restart or a network blip, for as long as the page is open; not with a refused key.
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: (event) => !refusedByServer(event),
    retryWait: async (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(5000, 250 * 2 ** retries))),
    on: {
      connected: () => {
        if (socket === mine) socketConnected = true;
      },
      closed: () => {
        if (socket === mine) socketConnected = false;
      },
    },
  });
  socket = mine;
  socketConnected = false;
  return mine;
}

export interface StatusChange {
  cursor: string;
  fromStatus: string | null;
  toStatus: string;
  type: string;
  nextRunAt: string | null;
  createdAt: string;
  task: { id: string; fullName: string; funcName: string; status: string; nextRunAt: string | null };
}

const CHANGES = `subscription Changes($after: String) {
  taskStatusChanged(after: $after) { cursor fromStatus toStatus type nextRunAt createdAt task { id fullName funcName status nextRunAt } }
}`;

/**
 * Every status change of the tenant, live, without gap or duplicate across reconnects: it resumes
 * after the last cursor it delivered (from `after` at first), also when the server ends the stream
 * (SHUTTING_DOWN, SUBSCRIBER_TOO_SLOW) or the socket drops. Its state is `live` while its socket is
 * connected, `connecting` / `reconnecting` meanwhile, and `refused` when the server refused the key (it
 * then stops: a new key starts a new stream). Returns a function that stops it.
 */
export function followChanges(onChange: (change: StatusChange) => void, onState: (state: string) => void, after?: string): () => void {
  let last = after;
  let stopped = false;
  let unsubscribe = () => {};
  let offClosed = () => {};
  let offConnected = () => {};
  // Each subscription started here has its own generation; callbacks of an older one are ignored, so a
  // restart never runs twice for one drop.
  let generation = 0;
  let restartTimer: ReturnType<typeof setTimeout> | undefined;
  let reconnecting = false;
  const refuse = () => {
    if (stopped) return;
    stopped = true;
    generation++;
    clearTimeout(restartTimer);
    offClosed();
    offConnected();
    unsubscribe();
    onState('refused');
  };
  const restart = (delayMs: number) => {
    if (stopped || restartTimer) return;
    generation++;
    unsubscribe();
    reconnecting = true;
    onState('reconnecting');
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      start();
    }, delayMs);
  };
  const start = () => {
    if (stopped) return;
    const mine = ++generation;
    const current = client();
    // graphql-ws resends an open subscription by itself when its socket comes back, but with the
    // variables it was first sent with, which would skip what happened in between: on a dropped socket
    // the subscription is closed here and opened again after the last cursor delivered.
    offClosed();
    offClosed = current.on('closed', (event) => {
      if (mine !== generation) return;
      if (refusedByServer(event)) refuse();
      else restart(250);
    });
    offConnected();
    offConnected = current.on('connected', () => {
      if (mine !== generation || stopped) return;
      reconnecting = false;
      onState('live');
    });
    // Until its socket is connected: `connecting` (a first start, or one after a refused key), or still
    // `reconnecting` after a drop.
    if (socketConnected) {
      reconnecting = false;
      onState('live');
    } else if (!reconnecting) onState('connecting');
    unsubscribe = current.subscribe<{ taskStatusChanged: StatusChange }>(
      { query: CHANGES, variables: { after: last ?? null } },
      {
        next: (result) => {
          if (stopped || mine !== generation) return;
          const change = result.data?.taskStatusChanged;
          if (change) {
            last = change.cursor;
            onChange(change);
          }
          const error = result.errors?.[0] as GqlError | undefined;
          const resumeFrom = error?.extensions?.lastCursor ?? error?.extensions?.oldestCursor;
          if (typeof resumeFrom === 'string') last = resumeFrom;
        },
        error: (error) => {
          if (stopped || mine !== generation) return;
          if (refusedByServer(error)) return refuse();
          // Refused at subscribe time (CURSOR_EXPIRED: the history was pruned) or a dropped socket.
          const first = (Array.isArray(error) ? error[0] : undefined) as GqlError | undefined;
          // A connection whose credential was revoked or expired keeps its socket but refuses each
          // subscription (UNAUTHENTICATED, FORBIDDEN): the same key gets the same answer.
          const code = first?.extensions?.code;
          if (code === 'UNAUTHENTICATED' || code === 'FORBIDDEN') return refuse();
          const oldest = first?.extensions?.oldestCursor;
          if (typeof oldest === 'string') last = oldest;
          restart(1000);
        },
        complete: () => {
          if (stopped || mine !== generation) return;
          restart(250);
        },
      },
    );
  };
  start();
  return () => {
    stopped = true;
    clearTimeout(restartTimer);
    offClosed();
    offConnected();
    unsubscribe();
  };
}
