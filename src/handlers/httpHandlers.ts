import type { Dispatcher, Headers, Response } from 'undici';
import * as z from 'zod';
import { deadline } from '../ops/deadline.js';
import { toStorableText } from '../scheduler/toJson.js';
import { isStorableText } from '../tasks/validate.js';
import type { HandlerContext, HandlerRegistry } from './HandlerRegistry.js';
import type { HostPolicy } from './HostPolicy.js';
import { NonRetryableError } from './NonRetryableError.js';

/** undici (over a hundred modules, about a third of a second) is loaded by the first HTTP run, not at start-up. */
let undici: Promise<typeof import('undici')> | undefined;
const loadUndici = () => (undici ??= import('undici'));

export interface HttpHandlerOptions {
  policy: HostPolicy;
  /** Bytes of a response body kept in the run's result; the rest is cut off. */
  maxResponseBytes: number;
}

/** What a `chronograph.http` run returns (and what a failing one describes in its error). */
export interface HttpResult {
  /** The URL that answered, after redirects. */
  url: string;
  status: number;
  statusText: string;
  headers: Record<string, string>;
  /** The body as text (UTF-8), cut at the size limit; absent for binary content (see bodyBase64). */
  body?: string;
  bodyBase64?: string;
  /** The parsed body when it is complete JSON. */
  json?: unknown;
  /** Bytes received; when `truncated`, more were sent and dropped. */
  bytes: number;
  truncated: boolean;
  redirects: string[];
  durationMs: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Failures another attempt may fix; other 4xx answers mean the request itself is wrong. */
const RETRYABLE_4XX = new Set([408, 425, 429]);

const status = z.number().int().min(100).max(599);
const headers = z.record(z.string(), z.string());
const timeoutMs = z.number().int().min(1).max(3_600_000);

const httpArgs = z
  .object({
    url: z.string(),
    method: z
      .string()
      .regex(/^[A-Za-z]{1,16}$/, 'must be an HTTP method such as GET or POST')
      .optional(),
    headers: headers.optional(),
    body: z.string().optional(),
    json: z.unknown().optional(),
    timeoutMs: timeoutMs.optional(),
    expectStatus: z.union([status, z.array(status).min(1)]).optional(),
  })
  .strict()
  .refine((a) => a.body === undefined || a.json === undefined, { message: 'give either body or json, not both', path: ['json'] })
  .refine((a) => !/^(get|head)$/i.test(a.method ?? '') || (a.body === undefined && a.json === undefined), {
    message: 'GET and HEAD requests cannot have a body',
    path: ['method'],
  });

const graphqlArgs = z
  .object({
    url: z.string(),
    query: z.string().min(1),
    variables: z.record(z.string(), z.unknown()).optional(),
    operationName: z.string().optional(),
    headers: headers.optional(),
    timeoutMs: timeoutMs.optional(),
  })
  .strict();

/**
 * The built-in HTTP handlers: `chronograph.http` calls a URL, `chronograph.graphql` sends a GraphQL
 * operation. Both go through one guarded dispatcher (HostPolicy: no loopback, private, link-local or
 * metadata addresses unless HTTP_ALLOW_HOSTS allows them, checked on the address actually connected
 * to), follow redirects themselves so that every hop is checked, stop on the task's abort signal, and
 * tell the scheduler which failures are worth a retry: network errors, timeouts and 5xx are; 4xx
 * (but 408, 425, 429), refused addresses and bad arguments are not (NonRetryableError).
 */
export function registerHttpHandlers(registry: HandlerRegistry, options: HttpHandlerOptions): void {
  let guarded: Promise<Dispatcher> | undefined;
  const dispatcher = () => (guarded ??= options.policy.createDispatcher());
  registry.register(
    'chronograph.http',
    async (args, ctx) => {
      const a = parseArgs(httpArgs, args);
      const { Headers } = await loadUndici();
      const method = (a.method ?? (a.body !== undefined || a.json !== undefined ? 'POST' : 'GET')).toUpperCase();
      const requestHeaders = new Headers(a.headers);
      let body = a.body;
      if (a.json !== undefined) {
        body = JSON.stringify(a.json);
        if (!requestHeaders.has('content-type')) requestHeaders.set('content-type', 'application/json');
      }
      const result = await send({ url: a.url, method, headers: requestHeaders, body, timeoutMs: a.timeoutMs }, dispatcher, options, ctx);
      const expected = a.expectStatus === undefined ? undefined : [a.expectStatus].flat();
      checkStatus(result, method, expected);
      return result;
    },
    {
      description:
        'Calls argDict.url (method, headers, body or json, timeoutMs, expectStatus); the result holds status, headers and the body.',
    },
  );
  registry.register(
    'chronograph.graphql',
    async (args, ctx) => {
      const a = parseArgs(graphqlArgs, args);
      const { Headers } = await loadUndici();
      const requestHeaders = new Headers(a.headers);
      requestHeaders.set('content-type', 'application/json');
      if (!requestHeaders.has('accept')) requestHeaders.set('accept', 'application/graphql-response+json, application/json');
      const body = JSON.stringify({ query: a.query, variables: a.variables, operationName: a.operationName });
      const result = await send(
        { url: a.url, method: 'POST', headers: requestHeaders, body, timeoutMs: a.timeoutMs },
        dispatcher,
        options,
        ctx,
      );
      const answer = result.json as { data?: unknown; errors?: { message?: unknown }[]; extensions?: unknown } | undefined;
      if (result.status >= 200 && result.status < 300 && (typeof answer !== 'object' || answer === null)) {
        throw new NonRetryableError(`POST ${result.url} answered ${result.status} without a GraphQL JSON body${snippet(result)}`);
      }
      checkStatus(result, 'POST', undefined, answer?.errors);
      if (answer?.errors?.length) {
        throw new Error(`GraphQL errors from ${result.url}: ${answer.errors.map((e) => String(e.message)).join('; ')}`);
      }
      return {
        url: result.url,
        status: result.status,
        data: answer?.data ?? null,
        ...(answer?.extensions !== undefined && { extensions: answer.extensions }),
      };
    },
    {
      description:
        'Sends argDict.query (variables, operationName, headers, timeoutMs) to argDict.url; fails the attempt on GraphQL errors.',
    },
  );
}

function parseArgs<T>(schema: z.ZodType<T>, args: unknown): T {
  const parsed = schema.safeParse(args);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `argDict${i.path.map((p) => `.${String(p)}`).join('')}: ${i.message}`);
    throw new NonRetryableError(`Invalid arguments: ${issues.join('; ')}`);
  }
  return parsed.data;
}

