/**
 * Domain errors. Services throw these; src/graphql/maskError.ts turns them into GraphQL errors with the
 * same `extensions.code`. Anything that is not a ChronographError is unexpected and stays masked.
 */
export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'INVALID_CRON'
  | 'INVALID_START_TIME'
  | 'INVALID_TIMEZONE'
  | 'INVALID_ARG_DICT'
  | 'UNKNOWN_FUNC'
  | 'UNKNOWN_TEMPLATE'
  | 'UNKNOWN_TASK_TYPE'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'TIMEOUT'
  | 'QUERY_TOO_COMPLEX'
  | 'NOT_IMPLEMENTED'
  | 'SUBSCRIBER_TOO_SLOW'
  | 'SHUTTING_DOWN'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'QUOTA_EXCEEDED'
  | 'CURSOR_EXPIRED';

export class ChronographError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra machine-readable details, e.g. the offending input `field`. */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ChronographError';
  }
}

export const badInput = (message: string, field?: string) => new ChronographError('BAD_USER_INPUT', message, field ? { field } : {});

export const notFound = (what: string, id: string) =>
  new ChronographError('NOT_FOUND', `${what} ${JSON.stringify(id)} does not exist`, { id });

export const conflict = (message: string, details: Record<string, unknown> = {}) => new ChronographError('CONFLICT', message, details);

/** The same words for every missing or bad credential: the reason would only help an attacker. */
export const unauthenticated = () =>
  new ChronographError('UNAUTHENTICATED', 'Missing or invalid credential: send Authorization: Bearer <API key or JWT>');

export const forbidden = (message: string, details: Record<string, unknown> = {}) => new ChronographError('FORBIDDEN', message, details);
