import { createGraphQLError, createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { ChronographError } from '../errors.js';
import type { Chronograph } from '../app.js';
import type { Context } from './builder.js';
import { renderGraphiQLPage } from './graphiqlPage.js';
import { createMaskError } from './maskError.js';
import { useRequestMetrics } from '../ops/useRequestMetrics.js';
import { schema } from './schema/index.js';

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
    maskedErrors: { maskError: createMaskError(app.logger) },
    logging: app.logger.child({ component: 'yoga' }),
    // graphql-ws operations arrive without a fetch Request; createWsServer passes their tenant.
    context: ({ request, tenantId }) => contextFor(app, typeof tenantId === 'string' ? tenantId : tenantOf(request.headers)),
    plugins: [codeVariableErrors(), useRequestMetrics(app.metrics)],
  });
}

/**
 * graphql-js reports variables that do not fit their declared types ("Variable "$input" got invalid
 * value ...") without an error code; clients should see BAD_USER_INPUT like any other bad input.
 */
function codeVariableErrors(): Plugin {
  return {
    onExecute: () => ({
      onExecuteDone: ({ result, setResult }) => {
        if (Symbol.asyncIterator in result || !result.errors?.length) return;
        setResult({
          ...result,
          errors: result.errors.map((error) =>
            !error.extensions?.code && error.message.startsWith('Variable "$')
              ? createGraphQLError(error.message, { nodes: error.nodes, extensions: { ...error.extensions, code: 'BAD_USER_INPUT' } })
              : error,
          ),
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
