import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { type RequestScope, scopedDeps } from '../db/requestScope.js';
import { badInput, notFound, unauthenticated } from '../errors.js';
import type { ApiKey, PrismaClient } from '../generated/prisma/client.js';
import { Role } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { assertId, assertTenantId, isStorableDate, STORABLE_DATES } from '../tasks/validate.js';
import type { TenantSvc } from '../tenants/TenantSvc.js';
import { type Identity, PLATFORM_TENANT } from './Identity.js';

/** NOTIFY channel whose payload is the id of a revoked API key: every instance ends its subscriptions. */
export const CREDENTIAL_CHANNEL = 'chronograph_credential';

export interface ApiKeyInput {
  name: string;
  tenantId: string;
  role: Role;
  expiresAt?: Date | null;
}

export interface CreatedApiKey {
  apiKey: ApiKey;
  /** The key itself. It is not stored anywhere, so this is the only time anyone sees it. */
  secret: string;
}

export interface ApiKeySvcDeps {
  prisma: PrismaClient;
  tenants: TenantSvc;
  logger: Logger;
  now?: () => Date;
}

/** `cg_<key id, 32 hex digits>_<256 random bits, base64url>`: the id finds the row, the rest proves it. */
const KEY_FORMAT = /^cg_([0-9a-f]{32})_[A-Za-z0-9_-]{43}$/;
/** Compared against when the id names no key, so a miss takes as long as a mismatch. */
const NO_KEY = createHash('sha256').update('no such key').digest();
const TOUCH_EVERY_MS = 60_000;

/**
 * API keys: random bearer secrets bound to a tenant and a role. Only a SHA-256 hash is stored — the
 * key carries 256 random bits, so unlike a password it cannot be guessed from its hash — and keys are
 * compared in constant time. Revoking a key ends its open subscriptions on every instance (NOTIFY).
 */
export class ApiKeySvc {
  private readonly touched = new Map<string, number>();

  constructor(private readonly deps: ApiKeySvcDeps) {}

  /**
   * This service for work done in `scope` (a request's operation): its statements check the scope first.
   * For the API's key management; authentication (and its last-used bookkeeping) stays on the instance's own.
   */
  withScope(scope: RequestScope): ApiKeySvc {
    return new ApiKeySvc(scopedDeps(this.deps, scope));
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  static looksLikeKey(token: string): boolean {
    return token.startsWith('cg_');
  }

  async create(input: ApiKeyInput, createdBy: string | null): Promise<CreatedApiKey> {
    const name = typeof input.name === 'string' ? input.name.trim() : '';
    if (!name || name.length > 200) throw badInput('name must be 1-200 characters', 'name');
    const tenantId = assertTenantId(input.tenantId, 'tenantId');
    if (!Object.values(Role).includes(input.role)) throw badInput(`role must be one of ${Object.values(Role).join(', ')}`, 'role');
    if (tenantId === PLATFORM_TENANT && input.role !== Role.ADMIN) {
      throw badInput(
        `Only ADMIN keys may belong to the ${PLATFORM_TENANT} tenant: its templates are shared with every bound tenant`,
        'tenantId',
      );
    }
    if (input.expiresAt != null && !isStorableDate(input.expiresAt)) throw badInput(`expiresAt must be ${STORABLE_DATES}`, 'expiresAt');
    if (input.expiresAt != null && input.expiresAt.getTime() <= this.now().getTime())
      throw badInput('expiresAt must be in the future', 'expiresAt');
    const id = uuidv7();
    const secret = `cg_${id.replace(/-/g, '')}_${randomBytes(32).toString('base64url')}`;
    const apiKey = await this.deps.prisma.$transaction(async (tx) => {
      await this.deps.tenants.ensure(tx, tenantId);
      return tx.apiKey.create({
        data: {
          id,
          name,
          tenantId,
          role: input.role,
          secretHash: hash(secret).toString('hex'),
          expiresAt: input.expiresAt ?? null,
          createdBy,
        },
      });
    });
    return { apiKey, secret };
  }

  list(tenantId?: string | null): Promise<ApiKey[]> {
    return this.deps.prisma.apiKey.findMany({
      where: tenantId != null ? { tenantId: assertTenantId(tenantId, 'tenantId') } : {},
      orderBy: { createdAt: 'asc' },
    });
  }

  /** Revokes a key (it keeps its row, for the audit trail); its open subscriptions end everywhere. */
  async revoke(id: string): Promise<ApiKey> {
    const keyId = assertId(id, 'id');
    return this.deps.prisma.$transaction(async (tx) => {
      const current = await tx.apiKey.findUnique({ where: { id: keyId } });
      if (!current) throw notFound('API key', id);
      if (current.revokedAt) return current;
      const revoked = await tx.apiKey.update({ where: { id: keyId }, data: { revokedAt: this.now() } });
      await tx.$executeRaw`SELECT pg_notify(${CREDENTIAL_CHANNEL}, ${keyId})`;
      return revoked;
    });
  }

  /** The identity of a key in KEY_FORMAT; UNAUTHENTICATED when it is unknown, wrong, revoked or expired. */
  async verify(token: string): Promise<Identity> {
    const match = KEY_FORMAT.exec(token);
    if (!match) throw unauthenticated();
    const hex = match[1]!;
    const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    const row = await this.deps.prisma.apiKey.findUnique({ where: { id } });
    const stored = row ? Buffer.from(row.secretHash, 'hex') : NO_KEY;
    const matches = timingSafeEqual(hash(token), stored.length === 32 ? stored : NO_KEY) && row !== null;
    const now = this.now();
    if (!matches || row.revokedAt || (row.expiresAt && row.expiresAt <= now)) {
      this.deps.logger.debug({ keyId: id, reason: !matches ? 'no such key' : row.revokedAt ? 'revoked' : 'expired' }, 'API key refused');
      throw unauthenticated();
    }
    this.touch(row.id, now);
    return {
      credential: 'API_KEY',
      role: row.role,
      tenantId: row.tenantId,
      actor: `key:${row.id}`,
      keyId: row.id,
      expiresAt: row.expiresAt,
    };
  }

  /** lastUsedAt, written at most once a minute per key and instance, off the request's path. */
  private touch(id: string, now: Date): void {
    const last = this.touched.get(id);
    if (last !== undefined && now.getTime() - last < TOUCH_EVERY_MS) return;
    this.touched.set(id, now.getTime());
    if (this.touched.size > 10_000) this.touched.clear();
    this.deps.prisma.apiKey.update({ where: { id }, data: { lastUsedAt: now } }).catch((error: unknown) => {
      this.deps.logger.debug({ err: error, keyId: id }, 'could not record when an API key was last used');
    });
  }
}

function hash(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}
