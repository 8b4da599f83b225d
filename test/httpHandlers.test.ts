import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostPolicy } from '../src/handlers/HostPolicy.js';
import type { TimerTaskInput } from '../src/index.js';
import { collectGarbage } from '../src/ops/heap.js';
import { backends, createTestApp, type TestApp } from './support/testApp.js';

/**
 * chronograph.http and chronograph.graphql run as tasks against a local HTTP server: allowed with
 * HTTP_ALLOW_HOSTS=127.0.0.1, refused without it — for an IP literal, for a name that resolves to
 * loopback (localhost), and for redirects to loopback or the metadata address — and the refused
 * requests never reach the server.
 */
interface Hit {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

function startTarget(): Promise<{ server: Server; port: number; hits: Hit[] }> {
  const hits: Hit[] = [];
  let flaky = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      hits.push({ method: req.method ?? '', path: req.url ?? '/', headers: req.headers, body });
      const path = (req.url ?? '/').split('?')[0];
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      const port = (server.address() as { port: number }).port;
      if (path === '/ok') return json(200, { hello: 'world' });
      if (path === '/echo')
        return json(200, {
          method: req.method,
          body,
          contentType: req.headers['content-type'] ?? null,
          auth: req.headers.authorization ?? null,
        });
      if (path === '/big') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        return res.end('x'.repeat(5000));
      }
      if (path === '/nul-json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('{"name":"a\\u0000b"}');
      }
      if (path === '/nul-text') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        return res.end('a\u0000b');
      }
      if (path === '/flaky') return ++flaky === 1 ? json(503, { error: 'try later' }) : json(200, { attempt: flaky });
      if (path === '/missing') return json(404, { error: 'no such thing' });
      if (path === '/slow') return; // never answers
      if (path === '/redirect') {
        res.writeHead(302, { location: '/echo' });
        return res.end();
      }
      if (path === '/post-redirect') {
        res.writeHead(307, { location: `http://127.0.0.1:${port}/echo` });
        return res.end();
      }
      if (path === '/to-metadata') {
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
        return res.end();
      }
      if (path === '/to-ipv6-loopback') {
        res.writeHead(301, { location: `http://[::1]:${port}/ok` });
        return res.end();
      }
      if (path === '/graphql') {
        const { query } = JSON.parse(body) as { query: string };
        return query.includes('broken')
          ? json(200, { errors: [{ message: 'Cannot query field "broken"' }] })
          : json(200, { data: { echo: query } });
      }
      json(404, {});
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port, hits })),
  );
}

