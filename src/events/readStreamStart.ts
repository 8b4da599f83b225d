import type { PrismaClient } from '../generated/prisma/client.js';

/** How far back a starting stream looks for ids that may still be in flight. */
export const START_WINDOW = 10_000;

export interface StreamStart {
  /** Every id up to here is committed or never will be, as far as the window can tell. */
  floor: bigint;
  /** The newest committed id: once the stream has passed it, "from now on" is well defined. */
  newest: bigint;
}

/**
 * Where a starting stream begins. Among the newest START_WINDOW events, the first id followed by a
 * hole is where committed history may still be interrupted by a transaction in flight (or by a
 * rollback, which the stream settles the same way); starting there and settling forward makes "from
 * now on" lose nothing that commits after the stream is ready. A transaction that stays open while
 * START_WINDOW newer events commit is the one case this does not cover.
 */
export async function readStreamStart(prisma: PrismaClient): Promise<StreamStart> {
  const [row] = await prisma.$queryRaw<{ floor: string; newest: string }[]>`
    SELECT coalesce(
             (SELECT min(id) FROM (SELECT id, lead(id) OVER (ORDER BY id) AS next
                                     FROM (SELECT id FROM task_event ORDER BY id DESC LIMIT ${START_WINDOW}) recent) ids
               WHERE next > id + 1),
             (SELECT max(id) FROM task_event), 0)::text AS floor,
           coalesce((SELECT max(id) FROM task_event), 0)::text AS newest`;
  return { floor: BigInt(row!.floor), newest: BigInt(row!.newest) };
}
