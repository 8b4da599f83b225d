import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestApp, type TestApp } from './support/testApp.js';

/**
 * A bug or a failing database while a WebSocket connection is set up (connection_init) closes it with
 * 4500, and the close reason, which the client reads, is graphql-ws's "Internal server error" whatever
 * NODE_ENV says: outside production graphql-ws put the error's own message there (a driver's address,
 * a query), as yoga's development mode would in an answer (see errorDetails.test.ts).
 */
describe('WebSocket close reasons tell clients no internals', () => {
  let t: TestApp;
  let url: string;
  beforeAll(async () => {
    t = await createTestApp('pglite', { env: { SCHEDULER_ENABLED: 'false' } });
    url = (await t.app.listen(0, '127.0.0.1')).url.replace(/^http/, 'ws');
  });
  afterAll(() => t?.close());

  it('closes with 4500 "Internal server error" when authenticating fails inside', async () => {
    const authenticate = t.app.authenticator.authenticate;
    t.app.authenticator.authenticate = () => Promise.reject(new Error('connect ECONNREFUSED 10.9.8.7:5432 (a bug)'));
    try {
      const socket = new WebSocket(url, 'graphql-transport-ws');
      const closed = new Promise<{ code: number; reason: string }>((resolve) =>
        socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
      );
      socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer x' } })));
      expect(await closed).toEqual({ code: 4500, reason: 'Internal server error' });
    } finally {
      t.app.authenticator.authenticate = authenticate;
    }
  });
});
