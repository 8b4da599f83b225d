import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { ADMIN, ADMIN_KEY, AUTH_ENV, bearer, createKey, hs256 } from './support/auth.js';
import { Collector, sseSubscribe, wsClient } from './support/subscriptions.js';
import { backends, createTestApp } from './support/testApp.js';

/** Everything the process logs (at trace level) while credentials are used, good and bad: none of them may appear. */
describe.each(backends)('no credential in logs (%s)', (backend) => {
  it('never writes a key, a secret or a token to the log, whatever happens', async () => {
    let output = '';
    const sink = new Writable({
      write(chunk, _encoding, done) {
        output += chunk.toString();
        done();
      },
    });
    const t = await createTestApp(backend, { env: AUTH_ENV, logger: createLogger('trace', sink) });
    const secrets: string[] = [ADMIN_KEY];
    try {
      const { url } = await t.app.listen(0, '127.0.0.1');
      const key = await createKey(t, 'acme', 'EDITOR');
      const token = await hs256({ sub: 'user-1', tenant_id: 'acme', role: 'EDITOR' });
      const expired = await hs256({ sub: 'user-1', tenant_id: 'acme', role: 'EDITOR', exp: Math.floor(Date.now() / 1000) - 600 });
      secrets.push(key.secret, token, token.split('.')[2]!, expired);
      for (const headers of [
        ADMIN,
        key.headers,
        bearer(token),
        bearer(expired),
        bearer(`${key.secret}x`),
        bearer(`${ADMIN_KEY}0`),
        { authorization: ADMIN_KEY },
      ]) {
        await t.gql(`{ me { actor } }`, {}, headers);
        await t.gql(`mutation { createTimerTask(input: { fullName: "nope" }) { id } }`, {}, headers);
        await t.gql(`{ broken`, {}, headers);
      }
      const sub = await sseSubscribe(t.app, `subscription { taskStatusChanged { cursor } }`, {}, key.headers);
      await sub.close();
      for (const params of [
        { authorization: `Bearer ${key.secret}` },
        { authorization: `Bearer ${expired}` },
        { headers: { authorization: `Bearer ${token}` } },
      ]) {
        const client = wsClient(url, params);
        await new Collector(client.iterate({ query: `{ me { actor } }` })).finished();
        await client.dispose();
      }
      await t.gql(`mutation($id: ID!) { revokeApiKey(id: $id) { id } }`, { id: key.id }, ADMIN);
      await t.gql(`{ me { actor } }`, {}, key.headers);
    } finally {
      await t.close();
    }
    expect(output.length).toBeGreaterThan(1000); // trace logging did happen
    for (const secret of secrets) expect(output.includes(secret), `a credential (${secret.slice(0, 6)}…) was logged`).toBe(false);
  });

  it('redacts credentials in objects that app code or libraries log wholesale', () => {
    let output = '';
    const logger = createLogger('info', new Writable({ write: (chunk, _e, done) => ((output += chunk.toString()), done()) }));
    logger.info(
      {
        req: { headers: { authorization: 'Bearer cg_abc' } },
        connectionParams: { authorization: 'Bearer xyz' },
        created: { secret: 'cg_def' },
      },
      'request',
    );
    expect(output).not.toMatch(/cg_abc|xyz|cg_def/);
    expect(output).toContain('[redacted]');
  });
});
