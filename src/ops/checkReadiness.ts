import type { Database } from '../db/Database.js';
import { shippedMigrationNames } from '../db/migrate.js';
import type { Scheduler } from '../scheduler/Scheduler.js';
import { appliedMigrationNames, pingDatabase } from './sql.js';

export interface ReadinessSource {
  db: Database;
  scheduler: Scheduler;
  schedulerEnabled: boolean;
  /** True once the instance is shutting down: it must leave the load balancer first. */
  stopping: boolean;
}

export interface Readiness {
  ready: boolean;
  /** The first failed check, in words (absent when ready). */
  reason?: string;
  checks: {
    database: { ok: boolean; ms?: number; error?: string };
    migrations: { ok: boolean; pending?: string[]; error?: string };
    notifications: { ok: boolean; state: string };
    scheduler: { ok: boolean; enabled: boolean; running: boolean };
    shutdown: { ok: boolean };
  };
}

/** How long the database may take to answer a probe before the instance counts as not ready. */
const PROBE_TIMEOUT_MS = 2_000;

/**
 * Whether this instance can do its job right now: the database answers within PROBE_TIMEOUT_MS, every
 * migration this code ships is applied (a database restored from an old backup is not), the LISTEN
 * connection that carries wake-ups and live events is up (or not needed yet), the scheduler runs when
 * it is enabled, and the instance is not shutting down. Two small statements per probe.
 */
export async function checkReadiness(source: ReadinessSource): Promise<Readiness> {
  const { db, scheduler } = source;
  const started = performance.now();
  let database: Readiness['checks']['database'];
  let migrations: Readiness['checks']['migrations'];
  try {
    const [applied, wanted] = await withTimeout(
      Promise.all([pingDatabase(db.prisma).then(() => appliedMigrationNames(db.prisma)), shippedMigrationNames()]),
      PROBE_TIMEOUT_MS,
    );
    database = { ok: true, ms: Math.round(performance.now() - started) };
    const done = new Set(applied);
    const pending = [...wanted].filter((name) => !done.has(name));
    migrations = pending.length ? { ok: false, pending } : { ok: true };
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n').filter(Boolean).at(-1)!.trim() : String(error);
    database = { ok: false, error: message };
    migrations = { ok: false, error: 'unknown: the database did not answer' };
  }
  const state = db.listenerState();
  const checks: Readiness['checks'] = {
    database,
    migrations,
    notifications: { ok: state !== 'disconnected', state },
    scheduler: { ok: !source.schedulerEnabled || scheduler.isRunning, enabled: source.schedulerEnabled, running: scheduler.isRunning },
    shutdown: { ok: !source.stopping },
  };
  const reason = !checks.shutdown.ok
    ? 'the instance is shutting down'
    : !database.ok
      ? `the database is unreachable: ${database.error}`
      : !migrations.ok
        ? `migrations are not applied: ${migrations.pending?.join(', ')}`
        : !checks.notifications.ok
          ? 'the LISTEN connection to the database is down (reconnecting)'
          : !checks.scheduler.ok
            ? 'the scheduler is enabled but not running'
            : undefined;
  return { ready: reason === undefined, ...(reason && { reason }), checks };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
