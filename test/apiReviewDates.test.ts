import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CredentialWatch } from '../src/auth/CredentialWatch.js';
import { Role } from '../src/generated/prisma/client.js';
import { ADMIN, AUTH_ENV, bearer, createKey } from './support/auth.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

const YEAR_0 = '0000-01-01T00:00:00Z';
const YEAR_10000 = '+010000-01-01T00:00:00Z';

/**
 * DateTime arguments are instants PostgreSQL and Prisma can store and read back (years 1-9999, UTC):
 * anything else is BAD_USER_INPUT naming the argument, before a query runs, not a masked error from
 * the database, and an API key whose expiry could never be read back is not created.
 */
describe.each(backends)('DateTime range (%s)', (backend) => {
  let t: TestApp;
  let viewer: Record<string, string>;

  beforeAll(async () => {
    t = await createTestApp(backend, { env: AUTH_ENV });
    viewer = (await createKey(t, 'acme', 'VIEWER')).headers;
  });
  afterAll(() => t?.close());

  it.each([
    ['taskRuns', `query($v: TaskRunFilter) { taskRuns(filter: $v) { totalCount } }`, { from: YEAR_0 }, 'from'],
    ['taskEvents', `query($v: EventHistoryFilter) { taskEvents(filter: $v) { totalCount } }`, { to: YEAR_10000 }, 'to'],
    ['runLogs', `query($v: RunLogFilter) { runLogs(filter: $v) { totalCount } }`, { from: YEAR_0 }, 'from'],
    ['runStats', `query($v: DateTime) { runStats(groupBy: DAY, from: $v) { key } }`, YEAR_0, 'from'],
  ])('%s with a year outside 1-9999 is BAD_USER_INPUT naming the field', async (_name, query, v, field) => {
    const result = await t.gql(query, { v }, viewer);
    expect(errorCode(result)).toBe('BAD_USER_INPUT');
    expect(result.errors![0]!.extensions!.field).toBe(field);
    expect(result.errors![0]!.message).toContain('years 1-9999');
  });

  it('a year 0 written into the query is refused as in a variable, naming the field', async () => {
    const result = await t.gql(`{ taskRuns(filter: { from: "${YEAR_0}" }) { totalCount } }`, {}, viewer);
    expect(errorCode(result)).toBe('BAD_USER_INPUT');
    expect(result.errors![0]!.extensions!.field).toBe('from');
    expect(result.errors![0]!.message).toContain('years 1-9999');
  });

  it('pruneHistory(before: year 0) is refused and deletes nothing', async () => {
    const result = await t.gql(`mutation($before: DateTime!) { pruneHistory(before: $before) { tasks } }`, { before: YEAR_0 }, ADMIN);
    expect(errorCode(result)).toBe('BAD_USER_INPUT');
    expect(result.errors![0]!.extensions!.field).toBe('before');
  });

  it('createApiKey with an expiry in the year 10000 is refused and writes nothing; 9999 works and reads back', async () => {
    const keys = () => t.app.db.prisma.apiKey.count();
    const before = await keys();
    const create = `mutation($input: ApiKeyInput!) { createApiKey(input: $input) { apiKey { id expiresAt } secret } }`;
    const input = (expiresAt: string) => ({ name: 'far', tenantId: 'acme', role: 'VIEWER', expiresAt });
    const refused = await t.gql(create, { input: input(YEAR_10000) }, ADMIN);
    expect(errorCode(refused)).toBe('BAD_USER_INPUT');
    expect(refused.errors![0]!.extensions!.field).toBe('expiresAt');
    expect(await keys()).toBe(before);
    // Past the scalar (a service caller): ApiKeySvc bounds it too.
    await expect(
      t.app.apiKeys.create({ name: 'far', tenantId: 'acme', role: Role.VIEWER, expiresAt: new Date(YEAR_10000) }, null),
    ).rejects.toMatchObject({ code: 'BAD_USER_INPUT', details: { field: 'expiresAt' } });
    expect(await keys()).toBe(before);
    // The last storable instant is fine, and every read of it works.
    const last = ok(await t.gql(create, { input: input('9999-12-31T23:59:59.999Z') }, ADMIN)).createApiKey;
    expect(last.apiKey.expiresAt).toBe('9999-12-31T23:59:59.999Z');
    expect(ok(await t.gql(`{ me { expiresAt } }`, {}, bearer(last.secret))).me.expiresAt).toBe('9999-12-31T23:59:59.999Z');
    expect(ok(await t.gql(`{ apiKeys { id expiresAt } }`, {}, ADMIN)).apiKeys.length).toBe(before + 1);
  });
});

describe('CredentialWatch', () => {
  it('ends a subscription whose expiry is not a time instead of re-arming a NaN timer', () => {
    const watch = new CredentialWatch({ listen: async () => async () => {} }, {} as never, { info() {}, debug() {} } as never);
    const lease = watch.watch({
      credential: 'API_KEY',
      role: Role.VIEWER,
      tenantId: 'acme',
      actor: 'key:x',
      keyId: 'x',
      expiresAt: new Date(Number.NaN),
    } as never);
    expect(lease.signal.aborted).toBe(true);
    lease.release();
  });
});