interface Request {
  url: string;
  method: string;
  headers: Headers;
  body?: string;
  timeoutMs?: number;
}

/** Sends `request`, following up to MAX_REDIRECTS redirects by hand (each hop through the guarded dispatcher). */
async function send(
  request: Request,
  guarded: () => Promise<Dispatcher>,
  options: HttpHandlerOptions,
  ctx: HandlerContext,
): Promise<HttpResult> {
  const [{ fetch, Headers }, dispatcher] = await Promise.all([loadUndici(), guarded()]);
  let url = parseUrl(request.url);
  let { method, body } = request;
  const headers = new Headers(request.headers);
  const timeout = request.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // Aborted after timeoutMs or with the task (see deadline: not AbortSignal.any, whose timeout a GC can lose).
  const { signal, dispose } = deadline(timeout, () => new DOMException(`timed out after ${timeout} ms`, 'TimeoutError'), ctx.signal);
  const redirects: string[] = [];
  const started = performance.now();
  try {
    return await follow();
  } finally {
    dispose();
  }

  async function follow(): Promise<HttpResult> {
    for (;;) {
      let response: Response;
      try {
        response = await fetch(url, { method, headers, body, redirect: 'manual', signal, dispatcher });
      } catch (error) {
        throw failure(error, url, signal, ctx.signal, timeout);
      }
      const location = response.headers.get('location');
      if (REDIRECT_STATUSES.has(response.status) && location) {
        await response.body?.cancel();
        if (redirects.length >= MAX_REDIRECTS) throw new NonRetryableError(`${request.url} redirected more than ${MAX_REDIRECTS} times`);
        const next = parseUrl(location, url);
        ctx.logger.debug(
          { status: response.status, from: url.origin + url.pathname, to: next.origin + next.pathname },
          'following a redirect',
        );
        if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) {
          method = 'GET';
          body = undefined;
          headers.delete('content-type');
        }
        // As browsers do: credentials meant for one origin are not handed to another.
        if (next.origin !== url.origin) for (const name of ['authorization', 'cookie', 'proxy-authorization']) headers.delete(name);
        redirects.push(next.href);
        url = next;
        continue;
      }
      let read: { data: Buffer; bytes: number; truncated: boolean };
      try {
        read = await readCapped(response, options.maxResponseBytes);
      } catch (error) {
        throw failure(error, url, signal, ctx.signal, timeout);
      }
      const result = toResult(response, url, read, redirects, Math.round(performance.now() - started));
      ctx.logger.info(
        { method, url: url.origin + url.pathname, status: result.status, bytes: result.bytes, ms: result.durationMs },
        'HTTP request done',
      );
      return result;
    }
  }
}

