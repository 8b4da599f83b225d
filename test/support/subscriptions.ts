import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import type { Chronograph } from '../../src/app.js';
import type { GqlResult } from './testApp.js';
import { waitFor } from './waitFor.js';

/** Gathers what an async iterable yields, so tests can wait until something has arrived. */
export class Collector<T> {
  readonly items: T[] = [];
  ended = false;
  error?: unknown;
  private readonly done: Promise<void>;

  constructor(private readonly iterable: AsyncIterable<T> & { return?: (value?: never) => unknown }) {
    this.done = (async () => {
      try {
        for await (const item of iterable) this.items.push(item);
      } catch (error) {
        this.error = error;
      } finally {
        this.ended = true;
      }
    })();
  }

  /** Waits until `predicate` holds for the items received so far. */
  async until(predicate: (items: T[]) => boolean, what = 'items'): Promise<T[]> {
    await waitFor(() => predicate(this.items) || this.ended, { what });
    if (!predicate(this.items))
      throw new Error(`stream ended (${String(this.error ?? 'complete')}) before ${what}: ${JSON.stringify(this.items)}`);
    return this.items;
  }

  /** Waits for the stream to end (complete or error). */
  async finished(): Promise<T[]> {
    await this.done;
    return this.items;
  }

  async close(): Promise<void> {
    await this.iterable.return?.();
  }
}

const AsyncGeneratorReturn = Object.getPrototypeOf(async function* () {}).prototype.return as (
  value?: unknown,
) => Promise<IteratorResult<GqlResult>>;

export interface SseSubscription {
  /** The GraphQL results, one per `next` event; ends on `complete`. */
  results: AsyncGenerator<GqlResult>;
  /** Cancels the response body, as a browser closing an EventSource would. */
  close(): Promise<void>;
}

/** A subscription over Server-Sent Events through yoga's fetch (no port), or over real HTTP to a URL. */
export async function sseSubscribe(
  target: Chronograph | string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<SseSubscription> {
  const init = {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
    body: JSON.stringify({ query, variables }),
  };
  const response = typeof target === 'string' ? await fetch(target, init) : await target.yoga.fetch('http://chronograph/graphql', init);
  if (!response.headers.get('content-type')?.startsWith('text/event-stream')) {
    const body = (await response.json()) as GqlResult;
    return {
      results: (async function* () {
        yield body;
      })(),
      close: async () => {},
    };
  }
  // Read directly (no pipeThrough, which would pump the body eagerly): a consumer that stops
  // reading must leave the response stream to fill up, as a stalled client would.
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  async function* results(): AsyncGenerator<GqlResult> {
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        if (event === 'complete') return;
        if (event !== 'next') continue; // keep-alive comments
        const data = block
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).trimStart())
          .join('\n');
        yield JSON.parse(data) as GqlResult;
      }
    }
  }
  const generator = results();
  const close = () => reader.cancel();
  // return() cancels the body first: an async generator waiting in read() would not see it otherwise.
  const iterator: AsyncGenerator<GqlResult> = Object.assign(generator, {
    return: async (value?: unknown) => {
      await close();
      return AsyncGeneratorReturn.call(generator, value);
    },
  });
  return { results: iterator, close };
}

/** A graphql-ws client on a real socket. */
export function wsClient(url: string, connectionParams: Record<string, unknown> = {}): Client {
  return createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams, retryAttempts: 0, lazy: true });
}

/** The `taskStatusChanged` payloads of a subscription's results (throws on an error result). */
export function events<T = { cursor: string }>(results: readonly { data?: unknown; errors?: readonly unknown[] | null }[]): T[] {
  return results.map((result) => {
    if (result.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
    return (result.data as { taskStatusChanged: T }).taskStatusChanged;
  });
}

/** Waits until the instance has no subscription left and has stopped listening. */
export async function streamIdle(app: Chronograph): Promise<void> {
  await waitFor(
    () => {
      const status = app.taskEvents.status();
      return status.subscriptions === 0 && status.live === 0 && !status.listening;
    },
    { what: 'the task event stream to free every subscription' },
  );
}
