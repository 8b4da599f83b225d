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
  constructor(readonly errors: GqlError[]) {
    super(errors.map((e) => (e.extensions?.code ? `${e.extensions.code}: ${e.message}` : e.message)).join('; '));
  }
}

// biome-ignore lint/suspicious/noExplicitAny: answers are shaped by each query.
export async function gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<T> {
  const response = await fetch('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...authorization() },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: GqlError[] };
  if (body.errors?.length) throw new ApiError(body.errors);
  return body.data as T;
}

let socket: Client | undefined;

function client(): Client {
  socket ??= createClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`,
    connectionParams: () => authorization(),
    lazy: true,
    // Reconnect after a restart or a network blip, for as long as the page is open.
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait: async (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(5000, 250 * 2 ** retries))),
  });
  return socket;
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
 * (SHUTTING_DOWN, SUBSCRIBER_TOO_SLOW) or the socket drops. Returns a function that stops it.
 */
export function followChanges(onChange: (change: StatusChange) => void, onState: (state: string) => void, after?: string): () => void {
  let last = after;
  let stopped = false;
  let unsubscribe = () => {};
  let offClosed = () => {};
  // Each subscription started here has its own generation; callbacks of an older one are ignored, so a
  // restart never runs twice for one drop.
  let generation = 0;
  let restartTimer: ReturnType<typeof setTimeout> | undefined;
  const restart = (delayMs: number) => {
    if (stopped || restartTimer) return;
    generation++;
    unsubscribe();
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
    offClosed = current.on('closed', () => {
      if (mine === generation) restart(250);
    });
    onState('live');
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
          // Refused at subscribe time (CURSOR_EXPIRED: the history was pruned) or a dropped socket.
          const first = (Array.isArray(error) ? error[0] : undefined) as GqlError | undefined;
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
    unsubscribe();
  };
}
