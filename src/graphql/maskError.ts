import type { GraphQLError } from 'graphql';
import { createGraphQLError, maskError as yogaMaskError } from 'graphql-yoga';
import { errorCodes } from '../db/dbErrors.js';
import { ChronographError } from '../errors.js';
import type { Logger } from '../logger.js';

/**
 * The one place where errors become what clients see and what the log says.
 * - A ChronographError keeps its message and gets `extensions.code` (plus details such as the input
 *   `field`). It is the client's mistake: logged at info, without a stack.
 * - A database statement or transaction that ran out of time is TIMEOUT, also at info.
 * - A transaction the database stopped for a concurrent one (deadlock_detected 40P01, serialization_failure
 *   40001: it wrote nothing) is CONFLICT with `retryable: true`, at warn (not a bug, not the client's doing).
 * - GraphQL's own parse, validation and request errors are passed on (with BAD_REQUEST when they
 *   carry no code), at info.
 * - Anything else is a bug: logged at error with its stack, and the client sees only
 *   "Unexpected error.".
 *
 * GraphQLError is recognised by shape, not `instanceof`: graphql ships CommonJS and ESM builds, and a
 * process can hold both (the dual-package hazard), so class identity is not reliable across libraries.
 */
export function createMaskError(logger: Logger) {
  const mask = maskWith(logger);
  return (error: unknown, message: string, isDev?: boolean): Error => clipped(mask(error, message, isDev));
}

/**
 * The longest message a client is sent (and the log keeps) for an error: many messages quote the value
 * refused (graphql-js's coercion errors, a scalar's, "unknown template …"), and a value of megabytes
 * came back whole, twice in some messages. Longer ones keep their start and say how long they were.
 */
export const MAX_ERROR_MESSAGE_LENGTH = 1000;

function clip(text: string): string {
  return text.length <= MAX_ERROR_MESSAGE_LENGTH
    ? text
    : `${text.slice(0, MAX_ERROR_MESSAGE_LENGTH)}… (cut: ${text.length} characters in all)`;
}

/** The error with its message, and any text in its extensions, clipped (see MAX_ERROR_MESSAGE_LENGTH). */
export function clipError<E extends Error>(error: E): E | GraphQLError {
  return clipped(error) as E | GraphQLError;
}

function clipped(error: Error): Error {
  const extensions = isGraphQLError(error) ? error.extensions : undefined;
  const longExtension = extensions && Object.values(extensions).some((v) => typeof v === 'string' && v.length > MAX_ERROR_MESSAGE_LENGTH);
  if (error.message.length <= MAX_ERROR_MESSAGE_LENGTH && !longExtension) return error;
  const graphqlError = isGraphQLError(error) ? error : undefined;
  return createGraphQLError(clip(error.message), {
    nodes: graphqlError?.nodes,
    path: graphqlError?.path,
    extensions: extensions && Object.fromEntries(Object.entries(extensions).map(([k, v]) => [k, typeof v === 'string' ? clip(v) : v])),
  });
}

function maskWith(logger: Logger) {
  return (error: unknown, message: string, isDev?: boolean): Error => {
    const graphqlError = isGraphQLError(error) ? error : undefined;
    let original: unknown = error;
    while (isGraphQLError(original) && original.originalError) original = original.originalError;
    const location = { nodes: graphqlError?.nodes, path: graphqlError?.path };
    if (original instanceof ChronographError) {
      logger.info(
        { code: original.code, ...original.details, path: graphqlError?.path?.join('.'), message: clip(original.message) },
        'request refused',
      );
      return createGraphQLError(original.message, { ...location, extensions: { ...original.details, code: original.code } });
    }
    if (isDatabaseTimeout(original)) {
      logger.info({ code: 'TIMEOUT', path: graphqlError?.path?.join('.') }, 'a database statement ran out of time');
      return createGraphQLError('The database took too long for this request and it was stopped (REQUEST_TIMEOUT_MS)', {
        ...location,
        extensions: { code: 'TIMEOUT' },
      });
    }
    if (!isGraphQLError(original) && isTransactionConflict(original)) {
      logger.warn(
        { code: 'CONFLICT', path: graphqlError?.path?.join('.'), err: original },
        'a transaction was stopped by a concurrent one',
      );
      return createGraphQLError(
        'This request conflicted with a concurrent one and the database stopped its transaction (a deadlock or a serialization failure), which wrote nothing; retry',
        { ...location, extensions: { code: 'CONFLICT', retryable: true } },
      );
    }
    if (graphqlError && !graphqlError.originalError) {
      const code = graphqlError.extensions?.code ?? 'BAD_REQUEST';
      logger.info({ code, message: clip(graphqlError.message) }, 'request refused');
      return graphqlError.extensions?.code
        ? graphqlError
        : createGraphQLError(graphqlError.message, { ...location, extensions: { ...graphqlError.extensions, code } });
    }
    logger.error({ err: original }, 'unexpected error in a GraphQL operation');
    return yogaMaskError(error, message, isDev);
  };
}

function isGraphQLError(value: unknown): value is GraphQLError {
  return value instanceof Error && value.name === 'GraphQLError';
}

/**
 * PostgreSQL's statement_timeout (SQLSTATE 57014) through Prisma's driver adapter, an interactive
 * transaction past its time limit (P2028), or no pooled connection free in time (P2024).
 */
function isDatabaseTimeout(error: unknown): boolean {
  if (!(error instanceof Error) || error.name !== 'PrismaClientKnownRequestError') return false;
  const code = (error as Error & { code?: unknown }).code;
  return code === 'P2028' || code === 'P2024' || errorCodes(error).includes('57014');
}

/**
 * PostgreSQL stopped the transaction for a concurrent one: deadlock_detected (40P01) or
 * serialization_failure (40001) as the pg driver or Prisma's driver adapter reports the SQLSTATE, or
 * Prisma's P2034 (a write conflict or a deadlock). By these codes only, never by the message, which may
 * quote a client's value ("40001" is a fine Int).
 */
function isTransactionConflict(error: unknown): boolean {
  const codes = errorCodes(error);
  return codes.includes('P2034') || codes.includes('40P01') || codes.includes('40001');
}
