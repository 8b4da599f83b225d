import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import type { DocumentNode, ExecutionResult } from 'graphql';
import { createGraphQLError, createYoga, type Plugin, type YogaLogger, type YogaServerInstance } from 'graphql-yoga';
import type { Chronograph } from '../app.js';
import { type Identity, selectTenant } from '../auth/Identity.js';
import { RequestScope, scopedPrisma } from '../db/requestScope.js';
import { ChronographError } from '../errors.js';
import type { Logger } from '../logger.js';
import { useRequestMetrics } from '../ops/useRequestMetrics.js';
import type { Context } from './builder.js';
import { renderGraphiQLPage } from './graphiqlPage.js';
import { createMaskError } from './maskError.js';
import { QueryBudget, useQueryLimits } from './queryLimits.js';
import { schema } from './schema/index.js';
import { useLiteralErrors } from './useLiteralErrors.js';
import { useMutationExecutor } from './useMutationExecutor.js';
import { useRequestBudget } from './useRequestBudget.js';
import { useSharedSubscriptions } from './useSharedSubscriptions.js';
import { useStorableText } from './useStorableText.js';
import { codedVariableError } from './variableErrors.js';

/**
 * How createWsServer hands a connection's identity to the context factory. A symbol: nothing a client
 * sends over HTTP can put it into yoga's server context.
 */
export const CONNECTION_AUTH = Symbol('chronograph.connectionAuth');

/** A WebSocket connection's identity and tenant, decided once at connection_init. */
export interface ConnectionAuth {
  identity: Identity;
  /** The tenant, or why the connection's tenant selection is refused (each operation then gets that error). */
  tenant: { tenantId: string } | { error: ChronographError };
}

/**
 * An operation's context: its services bound to the tenant, to the caller as the actor of what they
 * change, and to a scope of the operation's own (RequestScope) that stops their statements once the
 * operation is abandoned. The history pruner is the instance's own (one prune at a time); a prune runs to
 * its end once started.
 */
export function contextFor(app: Chronograph, identity: Identity, tenantId: string): Context {
  const actor = identity.actor;
  const scope = new RequestScope();
  return {
    identity,
    tenantId,
    scope,
    prisma: scopedPrisma(app.db.prisma, scope),
    sharedPrisma: app.db.prisma,
    unscoped: () => contextFor(app, identity, tenantId),
    taskSvc: app.taskSvc.forTenant(tenantId, actor).withScope(scope),
    templateSvc: app.templateSvc.forTenant(tenantId, actor).withScope(scope),
    dateFieldSvc: app.dateFieldSvc.forTenant(tenantId, actor).withScope(scope),
    modelSvc: app.modelSvc.forTenant(tenantId, actor).withScope(scope),
    handlers: app.handlers,
    taskTypes: app.taskTypes,
    taskEvents: app.taskEvents,
    apiKeys: app.apiKeys.withScope(scope),
    tenants: app.tenantSvc.withScope(scope),
    bindings: app.bindings.as(actor).withScope(scope),
    credentials: app.credentials,
    history: app.history,
    // Started by useQueryLimits when an operation of this context runs (one operation per context).
    queryBudget: new QueryBudget(),
  };
}

/**
 * The identity and tenant of an HTTP request, before anything runs: a missing or bad credential is
 * UNAUTHENTICATED (HTTP 401), a tenant the credential may not act on FORBIDDEN (HTTP 403).
 */
async function requestContext(app: Chronograph, request: Request): Promise<Context> {
  try {
    const identity = await app.authenticator.authenticate(request.headers.get('authorization'));
    return contextFor(app, identity, selectTenant(identity, request.headers.get('x-tenant-id')));
  } catch (error) {
    throw withHttpStatus(error);
  }
}

function withHttpStatus(error: unknown): unknown {
  if (!(error instanceof ChronographError)) return error;
  const http =
    error.code === 'UNAUTHENTICATED'
      ? { status: 401, headers: { 'WWW-Authenticate': 'Bearer' } }
      : error.code === 'FORBIDDEN'
        ? { status: 403 }
        : undefined;
  return createGraphQLError(error.message, { extensions: { ...error.details, code: error.code, ...(http && { http }) } });
}

