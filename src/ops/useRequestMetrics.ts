import type { IncomingMessage } from 'node:http';
import { type DocumentNode, type GraphQLError, getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ChronographError } from '../errors.js';
import type { Metrics } from './Metrics.js';

/** What the GraphQL layer learned about an HTTP request, for its log line (src/ops/requestListener.ts). */
export interface RequestOperation {
  name?: string;
  type?: string;
  errorCodes?: string[];
}

/** Filled in by the plugin below for requests that reach GraphQL; keyed by the Node request. */
export const requestOperations = new WeakMap<IncomingMessage, RequestOperation>();

type Result = { errors?: readonly GraphQLError[] };

/**
 * A yoga plugin: times queries and mutations and counts GraphQL errors by `extensions.code`, over HTTP
 * (yoga's request pipeline) and WebSocket (graphql-ws operations go through `yoga.getEnveloped`, so the
 * execute and subscribe hooks see them too; their context has no `request`). Errors of HTTP requests are
 * counted from the final result so that parse and validation errors, which never execute, are included.
 */
export function useRequestMetrics(metrics: Metrics): Plugin {
  return {
    onParams({ params, context }) {
      const req = (context as { req?: IncomingMessage }).req;
      if (req && params.operationName) noteOperation(req, { name: params.operationName });
    },
    onExecute({ args }) {
      const started = performance.now();
      const { type, name } = describe(args.document, args.operationName ?? undefined);
      const context = args.contextValue as { request?: unknown; req?: IncomingMessage };
      const transport = context.request ? 'http' : 'ws';
      if (context.req) noteOperation(context.req, { name, type });
      return {
        onExecuteDone({ result }) {
          metrics.observeGraphql(type, transport, (performance.now() - started) / 1000);
          if (transport === 'ws' && !(Symbol.asyncIterator in result)) metrics.observeGraphqlErrors(codesOf(result), 'ws');
        },
      };
    },
    onSubscribe({ args }) {
      const context = args.contextValue as { request?: unknown; req?: IncomingMessage };
      const transport = context.request ? 'http' : 'ws';
      const { name } = describe(args.document, args.operationName ?? undefined);
      if (context.req) noteOperation(context.req, { name, type: 'subscription' });
      return {
        onSubscribeResult() {
          return {
            onNext({ result }) {
              if (transport === 'ws') metrics.observeGraphqlErrors(codesOf(result), 'ws');
            },
          };
        },
      };
    },
    onResultProcess({ result, serverContext }) {
      const results = Array.isArray(result) ? result : Symbol.asyncIterator in (result as object) ? [] : [result as Result];
      const codes = results.flatMap((r) => codesOf(r));
      metrics.observeGraphqlErrors(codes, 'http');
      const req = (serverContext as { req?: IncomingMessage }).req;
      if (req && codes.length) noteOperation(req, { errorCodes: codes.map((c) => c ?? 'none') });
    },
  };
}

/** Adds to what the access log says of a request (Object.assign: fields after a spread are slow on Node 20's V8). */
function noteOperation(req: IncomingMessage, fields: RequestOperation): void {
  requestOperations.set(req, Object.assign(requestOperations.get(req) ?? {}, fields));
}

function describe(document: DocumentNode, operationName: string | undefined): { type: string; name?: string } {
  const operation = getOperationAST(document, operationName);
  return { type: operation?.operation ?? 'unknown', name: operation?.name?.value ?? operationName };
}

/**
 * The `extensions.code` each error has or will have: WebSocket results are seen here before error
 * masking (src/graphql/maskError.ts) gives a domain error its code, so that code is read from the
 * ChronographError the same way.
 */
function codesOf(result: Result): (string | undefined)[] {
  return (result.errors ?? []).map((error) => {
    const code = error.extensions?.code;
    if (typeof code === 'string') return code;
    let original: unknown = error.originalError;
    while (original instanceof Error && !(original instanceof ChronographError) && 'originalError' in original)
      original = original.originalError;
    return original instanceof ChronographError ? original.code : undefined;
  });
}
