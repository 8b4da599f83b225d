import os from 'node:os';
import { z } from 'zod';

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
  APP_DIR: z.string().min(1).default('./app'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  WORKER_ID: z.string().min(1).default(`${os.hostname()}-${process.pid}`),
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(10_000),
  SUBSCRIPTION_BUFFER_SIZE: z.coerce.number().int().min(1).max(100_000).default(1000),
  SCHEDULER_ENABLED: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  CONCURRENCY: z.coerce.number().int().min(1).max(10_000).default(10),
  QUEUE_CONCURRENCY: z
    .string()
    .default('')
    .transform((text, ctx) => {
      const limits: Record<string, number> = {};
      for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
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
  DEFAULT_TIMEZONE: z
    .string()
    .default('UTC')
    .refine((zone) => isValidTimezone(zone), 'must be an IANA time zone such as UTC or Asia/Shanghai'),
  // Query limits, checked before a query runs (src/graphql/queryLimits.ts).
  MAX_QUERY_DEPTH: z.coerce.number().int().min(1).max(1000).default(12),
  MAX_QUERY_COST: z.coerce.number().int().min(1).default(60_000),
  MAX_ALIASES: z.coerce.number().int().min(0).max(10_000).default(30),
  MAX_QUERY_TOKENS: z.coerce.number().int().min(100).max(1_000_000).default(5_000),
  // Input sizes: one JSON value (argDict, record data, template arguments, handler result), one request body.
  MAX_JSON_BYTES: z.coerce.number().int().min(1024).default(1_048_576),
  MAX_REQUEST_BYTES: z.coerce.number().int().min(1024).default(16 * 1_048_576),
  // A request's time budget; also the longest one database statement may run on PostgreSQL.
  REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  // Browser origins besides the server's own that may call the API (CORS and WebSocket upgrades).
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((text, ctx) => {
      const origins: string[] = [];
      for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
        const origin = originOf(part);
        if (!origin) {
          ctx.addIssue({ code: 'custom', message: `"${part}" is not an origin such as https://app.example.com (scheme, host and port; "*" is not allowed)` });
          return z.NEVER;
        }
        origins.push(origin);
      }
      return origins;
    }),
  // Where services.BackupSvc.backupDatabase of the example app may write.
  BACKUP_DIR: z.string().min(1).default('./data/backups'),
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

export function isValidTimezone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