describe('HostPolicy', () => {
  const refused = (policy: HostPolicy, host: string, address = host) => policy.refusal(host, address);

  it('allows plain public unicast addresses and refuses every special range', () => {
    const policy = HostPolicy.parse([]);
    for (const address of ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c']) expect(refused(policy, address)).toBeUndefined();
    for (const address of [
      '127.0.0.1',
      '127.9.9.9',
      '::1',
      '10.0.0.1',
      '172.16.5.4',
      '192.168.1.1',
      '169.254.169.254',
      'fd00:ec2::254',
      'fe80::1',
      '100.64.0.1',
      '0.0.0.0',
      '::',
      '::ffff:127.0.0.1',
      '::ffff:10.0.0.1',
      '64:ff9b::a9fe:a9fe',
      '2002:a9fe:a9fe::1',
      '224.0.0.1',
      '255.255.255.255',
    ]) {
      expect(refused(policy, address), address).toMatch(/address; HTTP tasks may not reach it/);
    }
    expect(refused(policy, 'metadata.google.internal', '169.254.169.254')).toBe(
      'metadata.google.internal resolves to 169.254.169.254, which is a linkLocal address; HTTP tasks may not reach it unless HTTP_ALLOW_HOSTS allows it',
    );
  });

  it('opens exceptions by name, suffix, address and range', () => {
    const policy = HostPolicy.parse(['api.internal', '*.corp.example', '127.0.0.1', '10.1.0.0/16']);
    expect(refused(policy, 'api.internal', '10.9.9.9')).toBeUndefined();
    expect(refused(policy, 'x.corp.example', '192.168.0.1')).toBeUndefined();
    expect(refused(policy, 'corp.example', '192.168.0.1')).toBeDefined();
    expect(refused(policy, '127.0.0.1')).toBeUndefined();
    expect(refused(policy, '127.0.0.2')).toBeDefined();
    expect(refused(policy, '::ffff:127.0.0.1')).toBeUndefined();
    expect(refused(policy, 'db.local', '10.1.200.3')).toBeUndefined();
    expect(refused(policy, 'db.local', '10.2.0.1')).toBeDefined();
    expect(() => HostPolicy.parse(['10.0.0.0/99'])).toThrow(/CIDR/);
    expect(() => HostPolicy.parse(['exa mple'])).toThrow(/not a host name/);
  });
});

describe.each(backends)('HTTP tasks on %s', (backend) => {
  let target: Awaited<ReturnType<typeof startTarget>>;
  let allowed: TestApp;
  let guarded: TestApp;
  let url: (path: string) => string;

  beforeAll(async () => {
    target = await startTarget();
    url = (path) => `http://127.0.0.1:${target.port}${path}`;
    allowed = await createTestApp(backend, { env: { HTTP_ALLOW_HOSTS: '127.0.0.1', HTTP_MAX_RESPONSE_BYTES: '1000' } });
    guarded = await createTestApp(backend);
  });
  afterAll(async () => {
    await allowed?.close();
    await guarded?.close();
    await new Promise((resolve) => target?.server.close(resolve));
  });

  async function run(app: TestApp, funcName: string, argDict: Record<string, unknown>, extra: Partial<TimerTaskInput> = {}) {
    const svc = app.app.getElement('services.TaskSvc');
    const task = await svc.createTimerTask({
      fullName: 'tasks.DataSync',
      funcName,
      argDict,
      startTime: new Date().toISOString(),
      maxAttempts: 3,
      retryBackoffMs: 10,
      ...extra,
    });
    const done = await svc.waitForTask(task.id, { timeoutMs: 20_000 });
    const runs = await app.app.db.prisma.taskRun.findMany({ where: { taskId: task.id }, orderBy: { attempt: 'asc' } });
    return { task: done, runs };
  }

  const hitsTo = (path: string) => target.hits.filter((h) => h.path === path).length;

  it('returns status, headers and the JSON body as the run result', async () => {
    const { task, runs } = await run(allowed, 'chronograph.http', { url: url('/ok'), headers: { 'x-trace': 'abc' } });
    expect(task.status).toBe('SUCCEEDED');
    expect(runs[0]!.result).toMatchObject({
      url: url('/ok'),
      status: 200,
      json: { hello: 'world' },
      truncated: false,
      redirects: [],
      headers: { 'content-type': 'application/json' },
    });
    expect(target.hits.findLast((h) => h.path === '/ok')!.headers['x-trace']).toBe('abc');
  });

  it('sends json bodies, follows redirects (303-style to GET, 307 keeping the method) and cuts large bodies', async () => {
    const posted = await run(allowed, 'chronograph.http', {
      url: url('/post-redirect'),
      json: { a: 1 },
      headers: { authorization: 'Bearer s3cret' },
    });
    expect(posted.runs[0]!.result).toMatchObject({
      status: 200,
      redirects: [url('/echo')],
      json: { method: 'POST', body: '{"a":1}', contentType: 'application/json', auth: 'Bearer s3cret' },
    });
    const redirected = await run(allowed, 'chronograph.http', { url: url('/redirect'), method: 'POST', body: 'x' });
    expect(redirected.runs[0]!.result).toMatchObject({ json: { method: 'GET', body: '' } });
    const big = await run(allowed, 'chronograph.http', { url: url('/big') });
    const result = big.runs[0]!.result as { body: string; bytes: number; truncated: boolean };
    expect(result).toMatchObject({ bytes: 5000, truncated: true });
    expect(result.body).toHaveLength(1000);
  });

  it('keeps an answer with a NUL: JSON with a \\u0000 escape in body and parsed with the NUL as \\0, raw NUL bytes in bodyBase64', async () => {
    const escaped = await run(allowed, 'chronograph.http', { url: url('/nul-json') });
    expect(escaped.task.status).toBe('SUCCEEDED');
    const json = escaped.runs[0]!.result as { body?: string; json?: unknown };
    expect(json.body).toBe('{"name":"a\\u0000b"}');
    // Parsed, with the NUL made storable as error messages make it (\0).
    expect(json.json).toEqual({ name: 'a\\0b' });
    const raw = await run(allowed, 'chronograph.http', { url: url('/nul-text') });
    expect(raw.task.status).toBe('SUCCEEDED');
    const text = raw.runs[0]!.result as { body?: string; bodyBase64?: string };
    expect(text.body).toBeUndefined();
    expect(Buffer.from(text.bodyBase64!, 'base64').toString('utf8')).toBe('a\u0000b');
  });

  it('retries 5xx answers and fails 4xx answers for good', async () => {
    const flaky = await run(allowed, 'chronograph.http', { url: url('/flaky') });
    expect(flaky.task.status).toBe('SUCCEEDED');
    expect(flaky.runs.map((r) => r.status)).toEqual(['FAILED', 'SUCCEEDED']);
    expect(flaky.runs[0]!.error).toContain('answered 503');

    const missing = await run(allowed, 'chronograph.http', { url: url('/missing') });
    expect(missing.task.status).toBe('FAILED');
    expect(missing.runs).toHaveLength(1);
    expect(missing.runs[0]!.error).toMatch(/^GET http:\/\/127\.0\.0\.1:\d+\/missing answered 404 Not Found: \{"error":"no such thing"\}$/);

    const expected = await run(allowed, 'chronograph.http', { url: url('/missing'), expectStatus: [404, 410] });
    expect(expected.task.status).toBe('SUCCEEDED');

    const invalid = await run(allowed, 'chronograph.http', { url: 'ftp://example.com/x' });
    expect(invalid.runs.map((r) => r.status)).toEqual(['FAILED']);
    expect(invalid.runs[0]!.error).toContain('ftp: URLs are not supported');
    const getWithBody = await run(allowed, 'chronograph.http', { url: url('/ok'), method: 'GET', body: 'x' });
    expect(getWithBody.runs.map((r) => r.error)).toEqual(['Invalid arguments: argDict.method: GET and HEAD requests cannot have a body']);
    const unknownArg = await run(allowed, 'chronograph.http', { url: url('/ok'), nope: 1 });
    expect(unknownArg.runs[0]!.error).toMatch(/Invalid arguments: argDict: Unrecognized key/);
  });

  it('times out with timeoutMs and retries, and stops at once on a forced end', async () => {
    const slow = await run(allowed, 'chronograph.http', { url: url('/slow'), timeoutMs: 200 }, { maxAttempts: 2 });
    expect(slow.task.status).toBe('FAILED');
    expect(slow.runs.map((r) => r.error)).toEqual([
      expect.stringContaining('did not answer within 200 ms'),
      expect.stringContaining('did not answer within 200 ms'),
    ]);

    const svc = allowed.app.getElement('services.TaskSvc');
    // Garbage collected while the request waits: the timeout still ends it (on Node 20 a timeout signal
    // combined with AbortSignal.any could be collected, and the request then waited for ever).
    const collected = await svc.createTimerTask({
      fullName: 'tasks.DataSync',
      funcName: 'chronograph.http',
      argDict: { url: url('/slow'), timeoutMs: 300 },
      startTime: new Date().toISOString(),
      maxAttempts: 1,
    });
    await svc.waitForTask(collected.id, { statuses: ['RUNNING'] });
    for (let i = 0; i < 3; i++) {
      collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const timedOut = await svc.waitForTask(collected.id, { timeoutMs: 10_000 });
    expect(timedOut.status).toBe('FAILED');
    expect(timedOut.lastError).toContain('did not answer within 300 ms');

    const task = await svc.createTimerTask({
      fullName: 'tasks.DataSync',
      funcName: 'chronograph.http',
      argDict: { url: url('/slow') },
      startTime: new Date().toISOString(),
    });
    await svc.waitForTask(task.id, { statuses: ['RUNNING'] });
    const ended = await svc.forcedEnd(task.id);
    expect(ended.status).toBe('FORCED_END');
  });

  it('refuses loopback without HTTP_ALLOW_HOSTS: by address, by a name that resolves to it, and after redirects', async () => {
    const literal = await run(guarded, 'chronograph.http', { url: url('/ok?refused=literal') });
    expect(literal.task.status).toBe('FAILED');
    expect(literal.runs).toHaveLength(1); // not retried
    expect(literal.runs[0]!.error).toBe('127.0.0.1 is a loopback address; HTTP tasks may not reach it unless HTTP_ALLOW_HOSTS allows it');

    const named = await run(guarded, 'chronograph.http', { url: `http://localhost:${target.port}/ok?refused=named` });
    expect(named.runs.map((r) => r.status)).toEqual(['FAILED']);
    expect(named.runs[0]!.error).toMatch(/^localhost resolves to (127\.0\.0\.1|::1), which is a loopback address/);
    expect(target.hits.filter((h) => h.path.includes('refused='))).toEqual([]);

    const metadata = await run(allowed, 'chronograph.http', { url: url('/to-metadata') });
    expect(metadata.runs.map((r) => r.status)).toEqual(['FAILED']);
    expect(metadata.runs[0]!.error).toContain('169.254.169.254 is a linkLocal address');
    const ipv6 = await run(allowed, 'chronograph.http', { url: url('/to-ipv6-loopback') });
    expect(ipv6.runs[0]!.error).toContain('::1 is a loopback address');
    // The redirects themselves were served; where they pointed was never contacted.
    expect(hitsTo('/to-metadata')).toBeGreaterThanOrEqual(1);
    expect(target.hits.filter((h) => h.path === '/ok' && h.headers.host?.startsWith('[::1]'))).toEqual([]);

    const graphql = await run(guarded, 'chronograph.graphql', { url: url('/graphql?refused=graphql'), query: '{ a }' });
    expect(graphql.runs[0]!.error).toContain('loopback address');
  });

  it('sends GraphQL operations and fails the attempt on GraphQL errors', async () => {
    const ok = await run(allowed, 'chronograph.graphql', { url: url('/graphql'), query: '{ echo }', variables: { a: 1 } });
    expect(ok.runs[0]!.result).toEqual({ url: url('/graphql'), status: 200, data: { echo: '{ echo }' } });
    const sent = JSON.parse(target.hits.findLast((h) => h.path === '/graphql')!.body);
    expect(sent).toEqual({ query: '{ echo }', variables: { a: 1 } });

    const broken = await run(allowed, 'chronograph.graphql', { url: url('/graphql'), query: '{ broken }' }, { maxAttempts: 2 });
    expect(broken.task.status).toBe('FAILED');
    expect(broken.runs.map((r) => r.error)).toEqual([
      expect.stringContaining('Cannot query field "broken"'),
      expect.stringContaining('Cannot query field "broken"'),
    ]);
  });
});
