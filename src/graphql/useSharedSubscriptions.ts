import {
  createSourceEventStream,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  execute,
  GraphQLError,
  print,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { TaskEventStream } from '../events/TaskEventStream.js';
import { isTaskEvent, type StreamItem } from '../events/TaskEventSubscription.js';
import type { Context } from './builder.js';

/**
 * A yoga plugin: each subscription event is executed once for every subscriber that would get the
 * same answer, instead of once per subscriber.
 *
 * A subscription is its source stream (the root field's `subscribe`: per subscriber, with its own
 * filter, cursor, buffer and lease) and, for every event the stream yields, an execution of the
 * document with the event as root value. Subscribers whose executions are identical — the same document
 * text, operation and variables, the same acting tenant, and the same credential role and home tenant
 * (everything the resolvers read from the context: scope checks use the role, tenant-scoped reads the
 * acting tenant, the `tenant` field the home tenant; the actor is only written by mutations) — share one
 * execution of each event (TaskEventStream.executeShared): a thousand dashboards open on the same query
 * cost one execution per event instead of a thousand. What stays per subscriber is what must: which
 * events it gets and in which order (its source stream), and the end of its stream (SUBSCRIBER_TOO_SLOW,
 * SHUTTING_DOWN, UNAUTHENTICATED carry its own lastCursor, so they are never shared).
 *
 * This replaces the executor's `subscribe` for subscription operations with graphql-js's own two halves
 * (createSourceEventStream, then execute per event, which is what graphql-js's `subscribe` does); the
 * other plugins' hooks (error masking, metrics, the request signal) wrap it as before.
 */
export function useSharedSubscriptions(events: TaskEventStream): Plugin<Context> {
  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn((args) => subscribeShared(events, args as ExecutionArgs));
    },
  };
}

async function subscribeShared(events: TaskEventStream, args: ExecutionArgs) {
  const source = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in source)) return asRequestErrors(source);
  const key = executionKey(args);
  const executeEvent = (item: unknown, contextValue = args.contextValue) =>
    execute(Object.assign({}, args, { rootValue: item, contextValue })) as Promise<ExecutionResult> | ExecutionResult;
  // A shared execution runs in a scope of its own, not in the request of whichever subscriber got there
  // first: that one leaving must not cancel the others' result.
  let shared: Context | undefined;
  const sharedContext = () => {
    const own = args.contextValue as Context;
    shared ??= { ...own.unscoped(), queryBudget: own.queryBudget };
    return shared;
  };
  const results = new SharedResults((source as AsyncIterable<unknown>)[Symbol.asyncIterator](), (item) => {
    const eventId = shareableEvent(item);
    return eventId === undefined ? executeEvent(item) : events.executeShared(eventId, key, () => executeEvent(item, sharedContext()));
  });
  const signal = (args as { signal?: AbortSignal }).signal;
  signal?.addEventListener('abort', () => void results.return(), { once: true });
  return results;
}

/** The id of a stream item whose execution can be shared: a task event (a stream's end and its progress are the subscriber's own). */
function shareableEvent(item: unknown): bigint | undefined {
  const streamItem = item as StreamItem;
  return streamItem && typeof streamItem === 'object' && isTaskEvent(streamItem) && typeof streamItem.id === 'bigint'
    ? streamItem.id
    : undefined;
}

const documentTexts = new WeakMap<DocumentNode, string>();

/** What two executions of one event must agree on to give the same result (see the plugin's comment). */
function executionKey(args: ExecutionArgs): string {
  let text = documentTexts.get(args.document);
  if (text === undefined) {
    text = print(args.document);
    documentTexts.set(args.document, text);
  }
  const context = args.contextValue as Context;
  return JSON.stringify([
    text,
    args.operationName ?? null,
    args.variableValues ?? null,
    context.tenantId,
    context.identity.role,
    context.identity.tenantId,
  ]);
}

/**
 * Variables that do not fit their declared types fail before the subscription starts; the executor
 * yoga uses answers them as BAD_USER_INPUT (HTTP 400), so these do too. Errors of the root field's
 * `subscribe` (located: they have a path) keep their own code.
 */
function asRequestErrors(result: ExecutionResult): ExecutionResult {
  for (const error of result.errors ?? []) {
    if (error.path || !(error instanceof GraphQLError)) continue;
    const extensions = error.extensions as Record<string, unknown>;
    extensions.http = { ...(extensions.http as object), status: 400 };
    extensions.code ??= 'BAD_USER_INPUT';
  }
  return result;
}

/** The source stream, each item mapped to its (possibly shared) result, in order. */
class SharedResults implements AsyncIterableIterator<ExecutionResult> {
  private done = false;

  constructor(
    private readonly source: AsyncIterator<unknown>,
    private readonly run: (item: unknown) => Promise<ExecutionResult> | ExecutionResult,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<ExecutionResult>> {
    if (this.done) return { value: undefined, done: true };
    const item = await this.source.next();
    if (item.done) {
      this.done = true;
      return { value: undefined, done: true };
    }
    return { value: await this.run(item.value), done: false };
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    if (!this.done) {
      this.done = true;
      await this.source.return?.();
    }
    return { value: undefined, done: true };
  }

  async throw(error: unknown): Promise<IteratorResult<ExecutionResult>> {
    await this.return();
    throw error;
  }
}
