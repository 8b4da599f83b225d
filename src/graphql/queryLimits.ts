import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import type { FieldComplexityValue } from '@pothos/plugin-complexity';
import { createComplexityRule } from '@pothos/plugin-complexity';
import {
  type DocumentNode,
  type GraphQLError,
  type GraphQLField,
  type GraphQLOutputType,
  type GraphQLSchema,
  getNamedType,
  isListType,
  isNonNullType,
  Kind,
  Lexer,
  type ParseOptions,
  Source,
  TokenKind,
  TypeInfo,
  validate,
  visit,
  visitWithTypeInfo,
} from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import { ChronographError } from '../errors.js';
import { pageSize, pagingOf } from './PagingPlugin.js';

export interface QueryLimits {
  maxDepth: number;
  maxCost: number;
  maxAliases: number;
  maxTokens: number;
}

/** What a list costs when nothing says how long it is (a template list, a handler list, …). */
export const DEFAULT_LIST_SIZE = 20;
/**
 * A JSON value (argDict, result, record data) may hold up to MAX_JSON_BYTES, so reading one costs as
 * much as a hundred plain fields: a page of JSON values is bounded (500 at the default MAX_QUERY_COST)
 * while a task's page of runs with their results, inside a page of tasks, still fits.
 */
export const JSON_COST = 100;

/**
 * The cost of one field, for @pothos/plugin-complexity: 1 for a plain field, JSON_COST for a JSON
 * value, and for a field that returns many items, what one item's selection costs times how many it
 * returns at most: its page size (`first`/`last` up to its `extensions.paging.maxSize`, else the
 * default page), `count` when it takes one, else DEFAULT_LIST_SIZE. So `tasks(first: 500) { edges {
 * node { id } } }` costs about 1,000 and each nested list multiplies. A connection's `edges` cost
 * nothing of their own: the connection's page size already counts them. Every field gets this unless
 * it sets its own `complexity`, so new fields are covered without their authors doing anything.
 */
export function fieldCost<Context>(
  args: Record<string, unknown>,
  _ctx: Context,
  field: GraphQLField<unknown, Context, Record<string, unknown>>,
): FieldComplexityValue {
  const named = getNamedType(field.type);
  const own = named.name === 'JSON' ? JSON_COST : 1;
  const paging = pagingOf(field.extensions);
  if (paging?.maxSize !== undefined) return { field: own, multiplier: pageSize(paging, args) };
  if (!returnsList(field.type)) return own;
  if (field.name === 'edges' && named.name.endsWith('Edge')) return { field: 0, multiplier: 1 };
  const count = args.count;
  return { field: own, multiplier: typeof count === 'number' && count >= 0 ? count : DEFAULT_LIST_SIZE };
}

function returnsList(type: GraphQLOutputType): boolean {
  return isListType(isNonNullType(type) ? type.ofType : type);
}

/**
 * How deeply brackets (`{`, `[`, `(`) may nest in a document: selections, arguments, the values written
 * into them (list and object literals, variable defaults) and variable types. graphql-js parses them
 * recursively, so a document within MAX_QUERY_TOKENS (a list literal takes two tokens a level) could
 * otherwise nest thousands deep and overflow the parser's stack. 100 holds any query within the other
 * limits: a JSON literal as deep as one may be (MAX_JSON_DEPTH, 64) inside an argument of a field
 * MAX_QUERY_DEPTH deep still fits, and every later walk of the document stays far from the stack's end.
 */
export const MAX_NESTING = 100;

/**
 * How deeply the brackets of `source` nest, read with graphql's lexer (so brackets in strings, block
 * strings and comments do not count), without recursion; undefined when the nesting stays within
 * `allowed`. It reads at most `maxTokens` tokens: a longer document is the token limit's to refuse.
 * A document the lexer refuses is left to the parser, which reports the syntax error.
 */
