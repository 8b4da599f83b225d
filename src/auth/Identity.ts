import { forbidden } from '../errors.js';
import { Role } from '../generated/prisma/client.js';
import { assertTenantId } from '../tasks/validate.js';

export { Role };

/** How a request proved who it is. */
export type CredentialKind = 'API_KEY' | 'JWT' | 'ADMIN_API_KEY' | 'ANONYMOUS';

/**
 * Who makes a request or holds a WebSocket connection: decided once, from its credential, and never
 * changed by anything the request or a later operation sends.
 */
export interface Identity {
  credential: CredentialKind;
  role: Role;
  /** The tenant the credential belongs to (for ADMIN: the one used when x-tenant-id is absent). */
  tenantId: string;
  /** Written to TaskEvent.actor: `key:<id>`, `jwt:<sub>`, `key:ADMIN_API_KEY` or `anonymous`. */
  actor: string;
  /** API keys: the key's id, which revocation names. */
  keyId?: string;
  /** When the credential stops being valid (key expiry, token `exp`); open subscriptions end then. */
  expiresAt?: Date | null;
}

export const DEFAULT_TENANT = 'default';
/** The tenant whose templates ADMINs bind to other tenants (shared definitions). */
export const PLATFORM_TENANT = 'platform';

const RANK: Record<Role, number> = { VIEWER: 1, EDITOR: 2, ADMIN: 3 };

/** Whether `role` includes everything `needed` may do (ADMIN ⊃ EDITOR ⊃ VIEWER). */
export function hasRole(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

/** No credential configured, on a loopback address (development) or with AUTH_DISABLED=true. */
export const ANONYMOUS: Identity = Object.freeze({
  credential: 'ANONYMOUS',
  role: Role.ADMIN,
  tenantId: DEFAULT_TENANT,
  actor: 'anonymous',
});

/**
 * The tenant a request acts on. Only an ADMIN may choose one (`x-tenant-id`, or the tenant in a
 * WebSocket's connectionParams); anyone else acts on their credential's tenant, and naming another is
 * FORBIDDEN rather than silently ignored, so a misconfigured client learns it at once.
 */
export function selectTenant(identity: Identity, requested: unknown, field = 'x-tenant-id'): string {
  if (requested === undefined || requested === null || (typeof requested === 'string' && requested.trim() === '')) return identity.tenantId;
  const tenantId = assertTenantId(typeof requested === 'string' ? requested.trim() : requested, field);
  if (identity.role === Role.ADMIN || tenantId === identity.tenantId) return tenantId;
  throw forbidden(
    `${field} names tenant ${tenantId}, but this ${identity.role} credential belongs to tenant ${identity.tenantId}; only ADMIN credentials may choose a tenant`,
    {
      field,
    },
  );
}