function parseUrl(text: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(text, base);
  } catch {
    throw new NonRetryableError(`${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new NonRetryableError(`${url.protocol} URLs are not supported; use http: or https:`);
  if (url.username || url.password) throw new NonRetryableError('credentials in the URL are not supported; send an Authorization header');
  return url;
}

/** The error a failed exchange becomes: refused addresses are final; the rest (network, timeout) may be retried. */
function failure(error: unknown, url: URL, signal: AbortSignal, taskSignal: AbortSignal, timeoutMs: number): Error {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof NonRetryableError) return e;
  }
  if (taskSignal.aborted) return taskSignal.reason instanceof Error ? taskSignal.reason : new Error('the task was aborted');
  if (signal.aborted) return new Error(`${url.origin} did not answer within ${timeoutMs} ms`);
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const detail = cause instanceof Error ? ((cause as NodeJS.ErrnoException).code ?? cause.message) : String(cause);
  return new Error(`request to ${url.origin} failed: ${detail}`, { cause: error });
}

async function readCapped(response: Response, max: number): Promise<{ data: Buffer; bytes: number; truncated: boolean }> {
  if (!response.body) return { data: Buffer.alloc(0), bytes: 0, truncated: false };
  const chunks: Buffer[] = [];
  let bytes = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { data: Buffer.concat(chunks), bytes, truncated: false };
    const room = max - bytes;
    chunks.push(Buffer.from(value.buffer, value.byteOffset, Math.min(value.byteLength, Math.max(room, 0))));
    bytes += value.byteLength;
    if (bytes > max) {
      await reader.cancel();
      return { data: Buffer.concat(chunks), bytes, truncated: true };
    }
  }
}

const TEXT = /^(text\/|application\/([\w.+-]*\+)?(json|xml|javascript|x-www-form-urlencoded|graphql-response\+json)\b)/i;

function toResult(
  response: Response,
  url: URL,
  read: { data: Buffer; bytes: number; truncated: boolean },
  redirects: string[],
  durationMs: number,
): HttpResult {
  const contentType = response.headers.get('content-type') ?? '';
  // Text PostgreSQL cannot store (a NUL byte, bytes that decode to a lone surrogate) goes as base64, as
  // binary bodies do: stored as text, it failed the run with "result is not JSON".
  const text = read.data.toString('utf8');
  const textual = read.data.length === 0 || ((contentType === '' || TEXT.test(contentType)) && isStorableText(text));
  const result: HttpResult = {
    url: url.href,
    status: response.status,
    statusText: response.statusText,
    headers: Object.fromEntries(response.headers),
    ...(textual ? { body: text } : { bodyBase64: read.data.toString('base64') }),
    bytes: read.bytes,
    truncated: read.truncated,
    redirects,
    durationMs,
  };
  if (textual && !read.truncated && /\bjson\b/i.test(contentType)) {
    try {
      // A "\u0000" escape parses to a NUL, which cannot be stored: such text is made storable (as
      // error messages are: NUL as \0, a lone surrogate as U+FFFD), so that `json` (and a GraphQL
      // answer's data or errors) stays usable; `body` keeps the answer exactly as sent.
      result.json = storableJson(JSON.parse(result.body!));
    } catch {
      // Not JSON after all: the text is in `body`.
    }
  }
  return result;
}

/** Parsed JSON with every string and key that PostgreSQL could not store made storable (toStorableText). */
function storableJson(value: unknown): unknown {
  if (typeof value === 'string') return isStorableText(value) ? value : toStorableText(value, Number.POSITIVE_INFINITY);
  if (Array.isArray(value)) return value.map(storableJson);
  if (value && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        isStorableText(key) ? key : toStorableText(key, Number.POSITIVE_INFINITY),
        storableJson(item),
      ]),
    );
  return value;
}

/** Throws unless `result.status` is expected: 5xx (and 408/425/429) may be retried, other answers are final. */
function checkStatus(result: HttpResult, method: string, expected: number[] | undefined, graphqlErrors?: { message?: unknown }[]): void {
  const ok = expected ? expected.includes(result.status) : result.status >= 200 && result.status < 300;
  if (ok) return;
  const errors = graphqlErrors?.length ? `: ${graphqlErrors.map((e) => String(e.message)).join('; ')}` : snippet(result);
  const message = `${method} ${result.url} answered ${result.status}${result.statusText ? ` ${result.statusText}` : ''}${expected ? ` (expected ${expected.join(' or ')})` : ''}${errors}`;
  if (result.status >= 500 || RETRYABLE_4XX.has(result.status)) throw new Error(message);
  throw new NonRetryableError(message);
}

function snippet(result: HttpResult): string {
  const text = result.body?.trim();
  return text ? `: ${text.length > 200 ? `${text.slice(0, 200)}…` : text}` : '';
}
