import os from 'node:os';
import { z } from 'zod';
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
  /** Bearer token /metrics requires; unset leaves /metrics open (like /health and /ready). */
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** One info line per HTTP request (operation name, status, duration). */
  LOG_REQUESTS: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
  /** Hosts chronograph.http / chronograph.graphql may reach although the SSRF guard refuses their addresses. */
  HTTP_ALLOW_HOSTS: z
    .string()
    .default('')
    .transform((text, ctx) => {
      const entries = text.split(',').map((p) => p.trim()).filter(Boolean);
      try {
        HostPolicy.parse(entries);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `${(error as Error).message} (expected e.g. api.internal,*.corp.example,10.0.0.0/8,127.0.0.1)` });
        return z.NEVER;
      }
      return entries;
    }),
  /** Largest response body an HTTP task keeps in its result; the rest is cut off (`truncated: true`). */
  HTTP_MAX_RESPONSE_BYTES: z.coerce.number().int().min(0).max(16 * 1024 * 1024).default(256 * 1024),
  DEFAULT_TIMEZONE: z
    .string()
    .default('UTC')
    .refine((zone) => isValidTimezone(zone), 'must be an IANA time zone such as UTC or Asia/Shanghai'),
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

export function isValidTimezone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
