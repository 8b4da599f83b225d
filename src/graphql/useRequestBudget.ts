import { getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { RequestScope } from '../db/requestScope.js';
import { ChronographError } from '../errors.js';
import { deadline } from '../ops/deadline.js';
import type { Context } from './builder.js';

/**
 * A time budget per operation (REQUEST_TIMEOUT_MS), and work that stops when the client goes.
 *
 * The operation runs under a signal that aborts when the budget is spent or the HTTP client
 * disconnects. It becomes the signal of the operation's scope (RequestScope, in its context), whose
 * Prisma client and services check it before every statement, so an abandoned operation starts no more
 * statements; one already running on PostgreSQL is bounded by statement_timeout (the same budget).
 *
 * Queries also hand the signal to the executor, which answers TIMEOUT at once. Mutations do not: their
 * answer waits for their transaction, which either committed (the answer is the result, however
 * late) or was stopped at its next statement and rolled back (TIMEOUT), so TIMEOUT never hides a
 * write. Subscriptions have no budget (they are meant to last); an SSE one still stops when its
 * client disconnects.
 */
export function useRequestBudget(timeoutMs: number): Plugin {
  return {
    onExecute({ args }) {
      // Aborted by the budget's timer or by the client's signal (see deadline: not AbortSignal.any).
      const operation = deadline(
        timeoutMs,
        () =>
          new ChronographError(
            'TIMEOUT',
            `The request took longer than its budget of ${timeoutMs} ms (REQUEST_TIMEOUT_MS) and was stopped`,
            { timeoutMs },
          ),
        requestOf(args.contextValue)?.signal,
      );
      const { signal } = operation;
      if (getOperationAST(args.document, args.operationName)?.operation !== 'mutation') (args as { signal?: AbortSignal }).signal = signal;
      scopeOf(args.contextValue).signal = signal;
      return {
        onExecuteDone: () => operation.dispose(),
      };
    },
    onSubscribe({ args }) {
      const clientGone = requestOf(args.contextValue)?.signal;
      if (clientGone) scopeOf(args.contextValue).signal = clientGone;
    },
  };
}

/** The operation's scope (contextFor): the statements of its services and Prisma client check its signal. */
function scopeOf(context: unknown): RequestScope {
  return (context as Context).scope;
}

/** The fetch Request yoga puts in the context of HTTP operations (graphql-ws operations have none). */
function requestOf(context: unknown): Request | undefined {
  const request = (context as { request?: unknown } | undefined)?.request;
  return request instanceof Request || (request && typeof request === 'object' && 'signal' in request) ? (request as Request) : undefined;
}
