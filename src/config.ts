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
  LEASE_WATCHDOG_MS: z.coerce.number().int().min(100).default(60_000),
  THREAD_MEMORY_LIMIT_MB: z.coerce.number().int().min(16).max(1_048_576).default(512),
  MAX_JSON_BYTES: z.coerce.number().int().min(1024).max(256 * 1024 * 1024).default(1_048_576),
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
