import type { PGlite } from '@electric-sql/pglite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pglitePool } from '../src/db/pglitePool.js';
import { statement } from '../src/db/SqlPool.js';
import { newPglite } from './support/testApp.js';

/** A Statement named by its text. */
const s = (text: string) => statement(text, text);

describe('PGlite statements run prepared (src/db/pglitePool.ts)', () => {
  let db: PGlite;
  beforeEach(async () => {
    db = await newPglite();
    await db.exec(`CREATE TABLE item (id int PRIMARY KEY, name text, data jsonb, at timestamptz, tags text[])`);
  });
  afterEach(async () => {
    await db.close();
  });

  const prepared = async () =>
    (await db.query<{ name: string; statement: string }>('SELECT name, statement FROM pg_prepared_statements')).rows;

  it('returns what PGlite.query returns, parameters serialised and rows parsed alike, and plans each text once', async () => {
    const pool = pglitePool(db);
    const insert = statement('insertItem', 'INSERT INTO item (id, name, data, at, tags) VALUES ($1, $2, $3, $4, $5) RETURNING *');
    const at = new Date('2026-12-05T10:00:00.123Z');
    const rows = await pool.query(insert, [1, 'one', { nested: [1, 'two'] }, at, ['a', 'b']]);
    expect(rows).toEqual([{ id: 1, name: 'one', data: { nested: [1, 'two'] }, at, tags: ['a', 'b'] }]);
    await pool.query(insert, [2, null, null, null, null]);
    const select = statement('selectItems', 'SELECT * FROM item WHERE id = ANY($1::int[]) ORDER BY id');
    expect(await pool.query(select, [[1, 2]])).toEqual((await db.query(select.text, [[1, 2]])).rows);
    // One prepared statement per text, however often it ran.
    expect((await prepared()).filter((p) => p.statement.startsWith('INSERT INTO item'))).toHaveLength(1);
  });

  it('an error leaves the session usable; in a transaction it aborts that transaction as usual', async () => {
    const pool = pglitePool(db);
    await expect(pool.query(s('SELECT 1 / $1::int AS x'), [0])).rejects.toMatchObject({ code: '22012' });
    expect(await pool.query(s('SELECT 1 / $1::int AS x'), [1])).toEqual([{ x: 1 }]);
    await expect(pool.query(s('SELEC nonsense'))).rejects.toMatchObject({ code: '42601' });
    await expect(
      pool.transaction(async (tx) => {
        await tx.query(s('INSERT INTO item (id) VALUES ($1)'), [1]);
        await tx.query(s('INSERT INTO item (id) VALUES ($1)'), [1]);
      }),
    ).rejects.toMatchObject({ code: '23505' });
    expect(await pool.query(s('SELECT count(*)::int AS n FROM item'))).toEqual([{ n: 0 }]);
  });

  it('a statement outside a transaction waits for an open transaction instead of running inside it', async () => {
    const pool = pglitePool(db);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const transaction = pool.transaction(async (tx) => {
      await tx.query(s('INSERT INTO item (id) VALUES ($1)'), [1]);
      await held;
      throw new Error('rolled back');
    });
    const outside = pool.query(s('INSERT INTO item (id) VALUES ($1) RETURNING id'), [2]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    release();
    await expect(transaction).rejects.toThrow('rolled back');
    await outside;
    expect(await pool.query(s('SELECT id FROM item'))).toEqual([{ id: 2 }]);
  });

  it('delivers the notifications a statement sends', async () => {
    const got: string[] = [];
    await db.listen('ch', (payload) => got.push(payload));
    await pglitePool(db).query(s("SELECT pg_notify('ch', $1)"), ['hello']);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(got).toEqual(['hello']);
  });

  it('prepares a statement again when its table changed under it, and keeps at most 500 prepared', async () => {
    const pool = pglitePool(db);
    await pool.query(s('INSERT INTO item (id, name) VALUES ($1, $2)'), [1, 'one']);
    expect(await pool.query(s('SELECT * FROM item'))).toEqual([{ id: 1, name: 'one', data: null, at: null, tags: null }]);
    await db.exec('ALTER TABLE item DROP COLUMN tags');
    expect(await pool.query(s('SELECT * FROM item'))).toEqual([{ id: 1, name: 'one', data: null, at: null }]);
    for (let i = 0; i < 520; i++) await pool.query(s(`SELECT $1::int + ${i} AS n`), [1]);
    expect(await pool.query(s('SELECT $1::int + 519 AS n'), [1])).toEqual([{ n: 520 }]);
    expect((await prepared()).length).toBeLessThanOrEqual(501);
  });
});
