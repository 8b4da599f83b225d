import type { Condition } from './condition.js';

/**
 * The same condition as a SQL predicate over a JSONB column, so that record queries filter in the
 * database with exactly the semantics `matchesCondition` has in memory: a missing field reads as JSON
 * null, equality is JSON equality (jsonb `=`, key order and 1 vs 1.0 do not matter), ordering operators
 * only compare numbers with numbers and strings with strings. test/conditionSql.test.ts checks that
 * both agree on the same records.
 *
 * Values are bound as parameters starting at `$${firstParam}`; only paths and operators shape the text.
 */
export function conditionToSql(condition: Condition | null, column: string, firstParam: number): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const bind = (value: unknown, cast: string) => {
    params.push(value);
    return `$${firstParam + params.length - 1}::${cast}`;
  };
  const parts: string[] = [];
  for (const [path, test] of Object.entries(condition ?? {})) {
    const steps = bind(path.split('.'), 'text[]');
    const value = `COALESCE(${column} #> ${steps}, 'null'::jsonb)`;
    const ops = isOperators(test) ? Object.entries(test) : [['$eq', test] as [string, unknown]];
    for (const [op, operand] of ops) {
      switch (op) {
        case '$eq':
          parts.push(`${value} = ${bind(JSON.stringify(operand ?? null), 'jsonb')}`);
          break;
        case '$ne':
          parts.push(`${value} <> ${bind(JSON.stringify(operand ?? null), 'jsonb')}`);
          break;
        case '$in':
        case '$nin': {
          const list = bind(
            (operand as unknown[]).map((v) => JSON.stringify(v ?? null)),
            'jsonb[]',
          );
          parts.push(op === '$in' ? `${value} = ANY(${list})` : `NOT (${value} = ANY(${list}))`);
          break;
        }
        case '$exists':
          parts.push(operand ? `${value} <> 'null'::jsonb` : `${value} = 'null'::jsonb`);
          break;
        default: {
          const cmp = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' }[op]!;
          // CASE, not AND: SQL does not promise to test the type before it casts.
          parts.push(
            typeof operand === 'number'
              ? `CASE WHEN jsonb_typeof(${value}) = 'number' THEN (${value})::numeric ${cmp} ${bind(operand, 'numeric')} ELSE false END`
              : `CASE WHEN jsonb_typeof(${value}) = 'string' THEN (${value} #>> '{}') COLLATE "C" ${cmp} ${bind(operand, 'text')} COLLATE "C" ELSE false END`,
          );
        }
      }
    }
  }
  return { sql: parts.length ? parts.join(' AND ') : 'true', params };
}

function isOperators(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).some((k) => k.startsWith('$'));
}
