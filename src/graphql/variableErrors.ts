import type { DocumentNode, GraphQLError } from 'graphql';
import { createGraphQLError } from 'graphql-yoga';
import { inDocument, inputField } from './useStorableText.js';

/**
 * graphql-js reports variables that do not fit their declared types ("Variable "$input" got invalid
 * value ... at "input.argDict"; ...") without an error code or field. Clients get BAD_USER_INPUT with
 * `field` naming the input where the operation uses it, as for the same value written into the document
 * (`tasks(first: $f)` → `first`; `$input` of `createTimerTask(input:)` at `input.role` → `role`;
 * `inputs[1].queue`), over HTTP, SSE and WebSocket alike; without graphql-js's wrapped original error,
 * which error masking would take for a bug. An error with another code, or with a field, is left as it is.
 */
export function codedVariableError(
  error: GraphQLError,
  document: DocumentNode | undefined,
  operationName: string | null | undefined,
): GraphQLError {
  const code = error.extensions?.code;
  // yoga codes a subscription's variable errors BAD_USER_INPUT itself, without the field.
  if ((code !== undefined && code !== 'BAD_USER_INPUT') || error.extensions?.field !== undefined) return error;
  if (!error.message.startsWith('Variable "$')) return error;
  const path = variablePath(error.message);
  const field = path && inputField(document ? inDocument(document, operationName, path) : path);
  return createGraphQLError(error.message, {
    nodes: error.nodes,
    extensions: { ...error.extensions, code: 'BAD_USER_INPUT', ...(field !== undefined && { field }) },
  });
}

/** `Variable "$inputs" got invalid value … at "inputs[1].queue"; …` → [inputs, [1], queue]; a whole variable → [its name]. */
function variablePath(message: string): string[] | undefined {
  // The path is the variable's name then fields and [i] positions: matched as such, so that a value
  // quoted before it that holds `"; ` is not taken for its end.
  const match = /^Variable "\$(\w+)" got invalid value (?:.* at "(\1(?:\.\w+|\[\d+\])+)"; |.*?; )/s.exec(message);
  if (!match) return undefined;
  const [, variable, at] = match;
  return at ? (at.match(/\[\d+\]|[^.[\]]+/g) ?? [variable!]) : [variable!];
}