export function createChronographYoga(app: Chronograph): YogaServerInstance<Record<string, unknown>, Context> {
  const { config } = app;
  const logger = app.logger.child({ component: 'graphql' });
  return createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    // Served from the installed package, offline; its subscriptions go over graphql-ws on this same
    // path (createWsServer), carrying the header editor's Authorization in connectionParams.
    graphiql: {
      title: 'Chronograph',
      defaultQuery: DEFAULT_QUERY,
      defaultHeaders: JSON.stringify({ Authorization: 'Bearer <API key>' }, null, 2),
      defaultEditorToolsVisibility: 'headers',
      // Credentials typed into the header editor stay out of the browser's storage.
      shouldPersistHeaders: false,
    },
    renderGraphiQL: renderGraphiQLPage,
    // What went wrong inside stays in the log (maskError writes it there); answers never carry it:
    // isDev would add each masked error's stack (yoga turns it on when NODE_ENV=development), and
    // yoga puts the JSON parser's own error into `extensions.originalError` of a body that is not JSON.
    maskedErrors: {
      isDev: false,
      maskError: ((maskError) => (error: unknown, message: string) => {
        const masked = maskError(error, message, false);
        const extensions = (masked as { extensions?: Record<string, unknown> }).extensions;
        if (extensions && 'originalError' in extensions) delete extensions.originalError;
        return masked;
      })(createMaskError(logger)),
    },
    logging: yogaLogger(logger),
    // Browsers on other origins may call the API only when CORS_ORIGINS lists them; same-origin
    // pages (GraphiQL) need no CORS headers at all.
    cors: (request) => {
      const origin = request.headers.get('origin');
      return origin && config.CORS_ORIGINS.includes(origin)
        ? { origin: [origin], credentials: true, methods: ['GET', 'POST'], maxAge: 600 }
        : false;
    },
    maxRequestBodySize: config.MAX_REQUEST_BYTES,
    // graphql-ws operations arrive without a fetch Request; createWsServer passes their connection's auth.
    context: async (initial) => {
      const connection = (initial as { [CONNECTION_AUTH]?: ConnectionAuth })[CONNECTION_AUTH];
      if (!connection) return requestContext(app, initial.request);
      if ('error' in connection.tenant) throw connection.tenant.error; // createWsServer answers it before getting here
      return contextFor(app, connection.identity, connection.tenant.tenantId);
    },
    plugins: [
      // First: the plugins below wrap the executor it picks.
      useMutationExecutor(),
      // No request a browser sends without a CORS preflight (a form post, text/plain, a plain GET)
      // runs unless it carries this header, which a cross-site form cannot set (CSRF).
      useCSRFPrevention({ requestHeaders: ['x-graphql-yoga-csrf'] }),
      ...useQueryLimits({
        maxDepth: config.MAX_QUERY_DEPTH,
        maxCost: config.MAX_QUERY_COST,
        maxAliases: config.MAX_ALIASES,
        maxTokens: config.MAX_QUERY_TOKENS,
      }),
      useStorableText(),
      useSharedSubscriptions(app.taskEvents),
      useRequestBudget(config.REQUEST_TIMEOUT_MS),
      codeVariableErrors(),
      refuseUnreadableParams(),
      useLiteralErrors(),
      useRequestMetrics(app.metrics),
    ],
  });
}

/**
 * Yoga logs every error that maskError transformed, at error level and with its stack, client
 * mistakes included; maskError already logs each at the level it deserves, so yoga's copy goes to debug.
 */
function yogaLogger(logger: Logger): YogaLogger {
  return {
    debug: (...args: unknown[]) => logger.debug({ args }, 'yoga'),
    info: (...args: unknown[]) => logger.info({ args }, 'yoga'),
    warn: (...args: unknown[]) => logger.warn({ args }, 'yoga'),
    error: (...args: unknown[]) => logger.debug({ err: args[0] }, 'yoga reported an error (logged by maskError)'),
  };
}

/**
 * A GET query string or form post whose `variables` or `extensions` is not JSON made yoga's parser throw
 * JSON.parse's SyntaxError, which error masking takes for a bug (500, logged at error). It is the
 * client's mistake, answered as yoga answers a POST body that is not JSON: 400 BAD_REQUEST.
 */
function refuseUnreadableParams(): Plugin {
  return {
    onRequestParse: ({ requestParser, setRequestParser }) => {
      if (!requestParser) return;
      setRequestParser(async (request) => {
        try {
          return await requestParser(request);
        } catch (error) {
          if (!(error instanceof SyntaxError)) throw error;
          throw createGraphQLError("The request's variables or extensions are not JSON", {
            extensions: { code: 'BAD_REQUEST', http: { status: 400 } },
          });
        }
      });
    },
  };
}

/** Variable errors as clients get them (codedVariableError), for queries, mutations and subscriptions (SSE). */
function codeVariableErrors(): Plugin {
  const coded = (result: ExecutionResult, document: DocumentNode, operationName: string | null | undefined) =>
    result.errors?.length
      ? { ...result, errors: result.errors.map((error) => codedVariableError(error, document, operationName)) }
      : result;
  return {
    onExecute: ({ args }) => ({
      onExecuteDone: ({ result, setResult }) => {
        if (!(Symbol.asyncIterator in result) && result.errors?.length) setResult(coded(result, args.document, args.operationName));
      },
    }),
    onSubscribe: ({ args }) => ({
      onSubscribeResult: ({ result, setResult }) => {
        if (!(Symbol.asyncIterator in result) && result.errors?.length) setResult(coded(result, args.document, args.operationName));
      },
    }),
  };
}

const DEFAULT_QUERY = `# Welcome to Chronograph. Try:
query Overview {
  taskTemplates(query: "") { fullName title taskType repeatType }
  handlers { name description }
  taskStats { total scheduled running succeeded failed }
}
`;
