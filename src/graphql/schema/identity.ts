import type { CreatedApiKey } from '../../auth/ApiKeySvc.js';
import type { Identity } from '../../auth/Identity.js';
import { Role } from '../../generated/prisma/client.js';
import { builder } from '../builder.js';

export const RoleEnum = builder.enumType(Role, {
  name: 'Role',
  description:
    "ADMIN: every tenant (keys, quotas, bindings; may pick a tenant with x-tenant-id). EDITOR: its tenant's tasks, templates, models and records. VIEWER: read and subscribe in its tenant.",
});

const CredentialKindEnum = builder.enumType('CredentialKind', {
  values: ['API_KEY', 'JWT', 'ADMIN_API_KEY', 'ANONYMOUS'] as const,
  description: 'ANONYMOUS: no credential is configured (development on a loopback address, or AUTH_DISABLED=true).',
});

const PrincipalRef = builder.objectRef<Identity & { actingTenantId: string }>('Principal').implement({
  description: 'Who this request runs as.',
  fields: (t) => ({
    actor: t.exposeString('actor', { description: 'As written to TaskEvent.actor.' }),
    role: t.field({ type: RoleEnum, resolve: (p) => p.role }),
    credential: t.field({ type: CredentialKindEnum, resolve: (p) => p.credential }),
    tenantId: t.string({ description: 'The tenant this request acts on.', resolve: (p) => p.actingTenantId }),
    credentialTenantId: t.string({ description: 'The tenant the credential belongs to.', resolve: (p) => p.tenantId }),
    expiresAt: t.field({ type: 'DateTime', nullable: true, resolve: (p) => p.expiresAt ?? null }),
  }),
});

builder.prismaObject('ApiKey', {
  description: 'An API key. Its secret is shown once, by createApiKey; only a hash is stored.',
  authScopes: { admin: true },
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    tenantId: t.exposeString('tenantId'),
    role: t.expose('role', { type: RoleEnum }),
    createdBy: t.exposeString('createdBy', { nullable: true, description: 'The actor that created it.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true }),
    lastUsedAt: t.expose('lastUsedAt', { type: 'DateTime', nullable: true, description: 'Updated at most once a minute.' }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime', nullable: true }),
  }),
});

const CreatedApiKeyRef = builder.objectRef<CreatedApiKey>('CreatedApiKey').implement({
  authScopes: { admin: true },
  fields: (t) => ({
    apiKey: t.prismaField({ type: 'ApiKey', resolve: (_query, created) => created.apiKey }),
    secret: t.exposeString('secret', { description: 'Send as Authorization: Bearer <secret>. Shown only now: it is not stored.' }),
  }),
});

const ApiKeyInput = builder.inputType('ApiKeyInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: 'What it is for, e.g. "billing service".' }),
    tenantId: t.string({ required: true, description: 'The tenant it acts on (ADMIN keys: the default tenant of their requests).' }),
    role: t.field({ type: RoleEnum, required: true }),
    expiresAt: t.field({ type: 'DateTime', description: 'When it stops working; omit for no expiry.' }),
  }),
});

builder.queryFields((t) => ({
  me: t.field({
    type: PrincipalRef,
    authScopes: { viewer: true },
    description: 'Who this request runs as, and on which tenant.',
    resolve: (_root, _args, ctx) => ({ ...ctx.identity, actingTenantId: ctx.tenantId }),
  }),
  apiKeys: t.prismaField({
    type: ['ApiKey'],
    authScopes: { admin: true },
    description: 'API keys (revoked ones included), oldest first; of one tenant when tenantId is given.',
    args: { tenantId: t.arg.string() },
    resolve: (_query, _root, args, ctx) => ctx.apiKeys.list(args.tenantId),
  }),
}));

builder.mutationFields((t) => ({
  createApiKey: t.field({
    type: CreatedApiKeyRef,
    authScopes: { admin: true },
    description: 'Creates an API key; the answer holds its secret, which cannot be read again.',
    args: { input: t.arg({ type: ApiKeyInput, required: true }) },
    resolve: (_root, args, ctx) => ctx.apiKeys.create(args.input, ctx.identity.actor),
  }),
  revokeApiKey: t.prismaField({
    type: 'ApiKey',
    authScopes: { admin: true },
    description: 'Revokes a key at once, on every instance; subscriptions open with it end (UNAUTHENTICATED).',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_query, _root, args, ctx) => ctx.apiKeys.revoke(String(args.id)),
  }),
}));
