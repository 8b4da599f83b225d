/**
 * Thrown by a handler when another attempt cannot succeed (a 4xx answer, a refused address, bad
 * arguments): the scheduler ends the occurrence at once instead of retrying, whatever `maxAttempts`
 * says. A recurring task still moves on to its next occurrence.
 *
 * The scheduler recognises it by its `retryable: false` property rather than by class, so an error
 * that crossed a realm (a worker thread, another copy of this module) keeps its meaning.
 */
export class NonRetryableError extends Error {
  readonly retryable = false;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NonRetryableError';
  }
}

/** Whether `error` says that retrying cannot help. */
export function isNonRetryable(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === false;
}
