/** A signal that aborts after a time or with its parent, and the means to stop watching both. */
export interface Deadline {
  signal: AbortSignal;
  /** Stops the timer and stops listening to the parent; call it when the work is over. */
  dispose(): void;
}

/**
 * A signal that aborts with `reason()` after `ms`, or with `parent`'s reason when `parent` aborts first.
 *
 * Not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`, for two faults of Node 20:
 * - the composite holds its sources weakly, so a garbage collection before the time is up can collect the
 *   timeout signal, and the composite then never aborts (200 such signals with a GC in between: none
 *   fired). An HTTP task's `timeoutMs` was silently not enforced that way.
 * - a composite with an 'abort' listener is kept alive until it aborts; listeners that are removed only on
 *   abort (graphql-tools' executor) made every such signal a leak.
 * Here the timer holds the controller strongly until it fires or dispose() clears it.
 */
export function deadline(ms: number, reason: () => unknown, parent?: AbortSignal): Deadline {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(reason()), ms);
  timer.unref();
  const onParentAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) onParentAbort();
  else parent?.addEventListener('abort', onParentAbort, { once: true });
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onParentAbort);
    },
  };
}
