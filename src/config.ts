import { createPublicKey } from 'node:crypto';
import os from 'node:os';
import * as z from 'zod';
import { HostPolicy } from './handlers/HostPolicy.js';

/**
 * Every setting Chronograph reads, validated once at start-up so that a bad value is a clear error
 * naming the variable instead of a crash somewhere later. `.env.example` documents each one.
 */
const envSchema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// connection string')
    .optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  PGLITE_OPTIMIZE: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  APP_DIR: z.string().min(1).default('./app'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  WORKER_ID: z.string().min(1).default(`${os.hostname()}-${process.pid}`),
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(10_000),
  SUBSCRIPTION_BUFFER_SIZE: z.coerce.number().int().min(1).max(100_000).default(1000),
  SCHEDULER_ENABLED: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  CONCURRENCY: z.coerce.number().int().min(1).max(10_000).default(10),
  /** Share (0-1] of CONCURRENCY one tenant may hold once more than one tenant has tasks. */
  TENANT_SLOT_SHARE: z.coerce.number().gt(0).max(1).default(0.75),
  QUEUE_CONCURRENCY: z
    .string()
    .default('')
    .transform((text, ctx) => {
      const limits: Record<string, number> = {};
      for (const part of text
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)) {
        const m = /^([\w.-]+)=(\d+)$/.exec(part);
        if (!m || Number(m[2]) < 1) {
          ctx.addIssue({ code: 'custom', message: `"${part}" is not queue=limit (e.g. emails=2,reports=1)` });
          return z.NEVER;
        }
        limits[m[1]!] = Number(m[2]);
      }
      return limits;
    }),
  LEASE_MS: z.coerce.number().int().min(100).default(30_000),
  ABORT_GRACE_MS: z.coerce.number().int().min(0).default(5_000),
  LEASE_WATCHDOG_MS: z.coerce.number().int().min(100).default(60_000),
  THREAD_MEMORY_LIMIT_MB: z.coerce.number().int().min(16).max(1_048_576).default(512),
  /** Bearer token /metrics requires; unset leaves /metrics open (like /health and /ready). */
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** One info line per HTTP request (operation name, status, duration). */
  LOG_REQUESTS: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /** Hosts chronograph.http / chronograph.graphql may reach although the SSRF guard refuses their addresses. */
  HTTP_ALLOW_HOSTS: z
    .string()
    .default('')
    .transform((text, ctx) => {
      const entries = text
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean);
      try {
        HostPolicy.parse(entries);
      } catch (error) {
        ctx.addIssue({
          code: 'custom',
          message: `${(error as Error).message} (expected e.g. api.internal,*.corp.example,10.0.0.0/8,127.0.0.1)`,
        });
        return z.NEVER;
      }
      return entries;
    }),
  /** Largest response body an HTTP task keeps in its result; the rest is cut off (`truncated: true`). */
  HTTP_MAX_RESPONSE_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .max(16 * 1024 * 1024)
    .default(256 * 1024),
  DEFAULT_TIMEZONE: z
    .string()
    .default('UTC')
    .refine((zone) => isValidTimezone(zone), 'must be an IANA time zone such as UTC or Asia/Shanghai'),
  // Query limits, checked before a query runs (src/graphql/queryLimits.ts).
  MAX_QUERY_DEPTH: z.coerce.number().int().min(1).max(1000).default(12),
  MAX_QUERY_COST: z.coerce.number().int().min(1).default(50_000),
  MAX_ALIASES: z.coerce.number().int().min(0).max(10_000).default(30),
  MAX_QUERY_TOKENS: z.coerce.number().int().min(100).max(1_000_000).default(5_000),
  // Input sizes: one JSON value (argDict, record data, template arguments, handler result), one request body.
  MAX_JSON_BYTES: z.coerce.number().int().min(1024).default(1_048_576),
  MAX_REQUEST_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(16 * 1_048_576),
  // Admission control (src/ops/AdmissionControl.ts): GraphQL requests worked on at once, the longest one
  // waits for a slot before it is answered 503 SERVER_BUSY, and the bytes of answers that clients have not
  // read that the instance keeps (above it, the longest-stalled ones are dropped with their sockets).
  MAX_CONCURRENT_REQUESTS: z.coerce.number().int().min(1).max(10_000).default(16),
  MAX_QUEUE_WAIT_MS: z.coerce.number().int().min(0).max(600_000).default(2_000),
  MAX_UNSENT_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(64 * 1_048_576),
  // Bytes of request bodies held at once, counted as they arrive (a small body until it is in, a large one
  // until its answer), before their requests wait for a slot: a slow upload holds memory within this
  // budget, not a slot. A body whose Content-Length cannot fit is refused before it is read, and one that
  // grows past the budget as it arrives is cut off: 503 SERVER_BUSY, the connection closed. One body alone
  // always fits (AdmissionControl.receiving).
  MAX_RECEIVING_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(64 * 1_048_576),
  // How long a request's body may take to arrive once its headers have (408 after it, and the connection is
  // closed); at most REQUEST_TIMEOUT_MS, which bounds the whole request. Bodies are read before their
  // request waits for a slot, so a slow body holds a connection and its bytes, never a slot.
  BODY_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(10_000),
  // Bodies one client address may have arriving at once (those that did not come with their headers);
  // past it, 503 SERVER_BUSY at once. 0: no cap (behind a proxy that streams bodies, every client has its address).
  MAX_RECEIVING_PER_CLIENT: z.coerce.number().int().min(0).max(100_000).default(32),
  // Operations (subscriptions, and queries and mutations in flight) one graphql-ws connection may have at
  // once; the next subscribe is refused with QUOTA_EXCEEDED and the connection's others go on.
  MAX_SUBSCRIPTIONS_PER_CONNECTION: z.coerce.number().int().min(1).max(100_000).default(100),
  // How far V8 lets the heap grow past what its last full collection kept before it collects again, in
  // percent (0: V8's own choice, up to 300 % on a machine with much memory, so a server that holds 80 MB
  // sits at 320 MB between collections). See src/ops/heap.ts.
  HEAP_GROWTH_PERCENT: z.coerce.number().int().min(0).max(1000).default(100),
  // A request's time budget; also the longest one database statement may run on PostgreSQL.
  REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  // How long a date-field hook or a single low-code record write waits for each lock of the date-field
  // layer (a template change of its model holds one until it commits) before it fails with TIMEOUT.
  HOOK_LOCK_WAIT_MS: z.coerce.number().int().min(10).max(600_000).default(10_000),
  // Browser origins besides the server's own that may call the API (CORS and WebSocket upgrades).
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((text, ctx) => {
      const origins: string[] = [];
      for (const part of text
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)) {
        const origin = originOf(part);
        if (!origin) {
          ctx.addIssue({
            code: 'custom',
            message: `"${part}" is not an origin such as https://app.example.com (scheme, host and port; "*" is not allowed)`,
          });
          return z.NEVER;
        }
        origins.push(origin);
      }
      return origins;
    }),
  // History retention (src/history/): finished tasks, and runs, logs and events, older than this many
  // days are deleted in small batches; unset keeps everything (a tenant's own setting still applies).
  HISTORY_RETENTION_DAYS: z.coerce.number().int().min(1).max(36_500).optional(),
  HISTORY_PRUNE_INTERVAL_MS: z.coerce.number().int().min(1000).default(600_000),
  // Where pruned history is written first, as gzip JSON lines (unset: not archived).
  ARCHIVE_DIR: z.string().min(1).optional(),
  // Where services.BackupSvc.backupDatabase of the example app may write.
  BACKUP_DIR: z.string().min(1).default('./data/backups'),
  // Authentication (src/auth/). Any of the four credentials below turns it on.
  ADMIN_API_KEY: z.string().min(16, 'must be at least 16 characters; use a long random value (openssl rand -hex 32)').optional(),
  AUTH_JWT_SECRET: z.string().min(32, 'must be at least 32 characters: HS256 needs a 256-bit secret').optional(),
  AUTH_JWT_PUBLIC_KEY: z
    .string()
    // Environment files often hold a PEM on one line with literal \n.
    .transform((pem) => pem.replace(/\\n/g, '\n'))
    .refine((pem) => isPublicKey(pem), 'must be a PEM public key (-----BEGIN PUBLIC KEY-----, RSA, EC or Ed25519)')
    .optional(),
  AUTH_JWKS_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL serving a JSON Web Key Set' }).optional(),
  AUTH_JWT_ISSUER: z.string().min(1).optional(),
  AUTH_JWT_AUDIENCE: z.string().min(1).optional(),
  AUTH_JWT_TENANT_CLAIM: z.string().min(1).default('tenant_id'),
  AUTH_JWT_ROLE_CLAIM: z.string().min(1).default('role'),
  AUTH_DISABLED: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
});

