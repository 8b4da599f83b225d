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
