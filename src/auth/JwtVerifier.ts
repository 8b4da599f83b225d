import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, type JWTPayload, type JWTVerifyOptions, jwtVerify } from 'jose';
import type { Config } from '../config.js';
import { unauthenticated } from '../errors.js';
import { Role } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { isStorableText } from '../tasks/validate.js';
import { DEFAULT_TENANT, type Identity, PLATFORM_TENANT } from './Identity.js';

const TENANT = /^[A-Za-z0-9_.-]{1,64}$/;
const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
/** Clocks of the issuer and of this machine may differ a little; exp and nbf allow this much. */
const CLOCK_TOLERANCE_SECONDS = 5;

/**
 * JWTs from a platform's own login, verified with jose: an HS256 secret, a PEM public key (RSA, EC or
 * Ed25519) or a JSON Web Key Set fetched (and cached) from a URL. The token's `alg` only selects which of
 * the configured keys to try, and each key accepts its own algorithms only: `alg: none`, an HS256 token
 * signed with the public key as secret, and other algorithm confusions are refused. `exp` and `sub` are
 * required; `nbf`, and `iss`/`aud` when configured, are checked. The tenant and role come from claims
 * named by AUTH_JWT_TENANT_CLAIM and AUTH_JWT_ROLE_CLAIM (literal names, so namespaced claims such as
 * `https://example.com/tenant` work).
 */
export class JwtVerifier {
  private readonly secret?: Uint8Array;
  private readonly publicKey?: { key: KeyObject; algorithms: string[] };
  private readonly jwks?: ReturnType<typeof createRemoteJWKSet>;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {
    if (config.AUTH_JWT_SECRET) this.secret = new TextEncoder().encode(config.AUTH_JWT_SECRET);
    if (config.AUTH_JWT_PUBLIC_KEY) {
      const key = createPublicKey(config.AUTH_JWT_PUBLIC_KEY);
      this.publicKey = { key, algorithms: algorithmsFor(key) };
    }
    if (config.AUTH_JWKS_URL) this.jwks = createRemoteJWKSet(new URL(config.AUTH_JWKS_URL));
  }

  get configured(): boolean {
    return Boolean(this.secret || this.publicKey || this.jwks);
  }

  static looksLikeJwt(token: string): boolean {
    return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
  }

  async verify(token: string): Promise<Identity> {
    let payload: JWTPayload;
    try {
      const { alg } = decodeProtectedHeader(token);
      const options: JWTVerifyOptions = {
        issuer: this.config.AUTH_JWT_ISSUER,
        audience: this.config.AUTH_JWT_AUDIENCE,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp', 'sub'],
      };
      if (alg === 'HS256' && this.secret) {
        payload = (await jwtVerify(token, this.secret, { ...options, algorithms: ['HS256'] })).payload;
      } else if (alg && this.publicKey?.algorithms.includes(alg)) {
        payload = (await jwtVerify(token, this.publicKey.key, { ...options, algorithms: this.publicKey.algorithms })).payload;
      } else if (alg && this.jwks && JWKS_ALGORITHMS.includes(alg)) {
        payload = (await jwtVerify(token, this.jwks, { ...options, algorithms: JWKS_ALGORITHMS })).payload;
      } else {
        throw new Error(`no configured key accepts alg ${String(alg)}`);
      }
    } catch (error) {
      // The reason (expired, bad signature, wrong audience...) is for the operator's debug log only.
      this.logger.debug({ reason: (error as { code?: string }).code ?? (error as Error).message }, 'JWT refused');
      throw unauthenticated();
    }
    return this.identityOf(payload);
  }

  private identityOf(payload: JWTPayload): Identity {
    const roleClaim = payload[this.config.AUTH_JWT_ROLE_CLAIM];
    const role = typeof roleClaim === 'string' ? (roleClaim.toUpperCase() as Role) : undefined;
    const tenantClaim = payload[this.config.AUTH_JWT_TENANT_CLAIM];
    const tenantId = tenantClaim ?? (role === Role.ADMIN ? DEFAULT_TENANT : undefined);
    const problem =
      !role || !Object.values(Role).includes(role)
        ? `claim ${this.config.AUTH_JWT_ROLE_CLAIM} must be ADMIN, EDITOR or VIEWER`
        : typeof tenantId !== 'string' || !TENANT.test(tenantId)
          ? `claim ${this.config.AUTH_JWT_TENANT_CLAIM} must name a tenant`
          : tenantId === PLATFORM_TENANT && role !== Role.ADMIN
            ? // As API keys (ApiKeySvc): the platform tenant's templates are shared with every bound tenant.
              `only ADMIN may act as the ${PLATFORM_TENANT} tenant`
            : typeof payload.sub !== 'string' || payload.sub === '' || payload.sub.length > 200 || !isStorableText(payload.sub)
              ? // It becomes every written row's actor (jwt:<sub>): a NUL or a lone surrogate could not be stored.
                'claim sub must be a non-empty string of at most 200 characters, valid Unicode without NUL'
              : null;
    if (problem) {
      this.logger.debug({ reason: problem }, 'JWT refused');
      throw unauthenticated();
    }
    return {
      credential: 'JWT',
      role: role!,
      tenantId: tenantId as string,
      actor: `jwt:${payload.sub}`,
      expiresAt: new Date(payload.exp! * 1000),
    };
  }
}

/** The JWS algorithms a public key can verify; a key never verifies an algorithm of another family. */
function algorithmsFor(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      return curve === 'prime256v1' ? ['ES256'] : curve === 'secp384r1' ? ['ES384'] : curve === 'secp521r1' ? ['ES512'] : [];
    }
    case 'ed25519':
      return ['EdDSA', 'Ed25519'];
    default:
      return [];
  }
}
