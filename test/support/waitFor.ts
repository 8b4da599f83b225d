import type pg from 'pg';

/** Polls `check` until it returns a truthy value (or `timeoutMs` passes); for conditions with no event to await. */
export async function waitFor<T>(
  check: () => Promise<T> | T,
  { timeoutMs = 15_000, intervalMs = 20, what = 'condition' } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** How many backends of `client`'s database wait for a lock (PostgreSQL). */
export async function lockWaiterCount(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
  );
  return rows[0]!.n;
}

/** Waits until at least `n` backends of `client`'s database wait for a lock (PostgreSQL). */
export async function lockWaiters(client: pg.Client, n: number, what: string): Promise<void> {
  await waitFor(async () => (await lockWaiterCount(client)) >= n, { what });
}
