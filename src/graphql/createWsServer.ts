import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type ExecutionArgs, type GraphQLError, getOperationAST, getVariableValues } from 'graphql';
import { CloseCode, type SubscribePayload, type Context as WsContext } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { createGraphQLError } from 'graphql-yoga';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Chronograph } from '../app.js';
import type { CredentialLease } from '../auth/CredentialWatch.js';
import { type Identity, selectTenant } from '../auth/Identity.js';
import { ChronographError } from '../errors.js';
import { waitUntil } from '../server.js';
import { CONNECTION_AUTH, type ConnectionAuth } from './createYoga.js';
import { clipError } from './maskError.js';
import { codedVariableError } from './variableErrors.js';

type Enveloped = ReturnType<Chronograph['yoga']['getEnveloped']>;
/** The root value of a WebSocket operation: yoga's functions for it, and its connection's count of operations. */
type EnvelopedRoot = Pick<Enveloped, 'execute' | 'subscribe'> & { operations: Operations };

/**
 * Operations of one connection that are executing or subscribed (MAX_SUBSCRIPTIONS_PER_CONNECTION). Not
 * graphql-ws's own map: a client's `complete` takes an operation out of it at once while a query or
 * mutation goes on executing, so subscribing and completing in a loop ran any number at once.
 */
interface Operations {
  active: number;
}

export interface WsServer {
  /**
   * Shutdown: no new upgrades (503); waits until every operation has sent its last message (ended
   * subscriptions send their SHUTTING_DOWN error and complete), closes every socket with 1001, and
   * terminates those that have not closed by `deadline` (epoch ms): a client that stopped reading
   * cannot hold the process.
   */
  close(deadline: number): Promise<void>;
}

