import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { LeaseKeeper, type LeaseReport } from '../src/scheduler/LeaseKeeper.js';
import { RunList, readRuns } from '../src/scheduler/sharedRuns.js';
import { createTestApp, createTestDatabase, type TestDatabase } from './support/testApp.js';

const someRuns = (n: number) => Array.from({ length: n }, () => ({ taskId: randomUUID(), runId: randomUUID() }));

describe('the run list the heartbeat thread reads (sharedRuns)', () => {
  it('reads back what was written last, in order, also once the list outgrew its buffer', () => {
    const grown: SharedArrayBuffer[] = [];
    const list = new RunList(2, (buffer) => grown.push(buffer));
    expect(readRuns(list.buffer)).toEqual([]);
    const runs = someRuns(5);
    list.set(runs.slice(0, 2));
    expect(readRuns(list.buffer)).toEqual(runs.slice(0, 2));
    const first = list.buffer;
    list.set(runs);
    expect(grown).toEqual([list.buffer]);
    expect(readRuns(list.buffer)).toEqual(runs);
    // The reader that still holds the first buffer sees the last list written there, whole.
    expect(readRuns(first)).toEqual(runs.slice(0, 2));
    list.set(runs.slice(3));
    expect(readRuns(list.buffer)).toEqual(runs.slice(3));
    expect(grown).toHaveLength(1);
  });

  it('gives no list while the writer is in the middle of a change', () => {
    const list = new RunList(4);
    list.set(someRuns(3));
    const version = new Int32Array(list.buffer, 0, 1);
    Atomics.add(version, 0, 1); // as set() does before it writes
    expect(readRuns(list.buffer, 3)).toBeNull();
    Atomics.add(version, 0, 1);
    expect(readRuns(list.buffer)).toHaveLength(3);
  });

  it('refuses an id that is not a UUID and keeps the last list readable', () => {
    const list = new RunList(4);
    const runs = someRuns(2);
    list.set(runs);
    expect(() => list.set([runs[0]!, { taskId: 'task-1', runId: randomUUID() }])).toThrow(/not a UUID/);
    expect(readRuns(list.buffer)).toEqual(runs);
  });
});

describe.skipIf(!process.env.TEST_DATABASE_URL)('the heartbeat thread (postgres)', () => {
  let db: TestDatabase | undefined;
  let keeper: LeaseKeeper | undefined;
  afterEach(async () => {
    await keeper?.stop();
    keeper = undefined;
    await db?.drop();
    db = undefined;
  });

  it('extends the leases of the runs as the main thread last listed them, past the first buffer', { timeout: 20_000 }, async () => {
    db = await createTestDatabase('postgres');
    const t = await createTestApp('postgres', { database: db, env: { SCHEDULER_ENABLED: 'false' } });
    try {
      const beats: LeaseReport[] = [];
      keeper = new LeaseKeeper({
        workerId: 'w-list',
        leaseMs: 200,
        watchdogMs: 60_000,
        databaseUrl: db.url,
        sql: t.app.db.sql,
        logger: createLogger('warn'),
        onBeat: (report) => beats.push(report),
      });
      await keeper.start();
      const asked = async (runs: { runId: string }[]) => {
        const want = runs.map((r) => r.runId);
        const deadline = Date.now() + 5_000;
        for (;;) {
          if (beats.some((b) => JSON.stringify(b.asked) === JSON.stringify(want))) return;
          if (Date.now() > deadline) throw new Error(`no heartbeat asked for ${want.length} runs; last: ${beats.at(-1)?.asked.length}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      };
      const runs = someRuns(150);
      keeper.update(runs.slice(0, 3));
      await asked(runs.slice(0, 3));
      keeper.update(runs);
      await asked(runs);
      keeper.update(runs.slice(100, 101));
      await asked(runs.slice(100, 101));
    } finally {
      await t.close();
    }
  });
});
