import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import type { Database } from './Database.js';
import { BREAKING_MIGRATIONS_TABLE, MIGRATED_CHANNEL, shippedMigrationNames } from './migrate.js';

/**
 * Watches the database for migrations that a newer Chronograph applies while this instance runs (a
 * rolling deploy). A migration compatible with this version (the usual kind) is logged once, and the
 * instance goes on. A breaking one (`-- chronograph: breaking`, see isBreaking) means that this version's
 * statements may no longer fit the tables: `onBreaking` is called once, with the breaking migrations this
 * version does not have, and the instance stops (Chronograph's `outdated`).
 *
 * Each migration is announced on MIGRATED_CHANNEL by name when it commits. A breaking migration is also
 * recorded in BREAKING_MIGRATIONS_TABLE, which is read at start (a migration that committed between this
 * instance's own migration check and its LISTEN) and after the LISTEN connection came back (an
 * announcement sent while it was down is lost).
 */
export class SchemaWatch {
  private unlisten?: () => Promise<void>;
  private outdated = false;
  /** Newer compatible migrations already logged. */
  private readonly seen = new Set<string>();
  private retry?: NodeJS.Timeout;

  constructor(
    private readonly db: Pick<Database, 'listen'>,
    private readonly prisma: PrismaClient,
    private readonly logger: Logger,
    private readonly onBreaking: (migrations: string[]) => void,
  ) {}

  async start(): Promise<void> {
    this.unlisten ??= await this.db.listen(MIGRATED_CHANNEL, (name) => void this.check(name));
    await this.check('');
  }

  async stop(): Promise<void> {
    const unlisten = this.unlisten;
    this.unlisten = undefined;
    await unlisten?.();
    clearTimeout(this.retry);
  }

  /** After the announcement of migration `announced` ('' after a reconnect, or at start). */
  private async check(announced: string): Promise<void> {
    if (this.outdated) return;
    try {
      const shipped = await shippedMigrationNames();
      if (announced && shipped.has(announced)) return; // applied by an instance of this version
      const rows = await this.prisma.$queryRawUnsafe<{ name: string }[]>(
        `SELECT migration_name AS name FROM "${BREAKING_MIGRATIONS_TABLE}" ORDER BY migration_name`,
      );
      const breaking = rows.map((r) => r.name).filter((name) => !shipped.has(name));
      if (breaking.length > 0) {
        if (this.outdated) return; // another check found them meanwhile
        this.outdated = true;
        this.onBreaking(breaking);
      } else if (announced && !this.seen.has(announced)) {
        this.seen.add(announced);
        this.logger.warn(
          { migration: announced },
          'a newer Chronograph applied a migration this version does not have; it is compatible with this version, which goes on running (start only the newer version from now on: this one refuses to start on this database)',
        );
      }
    } catch (error) {
      // Read again in a second (a database that does not answer is the readiness probe's to report).
      this.logger.warn(
        { err: error, migration: announced || undefined },
        'could not read the breaking migrations of the database; trying again',
      );
      if (this.unlisten) {
        clearTimeout(this.retry);
        this.retry = setTimeout(() => void this.check(announced), 1_000);
        this.retry.unref();
      }
    }
  }
}
