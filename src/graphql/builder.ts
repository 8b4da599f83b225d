import SchemaBuilder from '@pothos/core';
import ComplexityPlugin from '@pothos/plugin-complexity';
import PrismaPlugin from '@pothos/plugin-prisma';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { Kind, type ValueNode } from 'graphql';
import type { ApiKeySvc } from '../auth/ApiKeySvc.js';
import type { CredentialWatch } from '../auth/CredentialWatch.js';
import { hasRole, type Identity, Role } from '../auth/Identity.js';
import type { DateFieldSvc } from '../dateFields/DateFieldSvc.js';
import type { ModelSvc } from '../dateFields/ModelSvc.js';
import type { RequestScope } from '../db/requestScope.js';
import { forbidden } from '../errors.js';
import type { TaskEventStream } from '../events/TaskEventStream.js';
import type PrismaTypes from '../generated/pothos-types.js';
import { getDatamodel } from '../generated/pothos-types.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { HandlerRegistry } from '../handlers/HandlerRegistry.js';
import type { HistoryPruner } from '../history/HistoryPruner.js';
import type { TaskSvc } from '../tasks/TaskSvc.js';
import type { TaskTypeRegistry } from '../tasks/TaskTypeRegistry.js';
import { isStorableDate, STORABLE_DATES } from '../tasks/validate.js';
import type { TemplateBindingSvc } from '../templates/TemplateBindingSvc.js';
import type { TemplateSvc } from '../templates/TemplateSvc.js';
import type { TenantSvc } from '../tenants/TenantSvc.js';
import PagingPlugin, { type Paging } from './PagingPlugin.js';
import { fieldCost, type QueryBudget } from './queryLimits.js';

/**
 * Per-request (or per-WebSocket-connection) context: who is asking, which tenant they act on, and the
 * services already bound to that tenant and to the caller as the actor of what they change.
 */
export interface Context {
  identity: Identity;
  /** The tenant every query, mutation and subscription of this request acts on. */
  tenantId: string;
  /**
   * The operation's scope: its time budget and client (useRequestBudget sets its signal). The Prisma
   * client and the services below are bound to it: their statements stop once it aborts.
   */
  scope: RequestScope;
  prisma: PrismaClient;
  /** The instance's Prisma client, not bound to this request: for reads shared with other requests (readShared). */
  sharedPrisma: PrismaClient;
  /** This context again with a scope of its own that nothing aborts: for work shared by several requests (useSharedSubscriptions). */
  unscoped(): Context;
  taskSvc: TaskSvc;
  templateSvc: TemplateSvc;
  dateFieldSvc: DateFieldSvc;
  modelSvc: ModelSvc;
  handlers: HandlerRegistry;
  taskTypes: TaskTypeRegistry;
  /** Live status changes of every tenant; subscriptions pass their own tenant's filter. */
  taskEvents: TaskEventStream;
  /** ADMIN services: they span tenants. */
  apiKeys: ApiKeySvc;
  tenants: TenantSvc;
  bindings: TemplateBindingSvc;
  /** Ends subscriptions whose credential is revoked or expires. */
  credentials: CredentialWatch;
  /** pruneHistory (ADMIN). */
  history: HistoryPruner;
  /**
   * What the operation's measured cost left of MAX_QUERY_COST, for work only the data tells the size of:
   * a resolver charges it before doing such work (QueryBudget, src/graphql/queryLimits.ts).
   */
  queryBudget: QueryBudget;
}

/**
 * The roles as scopes: each field of the schema declares the least role that may use it —
 * `authScopes: { viewer: true }` (read, subscribe), `{ editor: true }` (change the tenant's tasks,
 * templates, models, records) or `{ admin: true }` (keys, quotas, bindings, any tenant). Checked before
 * the resolver runs (at subscribe time for subscriptions), so a refused field writes nothing.
 */
export interface AuthScopes {
  viewer: boolean;
  editor: boolean;
  admin: boolean;
}

/** Relay connections (`tasks`, `modelRecords`). */
export const CONNECTION_PAGE = { defaultSize: 20, maxSize: 500 } as const satisfies Paging;
/** Lists inside an object (`Task.runs`, `Task.events`, `TaskRun.logs`) and history lists. */
export const LIST_PAGE = { defaultSize: 20, maxSize: 1000 } as const satisfies Paging;

export const builder = new SchemaBuilder<{
  Context: Context;
  AuthScopes: AuthScopes;
  PrismaTypes: PrismaTypes;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    JSON: { Input: unknown; Output: unknown };
  };
}>({
  plugins: [ScopeAuthPlugin, PrismaPlugin, RelayPlugin, ComplexityPlugin, PagingPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: (ctx) => ({
      viewer: hasRole(ctx.identity.role, Role.VIEWER),
      editor: hasRole(ctx.identity.role, Role.EDITOR),
      admin: hasRole(ctx.identity.role, Role.ADMIN),
    }),
    unauthorizedError: (_parent, ctx, info) =>
      forbidden(`${info.parentType.name}.${info.fieldName} is not allowed for this ${ctx.identity.role} credential`, {
        role: ctx.identity.role,
      }),
  },
  relay: {},
  prisma: {
    client: (ctx) => ctx.prisma,
    dmmf: getDatamodel(),
    exposeDescriptions: false,
    filterConnectionTotalCount: true,
    maxConnectionSize: CONNECTION_PAGE.maxSize,
    defaultConnectionSize: CONNECTION_PAGE.defaultSize,
  },
  // Every field's cost comes from fieldCost; the limits are checked before execution (queryLimits.ts),
  // not by the plugin inside resolvers.
  complexity: { fieldComplexity: fieldCost, disabled: true },
});

builder.scalarType('DateTime', {
  description: 'An instant, as an ISO 8601 string in UTC (2030-01-01T10:00:00.000Z), in the years 1-9999.',
  serialize: (value) => value.toISOString(),
  parseValue: (value) => {
    const date = typeof value === 'string' ? new Date(value) : undefined;
    if (!date || Number.isNaN(date.getTime())) throw new TypeError('DateTime must be an ISO 8601 string');
    // Reported as BAD_USER_INPUT naming the variable's path (codeVariableErrors in createYoga.ts).
    if (!isStorableDate(date)) throw new TypeError(`DateTime must be ${STORABLE_DATES}`);
    return date;
  },
});

builder.scalarType('JSON', {
  description: 'Any JSON value.',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (ast) => parseJsonLiteral(ast),
});

function parseJsonLiteral(ast: ValueNode): unknown {
  switch (ast.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return ast.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(ast.value);
    case Kind.OBJECT:
      return Object.fromEntries(ast.fields.map((f) => [f.name.value, parseJsonLiteral(f.value)]));
    case Kind.LIST:
      return ast.values.map(parseJsonLiteral);
    case Kind.NULL:
      return null;
    default:
      throw new TypeError(`JSON literals cannot contain ${ast.kind}; pass them as variables`);
  }
}
