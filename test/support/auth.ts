import { type JWTPayload, SignJWT } from 'jose';
import type { TestApp } from './testApp.js';
import { ok } from './testApp.js';

/** Credentials the auth tests configure: a bootstrap key and an HS256 secret with issuer and audience. */
export const ADMIN_KEY = 'admin-bootstrap-key-0123456789abcdef';
export const JWT_SECRET = 'jwt-secret-for-tests-0123456789abcdef0123';
export const ISSUER = 'https://login.example.test';
export const AUDIENCE = 'chronograph';
export const AUTH_ENV = { ADMIN_API_KEY: ADMIN_KEY, AUTH_JWT_SECRET: JWT_SECRET, AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUDIENCE };

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
export const ADMIN = bearer(ADMIN_KEY);

/** An HS256 token as a platform's login would issue it; `exp` one hour ahead unless given. */
export async function hs256(
  claims: JWTPayload,
  options: { secret?: string; issuer?: string | null; audience?: string | null; expiresIn?: string | number } = {},
): Promise<string> {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (options.issuer !== null) jwt = jwt.setIssuer(options.issuer ?? ISSUER);
  if (options.audience !== null) jwt = jwt.setAudience(options.audience ?? AUDIENCE);
  if (claims.exp === undefined) jwt = jwt.setExpirationTime(options.expiresIn ?? '1h');
  return jwt.sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

/** An unsigned token (`alg: none`), which must never be accepted. */
export function unsigned(claims: JWTPayload): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}.`;
}

/** Creates an API key through the API (as the bootstrap ADMIN) and returns its id and secret. */
export async function createKey(t: TestApp, tenantId: string, role: 'ADMIN' | 'EDITOR' | 'VIEWER', extra: { expiresAt?: string } = {}) {
  const created = ok(
    await t.gql(
      `mutation($input: ApiKeyInput!) { createApiKey(input: $input) { apiKey { id tenantId role } secret } }`,
      { input: { name: `${role.toLowerCase()} of ${tenantId}`, tenantId, role, ...extra } },
      ADMIN,
    ),
  ).createApiKey;
  return { id: created.apiKey.id as string, secret: created.secret as string, headers: bearer(created.secret) };
}

/** The raw HTTP answer (status, headers, body) of a GraphQL POST, for status-code checks. */
export async function post(
  t: TestApp,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
  extensions?: object,
) {
  const response = await t.app.yoga.fetch('http://chronograph/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables, extensions }),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as { data?: any; errors?: { message: string; extensions?: Record<string, any> }[] },
  };
}
