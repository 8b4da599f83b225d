import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Condition, matchesCondition, validateCondition } from '../src/dateFields/condition.js';
import { conditionToSql } from '../src/dateFields/conditionSql.js';
import { backends, createTestApp, type TestApp } from './support/testApp.js';

const RECORDS: Record<string, unknown>[] = [
  { status: 'active', amount: 1500, region: 'EU', owner: { country: 'FR', tz: 'Europe/Paris' }, tags: ['a', 'b'] },
  { status: 'active', amount: 10, region: 'CN', owner: { country: 'CN' } },
  { status: 'draft', amount: 1000.0, region: null },
  { status: 'closed', amount: '1500', owner: null },
  { amount: 2500, expireDate: '2030-03-10' },
  { status: 'active', expireDate: '2029-12-31', meta: { a: 1, b: [1, 2] } },
  {},
];

const CONDITIONS: Condition[] = [
  { status: 'active' },
  { status: 'active', amount: { $gte: 1000 } },
  { amount: { $gt: 1000 } },
  { amount: { $lt: 1000.5 } },
  { amount: { $lte: '1500' } },
  { amount: 1000 },
  { status: { $ne: 'active' } },
  { status: { $in: ['draft', 'closed'] } },
  { status: { $nin: ['draft', 'closed'] } },
  { region: null },
  { region: { $exists: true } },
  { region: { $exists: false } },
  { 'owner.country': 'FR' },
  { 'owner.country': { $exists: false } },
  { 'owner.tz': { $in: ['Europe/Paris', 'Asia/Shanghai'] } },
  { expireDate: { $gte: '2030-01-01' } },
  { expireDate: { $lt: '2030-01-01', $exists: true } },
  { tags: ['a', 'b'] },
  { meta: { b: [1, 2], a: 1 } },
  { meta: { $eq: { a: 1, b: [1, 2] } } },
  { status: { $in: [null, 'closed'] } },
];

/** The same condition must select the same records in memory (templates) and in SQL (record queries). */
describe.each(backends)('conditions in memory and in SQL agree (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend);
  });
  afterAll(() => t?.close());

  it.each(CONDITIONS.map((c) => [JSON.stringify(c), c] as const))('%s', async (_name, condition) => {
    expect(validateCondition(condition, 'condition')).not.toBeUndefined();
    const inMemory = RECORDS.map((r, i) => (matchesCondition(condition, r) ? i : -1)).filter((i) => i >= 0);
    const { sql, params } = conditionToSql(condition, 'doc', 1);
    const rows = await t.app.db.prisma.$queryRawUnsafe<{ i: number }[]>(
      `SELECT i FROM jsonb_array_elements($${params.length + 1}::jsonb) WITH ORDINALITY AS r(doc, n), LATERAL (SELECT (n - 1)::int AS i) x WHERE ${sql} ORDER BY i`,
      ...params,
      JSON.stringify(RECORDS),
    );
    expect(rows.map((r) => r.i)).toEqual(inMemory);
  });

  it('matches every record when there is no condition', () => {
    expect(RECORDS.every((r) => matchesCondition(null, r))).toBe(true);
    expect(conditionToSql(null, 'doc', 1)).toEqual({ sql: 'true', params: [] });
  });
});