export function nestingOver(source: string | Source, allowed: number, maxTokens: number): number | undefined {
  const lexer = new Lexer(typeof source === 'string' ? new Source(source) : source);
  let depth = 0;
  let deepest = 0;
  try {
    for (let tokens = 0, token = lexer.advance(); token.kind !== TokenKind.EOF && tokens < maxTokens; token = lexer.advance(), tokens++) {
      if (token.kind === TokenKind.BRACE_L || token.kind === TokenKind.BRACKET_L || token.kind === TokenKind.PAREN_L) {
        deepest = Math.max(deepest, ++depth);
      } else if (token.kind === TokenKind.BRACE_R || token.kind === TokenKind.BRACKET_R || token.kind === TokenKind.PAREN_R) {
        depth = Math.max(0, depth - 1);
      }
    }
  } catch {
    // A syntax error: parsing stops there too, before any deeper bracket.
  }
  return deepest > allowed ? deepest : undefined;
}

/** Refusal of a query that exceeds a limit: the limit's name, what was measured and what is allowed. */
export function queryTooComplex(limit: string, measured: number | string, allowed: number, hint: string): GraphQLError {
  return createGraphQLError(`Query refused before running: ${limit} is ${allowed}, this query has ${measured}. ${hint}`, {
    extensions: { code: 'QUERY_TOO_COMPLEX', limit, measured, allowed },
  });
}

/**
 * What is left of MAX_QUERY_COST for work whose size only the data tells, one per operation in its
 * context (`ctx.queryBudget`; yoga builds a context per HTTP request, createWsServer one per operation).
 *
 * The cost measured before a query runs reads the document and its variables, never the rows: it prices
 * `Task.upcomingRuns(count: 1000)` by `count`, not by the cron expression of each task it lists, which
 * decides how many years of a time zone's offsets the list walks. A resolver whose work depends on
 * what it reads charges that work here, in the same units and before doing it; the charges of all
 * its fields together may take what the measured cost left of MAX_QUERY_COST. A charge that does not
 * fit is refused with QUERY_TOO_COMPLEX (`limit`, `measured` — the measured cost plus every charge so
 * far, this one included —, `allowed`, and the `field` or argument that decided it) in place of that
 * field's value, and the budget is spent: every later charge of the operation is refused as well, so what
 * a client gets does not depend on which smaller field happened to come after a refused one. Fields
 * charge in the order they resolve (the items of a list in order). Work units only, never time: the
 * same query over the same data is answered the same way however busy the instance is.
 *
 * useQueryLimits starts the budget of each execution: of a query or mutation once, of a subscription
 * for each event (each event executes the selection anew). Until then nothing can be charged.
 */
export class QueryBudget {
  private allowed = 0;
  private measured = 0;
  private charged = 0;
  private spent = false;

  /** A new execution, whose measured cost is `measured` of the `allowed` MAX_QUERY_COST. */
  start(allowed: number, measured: number): void {
    this.allowed = allowed;
    this.measured = measured;
    this.charged = 0;
    this.spent = false;
  }

  /**
   * Charges `units` of work (query-cost units: a plain field is 1) before it is done; throws QUERY_TOO_COMPLEX
   * naming `field` when they do not fit, or when an earlier charge did not. `hint` says how the work is priced.
   * Nothing to charge (0) always fits.
   */
  charge(units: number, field: string, hint: string): void {
    if (units === 0) return;
    // NaN or a negative count as too much: a charge that cannot be read is refused, not let through.
    this.charged += units > 0 ? units : Number.POSITIVE_INFINITY;
    if (!this.spent && this.measured + this.charged <= this.allowed) return;
    this.spent = true;
    const measured = this.measured + this.charged;
    throw new ChronographError(
      'QUERY_TOO_COMPLEX',
      `Field refused: MAX_QUERY_COST is ${this.allowed}, this query has ${measured} with what its data asks for. ${hint}`,
      { limit: 'MAX_QUERY_COST', measured, allowed: this.allowed, field },
    );
  }
}

