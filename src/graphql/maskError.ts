import { createGraphQLError, maskError as yogaMaskError } from 'graphql-yoga';
import { GraphQLError } from 'graphql';
import { ChronographError } from '../errors.js';
import type { Logger } from '../logger.js';

/**
 * The one place where domain errors become GraphQL errors. A ChronographError keeps its message and
 * gets `extensions.code` (plus details such as the input `field`); anything else is unexpected: it is
 * logged with its stack and the client sees only "Unexpected error.".
 */
export function createMaskError(logger: Logger) {
  return (error: unknown, message: string, isDev?: boolean): Error => {
    const original = error instanceof GraphQLError ? error.originalError : error;
    if (original instanceof ChronographError) {
      return createGraphQLError(original.message, {
        nodes: error instanceof GraphQLError ? error.nodes : undefined,
        path: error instanceof GraphQLError ? error.path : undefined,
        extensions: { ...original.details, code: original.code },
      });
    }
    if (error instanceof GraphQLError && !error.originalError) return error; // parse/validation errors
    logger.error({ err: original }, 'unexpected error in a GraphQL operation');
    return yogaMaskError(error, message, isDev);
  };
}
