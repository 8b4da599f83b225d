import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { createGraphQLError, createYoga, type Plugin, type YogaLogger, type YogaServerInstance } from 'graphql-yoga';
import { ChronographError } from '../errors.js';
import type { Chronograph } from '../app.js';
import type { Logger } from '../logger.js';
import type { Context } from './builder.js';
import { createMaskError } from './maskError.js';
import { useQueryLimits } from './queryLimits.js';
import { schema } from './schema/index.js';
import { useRequestBudget } from './useRequestBudget.js';
import { useStorableText } from './useStorableText.js';

const TENANT = /^[A-Za-z0-9_.-]{1,64}$/;

/** Reads the caller's tenant from the `x-tenant-id` header; absent means "default". */
export function tenantOf(headers: Headers): string {
  const tenantId = headers.get('x-tenant-id')?.trim() || 'default';
  if (!TENANT.test(tenantId)) {
    throw new ChronographError('BAD_USER_INPUT', 'x-tenant-id must be 1-64 letters, digits, dots, dashes or underscores', {
      field: 'x-tenant-id',
    });
  }
  return tenantId;
}

export function contextFor(app: Chronograph, tenantId: string): Context {
  return {
    tenantId,
    prisma: app.db.prisma,
    taskSvc: app.taskSvc.forTenant(tenantId),
    templateSvc: app.templateSvc.forTenant(tenantId),
    dateFieldSvc: app.dateFieldSvc.forTenant(tenantId),
    modelSvc: app.modelSvc.forTenant(tenantId),
    handlers: app.handlers,
    taskTypes: app.taskTypes,
    taskEvents: app.taskEvents,
  };
}

export function createChronographYoga(app: Chronograph): YogaServerInstance<Record<string, unknown>, Context> {
  const { config } = app;
  const logger = app.logger.child({ component: 'graphql' });
  return createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    // Subscriptions in GraphiQL go over graphql-ws on this same path (createWsServer).
    graphiql: { title: 'Chronograph', defaultQuery: DEFAULT_QUERY, subscriptionsProtocol: 'WS' },
    maskedErrors: { maskError: createMaskError(logger) },
    logging: yogaLogger(logger),
    // Browsers on other origins may call the API only when CORS_ORIGINS lists them; same-origin
    // pages (GraphiQL) need no CORS headers at all.
    cors: (request) => {
      const origin = request.headers.get('origin');
      return origin && config.CORS_ORIGINS.includes(origin) ? { origin: [origin], credentials: true, methods: ['GET', 'POST'], maxAge: 600 } : false;
    },
    maxRequestBodySize: config.MAX_REQUEST_BYTES,
    // graphql-ws operations arrive without a fetch Request; createWsServer passes their tenant.
    context: ({ request, tenantId }) => contextFor(app, typeof tenantId === 'string' ? tenantId : tenantOf(request.headers)),
    plugins: [
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
      useRequestBudget(config.REQUEST_TIMEOUT_MS),
      codeVariableErrors(),
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
 * graphql-js reports variables that do not fit their declared types ("Variable "$input" got invalid
 * value ... at "input.argDict"; ...") without an error code or field; clients should see
 * BAD_USER_INPUT with `field` (the variable path) like any other bad input.
 */
function codeVariableErrors(): Plugin {
  return {
    onExecute: () => ({
      onExecuteDone: ({ result, setResult }) => {
        if (Symbol.asyncIterator in result || !result.errors?.length) return;
        setResult({
          ...result,
          errors: result.errors.map((error) => {
            const variable = /^Variable "\$([_A-Za-z][_0-9A-Za-z]*)"/.exec(error.message)?.[1];
            if (error.extensions?.field || !variable) return error;
            const field = new RegExp(` at "(${variable}(?:[.[][^"]*)?)";`).exec(error.message)?.[1] ?? variable;
            return createGraphQLError(error.message, { nodes: error.nodes, extensions: { ...error.extensions, code: error.extensions?.code ?? 'BAD_USER_INPUT', field } });
          }),
        });
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
