import { type ASTNode, type DocumentNode, Kind, visit } from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import { isStorableText } from '../tasks/validate.js';

/**
 * Refuses, before anything runs, an operation whose input holds text PostgreSQL cannot store: a NUL
 * character or a lone UTF-16 surrogate, in any string, JSON string or JSON key, whether it comes in a
 * variable or as a literal in the document. Every argument of every field is covered at once, instead
 * of each service remembering; the answer is BAD_USER_INPUT naming the offending input in `field`,
 * the way variable errors name it: the path inside an input object (`argDict.note` of `$input` or of
 * a literal `input:`), else the variable or argument (`reason`).
 */
export function useStorableText(): Plugin {
  const check = (document: DocumentNode, variables: unknown) => {
    const path = unstorableVariable(variables) ?? unstorableLiteral(document);
    const inside = path && path.length > 1 && !path[1]!.startsWith('[') ? path.slice(1) : path;
    const field = inside?.join('.').replace(/\.\[/g, '[');
    return field === undefined
      ? undefined
      : createGraphQLError(`${field} contains a NUL character or a lone UTF-16 surrogate, which cannot be stored`, {
          extensions: { code: 'BAD_USER_INPUT', field },
        });
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const error = check(args.document, args.variableValues);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const error = check(args.document, args.variableValues);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
  };
}

/** The path of the first unstorable string among the variables (walked without recursion: they may nest deeply). */
function unstorableVariable(variables: unknown): string[] | undefined {
  if (!variables || typeof variables !== 'object') return undefined;
  const stack: [unknown, string[]][] = Object.entries(variables).map(([name, value]) => [value, [name]]);
  while (stack.length > 0) {
    const [value, path] = stack.pop()!;
    if (typeof value === 'string') {
      if (!isStorableText(value)) return path;
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => stack.push([item, [...path, `[${i}]`]]));
    } else if (value && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        if (!isStorableText(key)) return path;
        stack.push([item, [...path, key]]);
      }
    }
  }
  return undefined;
}

/** The argument path of the first unstorable string literal in the document (names cannot hold such characters). */
function unstorableLiteral(document: DocumentNode): string[] | undefined {
  let found: string[] | undefined;
  const keyOf = (node: ASTNode) => (node.kind === Kind.ARGUMENT || node.kind === Kind.OBJECT_FIELD ? [node.name.value] : []);
  visit(document, {
    StringValue(node, _key, parent, _path, ancestors) {
      if (found !== undefined || isStorableText(node.value)) return;
      const path = [...ancestors, parent].flatMap((a) => (a && 'kind' in a ? keyOf(a as ASTNode) : []));
      found = path.length ? path : ['query'];
    },
  });
  return found;
}
