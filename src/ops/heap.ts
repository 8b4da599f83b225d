import v8 from 'node:v8';
import vm from 'node:vm';

let gc: (() => void) | undefined;

/**
 * A full garbage collection, now. V8 sizes the heap for the allocation rate it last saw and gives memory
 * back only when it collects, which a busy instance does rarely: after a flood of large requests it
 * would keep hundreds of megabytes of garbage for as long as normal traffic continues. Called once an
 * overload is over (AdmissionControl's onCalm); `--expose-gc` is set for the process at the first call.
 * Returns the heap's size before and after, in bytes.
 */
export function collectGarbage(): { before: number; after: number } {
  if (!gc) {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as () => void;
  }
  const before = process.memoryUsage().heapTotal;
  gc();
  return { before, after: process.memoryUsage().heapTotal };
}

/**
 * Caps how far the heap grows past what the last full collection kept before V8 collects again
 * (HEAP_GROWTH_PERCENT; 0 leaves V8's choice). V8 picks a factor between 1.1 and 4 from how fast it
 * collects: on a machine with much memory a busy server holding 80 MB of live objects climbs to
 * 320 MB between collections, and its resident memory with it, although a collection would give back
 * three quarters of it. With 100 % it holds at most twice what it keeps; collections come more often,
 * each no longer (their cost follows the live objects, not the garbage).
 */
export function limitHeapGrowth(percent: number): void {
  if (percent > 0) v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}
