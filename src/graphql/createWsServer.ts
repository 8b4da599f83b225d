import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ExecutionArgs } from 'graphql';
import type { Context as WsContext, SubscribePayload } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { createGraphQLError, type YogaServerInstance } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { ChronographError } from '../errors.js';
import { waitUntil } from '../server.js';
import type { Context } from './builder.js';
import { tenantOf } from './createYoga.js';

type Enveloped = ReturnType<YogaServerInstance<Record<string, unknown>, Context>['getEnveloped']>;
type EnvelopedRoot = Pick<Enveloped, 'execute' | 'subscribe'>;

export interface WsServer {
  /**
   * Shutdown: no new upgrades (503); waits until every operation has sent its last message (ended
   * subscriptions send their SHUTTING_DOWN error and complete), closes every socket with 1001, and
   * terminates those that have not closed by `deadline` (epoch ms): a client that stopped reading
   * cannot hold the process.
   */
  close(deadline: number): Promise<void>;
}

export interface WsServerOptions {
  /** Largest message a client may send. */
  maxPayload: number;
  /** Origins besides the server's own that may open a socket (CORS_ORIGINS). */
  allowedOrigins: readonly string[];
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
export function createWsServer(server: Server, yoga: YogaServerInstance<Record<string, unknown>, Context>, options: WsServerOptions): WsServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayload });
  let accepting = true;
  const connections = new Set<WsContext>();
  // Upgrades are checked here, before the WebSocket handshake: a browser page of another origin
  // cannot open a socket (cross-site WebSocket hijacking), and none opens during shutdown.
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (status: number, reason: string) => {
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (new URL(request.url ?? '/', 'http://localhost').pathname !== yoga.graphqlEndpoint) return refuse(404, 'Not Found');
    if (!accepting) return refuse(503, 'Service Unavailable');
    if (!originAllowed(request, options.allowedOrigins)) return refuse(403, 'Forbidden');
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  });
  useServer<Record<string, unknown> | undefined, { request: IncomingMessage }>(
    {
      onConnect: (ctx) => {
        connections.add(ctx);
      },
      onClose: (ctx) => {
        connections.delete(ctx);
      },
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
    async close(deadline) {
      accepting = false;
      await waitUntil(() => [...connections].every((ctx) => Object.keys(ctx.subscriptions).length === 0), deadline);
      for (const socket of wss.clients) socket.close(1001, 'Going away');
      await waitUntil(() => wss.clients.size === 0, deadline);
      for (const socket of wss.clients) socket.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** Browsers send Origin; one that is neither this server's own nor listed is refused. Other clients send none. */
function originAllowed(request: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  if (allowed.includes(origin)) return true;
  try {
    return new URL(origin).host.toLowerCase() === (request.headers.host ?? '').toLowerCase();
  } catch {
    return false;
  }
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