/** The budget of the operation whose context this is (see QueryBudget). */
function budgetOf(context: unknown): QueryBudget | undefined {
  const budget = (context as { queryBudget?: unknown } | null | undefined)?.queryBudget;
  return budget instanceof QueryBudget ? budget : undefined;
}

/**
 * Limits checked before a query runs, for HTTP, SSE and graphql-ws alike (yoga's plugins run for
 * all three): tokens while parsing (graphql-armor), the nesting of brackets before the parser recurses
 * into them (MAX_NESTING), aliases while validating (graphql-armor), then depth and cost
 * (@pothos/plugin-complexity's rule, with the request's variables, so `first: $n` counts what $n is).
 * Depth and cost are measured when the operation is about to execute rather than in yoga's cached
 * validation, because they depend on the variables and the cache does not. A refused query gets
 * QUERY_TOO_COMPLEX with the limit, the measured figure and the allowed one, and nothing of it runs.
 * A query that may run gets what its cost left of MAX_QUERY_COST as its context's QueryBudget, for the
 * work its fields find only in the data (per event for a subscription).
 */
export function useQueryLimits(limits: QueryLimits): Plugin[] {
  const verdicts: Verdicts = new WeakMap();
  return [
    maxTokensPlugin({
      n: limits.maxTokens,
      onReject: [
        () => {
          throw queryTooComplex('MAX_QUERY_TOKENS', `more than ${limits.maxTokens}`, limits.maxTokens, 'Send a shorter document.');
        },
      ],
    }) as Plugin,
    {
      // Wraps the parse function in place (max-tokens' above), so it runs only when yoga's parse cache
      // has no document (or refusal) for the text, and before the recursive parser sees it.
      onParse({ parseFn, setParseFn }) {
        setParseFn((source: string | Source, options?: ParseOptions) => {
          const measured = nestingOver(source, MAX_NESTING, limits.maxTokens);
          if (measured !== undefined) {
            throw queryTooComplex('MAX_NESTING', measured, MAX_NESTING, 'Nest lists, objects and selections less deeply.');
          }
          return parseFn(source, options);
        });
      },
    },
    maxAliasesPlugin({
      n: limits.maxAliases,
      onReject: [
        (_context, error) => {
          const found = Number(/found (\d+)/.exec(error.message)?.[1] ?? limits.maxAliases + 1);
          throw queryTooComplex('MAX_ALIASES', found, limits.maxAliases, 'Use fewer aliases; ask for a list once instead of many times.');
        },
      ],
    }) as Plugin,
    {
      onExecute({ args, setResultAndStopExecution }) {
        const { refused, cost } = measureOnce(
          verdicts,
          args.schema,
          args.document,
          args.variableValues,
          args.operationName,
          args.contextValue,
          limits,
        );
        if (refused) setResultAndStopExecution({ errors: [refused] });
        else budgetOf(args.contextValue)?.start(limits.maxCost, cost);
      },
      onSubscribe({ args, setResultAndStopExecution }) {
        const { refused, cost } = measureOnce(
          verdicts,
          args.schema,
          args.document,
          args.variableValues,
          args.operationName,
          args.contextValue,
          limits,
        );
        if (refused) {
          setResultAndStopExecution({ errors: [refused] });
          return;
        }
        const budget = budgetOf(args.contextValue);
        if (!budget) return;
        budget.start(limits.maxCost, cost);
        // Each event executes the selection anew, one after the other for one subscriber (its stream
        // awaits each result before it reads the next event): the next one starts with a full budget.
        return { onSubscribeResult: () => ({ onNext: () => budget.start(limits.maxCost, cost) }) };
      },
    },
  ];
}

