import { afterEach, describe, expect, it } from 'vitest';
import { TaskEventFilter } from '../src/events/TaskEventFilter.js';
import { isStreamEnd } from '../src/events/TaskEventSubscription.js';
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
      rest.push(isStreamEnd(r.value) ? `${r.value.end} ${r.value.lastCursor}` : String(r.value.id));
    }
    const [a, b, c] = [firstId + 1n, firstId + 2n, firstId + 3n].map(String);
    expect(rest).toEqual([a, b, c, `SHUTTING_DOWN ${c}`]);
  });
});
