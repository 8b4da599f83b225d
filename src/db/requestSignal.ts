import { AsyncLocalStorage } from 'node:async_hooks';

const store = new AsyncLocalStorage<AbortSignal | undefined>();

/**
 * Runs `fn` on behalf of a request whose work must stop when `signal` aborts (its time budget ran
 * out or its client went away): every database statement started inside it, however deep in the
 * services, checks the signal first (Database's Prisma client) and throws its reason instead of
 * running. A statement already running is bounded by PostgreSQL's statement_timeout.
 */
export function withRequestSignal<T>(signal: AbortSignal | undefined, fn: () => T): T {
  return signal ? store.run(signal, fn) : fn();
}

/** The abort signal of the request this code runs for, if any (the scheduler and the event stream have none). */
export function requestSignal(): AbortSignal | undefined {
  return store.getStore();
}

/**
 * Runs `fn` outside any request, for work shared by several requests that one leaving must not cancel.
 * As `run` with no signal, not `exit`: exit turns the async hooks off and on again on every call, which
 * cost tens of microseconds on the path from a create's commit to its handler's start.
 */
export function outsideRequest<T>(fn: () => T): T {
  return store.run(undefined, fn);
}
