import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatChaosReport, runChaos } from './support/chaos.js';
import { createTestDatabase, type TestDatabase } from './support/testApp.js';

/**
 * The in-suite chaos run: three `npm start` processes on one PostgreSQL for about a minute, with random
 * SIGKILL, SIGSTOP/SIGCONT and SIGTERM, a poison task, a memory hog and unstorable results in the mix.
 * `npm run chaos -- --minutes 10` runs the long version and prints the same figures.
 */
describe.runIf(Boolean(process.env.TEST_DATABASE_URL))('chaos: instances killed, frozen and stopped while tasks run', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('postgres');
  });
  afterAll(() => database?.drop());

  it('loses no occurrence, never lets two valid leases overlap, ends every poison task, leaves nothing RUNNING', async () => {
    const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 100_000);
    const report = await runChaos({ databaseUrl: database.url!, durationMs: 60_000, instances: 3, leaseMs: 2000, rate: 4, crons: 2, seed });
    console.log(`chaos seed ${seed}\n${formatChaosReport(report)}`);
    expect(report.errors).toEqual([]);
    expect(report.lost).toEqual([]);
    expect(report.duplicates.bothHeldValidLease).toBe(0);
    expect(report.leftRunning).toBe(0);
    expect(new Set(report.actions.map((a) => a.kind))).toEqual(new Set(['SIGKILL', 'SIGSTOP', 'SIGTERM']));
    expect(report.poison.length).toBeGreaterThan(0);
    for (const p of report.poison)
      expect(p).toMatchObject({ status: 'FAILED', lastError: 'the worker running it stopped during attempt 2 of 2' });
    expect(report.poisonDeaths.length).toBeLessThanOrEqual(2 * report.poison.length);
    for (const h of report.hogs) {
      expect(h.status).toBe('FAILED');
      // Each attempt ends MEMORY_LIMIT, unless chaos killed the instance running it (ABANDONED): the
      // last attempt can be either, and the limit must have stopped it at least once.
      expect(h.runStatuses).toContain('MEMORY_LIMIT');
      expect(h.runStatuses.every((s) => s === 'MEMORY_LIMIT' || s === 'ABANDONED')).toBe(true);
    }
    for (const u of report.unstorable) {
      expect(u.status).toBe('FAILED');
      expect(u.errors.at(-1)).toMatch(/^result is not JSON: /);
    }
  }, 300_000);
});
