import { createGraphQLError, maskError as yogaMaskError } from 'graphql-yoga';
import type { GraphQLError } from 'graphql';
import { ChronographError } from '../errors.js';
import type { Logger } from '../logger.js';

/**
 * The one place where domain errors become GraphQL errors. A ChronographError keeps its message and
 * gets `extensions.code` (plus details such as the input `field`); anything else is unexpected: it is
 * logged with its stack and the client sees only "Unexpected error.".
 *
 * GraphQLError is recognised by shape, not `instanceof`: graphql ships CommonJS and ESM builds, and a
 * process can hold both (the dual-package hazard), so class identity is not reliable across libraries.
 */
export function createMaskError(logger: Logger) {
  return (error: unknown, message: string, isDev?: boolean): Error => {
    const graphqlError = isGraphQLError(error) ? error : undefined;
    let original: unknown = error;
    while (isGraphQLError(original) && original.originalError) original = original.originalError;
    if (original instanceof ChronographError) {
      return createGraphQLError(original.message, {
        nodes: graphqlError?.nodes,
        path: graphqlError?.path,
        extensions: { ...original.details, code: original.code },
      });
    }
    if (graphqlError && !graphqlError.originalError) return graphqlError; // parse and validation errors
    logger.error({ err: original }, 'unexpected error in a GraphQL operation');
    return yogaMaskError(error, message, isDev);
  };
}

function isGraphQLError(value: unknown): value is GraphQLError {
  return value instanceof Error && value.name === 'GraphQLError';
}
