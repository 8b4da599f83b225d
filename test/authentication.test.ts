import { createServer, type Server } from 'node:http';
import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, ADMIN_KEY, AUDIENCE, AUTH_ENV, bearer, createKey, hs256, ISSUER, JWT_SECRET, post, unsigned } from './support/auth.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const ME = `{ me { actor role credential tenantId credentialTenantId } }`;

/**
 * Credentials over HTTP: the bootstrap ADMIN_API_KEY, API keys (hashed, shown once, revocable,
 * expiring) and JWTs (HS256 secret, RSA public key, JWKS from a URL), with every way of getting it wrong
 * answered the same: UNAUTHENTICATED and HTTP 401, nothing else.
 */
describe.each(backends)('authentication (%s)', (backend) => {
  let t: TestApp;
  let jwks: Server;
  let rsa: { privateKey: CryptoKey; pem: string };
  let ec: { privateKey: CryptoKey; kid: string };

  beforeAll(async () => {
    const rsaPair = await generateKeyPair('RS256', { extractable: true });
    rsa = { privateKey: rsaPair.privateKey, pem: await exportSPKI(rsaPair.publicKey) };
    const ecPair = await generateKeyPair('ES256', { extractable: true });
    ec = { privateKey: ecPair.privateKey, kid: 'ec-1' };
    const jwk = { ...(await exportJWK(ecPair.publicKey)), kid: ec.kid, alg: 'ES256', use: 'sig' };
    jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as { port: number }).port}/.well-known/jwks.json`;
    t = await createTestApp(backend, { env: { ...AUTH_ENV, AUTH_JWT_PUBLIC_KEY: rsa.pem, AUTH_JWKS_URL: jwksUrl } });
  });
  afterAll(async () => {
    await t?.close();
    await new Promise((resolve) => jwks?.close(resolve));
  });

  async function refused(headers: Record<string, string>) {
    const answer = await post(t, ME, undefined, headers);
    expect(answer.status).toBe(401);
    expect(answer.headers.get('www-authenticate')).toBe('Bearer');
    expect(answer.body.data).toBeUndefined();
    expect(answer.body.errors).toEqual([
      { message: 'Missing or invalid credential: send Authorization: Bearer <API key or JWT>', extensions: { code: 'UNAUTHENTICATED' } },
    ]);
  }

  it('refuses a request without a credential, or with a malformed one, with 401 and nothing that helps an attacker', async () => {
    await refused({});
    for (const authorization of [
      'Basic YWRtaW46YWRtaW4=',
      'Bearer',
      'Bearer a b',
      `Bearer ${'x'.repeat(9000)}`,
      'bearer ',
      ADMIN_KEY,
      `Token ${ADMIN_KEY}`,
    ]) {
      await refused({ authorization });
    }
    await refused(bearer(`${ADMIN_KEY}x`));
    await refused(bearer('cg_0123456789abcdef0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'));
    await refused(bearer('not.a.jwt'));
  });

  it('accepts the bootstrap ADMIN_API_KEY as an ADMIN of tenant default', async () => {
    expect(ok(await t.gql(ME, {}, ADMIN)).me).toEqual({
      actor: 'key:ADMIN_API_KEY',
      role: 'ADMIN',
      credential: 'ADMIN_API_KEY',
      tenantId: 'default',
      credentialTenantId: 'default',
    });
  });

  it('creates API keys that are shown once, stored only as a hash, listed, used, and revoked', async () => {
    const key = await createKey(t, 'acme', 'EDITOR');
    expect(key.secret).toMatch(/^cg_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$/);
    const row = await t.app.db.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } });
    expect(row.secretHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(key.secret.slice(36));

    expect(ok(await t.gql(ME, {}, key.headers)).me).toEqual({
      actor: `key:${key.id}`,
      role: 'EDITOR',
      credential: 'API_KEY',
      tenantId: 'acme',
      credentialTenantId: 'acme',
    });
    await waitFor(async () => (await t.app.db.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })).lastUsedAt, {
      what: 'lastUsedAt',
    });

    const listed = ok(
      await t.gql(`{ apiKeys(tenantId: "acme") { id name tenantId role createdBy lastUsedAt revokedAt } }`, {}, ADMIN),
    ).apiKeys;
    expect(listed).toEqual([
      expect.objectContaining({ id: key.id, tenantId: 'acme', role: 'EDITOR', createdBy: 'key:ADMIN_API_KEY', revokedAt: null }),
    ]);
    // The schema has no field that could ever return a key's secret or hash again.
    const fields = ok(await t.gql(`{ __type(name: "ApiKey") { fields { name } } }`, {}, ADMIN)).__type.fields.map(
      (f: { name: string }) => f.name,
    );
    expect(fields).not.toContain('secret');
    expect(fields).not.toContain('secretHash');

    const revoked = ok(await t.gql(`mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }`, { id: key.id }, ADMIN)).revokeApiKey;
    expect(revoked.revokedAt).toBeTruthy();
    await refused(key.headers);
    // A key whose id is right but whose secret is not is refused the same way.
    await refused(bearer(`${key.secret.slice(0, -4)}AAAA`));
  });

  it('stops accepting a key at its expiry', async () => {
    const key = await createKey(t, 'acme', 'VIEWER', { expiresAt: new Date(Date.now() + 1500).toISOString() });
    expect(ok(await t.gql(ME, {}, key.headers)).me.role).toBe('VIEWER');
    await waitFor(async () => (await post(t, ME, undefined, key.headers)).status === 401, { what: 'the key to expire' });
  });

  it('refuses bad key input with BAD_USER_INPUT and its field, creating nothing', async () => {
    const CREATE = `mutation($input: ApiKeyInput!) { createApiKey(input: $input) { secret } }`;
    const before = await t.app.db.prisma.apiKey.count();
    for (const [input, field] of [
      [{ name: 'x', tenantId: 'acme', role: 'OWNER' }, 'role'],
      [{ name: 'x', tenantId: 'no spaces!', role: 'VIEWER' }, 'tenantId'],
      [{ name: 'x', tenantId: 'a'.repeat(65), role: 'VIEWER' }, 'tenantId'],
      [{ name: ' ', tenantId: 'acme', role: 'VIEWER' }, 'name'],
      [{ name: 'x', tenantId: 'platform', role: 'EDITOR' }, 'tenantId'],
      [{ name: 'x', tenantId: 'acme', role: 'VIEWER', expiresAt: '2001-01-01T00:00:00Z' }, 'expiresAt'],
    ] as const) {
      const result = await t.gql(CREATE, { input }, ADMIN);
      expect(result.errors?.[0]?.extensions, JSON.stringify(input)).toMatchObject({ code: 'BAD_USER_INPUT', field });
    }
    expect(errorCode(await t.gql(`mutation { revokeApiKey(id: "nope") { id } }`, {}, ADMIN))).toBe('BAD_USER_INPUT');
    expect(errorCode(await t.gql(`mutation { revokeApiKey(id: "0193a000-0000-7000-8000-000000000000") { id } }`, {}, ADMIN))).toBe(
      'NOT_FOUND',
    );
    expect(await t.app.db.prisma.apiKey.count()).toBe(before);
  });

  it('accepts HS256 JWTs with the tenant and role claims, and refuses forged, expired, early, foreign and unsigned ones', async () => {
    const claims = { sub: 'user-42', tenant_id: 'acme', role: 'editor' };
    expect(ok(await t.gql(ME, {}, bearer(await hs256(claims)))).me).toEqual({
      actor: 'jwt:user-42',
      role: 'EDITOR',
      credential: 'JWT',
      tenantId: 'acme',
      credentialTenantId: 'acme',
    });
    const now = Math.floor(Date.now() / 1000);
    const bad = [
      await hs256(claims, { secret: 'another-secret-of-the-same-length-000000' }),
      await hs256({ ...claims, exp: now - 60 }),
      await hs256({ ...claims, nbf: now + 600 }),
      await hs256(claims, { issuer: 'https://evil.example' }),
      await hs256(claims, { issuer: null }),
      await hs256(claims, { audience: 'someone-else' }),
      await hs256({ tenant_id: 'acme', role: 'EDITOR' }),
      await hs256({ sub: 'u', role: 'EDITOR' }),
      await hs256({ sub: 'u', tenant_id: 'acme' }),
      await hs256({ sub: 'u', tenant_id: 'acme', role: 'OWNER' }),
      await hs256({ sub: 'u', tenant_id: 'no spaces!', role: 'EDITOR' }),
      // Only ADMIN may be the platform tenant, whose templates every bound tenant runs (as for API keys).
      await hs256({ sub: 'u', tenant_id: 'platform', role: 'EDITOR' }),
      await hs256({ sub: 'u', tenant_id: 'platform', role: 'VIEWER' }),
      // sub becomes the actor of what the token writes: it must be storable text.
      await hs256({ sub: 'x\u0000y', tenant_id: 'acme', role: 'EDITOR' }),
      await hs256({ sub: 'x\ud800y', tenant_id: 'acme', role: 'EDITOR' }),
      await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .sign(new TextEncoder().encode(JWT_SECRET)),
      unsigned({ ...claims, role: 'ADMIN' }),
    ];
    for (const token of bad) await refused(bearer(token));
    const [header, payload, signature] = (await hs256(claims)).split('.');
    const tampered = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), role: 'ADMIN' })).toString(
      'base64url',
    );
    await refused(bearer(`${header}.${tampered}.${signature}`));
  });

  it('accepts an ADMIN token without a tenant claim (tenant default)', async () => {
    expect(ok(await t.gql(ME, {}, bearer(await hs256({ sub: 'ops', role: 'ADMIN' })))).me).toMatchObject({
      role: 'ADMIN',
      tenantId: 'default',
    });
  });

  it('verifies RS256 tokens with the configured public key and refuses an HS256 token keyed with that public key', async () => {
    const token = await new SignJWT({ sub: 'svc', tenant_id: 'beta', role: 'VIEWER' })
      .setProtectedHeader({ alg: 'RS256' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('10m')
      .sign(rsa.privateKey);
    expect(ok(await t.gql(ME, {}, bearer(token))).me).toMatchObject({ actor: 'jwt:svc', role: 'VIEWER', tenantId: 'beta' });
    // Algorithm confusion: the public key used as an HMAC secret.
    const confused = await hs256({ sub: 'svc', tenant_id: 'beta', role: 'ADMIN' }, { secret: rsa.pem });
    await refused(bearer(confused));
  });

  it('verifies ES256 tokens against a JWKS served over HTTP, and refuses a key id it does not list', async () => {
    const sign = (kid: string) =>
      new SignJWT({ sub: 'jwks-user', tenant_id: 'gamma', role: 'EDITOR' })
        .setProtectedHeader({ alg: 'ES256', kid })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setExpirationTime('10m')
        .sign(ec.privateKey);
    expect(ok(await t.gql(ME, {}, bearer(await sign(ec.kid)))).me).toMatchObject({
      actor: 'jwt:jwks-user',
      role: 'EDITOR',
      tenantId: 'gamma',
    });
    await refused(bearer(await sign('unknown-kid')));
  });
});

describe('JWT claim names come from configuration', () => {
  it('reads the tenant and role from AUTH_JWT_TENANT_CLAIM and AUTH_JWT_ROLE_CLAIM', async () => {
    const t = await createTestApp('pglite', {
      env: { ...AUTH_ENV, AUTH_JWT_TENANT_CLAIM: 'https://example.test/tenant', AUTH_JWT_ROLE_CLAIM: 'https://example.test/role' },
    });
    try {
      const token = await hs256({ sub: 'u1', 'https://example.test/tenant': 'delta', 'https://example.test/role': 'VIEWER' });
      expect(ok(await t.gql(ME, {}, bearer(token))).me).toMatchObject({ role: 'VIEWER', tenantId: 'delta' });
      expect((await post(t, ME, undefined, bearer(await hs256({ sub: 'u1', tenant_id: 'delta', role: 'VIEWER' })))).status).toBe(401);
    } finally {
      await t.close();
    }
  });
});