/**
 * Yoga hands the same DocumentNode for the same query text (its parse cache), so a document is measured
 * once per operation and per value of the variables its cost can read: a client repeating a query (or a
 * refused one) costs a lookup, not a validation walk. The cost reads no argument but a field's `first`,
 * `last` and `count` (fieldCost, unless a field has a cost function of its own), and the depth reads none, so
 * the verdict is keyed by the values of the variables given to those arguments, wherever in the document
 * (fragments included); other variables (a task's input, its argDict) cannot change it. At most
 * MAX_VERDICTS values, each short, are kept per operation; any other request is measured without being kept.
 */
type Verdicts = WeakMap<DocumentNode, { costVariables: string[]; byOperation: Map<string, Map<string, Verdict>> }>;

/** A query's measured cost, and its refusal when a limit is over. */
interface Verdict {
  refused?: GraphQLError;
  cost: number;
}

/** Arguments whose value the cost reads (fieldCost and pageSize). */
const COST_ARGUMENTS = new Set(['first', 'last', 'count']);
const MAX_VERDICTS = 64;
/** Values kept as a key are short (page sizes are numbers): a client cannot make the cache hold its large values. */
const MAX_KEY_LENGTH = 200;

/**
 * The names of the variables whose values the cost can read: those a document passes to `first`, `last`
 * or `count`, and every variable anywhere in the arguments of a field with a cost function of its own
 * (previewSchedule's reads its input), which could read any of them. The cost reads nothing else (the
 * complexity rule counts skipped and included selections alike), so other variables — a task's input, its
 * argDict — do not split the kept verdicts.
 */
export function costVariables(schema: GraphQLSchema, document: DocumentNode): string[] {
  const names = new Set<string>();
  const typeInfo = new TypeInfo(schema);
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field(node) {
        const cost = typeInfo.getFieldDef()?.extensions?.complexity;
        if (typeof cost !== 'function' || cost === fieldCost) return;
        for (const argument of node.arguments ?? []) {
          visit(argument.value, {
            Variable(variable) {
              names.add(variable.name.value);
            },
          });
        }
      },
      Argument(node) {
        if (COST_ARGUMENTS.has(node.name.value) && node.value.kind === Kind.VARIABLE) names.add(node.value.name.value);
      },
    }),
  );
  return [...names].sort();
}

function measureOnce(
  verdicts: Verdicts,
  schema: GraphQLSchema,
  document: DocumentNode,
  variableValues: Record<string, unknown> | null | undefined,
  operationName: string | null | undefined,
  context: unknown,
  limits: QueryLimits,
): Verdict {
  let known = verdicts.get(document);
  if (!known) verdicts.set(document, (known = { costVariables: costVariables(schema, document), byOperation: new Map() }));
  const operation = operationName ?? '';
  let byValues = known.byOperation.get(operation);
  if (!byValues) {
    byValues = new Map();
    // Operation names come from the client too: at most MAX_VERDICTS of them are kept per document.
    if (known.byOperation.size < MAX_VERDICTS) known.byOperation.set(operation, byValues);
  }
  // Whether each variable was given, and its value (an omitted variable takes its default, which is in the document).
  // Own properties only: `constructor` or `toString` omitted is not the same as given null.
  const key = shortJson(
    known.costVariables.map((name) => (variableValues && Object.hasOwn(variableValues, name) ? [variableValues[name]] : [])),
    MAX_KEY_LENGTH,
  );
  const kept = key === undefined ? undefined : byValues.get(key);
  if (kept !== undefined) return kept;
  const { measuredAll, ...verdict } = measure(schema, document, variableValues, operationName, context, limits);
  // The rule measures no operation whose variables do not coerce, and any variable may fail, not only those
  // of the key: such a request (which execution refuses) says nothing about the next one with the same key.
  if (measuredAll && key !== undefined && byValues.size < MAX_VERDICTS) byValues.set(key, verdict);
  return verdict;
}

/**
 * `value` as JSON text, or undefined once the text would be longer than `max` characters. Variables
 * come from the client: they may nest thousands deep (JSON.stringify would overflow the stack) or hold
 * a batch of thousands of inputs, so the walk uses no recursion and stops as soon as the text is too long.
 */
