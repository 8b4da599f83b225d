import type { PrismaClient } from '../generated/prisma/client.js';

/** How far back a starting stream looks for ids that may still be in flight. */
export const START_WINDOW = 10_000;

export interface StreamStart {
  /** Every id up to here is committed or never will be, as far as the window can tell. */
  floor: bigint;
  /** The newest committed id: once the stream has passed it, "from now on" is well defined. */
  newest: bigint;
  /**
   * The ids above `floor` (up to `newest`) that had committed when the stream started: history, not
   * "from now on". Any other id above `floor` commits later (or never), so a subscriber that joins
   * before the stream has passed `newest` is owed it. At most START_WINDOW of them.
   */
  committed: bigint[];
}

/**
 * Where a starting stream begins. Among the newest START_WINDOW events, the first id followed by a
 * hole is where committed history may still be interrupted by a transaction in flight (or by a
 * rollback, which the stream settles the same way); starting there and settling forward makes "from
 * now on" lose nothing that commits after the stream started. One statement, so floor, newest and
 * the committed ids above the floor come from one snapshot. A transaction that stays open while
 * START_WINDOW newer events commit is the one case this does not cover.
 */
export async function readStreamStart(prisma: PrismaClient): Promise<StreamStart> {
  const [row] = await prisma.$queryRaw<{ floor: string; newest: string; committed: string[] }[]>`
    WITH recent AS (SELECT id FROM task_event ORDER BY id DESC LIMIT ${START_WINDOW}),
         start AS (
           SELECT coalesce(
                    (SELECT min(id) FROM (SELECT id, lead(id) OVER (ORDER BY id) AS next FROM recent) ids WHERE next > id + 1),
                    (SELECT max(id) FROM recent), 0) AS floor,
                  coalesce((SELECT max(id) FROM recent), 0) AS newest)
    SELECT start.floor::text AS floor, start.newest::text AS newest,
           coalesce((SELECT array_agg(id::text ORDER BY id) FROM recent WHERE id > start.floor), '{}') AS committed
      FROM start`;
  return { floor: BigInt(row!.floor), newest: BigInt(row!.newest), committed: row!.committed.map(BigInt) };
}
