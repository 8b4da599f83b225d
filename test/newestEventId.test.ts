import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, createTestApp, type TestApp } from './support/testApp.js';

/**
 * A subscription's `after` is refused when it is beyond the newest event this database gave; the newest
 * is read from the id sequence, which a restore commonly resets with setval(seq, max + 1, false).
 */
describe.each(backends)('the newest event id (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(() => t?.close());

  it('is the last event id given, also after the sequence was reset to continue after it', async () => {
    await t.app.taskSvc.createTimerTask({ fullName: 'tasks.DataSync', startTime: '2099-01-01 10:00:00' });
    const prisma = t.app.db.prisma;
    const newest = (await prisma.taskEvent.findFirstOrThrow({ orderBy: { id: 'desc' }, select: { id: true } })).id;
    expect(await t.app.taskEvents.newestEventId()).toBe(newest);
    // As after a restore: the next id is max + 1, not yet called.
    await prisma.$queryRawUnsafe(`SELECT setval('task_event_id_seq', ${newest + 1n}, false)`);
    expect(await t.app.taskEvents.newestEventId()).toBe(newest);
  });
});