export function shortJson(value: unknown, max: number): string | undefined {
  let text = '';
  const stack: ({ raw: string } | { value: unknown })[] = [{ value }];
  while (stack.length > 0) {
    const entry = stack.pop()!;
    if ('raw' in entry) {
      text += entry.raw;
    } else if (entry.value === null || typeof entry.value !== 'object') {
      if (typeof entry.value === 'string' && entry.value.length > max) return undefined;
      text += JSON.stringify(entry.value) ?? 'null';
    } else if (Array.isArray(entry.value)) {
      // Every item takes a character at least: a longer list cannot fit.
      if (entry.value.length > max) return undefined;
      stack.push({ raw: ']' });
      for (let i = entry.value.length - 1; i >= 0; i--) stack.push({ value: entry.value[i] }, { raw: i > 0 ? ',' : '' });
      stack.push({ raw: '[' });
    } else {
      const entries = Object.entries(entry.value);
      if (entries.length > max) return undefined;
      stack.push({ raw: '}' });
      for (let i = entries.length - 1; i >= 0; i--) {
        const [name, item] = entries[i]!;
        stack.push({ value: item }, { raw: `${i > 0 ? ',' : ''}${JSON.stringify(name)}:` });
      }
      stack.push({ raw: '{' });
    }
    if (text.length > max) return undefined;
  }
  return text;
}

/**
 * The variables as the cost sees them: a list variable as an empty list. No field's cost reads a list
 * argument (fieldCost reads `first`, `last` and `count`), and the rule coerces every variable before it
 * measures, which for the 10,000 inputs of a createTimerTasks batch cost as much again as execution's
 * own coercion. A list that execution then refuses is refused there, with its coded error.
 */
function withoutLists(document: DocumentNode, variableValues: Record<string, unknown>): Record<string, unknown> {
  let values = variableValues;
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
    for (const variable of definition.variableDefinitions ?? []) {
      const type = variable.type.kind === Kind.NON_NULL_TYPE ? variable.type.type : variable.type;
      const name = variable.variable.name.value;
      if (type.kind !== Kind.LIST_TYPE || !Array.isArray(values[name]) || (values[name] as unknown[]).length === 0) continue;
      if (values === variableValues) values = { ...variableValues };
      values[name] = [];
    }
  }
  return values;
}

function measure(
  schema: GraphQLSchema,
  document: DocumentNode,
  variableValues: Record<string, unknown> | null | undefined,
  operationName: string | null | undefined,
  context: unknown,
  limits: QueryLimits,
): Verdict & { measuredAll: boolean } {
  let refused: GraphQLError | undefined;
  let cost = 0;
  let measured = 0;
  const rule = createComplexityRule({
    context: (context ?? {}) as object,
    variableValues: withoutLists(document, variableValues ?? {}),
    operationName,
    validate: ({ depth, complexity }) => {
      measured++;
      cost = Math.max(cost, complexity);
      if (depth > limits.maxDepth) {
        refused ??= queryTooComplex('MAX_QUERY_DEPTH', depth, limits.maxDepth, 'Select fewer nested levels.');
      } else if (complexity > limits.maxCost) {
        refused ??= queryTooComplex(
          'MAX_QUERY_COST',
          complexity,
          limits.maxCost,
          'Lists cost their page size and nested lists multiply: ask for smaller pages (first), fewer nested lists or fewer JSON fields.',
        );
      }
    },
  });
  // Variable and operation errors the rule may report are left to execution, which codes them.
  validate(schema, document, [rule]);
  // Every operation the request selects was measured: none failed on its variables (or its fragments).
  const selected = document.definitions.filter(
    (definition) => definition.kind === Kind.OPERATION_DEFINITION && (operationName == null || definition.name?.value === operationName),
  ).length;
  const measuredAll = measured === selected;
  return refused ? { refused, cost, measuredAll } : { cost, measuredAll };
}
