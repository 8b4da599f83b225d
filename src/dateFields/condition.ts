import { badInput } from '../errors.js';
import { measureJson } from '../tasks/validate.js';

/**
 * A condition on a record, as a JSON object: every key is a field path (`status`, `owner.country`) and
 * every value either a value the field must equal, or an operator object:
 *
 *   { "status": "active", "amount": { "$gte": 1000 }, "region": { "$in": ["EU", "CN"] } }
 *
 * Operators: `$eq`, `$ne`, `$in`, `$nin`, `$gt`, `$gte`, `$lt`, `$lte` (numbers with numbers, strings
 * with strings, so ISO dates compare as text) and `$exists` (true: present and not null). All keys must
 * hold. An object value without `$` keys is compared as a whole, like `$eq`.
 */
export type Condition = Record<string, unknown>;

const OPERATORS = ['$eq', '$ne', '$in', '$nin', '$gt', '$gte', '$lt', '$lte', '$exists'] as const;
type Operator = (typeof OPERATORS)[number];

/** Checks a condition's shape and returns it; null and {} mean "every record". */
export function validateCondition(value: unknown, field: string): Condition | null {
  if (value == null) return null;
  if (!isPlainObject(value)) throw badInput(`${field} must be a JSON object such as {"status": "active"}`, field);
  measureJson(value, field);
  for (const [path, test] of Object.entries(value)) {
    assertFieldPath(path, `${field}.${path}`);
    // {"$or": [...]} read as a field named $or matched no record, without a word.
    if (path.startsWith('$')) {
      throw badInput(
        `${field}.${path}: a condition has no operators at its top level (every key names a field, and all must hold); ${path} is not supported`,
        `${field}.${path}`,
      );
    }
    if (!isOperatorObject(test)) continue;
    const keys = Object.keys(test);
    if (keys.some((k) => !k.startsWith('$'))) {
      throw badInput(`${field}.${path} mixes operators and plain keys; use {"$eq": {...}} to compare an object`, `${field}.${path}`);
    }
    for (const key of keys) {
      const operand = test[key];
      const where = `${field}.${path}.${key}`;
      if (!(OPERATORS as readonly string[]).includes(key)) {
        throw badInput(`${where}: unknown operator ${key} (known: ${OPERATORS.join(', ')})`, where);
      }
      if ((key === '$in' || key === '$nin') && !Array.isArray(operand)) throw badInput(`${where} needs an array`, where);
      if (key === '$exists' && typeof operand !== 'boolean') throw badInput(`${where} needs true or false`, where);
      if (['$gt', '$gte', '$lt', '$lte'].includes(key) && typeof operand !== 'number' && typeof operand !== 'string') {
        throw badInput(`${where} needs a number or a string`, where);
      }
    }
  }
  return Object.keys(value).length ? value : null;
}

export function matchesCondition(condition: Condition | null, record: Record<string, unknown>): boolean {
  if (!condition) return true;
  for (const [path, test] of Object.entries(condition)) {
    const actual = readPath(record, path);
    if (isOperatorObject(test)) {
      for (const [op, operand] of Object.entries(test)) if (!applyOperator(op as Operator, actual, operand)) return false;
    } else if (!jsonEqual(actual, test)) {
      return false;
    }
  }
  return true;
}

/** `owner.country` reads record.owner.country; a missing step reads undefined. */
export function readPath(record: Record<string, unknown>, path: string): unknown {
  let value: unknown = record;
  for (const step of path.split('.')) {
    if (!isPlainObject(value)) return undefined;
    value = value[step];
  }
  return value;
}

export function assertFieldPath(path: string, field: string): string {
  if (typeof path !== 'string' || !path.trim() || path.split('.').some((step) => !step.trim())) {
    throw badInput(`${field} must name a field, such as expireDate or owner.timezone`, field);
  }
  return path;
}

function applyOperator(op: Operator, actual: unknown, operand: unknown): boolean {
  switch (op) {
    case '$eq':
      return jsonEqual(actual, operand);
    case '$ne':
      return !jsonEqual(actual, operand);
    case '$in':
      return (operand as unknown[]).some((v) => jsonEqual(actual, v));
    case '$nin':
      return !(operand as unknown[]).some((v) => jsonEqual(actual, v));
    case '$exists':
      return (actual !== undefined && actual !== null) === operand;
    case '$gt':
    case '$gte':
    case '$lt':
    case '$lte': {
      if (typeof actual !== typeof operand || (typeof actual !== 'number' && typeof actual !== 'string')) return false;
      const a = actual as number | string;
      const b = operand as number | string;
      return op === '$gt' ? a > b : op === '$gte' ? a >= b : op === '$lt' ? a < b : a <= b;
    }
  }
}

function isOperatorObject(value: unknown): value is Record<string, unknown> {
  return isPlainObject(value) && Object.keys(value).some((k) => k.startsWith('$'));
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Equality of JSON values; a missing field equals null (JSON has no undefined). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  return stableStringify(a ?? null) === stableStringify(b ?? null);
}

/** JSON.stringify with object keys sorted, so equal documents give equal strings. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    isPlainObject(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, v[k]]),
        )
      : v,
  );
}
