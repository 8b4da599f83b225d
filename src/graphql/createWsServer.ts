import type { IncomingMessage, Server } from 'node:http';
import type { ExecutionArgs } from 'graphql';
import type { SubscribePayload } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { createGraphQLError, type YogaServerInstance } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { ChronographError } from '../errors.js';
import type { Context } from './builder.js';
import { tenantOf } from './createYoga.js';

type Enveloped = ReturnType<YogaServerInstance<Record<string, unknown>, Context>['getEnveloped']>;
type EnvelopedRoot = Pick<Enveloped, 'execute' | 'subscribe'>;

export interface WsServer {
  /** Closes every socket (1001 Going away; their subscriptions end) and stops accepting new ones. */
  close(): Promise<void>;
}

/**
 * GraphQL over WebSocket (the graphql-transport-ws protocol of graphql-ws) on the same HTTP server
 * and path as yoga's HTTP and SSE. Each operation goes through `yoga.getEnveloped`, so the schema,
 * plugins, error masking and context are those of HTTP requests.
 *
 * Tenant: connectionParams `{ tenantId }` (or `{ headers: { "x-tenant-id" } }`), the
 * operation's `extensions.headers` (what GraphiQL sends from its headers editor), or the upgrade
 * request's `x-tenant-id` header; default "default", validated like the HTTP header.
 */
export function createWsServer(server: Server, yoga: YogaServerInstance<Record<string, unknown>, Context>): WsServer {
  const wss = new WebSocketServer({ server, path: yoga.graphqlEndpoint, maxPayload: 1024 * 1024 });
  const disposable = useServer<Record<string, unknown> | undefined, { request: IncomingMessage }>(
    {
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args as ExecutionArgs),
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args as ExecutionArgs),
      onSubscribe: async (ctx, _id, payload) => {
        let tenantId: string;
        try {
          tenantId = tenantOf(tenantHeaders(ctx.connectionParams, payload, ctx.extra.request));
        } catch (error) {
          if (!(error instanceof ChronographError)) throw error;
          return [createGraphQLError(error.message, { extensions: { ...error.details, code: error.code } })];
        }
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          params: payload,
          tenantId,
        });
        let document;
        try {
          document = parse(payload.query);
        } catch (error) {
          return [error as ReturnType<typeof createGraphQLError>];
        }
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
        return {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe } satisfies EnvelopedRoot,
        };
      },
    },
    wss,
  );
  return {
    async close() {
      await disposable.dispose();
    },
  };
}

function tenantHeaders(connectionParams: Record<string, unknown> | undefined, payload: SubscribePayload, request: IncomingMessage): Headers {
  const fromHeaders = (value: unknown) =>
    value && typeof value === 'object' ? (value as Record<string, unknown>)['x-tenant-id'] : undefined;
  const candidates = [
    fromHeaders(payload.extensions?.headers),
    connectionParams?.tenantId,
    fromHeaders(connectionParams?.headers),
    request.headers['x-tenant-id'],
  ];
  const tenantId = candidates.find((value) => value !== undefined && value !== null && value !== '');
  const headers = new Headers();
  if (tenantId !== undefined) headers.set('x-tenant-id', typeof tenantId === 'string' ? tenantId : JSON.stringify(tenantId));
  return headers;
}
