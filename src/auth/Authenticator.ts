import { createHash, timingSafeEqual } from 'node:crypto';
import { type Config, credentialsConfigured } from '../config.js';
import { unauthenticated } from '../errors.js';
import { Role } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { ApiKeySvc } from './ApiKeySvc.js';
import { ANONYMOUS, DEFAULT_TENANT, type Identity } from './Identity.js';
import { JwtVerifier } from './JwtVerifier.js';

/** RFC 6750's token68; anything longer than a few kilobytes is not a credential of ours. */
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;
const MAX_HEADER = 8192;

/**
 * Turns an `Authorization` header (HTTP) or `connectionParams.authorization` (graphql-ws) into an
 * Identity. With a credential configured (ADMIN_API_KEY, AUTH_JWT_*), a request without one is
 * UNAUTHENTICATED. Without (development on a loopback address, or AUTH_DISABLED=true) it is the
 * anonymous ADMIN of tenant "default" — but a credential that is sent is still checked, so keys can be
 * tried out locally and a wrong one is never silently ignored. API keys in the database do not turn
 * authentication on by themselves: that is decided by the configuration, at start-up.
 */
export class Authenticator {
  readonly required: boolean;
  private readonly jwt: JwtVerifier;
  private readonly adminKey?: Buffer;

  constructor(
    config: Config,
    private readonly apiKeys: ApiKeySvc,
    private readonly logger: Logger,
  ) {
    this.required = credentialsConfigured(config);
    this.jwt = new JwtVerifier(config, logger);
    if (config.ADMIN_API_KEY) this.adminKey = digest(config.ADMIN_API_KEY);
  }

  async authenticate(authorization: unknown): Promise<Identity> {
    if (authorization === undefined || authorization === null || authorization === '') {
      if (this.required) throw unauthenticated();
      return ANONYMOUS;
    }
    const match = typeof authorization === 'string' && authorization.length <= MAX_HEADER ? BEARER.exec(authorization) : null;
    if (!match) {
      this.logger.debug('malformed Authorization value refused');
      throw unauthenticated();
    }
    const token = match[1]!;
    // Constant time, and checked for every token, so timing tells nothing about the bootstrap key.
    if (this.adminKey && timingSafeEqual(digest(token), this.adminKey)) {
      return { credential: 'ADMIN_API_KEY', role: Role.ADMIN, tenantId: DEFAULT_TENANT, actor: 'key:ADMIN_API_KEY' };
    }
    if (ApiKeySvc.looksLikeKey(token)) return this.apiKeys.verify(token);
    if (this.jwt.configured && JwtVerifier.looksLikeJwt(token)) return this.jwt.verify(token);
    this.logger.debug('bearer token is neither a known key nor a verifiable JWT');
    throw unauthenticated();
  }
}

/** Equal-length digests, so timingSafeEqual can compare values of any length. */
function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
