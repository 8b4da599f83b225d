import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import type { Database } from './Database.js';
import { BREAKING_MIGRATIONS_TABLE, MIGRATED_CHANNEL, shippedMigrationNames } from './migrate.js';

/** How long a failed read of the breaking migrations waits before the next one: doubling from 1 s, at most 30 s. */
const RETRY_MS = { first: 1_000, max: 30_000 };

/**
 * Watches the database for migrations that a newer Chronograph applies while this instance runs (a
 * rolling deploy). A migration compatible with this version (the usual kind) is logged once, and the
 * instance goes on. A breaking one (`-- chronograph: breaking`, see isBreaking) means that this version's
 * statements may no longer fit the tables: `onBreaking` is called once, with the breaking migrations this
 * version does not have, and the instance stops (Chronograph's `outdated`).
 *
 * Each migration is announced on MIGRATED_CHANNEL by name when it commits. A breaking migration is also
 * recorded in BREAKING_MIGRATIONS_TABLE, which is read at start (a migration that committed between this
 * instance's own migration check and its LISTEN; a start whose read fails fails) and after the LISTEN
 * connection came back (an announcement sent while it was down is lost). A read that fails later is
 * tried again, with the announcements it was for, until one succeeds.
 */
export class SchemaWatch {
  private unlisten?: () => Promise<void>;
  private outdated = false;
  /** Announced migrations of other versions not yet looked up (a read failed), and those already logged. */
  private readonly pending = new Set<string>();
  private readonly logged = new Set<string>();
  private retry?: NodeJS.Timeout;
  private retryMs = RETRY_MS.first;

  constructor(
    private readonly db: Pick<Database, 'listen'>,
    private readonly prisma: PrismaClient,
    private readonly logger: Logger,
    private readonly onBreaking: (migrations: string[]) => void,
  ) {}

  /** Listens, then reads what was recorded before; rejects when that read fails. */
  async start(): Promise<void> {
    this.unlisten ??= await this.db.listen(MIGRATED_CHANNEL, (name) => void this.check(name));
    await this.read();
  }

  async stop(): Promise<void> {
    const unlisten = this.unlisten;
    this.unlisten = undefined;
    clearTimeout(this.retry);
    await unlisten?.();
  }

  /** After the announcement of migration `announced` ('' after a reconnect). */
  private async check(announced: string): Promise<void> {
    if (this.outdated || !this.unlisten) return;
    if (announced) {
      if ((await shippedMigrationNames()).has(announced)) return; // applied by an instance of this version
      this.pending.add(announced);
    }
    try {
      await this.read();
      this.retryMs = RETRY_MS.first;
    } catch (error) {
      // The readiness probe reports a database that does not answer; this only has to look again.
      this.logger.warn({ err: error, retryMs: this.retryMs }, 'could not read the breaking migrations of the database; trying again');
      clearTimeout(this.retry);
      this.retry = setTimeout(() => void this.check(''), this.retryMs);
      this.retry.unref();
      this.retryMs = Math.min(RETRY_MS.max, this.retryMs * 2);
    }
  }

  /** Reads the breaking migrations: stops on one this version does not have, else logs the announced ones. */
  private async read(): Promise<void> {
    const shipped = await shippedMigrationNames();
    const rows = await this.prisma.$queryRawUnsafe<{ name: string }[]>(
      `SELECT migration_name AS name FROM "${BREAKING_MIGRATIONS_TABLE}" ORDER BY migration_name`,
    );
    if (this.outdated) return; // another read found them meanwhile
    const breaking = rows.map((r) => r.name).filter((name) => !shipped.has(name));
    if (breaking.length > 0) {
      this.outdated = true;
      this.onBreaking(breaking);
      return;
    }
    for (const migration of this.pending) {
      this.pending.delete(migration);
      if (this.logged.has(migration)) continue;
      this.logged.add(migration);
      this.logger.warn(
        { migration },
        'a newer Chronograph applied a migration this version does not have; it is compatible with this version, which goes on running (start only the newer version from now on: this one refuses to start on this database)',
      );
    }
  }
}
