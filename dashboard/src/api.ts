import { type Client, createClient } from 'graphql-ws';

/** The user's API key, kept for this browser tab only (sessionStorage). Empty: no Authorization (development mode). */
const KEY_STORAGE = 'chronograph.apiKey';

export function getKey(): string {
  return sessionStorage.getItem(KEY_STORAGE) ?? '';
}

export function setKey(key: string): void {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export class GraphQLRequestError extends Error {
  constructor(
    message: string,
    readonly code?: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** One operation over HTTP POST /graphql, the public API, with the key as a Bearer credential. */
export async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const key = getKey();
  const response = await fetch('/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...(key && { authorization: `Bearer ${key}` }),
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json().catch(() => undefined)) as
    | { data?: T; errors?: { message: string; extensions?: { code?: string; field?: string } }[] }
    | undefined;
  const error = body?.errors?.[0];
  if (error) throw new GraphQLRequestError(error.message, error.extensions?.code, error.extensions?.field);
  if (!body?.data) throw new GraphQLRequestError(`HTTP ${response.status}`);
  return body.data;
}

let client: Client | undefined;
let clientKey = '';

/** The graphql-ws client (same path as HTTP), its key in connectionParams.authorization; rebuilt when the key changes. */
export function wsClient(): Client {
  const key = getKey();
  if (client && clientKey === key) return client;
  void client?.dispose();
  clientKey = key;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
  client = createClient({
    url,
    lazy: false,
    connectionParams: () => (key ? { authorization: `Bearer ${key}` } : {}),
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait: async (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 500 * 2 ** retries))),
  });
  return client;
}

export interface StatusEvent {
  cursor: string;
  createdAt: string;
  fromStatus: string | null;
  toStatus: string;
  type: string;
  nextRunAt: string | null;
  task: TaskRow;
}

export interface TaskRow {
  id: string;
  fullName: string;
  funcName: string;
  status: string;
  source: string;
  repeatType: string;
  nextRunAt: string | null;
  startTime: string;
  runCount: number;
  lastError: string | null;
  updatedAt: string;
}

export const TASK_ROW = 'id fullName funcName status source repeatType nextRunAt startTime runCount lastError updatedAt';

export const STATUS_EVENT = `cursor createdAt fromStatus toStatus type nextRunAt task { ${TASK_ROW} }`;

const STATUS_SUBSCRIPTION = `subscription DashboardStatus($after: String) {
  taskStatusChanged(after: $after) { ${STATUS_EVENT} }
}`;

/**
 * Follows every status change of the tenant. The cursor of the last event seen is kept, and after a
 * dropped connection the subscription is opened again with `after` set to it, so the events missed while
 * disconnected arrive first, with no gap and no duplicate (the server's taskStatusChanged contract).
 * `from` is the cursor of the last event the page read from history (taskEvents); none: changes from now on.
 */
export function followStatusChanges(
  from: string | undefined,
  onEvent: (event: StatusEvent) => void,
  onState: (state: 'live' | 'reconnecting') => void,
): () => void {
  let lastCursor = from;
  let stopped = false;
  let dispose: (() => void) | undefined;
  const c = wsClient();
  const open = () => {
    dispose?.();
    dispose = c.subscribe<{ taskStatusChanged: StatusEvent }>(
      { query: STATUS_SUBSCRIPTION, variables: { after: lastCursor ?? null } },
      {
        next: ({ data }) => {
          const event = data?.taskStatusChanged;
          if (!event) return;
          lastCursor = event.cursor;
          onEvent(event);
        },
        error: () => {
          dispose = undefined;
          onState('reconnecting');
          if (!stopped) setTimeout(() => !stopped && !dispose && open(), 1000);
        },
        complete: () => {},
      },
    );
  };
  // The client resends an open subscription by itself when it reconnects, but with its first variables;
  // it is dropped on close and opened again from the last cursor once connected.
  const offClosed = c.on('closed', () => {
    dispose?.();
    dispose = undefined;
    if (!stopped) onState('reconnecting');
  });
  const offConnected = c.on('connected', () => {
    onState('live');
    if (!dispose && !stopped) open();
  });
  open();
  return () => {
    stopped = true;
    offClosed();
    offConnected();
    dispose?.();
  };
}
