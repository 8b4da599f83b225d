import { type ASTNode, type DocumentNode, getOperationAST, Kind, type OperationDefinitionNode, type ValueNode, visit } from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import { isStorableText } from '../tasks/validate.js';

/**
 * Refuses, before anything runs, an operation whose input holds text PostgreSQL cannot store: a NUL
 * character or a lone UTF-16 surrogate, in any string, JSON string or JSON key, whether it comes in a
 * variable or as a literal in the document. Every argument of every field is covered at once, instead
 * of each service remembering; the answer is BAD_USER_INPUT naming the offending input in `field`,
 * the way variable errors name it: the path inside an input object (`argDict.note` of `$input` or of
 * a literal `input:`), else the argument (`reason`). A variable's value is named by where the operation
 * passes the variable (`reason: $r` → `reason`, `input: { argDict: $a }` → `argDict.k`), as the same
 * value written into the document would be.
 */
export function useStorableText(): Plugin {
  // A document's literals are the same at every request (yoga's parse cache hands the same DocumentNode
  // for the same text): each document is walked once.
  const literals = new WeakMap<DocumentNode, string[] | null>();
  const unstorableLiteralOnce = (document: DocumentNode) => {
    let found = literals.get(document);
    if (found === undefined) literals.set(document, (found = unstorableLiteral(document) ?? null));
    return found ?? undefined;
  };
  const check = (document: DocumentNode, variables: unknown, operationName: string | null | undefined) => {
    const inVariable = unstorableVariable(variables);
    const path = inVariable ? inDocument(document, operationName, inVariable) : unstorableLiteralOnce(document);
    const field = path && inputField(path);
    return field === undefined
      ? undefined
      : createGraphQLError(`${field} contains a NUL character or a lone UTF-16 surrogate, which cannot be stored`, {
          extensions: { code: 'BAD_USER_INPUT', field },
        });
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const error = check(args.document, args.variableValues, args.operationName);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const error = check(args.document, args.variableValues, args.operationName);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
  };
}

const uses = new WeakMap<OperationDefinitionNode, Map<string, string[]>>();

/**
 * A path inside a variable (its name, then object fields and `[i]` list positions) as the path of the
 * argument the operation passes the variable to (its first use), so that a value is named the same
 * whether it came in a variable or was written into the document; else the path as it is.
 */
export function inDocument(document: DocumentNode, operationName: string | null | undefined, path: string[]): string[] {
  const operation = getOperationAST(document, operationName);
  if (!operation) return path;
  let known = uses.get(operation);
  if (!known) uses.set(operation, (known = variableUses(document, operation)));
  const [variable, ...inside] = path;
  const argument = known.get(variable!);
  return argument ? [...argument, ...inside] : path;
}

/**
 * An input's path (a variable or argument, then object fields and `[i]` list positions) as `field` names
 * it: the path inside the input object when there is one (`argDict.note` of `$input` or of a literal
 * `input:`), else the variable or argument itself (`reason`, `records[1]`).
 */
export function inputField(path: string[]): string {
  const inside = path.length > 1 && !path[1]!.startsWith('[') ? path.slice(1) : path;
  return inside.join('.').replace(/\.\[/g, '[');
}

/**
 * The path of the first unstorable string among the variables, walked without recursion (they may nest
 * deeply) and without building a path per value (a batch holds tens of thousands): each entry on the
 * stack points to its parent, and only the offending value's path is put together.
 */
function unstorableVariable(variables: unknown): string[] | undefined {
  if (!variables || typeof variables !== 'object') return undefined;
  interface Entry {
    value: unknown;
    key: string;
    parent: Entry | undefined;
  }
  const pathOf = (entry: Entry | undefined) => {
    const path: string[] = [];
    for (let at = entry; at; at = at.parent) path.push(at.key);
    return path.reverse();
  };
  const stack: Entry[] = Object.entries(variables).map(([name, value]) => ({ value, key: name, parent: undefined }));
  while (stack.length > 0) {
    const entry = stack.pop()!;
    const { value } = entry;
    if (typeof value === 'string') {
      if (!isStorableText(value)) return pathOf(entry);
    } else if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        if (typeof item === 'string') {
          if (!isStorableText(item)) return [...pathOf(entry), `[${i}]`];
        } else if (item && typeof item === 'object') stack.push({ value: item, key: `[${i}]`, parent: entry });
      }
    } else if (value && typeof value === 'object') {
      for (const key in value) {
        if (!Object.hasOwn(value, key)) continue;
        if (!isStorableText(key)) return pathOf(entry);
        const item: unknown = (value as Record<string, unknown>)[key];
        if (typeof item === 'string') {
          if (!isStorableText(item)) return [...pathOf(entry), key];
        } else if (item && typeof item === 'object') stack.push({ value: item, key, parent: entry });
      }
    }
  }
  return undefined;
}

/**
 * Where the operation (and the fragments it may spread) passes each variable: the argument, then the
 * object fields and `[i]` list positions of the literal around it (`cancelTask(reason: $r)` → reason;
 * `createTimerTask(input: { argDict: $a })` → input, argDict). The first use of a variable counts.
 */
function variableUses(document: DocumentNode, operation: OperationDefinitionNode): Map<string, string[]> {
  const uses = new Map<string, string[]>();
  const definitions = document.definitions.filter((d) => d === operation || d.kind === Kind.FRAGMENT_DEFINITION);
  for (const definition of definitions) {
    visit(definition, {
      Argument(node) {
        // Breadth first, without recursion; values nest at most MAX_NESTING deep anyway.
        const queue: [ValueNode, string[]][] = [[node.value, [node.name.value]]];
        for (let i = 0; i < queue.length; i++) {
          const [value, path] = queue[i]!;
          if (value.kind === Kind.VARIABLE) {
            if (!uses.has(value.name.value)) uses.set(value.name.value, path);
          } else if (value.kind === Kind.OBJECT) {
            for (const field of value.fields) queue.push([field.value, [...path, field.name.value]]);
          } else if (value.kind === Kind.LIST) {
            value.values.forEach((item, at) => queue.push([item, [...path, `[${at}]`]]));
          }
        }
        return false;
      },
    });
  }
  return uses;
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