type Extra = {
  socket: WebSocket;
  request: IncomingMessage;
  auth?: ConnectionAuth;
  lease?: CredentialLease;
  operations?: Operations;
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
 * refused choice fails every operation with its code and, as `field`, where the client put the tenant
 * (the connection stays open, so each operation says why it is refused, rather than a bare 4403).
 * Nothing an operation sends later (its `extensions`, its payload) changes the identity or the tenant
 * of the connection. When the credential is revoked or expires, the socket is closed with 4403.
 */
export function createWsServer(server: Server, app: Chronograph): WsServer {
  const { yoga } = app;
  const wss = new WebSocketServer({ noServer: true, maxPayload: app.config.MAX_REQUEST_BYTES });
  let accepting = true;
  const connections = new Set<WsContext<Record<string, unknown> | undefined, Extra>>();
  // Upgrades are checked here, before the WebSocket handshake: a browser page of another origin
  // cannot open a socket (cross-site WebSocket hijacking), and none opens during shutdown.
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (status: number, reason: string) => {
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (new URL(request.url ?? '/', 'http://localhost').pathname !== yoga.graphqlEndpoint) return refuse(404, 'Not Found');
    if (!accepting) return refuse(503, 'Service Unavailable');
    if (!originAllowed(request, app.config.CORS_ORIGINS)) return refuse(403, 'Forbidden');
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  });
  const logger = app.logger.child({ component: 'graphql' });
  /** Refuses an operation with errors the client caused: logged at info and counted, as over HTTP. */
  const refused = (given: GraphQLError[]): GraphQLError[] => {
    const errors = given.map(clipError);
    for (const error of errors) logger.info({ code: error.extensions.code, message: error.message, transport: 'ws' }, 'request refused');
    app.metrics.observeGraphqlErrors(
      errors.map((error) => error.extensions.code as string | undefined),
      'ws',
    );
    return errors;
  };
  useServer<Record<string, unknown> | undefined, Extra>(
    {
      // A failure inside (authenticating at connection_init, a bug) closes the socket with 4500 and, outside
      // production, graphql-ws's own NODE_ENV check put its message in the close reason the client reads.
      // Whatever NODE_ENV says, as maskedErrors in createYoga.ts: "Internal server error".
      isProd: true,
      execute: async (args) => {
        const root = args.rootValue as EnvelopedRoot;
        try {
          return await root.execute(args as ExecutionArgs);
        } finally {
          root.operations.active--;
        }
      },
      subscribe: async (args) => {
        const root = args.rootValue as EnvelopedRoot;
        let result: Awaited<ReturnType<EnvelopedRoot['subscribe']>>;
        try {
          result = await root.subscribe(args as ExecutionArgs);
        } catch (error) {
          root.operations.active--;
          throw error;
        }
        if (!(Symbol.asyncIterator in result)) {
          root.operations.active--;
          return result;
        }
        return untilDone(result, () => root.operations.active--);
      },
      onConnect: async (ctx) => {
        const params = ctx.connectionParams ?? {};
        let identity: Identity;
        try {
          identity = await app.authenticator.authenticate(params.authorization ?? headerOf(params.headers, 'authorization'));
        } catch (error) {
          if (error instanceof ChronographError && error.code === 'UNAUTHENTICATED') return false; // 4403 Forbidden
          throw error;
        }
        const [requested, field] = requestedTenant(params, ctx.extra.request);
        let tenant: ConnectionAuth['tenant'];
        try {
          tenant = { tenantId: selectTenant(identity, requested, field) };
        } catch (error) {
          if (!(error instanceof ChronographError)) throw error;
          tenant = { error };
        }
        ctx.extra.auth = { identity, tenant };
        const lease = app.credentials.watch(identity);
        ctx.extra.lease = lease;
        lease.signal.addEventListener(
          'abort',
          () => ctx.extra.socket.close(CloseCode.Forbidden, 'Forbidden: credential revoked or expired'),
          { once: true },
        );
        connections.add(ctx);
        return true;
      },
      onClose: (ctx) => {
        connections.delete(ctx);
        ctx.extra.lease?.release();
      },
      onSubscribe: async (ctx, id, payload) => {
        // Counted from here, before anything is awaited (subscribes that arrive together are checked one
        // after the other), until the operation ends; given back at once when it is refused.
        const max = app.config.MAX_SUBSCRIPTIONS_PER_CONNECTION;
        const operations = (ctx.extra.operations ??= { active: 0 });
        if (operations.active >= max) {
          return refused([
            createGraphQLError(
              `This connection already has ${max} operations open (MAX_SUBSCRIPTIONS_PER_CONNECTION); complete one before subscribing again`,
              { extensions: { code: 'QUOTA_EXCEEDED', quota: 'MAX_SUBSCRIPTIONS_PER_CONNECTION', limit: max } },
            ),
          ]);
        }
        operations.active++;
        let prepared: Awaited<ReturnType<typeof prepare>> | undefined;
        try {
          prepared = await prepare(ctx, id, payload, operations);
          return prepared;
        } finally {
          if (prepared === undefined || Array.isArray(prepared)) operations.active--;
        }
      },
    },
    wss,
  );
  /** An operation's execution arguments, or the errors it is refused with. */
  async function prepare(
    ctx: WsContext<Record<string, unknown> | undefined, Extra>,
    _id: string,
    payload: SubscribePayload,
    operations: Operations,
  ) {
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
    let document: ReturnType<typeof parse>;
    try {
      document = parse(payload.query);
    } catch (error) {
      return [clipError(error as GraphQLError)];
    }
    const errors = validate(schema, document);
    // Not through maskError, which cuts long messages: cut here (a refused literal is quoted in them).
    if (errors.length > 0) return errors.map(clipError);
    // Variables that do not fit their types are the client's mistake, refused here as over HTTP
    // (BAD_USER_INPUT with the field, logged at info). Left to subscribe, graphql-js would report them
    // wrapping an error of its own, which error masking takes for a bug.
    const operation = getOperationAST(document, payload.operationName);
    if (operation?.variableDefinitions?.length) {
      const coerced = getVariableValues(schema, operation.variableDefinitions, payload.variables ?? {}, { maxErrors: 10 });
      if (coerced.errors) return refused(coerced.errors.map((error) => codedVariableError(error, document, payload.operationName)));
    }
    // graphql-ws executes nothing for a document whose operation it cannot pick: refused here, so
    // that every operation counted below is executed (and uncounted when it ends).
    if (!operation) {
      return refused([
        createGraphQLError('The document has several operations and operationName names none of them', {
          extensions: { code: 'BAD_REQUEST' },
        }),
      ]);
    }
    const contextValue = await contextFactory();
    return {
      schema,
      operationName: payload.operationName,
      document,
      variableValues: payload.variables,
      contextValue,
      rootValue: { execute, subscribe, operations } satisfies EnvelopedRoot,
    };
  }
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

/**
 * The tenant a connection asks for, and where the client put it (what a refusal names as its field):
 * `connectionParams.tenantId`, else `connectionParams.headers["x-tenant-id"]`, else the upgrade request's
 * `x-tenant-id` header.
 */
function requestedTenant(params: Record<string, unknown>, request: IncomingMessage): [unknown, string] {
  if (params.tenantId != null) return [params.tenantId, 'connectionParams.tenantId'];
  const inParams = headerOf(params.headers, 'x-tenant-id');
  if (inParams != null) return [inParams, 'connectionParams.headers["x-tenant-id"]'];
  return [request.headers['x-tenant-id'], 'x-tenant-id'];
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

/**
 * `iterable` as graphql-ws drives a subscription (next, and return when the client completes it or the
 * socket closes), calling `done` once when it ends, however it ends; return is passed on, so the stream's
 * own clean-up runs as before.
 */
function untilDone<T>(iterable: AsyncIterable<T>, done: () => void): AsyncIterableIterator<T> {
  const inner = iterable[Symbol.asyncIterator]();
  let open = true;
  const end = () => {
    if (open) {
      open = false;
      done();
    }
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      try {
        const result = await inner.next();
        if (result.done) end();
        return result;
      } catch (error) {
        end();
        throw error;
      }
    },
    async return(value?: unknown) {
      end();
      return (await inner.return?.(value)) ?? { done: true, value: undefined };
    },
    async throw(error?: unknown) {
      end();
      if (inner.throw) return inner.throw(error);
      throw error;
    },
  };
}

/** A header from `connectionParams.headers` (what some clients send), looked up case-insensitively. */
function headerOf(headers: unknown, name: string): unknown {
  if (!headers || typeof headers !== 'object') return undefined;
  const entry = Object.entries(headers).find(([key]) => key.toLowerCase() === name);
  return entry?.[1];
}
