import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { bearer, post } from './support/auth.js';
import { createTestApp, ok } from './support/testApp.js';

/**
 * No credential configured, loopback HOST (what the test helpers and `npm start` use): every request
 * without a credential is the anonymous ADMIN of tenant "default", start-up says so once, and a
 * credential that is sent anyway is checked, not ignored.
 */
describe('development mode (no credential configured, loopback HOST)', () => {
  it('acts as an anonymous ADMIN, warns once at start-up, and still checks credentials that are sent', async () => {
    const lines: { level: number; msg: string }[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    const t = await createTestApp('pglite', { logger: createLogger('info', sink) });
    try {
      const warnings = lines.filter((l) => l.level === 40 && l.msg.includes('anonymous ADMIN'));
      expect(warnings).toHaveLength(1);
      expect(ok(await t.gql(`{ me { actor role credential tenantId } }`)).me).toEqual({
        actor: 'anonymous',
        role: 'ADMIN',
        credential: 'ANONYMOUS',
        tenantId: 'default',
      });
      expect(ok(await t.gql(`{ me { tenantId } }`, {}, { 'x-tenant-id': 'acme' })).me.tenantId).toBe('acme');

      const { secret } = ok(
        await t.gql(`mutation { createApiKey(input: { name: "try", tenantId: "acme", role: VIEWER }) { secret } }`),
      ).createApiKey;
      expect(ok(await t.gql(`{ me { role tenantId } }`, {}, bearer(secret))).me).toEqual({ role: 'VIEWER', tenantId: 'acme' });
      expect(
        (
          await post(
            t,
            `mutation { createTimerTask(input: { fullName: "tasks.DataSync", startTime: "2030-01-01 10:00:00" }) { id } }`,
            undefined,
            bearer(secret),
          )
        ).body.errors?.[0]?.extensions?.code,
      ).toBe('FORBIDDEN');
      expect((await post(t, `{ me { role } }`, undefined, bearer(`${secret}x`))).status).toBe(401);
      // Keys in the database do not switch authentication on: requests without one are still anonymous.
      expect(ok(await t.gql(`{ me { credential } }`)).me.credential).toBe('ANONYMOUS');

      await expect(t.app.listen(0, '0.0.0.0')).rejects.toThrow(/can be reached from other machines/);
    } finally {
      await t.close();
    }
  });
});
