import { afterEach, describe, expect, it } from 'vitest';
import { TaskEventFilter } from '../src/events/TaskEventFilter.js';
import { isStreamEnd, isTaskEvent } from '../src/events/TaskEventSubscription.js';
import { sseSubscribe } from './support/subscriptions.js';
import { backends, createTestApp, type TestApp } from './support/testApp.js';
import { waitFor } from './support/waitFor.js';

const future = { fullName: 'tasks.DataSync', startTime: '2030-01-01 10:00:00' };

describe.each(backends)('the end of a subscription the server ends (%s)', (backend) => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close().catch(() => {});
    t = undefined;
  });

  // A subscriber that had events waiting when the instance stopped gets them, then SHUTTING_DOWN with the
  // cursor of the last of them: resuming from it gives nothing twice (it used to name the event handed
  // out before the stop, so every waiting event came again).
  it('gives the cursor of the last event handed out, the buffered ones included', async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    const app = t.app;
    const sub = await app.taskEvents.subscribe(TaskEventFilter.parse('default'));
    await app.taskSvc.createTimerTask(future);
    const first = await sub.next();
    const firstId = (first.value as { id: bigint }).id;
    for (let i = 0; i < 3; i++) await app.taskSvc.createTimerTask(future);
    await waitFor(() => BigInt(app.taskEvents.status().floor) >= firstId + 3n, { what: 'the three events to be live' });
    await app.taskEvents.close();
    const rest: string[] = [];
    for (;;) {
      const r = await sub.next();
      if (r.done) break;
      rest.push(isStreamEnd(r.value) ? `${r.value.end} ${r.value.lastCursor}` : isTaskEvent(r.value) ? String(r.value.id) : 'progress');
    }
    const [a, b, c] = [firstId + 1n, firstId + 2n, firstId + 3n].map(String);
    expect(rest).toEqual([a, b, c, `SHUTTING_DOWN ${c}`]);
  });

  // History retention running while a subscription replays stored events: the pages it had not read yet
  // came back empty and it went live past the gap, without a word. It now ends with CURSOR_EXPIRED.
  it('ends a replay with CURSOR_EXPIRED when the events it has not replayed yet are pruned meanwhile', async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    const app = t.app;
    const tasks = await app.taskSvc.createTimerTasks(Array.from({ length: 300 }, () => future));
    for (const task of tasks) await app.taskSvc.forcedEnd(task.id); // 600 events, of finished tasks
    const [first] = await app.db.prisma.taskEvent.findMany({ orderBy: { id: 'asc' }, take: 1, select: { id: true } });
    const SUB = `subscription($after: String) { taskStatusChanged(after: $after) { cursor } }`;
    const sub = await sseSubscribe(app, SUB, { after: first!.id.toString() });
    const got: string[] = [];
    const one = (await sub.results.next()).value!;
    got.push(one.data.taskStatusChanged.cursor);
    await app.history.pruneBefore(new Date(Date.now() + 60_000), 'default');
    const pruned = (await app.db.prisma.tenant.findUnique({ where: { id: 'default' } }))!.eventsPrunedThrough!;
    let error: { extensions?: Record<string, unknown> } | undefined;
    let gone = 0;
    for await (const r of sub.results) {
      // The rest of the page read before the pruning: each of its events is NOT_FOUND (deleted) by now.
      if (r.errors?.[0]?.extensions?.code === 'NOT_FOUND') {
        gone++;
        got.push(r.errors[0].extensions.id as string);
        continue;
      }
      if (r.errors) {
        error = r.errors[0];
        break;
      }
      got.push(r.data.taskStatusChanged.cursor);
    }
    await sub.close();
    // That page was handed out (as events or NOT_FOUND); then the end, not the live stream past the gap.
    expect(gone).toBeGreaterThan(0);
    expect(error?.extensions).toEqual({ code: 'CURSOR_EXPIRED', lastCursor: got.at(-1), oldestCursor: pruned.toString() });
    expect(BigInt(got.at(-1)!)).toBeLessThan(pruned);
  });
});
