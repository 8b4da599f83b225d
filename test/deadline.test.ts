import { setMaxListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { deadline } from '../src/ops/deadline.js';
import { collectGarbage } from '../src/ops/heap.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('deadline', () => {
  it('aborts when its time is up even if garbage is collected meanwhile (AbortSignal.any with AbortSignal.timeout does not)', async () => {
    const parent = new AbortController();
    // Fifty deadlines under one parent are this test's doing: without this Node prints a listener-leak
    // warning into every `npm test` log.
    setMaxListeners(50, parent.signal);
    let fired = 0;
    // Only the listener's closure and these signals are kept, as fetch keeps the signal it was given.
    const signals = Array.from({ length: 50 }, () => {
      const { signal } = deadline(100, () => new Error('time is up'), parent.signal);
      signal.addEventListener('abort', () => fired++, { once: true });
      return signal;
    });
    for (let i = 0; i < 3; i++) {
      collectGarbage();
      await sleep(10);
    }
    await sleep(300);
    expect(fired).toBe(50);
    expect(signals.every((s) => (s.reason as Error).message === 'time is up')).toBe(true);
  });

  it("aborts with its parent's reason, and stops watching both once disposed", async () => {
    const parent = new AbortController();
    const first = deadline(60_000, () => 'late', parent.signal);
    parent.abort('task ended');
    expect(first.signal.aborted).toBe(true);
    expect(first.signal.reason).toBe('task ended');

    const other = new AbortController();
    const second = deadline(50, () => 'late', other.signal);
    second.dispose();
    other.abort('after dispose');
    await sleep(100);
    expect(second.signal.aborted).toBe(false);
  });
});