export type Config = z.infer<typeof envSchema>;

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`Invalid configuration:\n  ${issues.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable means "not set", as in most shells' `FOO= cmd`.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  const problem = authConfigProblem(parsed.data, parsed.data.HOST);
  if (problem) throw new ConfigError([problem]);
  return parsed.data;
}

/** `https://app.example.com:8443` as browsers send it in `Origin`, or undefined for anything else. */
export function originOf(value: string): string | undefined {
  try {
    const url = new URL(value);
    const bare = url.pathname === '/' && !url.search && !url.hash && !url.username && !value.endsWith('/');
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !bare) return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

/** Whether a credential is configured (ADMIN_API_KEY or a way to verify JWTs): then every request must bring one. */
export function credentialsConfigured(config: Config): boolean {
  return Boolean(config.ADMIN_API_KEY || config.AUTH_JWT_SECRET || config.AUTH_JWT_PUBLIC_KEY || config.AUTH_JWKS_URL);
}

/**
 * Without a configured credential every request is an anonymous ADMIN: fine on a loopback address (one
 * developer's machine), never by accident where other machines can connect. Returns why `host` may not
 * be served with this configuration, or null.
 */
export function authConfigProblem(config: Config, host: string): string | null {
  const configured = credentialsConfigured(config);
  if (config.AUTH_DISABLED && configured) {
    return 'AUTH_DISABLED: is true, but a credential is configured (ADMIN_API_KEY or AUTH_JWT_*); remove one of them';
  }
  if (!configured && !config.AUTH_DISABLED && !isLoopbackHost(host)) {
    return (
      `HOST: ${host} can be reached from other machines, but no credential is configured, so anyone could use every tenant. ` +
      'Set ADMIN_API_KEY (and/or AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY or AUTH_JWKS_URL), or AUTH_DISABLED=true to run without authentication on purpose'
    );
  }
  return null;
}

export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

function isPublicKey(pem: string): boolean {
  try {
    return createPublicKey(pem).type === 'public';
  } catch {
    return false;
  }
}

/** Zones found valid so far: building an Intl.DateTimeFormat costs 50-200 µs, and every task creation asks. */
const validZones = new Set<string>();

export function isValidTimezone(zone: string): boolean {
  if (validZones.has(zone)) return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch {
    return false;
  }
  // Bounded: zone names are case-insensitive, so clients could otherwise grow it without end.
  if (validZones.size < 1000) validZones.add(zone);
  return true;
}
