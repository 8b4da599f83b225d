import type { IncomingMessage, Server } from 'node:http';
import type { ExecutionArgs } from 'graphql';
import { CloseCode } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { createGraphQLError } from 'graphql-yoga';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Chronograph } from '../app.js';
import type { CredentialLease } from '../auth/CredentialWatch.js';
import { selectTenant, type Identity } from '../auth/Identity.js';
import { ChronographError } from '../errors.js';
import { CONNECTION_AUTH, type ConnectionAuth } from './createYoga.js';

type Enveloped = ReturnType<Chronograph['yoga']['getEnveloped']>;
type EnvelopedRoot = Pick<Enveloped, 'execute' | 'subscribe'>;

export interface WsServer {
  /** Closes every socket (1001 Going away; their subscriptions end) and stops accepting new ones. */
  close(): Promise<void>;
}

type Extra = {
  socket: WebSocket;
  request: IncomingMessage;
  auth?: ConnectionAuth;
  lease?: CredentialLease;
};

/**
 * GraphQL over WebSocket (the graphql-transport-ws protocol of graphql-ws) on the same HTTP server
 * and path as yoga's HTTP and SSE. Each operation goes through `yoga.getEnveloped`, so the schema,
 * plugins, error masking and context are those of HTTP requests.
 *
 * Identity: checked once, at connection_init, from `connectionParams.authorization` ("Bearer …"); a
 * connection without a valid credential (when one is required) is closed with 4403 Forbidden. The
 * tenant is chosen then too — `connectionParams.tenantId` or `connectionParams.headers["x-tenant-id"]`
 * (or the upgrade request's `x-tenant-id` header), which only an ADMIN may set to another tenant — and a
 * refused choice fails every operation with its code. Nothing an operation sends later (its
 * `extensions`, its payload) changes the identity or the tenant of the connection. When the credential
 * is revoked or expires, the socket is closed with 4403.
 */
export function createWsServer(server: Server, app: Chronograph): WsServer {
  const { yoga } = app;
  const wss = new WebSocketServer({ server, path: yoga.graphqlEndpoint, maxPayload: 1024 * 1024 });
  const disposable = useServer<Record<string, unknown> | undefined, Extra>(
    {
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args as ExecutionArgs),
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args as ExecutionArgs),
      onConnect: async (ctx) => {
        const params = ctx.connectionParams ?? {};
        let identity: Identity;
        try {
          identity = await app.authenticator.authenticate(params.authorization ?? headerOf(params.headers, 'authorization'));
        } catch (error) {
          if (error instanceof ChronographError && error.code === 'UNAUTHENTICATED') return false; // 4403 Forbidden
          throw error;
        }
        const requested = params.tenantId ?? headerOf(params.headers, 'x-tenant-id') ?? ctx.extra.request.headers['x-tenant-id'];
        let tenant: ConnectionAuth['tenant'];
        try {
          tenant = { tenantId: selectTenant(identity, requested) };
        } catch (error) {
          if (!(error instanceof ChronographError)) throw error;
          tenant = { error };
        }
        ctx.extra.auth = { identity, tenant };
        const lease = app.credentials.watch(identity);
        ctx.extra.lease = lease;
        lease.signal.addEventListener('abort', () => ctx.extra.socket.close(CloseCode.Forbidden, 'Forbidden: credential revoked or expired'), { once: true });
        return true;
      },
      onClose: (ctx) => ctx.extra.lease?.release(),
      onSubscribe: async (ctx, _id, payload) => {
        const auth = ctx.extra.auth;
        if (!auth || ctx.extra.lease?.signal.aborted) {
          return [createGraphQLError('The credential of this connection is no longer valid', { extensions: { code: 'UNAUTHENTICATED' } })];
        }
        if ('error' in auth.tenant) {
          const { error } = auth.tenant;
          return [createGraphQLError(error.message, { extensions: { ...error.details, code: error.code } })];
        }
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          params: payload,
          [CONNECTION_AUTH]: auth,
        });
        let document;
        try {
          document = parse(payload.query);
        } catch (error) {
          return [error as ReturnType<typeof createGraphQLError>];
        }
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
        const contextValue = await contextFactory();
        return {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue,
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

/** A header from `connectionParams.headers` (what some clients send), looked up case-insensitively. */
function headerOf(headers: unknown, name: string): unknown {
  if (!headers || typeof headers !== 'object') return undefined;
  const entry = Object.entries(headers).find(([key]) => key.toLowerCase() === name);
  return entry?.[1];
}
