import { createClient } from 'graphql-ws';
import WebSocket from 'ws'; // browsers have their own

export interface TaskStatusChange {
  cursor: string;
  toStatus: string;
  task: { id: string; fullName: string };
}

const SUBSCRIPTION = `subscription($after: String, $filter: TaskEventFilter) {
  taskEventFeed(after: $after, filter: $filter) { cursor event { cursor toStatus task { id fullName } } }
}`;

/**
 * Follows every status change of the tenant that matches `filter`, without gap or duplicate, across
 * dropped connections and server restarts: each (re)subscription starts after the last cursor seen, an
 * event's or a progress item's (which moves it past events the filter passed over, so a narrow filter
 * resumes even once history retention has pruned its last match); an instance that shuts down
 * (SHUTTING_DOWN) or a reader that fell behind (SUBSCRIBER_TOO_SLOW) says where to resume in
 * `extensions.lastCursor`; a refused or dropped connection is retried with backoff. Pass the cursor you
 * stored as `after` to continue where a previous run stopped; stop with `signal`.
 */
export async function followTaskEvents(options: {
  url: string; // ws://127.0.0.1:4000/graphql
  after?: string;
  filter?: Record<string, unknown>; // e.g. { fullName: 'tasks.DataBackup' }; every event without one
  connectionParams?: Record<string, unknown>;
  signal?: AbortSignal;
  onEvent: (event: TaskStatusChange) => void | Promise<void>;
}): Promise<void> {
  let lastCursor = options.after;
  let failures = 0;
  while (!options.signal?.aborted) {
    // retryAttempts: 0, because graphql-ws would otherwise resubscribe with the first `after` it was given.
    const client = createClient({
      url: options.url,
      webSocketImpl: WebSocket,
      connectionParams: options.connectionParams,
      retryAttempts: 0,
    });
    const results = client.iterate<{ taskEventFeed: { cursor: string; event: TaskStatusChange | null } }>({
      query: SUBSCRIPTION,
      variables: { after: lastCursor, filter: options.filter },
    });
    const stop = () => void results.return?.();
    options.signal?.addEventListener('abort', stop);
    try {
      for await (const { data, errors } of results) {
        if (errors?.length) {
          const { code, lastCursor: resumeAt } = errors[0]!.extensions ?? {};
          if (code !== 'SHUTTING_DOWN' && code !== 'SUBSCRIBER_TOO_SLOW') throw new Error(errors[0]!.message);
          lastCursor = typeof resumeAt === 'string' ? resumeAt : lastCursor;
          break;
        }
        const { cursor, event } = data!.taskEventFeed;
        lastCursor = cursor;
        failures = 0;
        if (event) await options.onEvent(event);
      }
    } catch (error) {
      // GraphQL errors come as an array (a bad cursor, no permission): retrying would not help.
      if (Array.isArray(error)) throw new Error(error[0]?.message ?? 'subscription refused');
      if (error instanceof Error) throw error;
      failures++; // a close or error event of the socket: the server went away or refused the connection
    } finally {
      options.signal?.removeEventListener('abort', stop);
      await client.dispose();
    }
    const wait = Math.min(5_000, 100 * 2 ** Math.min(failures, 6));
    await new Promise((resolve) => setTimeout(resolve, failures ? wait : 0));
  }
}
