import { type ASTNode, type DocumentNode, GraphQLError, Kind, type ValueNode, visit } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { inputField } from './useStorableText.js';

/**
 * A value written into the document that does not fit its argument (`from: "+010000-01-01T00:00:00Z"`,
 * `priority: "high"`, an input object without a required field or with one its type does not have, a
 * required argument left out) is refused by validation, which names neither a code of ours nor the input
 * at fault. The same value in a variable is BAD_USER_INPUT with `field` (codeVariableErrors in
 * createYoga.ts); here such a validation error gets the same: code BAD_USER_INPUT and the field named as
 * services and variable errors name it (the path inside an input object, else the argument). It stays a
 * validation error otherwise: nothing runs, and the HTTP status is what yoga answers for any validation
 * error. Validation errors that are not about a value (a field the selection does not have, a variable
 * used where its type does not fit) keep yoga's GRAPHQL_VALIDATION_FAILED. Validation results are cached
 * per document, and so is this mapping.
 */
export function useLiteralErrors(): Plugin {
  return {
    onValidate:
      ({ params }) =>
      ({ result }) => {
        for (const error of result) {
          if (!(error instanceof GraphQLError) || error.extensions.code) continue;
          const field = literalField(params.documentAST, error);
          if (field === undefined) continue;
          // In place, as yoga's own validation plugin adds its code and status (which then keeps ours).
          (error.extensions as Record<string, unknown>).code = 'BAD_USER_INPUT';
          (error.extensions as Record<string, unknown>).field = field;
        }
      },
  };
}

/** The input a validation error about a literal value is about, or undefined if it is about something else. */
function literalField(document: DocumentNode, error: GraphQLError): string | undefined {
  const node = error.nodes?.[0];
  if (!node) return undefined;
  // `Field "createTimerTask" argument "input" of type "TimerTaskInput!" is required, but it was not provided.`
  const argument = /^Field "\w+" argument "(\w+)" of type .* is required, but it was not provided\.$/.exec(error.message);
  if (argument && node.kind === Kind.FIELD) return argument[1];
  if (!isValue(node) && node.kind !== Kind.OBJECT_FIELD) return undefined;
  if (node.kind === Kind.VARIABLE) return undefined;
  const path = pathOf(document, node);
  if (!path) return undefined;
  // `Field "TimerTaskInput.fullName" of required type "String!" was not provided.`: the object, and the field it lacks.
  const missing = /^Field "\w+\.(\w+)" of required type .* was not provided\.$/.exec(error.message);
  return inputField(missing && node.kind === Kind.OBJECT ? [...path, missing[1]!] : path);
}

function isValue(node: ASTNode): node is ValueNode {
  switch (node.kind) {
    case Kind.STRING:
    case Kind.INT:
    case Kind.FLOAT:
    case Kind.BOOLEAN:
    case Kind.NULL:
    case Kind.ENUM:
    case Kind.LIST:
    case Kind.OBJECT:
    case Kind.VARIABLE:
      return true;
    default:
      return false;
  }
}

/** The argument, object fields and list positions that lead to `target` in the document. */
function pathOf(document: DocumentNode, target: ASTNode): string[] | undefined {
  let found: string[] | undefined;
  const search = (value: ValueNode | ASTNode, path: string[]): boolean => {
    if (value === target) {
      found = path;
      return true;
    }
    if (value.kind === Kind.OBJECT)
      return value.fields.some((f) =>
        f === target ? ((found = [...path, f.name.value]), true) : search(f.value, [...path, f.name.value]),
      );
    if (value.kind === Kind.LIST) return value.values.some((v, i) => search(v, [...path, `[${i}]`]));
    return false;
  };
  visit(document, {
    Argument(node) {
      if (found === undefined && search(node.value, [node.name.value])) return false;
      return undefined;
    },
  });
  return found;
}
