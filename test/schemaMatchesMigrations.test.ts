import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BREAKING_MIGRATIONS_TABLE } from '../src/db/migrate.js';
import { backends, createTestApp, type TestApp } from './support/testApp.js';

/**
 * The migrations are hand-written SQL (the Prisma schema engine cannot run here), so this test is what
 * keeps them and prisma/schema.prisma in step: every model's table, every scalar field's column with
 * the type and nullability the generated client expects, every enum's values, every @@unique/@@index.
 */
interface Field {
  name: string;
  column: string;
  type: string;
  optional: boolean;
  nativeType?: string;
}
interface Model {
  name: string;
  table: string;
  fields: Field[];
  indexes: { columns: string[]; unique: boolean }[];
}

function parseSchema(source: string) {
  const enums = new Map<string, string[]>();
  for (const [, name, body] of source.matchAll(/^enum (\w+) \{([^}]*)\}/gm)) {
    enums.set(
      name!,
      body!
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('//')),
    );
  }
  const modelNames = [...source.matchAll(/^model (\w+) \{/gm)].map((m) => m[1]!);
  const models: Model[] = [];
  // Blocks end at a line holding only "}" (attribute values such as @default("{}") contain braces).
  for (const [, name, body] of source.matchAll(/^model (\w+) \{\n([\s\S]*?)^\}$/gm)) {
    const lines = body!
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('//'));
    const table = /@@map\("(\w+)"\)/.exec(body!)?.[1] ?? name!;
    const fields: Field[] = [];
    const columnOf = new Map<string, string>();
    for (const line of lines) {
      const m = /^(\w+)\s+(\w+)(\?|\[\])?\s*(.*)$/.exec(line);
      if (!m || line.startsWith('@@')) continue;
      const [, fieldName, type, modifier, attributes] = m;
      if (modelNames.includes(type!) || modifier === '[]') continue; // relation fields have no column
      const column = /@map\("(\w+)"\)/.exec(attributes!)?.[1] ?? fieldName!;
      columnOf.set(fieldName!, column);
      fields.push({
        name: fieldName!,
        column,
        type: type!,
        optional: modifier === '?',
        nativeType: /@db\.(\w+(\(\d+\))?)/.exec(attributes!)?.[1],
      });
    }
    const indexes = [...body!.matchAll(/@@(unique|index)\(\[([^\]]*)\]/g)].map(([, kind, cols]) => ({
      unique: kind === 'unique',
      columns: cols!.split(',').map((c) => columnOf.get(c.trim().replace(/\(.*\)/, ''))!),
    }));
    models.push({ name: name!, table, fields, indexes });
  }
  return { enums, models };
}

function expectedPgType(field: Field, enums: Map<string, string[]>): string {
  if (enums.has(field.type)) return `enum:${field.type}`;
  if (field.nativeType === 'Uuid') return 'uuid';
  if (field.nativeType?.startsWith('Timestamptz')) return `timestamp with time zone(${/\((\d+)\)/.exec(field.nativeType)?.[1] ?? 6})`;
  const byPrismaType: Record<string, string> = {
    String: 'text',
    Int: 'integer',
    BigInt: 'bigint',
    Boolean: 'boolean',
    Json: 'jsonb',
    Float: 'double precision',
    DateTime: 'timestamp without time zone(3)',
  };
  return byPrismaType[field.type] ?? `unknown Prisma type ${field.type}`;
}

/**
 * Besides the migrator's own tables (src/db/migrate.ts): the two tables behind the view "task" (migration
 * 20261207000000_task_state), which the Task model reads. The view's columns are the model's; the
 * tables' indexes are checked by test/hotPathPlans.test.ts through the plans that use them.
 */
const TASK_TABLES = ['task_spec', 'task_state'];

const schema = parseSchema(readFileSync(new URL('../prisma/schema.prisma', import.meta.url), 'utf8'));

describe.each(backends)('the migrated database matches schema.prisma (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend);
  });
  afterAll(() => t?.close());

  const query = <T>(sql: string) => t.app.db.prisma.$queryRawUnsafe<T[]>(sql);

  it('parses the schema (guards the parser itself)', () => {
    expect(schema.models.map((m) => m.name)).toEqual(
      expect.arrayContaining(['TaskTemplate', 'Task', 'TaskRun', 'TaskEvent', 'TaskRunLog']),
    );
    expect(schema.models.find((m) => m.name === 'Task')!.fields.length).toBeGreaterThan(30);
  });

  it('has every enum with exactly its values', async () => {
    const rows = await query<{ name: string; value: string }>(
      `SELECT t.typname AS name, e.enumlabel AS value FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid ORDER BY t.typname, e.enumsortorder`,
    );
    const actual = new Map<string, string[]>();
    for (const r of rows) actual.set(r.name, [...(actual.get(r.name) ?? []), r.value]);
    expect(Object.fromEntries(actual)).toEqual(Object.fromEntries(schema.enums));
  });

  it('has exactly the tables and columns of the models, with their types and nullability', async () => {
    const rows = await query<{
      table_name: string;
      column_name: string;
      data_type: string;
      udt_name: string;
      is_nullable: string;
      datetime_precision: number | null;
    }>(
      // A view's columns are all nullable in information_schema: the view task's take the nullability of
      // the table column each one reads (view_column_usage).
      `SELECT c.table_name, c.column_name, c.data_type, c.udt_name, c.datetime_precision,
              coalesce((SELECT b.is_nullable FROM information_schema.view_column_usage u
                          JOIN information_schema.columns b ON b.table_schema = u.table_schema AND b.table_name = u.table_name
                           AND b.column_name = u.column_name
                         WHERE u.view_schema = c.table_schema AND u.view_name = c.table_name AND u.column_name = c.column_name
                         ORDER BY u.table_name LIMIT 1), c.is_nullable) AS is_nullable
         FROM information_schema.columns c WHERE c.table_schema = current_schema()
          AND c.table_name NOT IN ('_prisma_migrations', '${BREAKING_MIGRATIONS_TABLE}', ${TASK_TABLES.map((t) => `'${t}'`).join(', ')})`,
    );
    // The view task_run reads a run's columns from its events (migration 20261208000000_runs_as_events),
    // where they are null on other events; the view takes only the events that started a run, which set
    // them. The catalog cannot know that: its columns are checked for type, nullability is the model's.
    const modelNullable = (table: string, column: string) =>
      schema.models.find((m) => m.table === table)?.fields.find((f) => f.column === column)?.optional;
    const describe = (r: (typeof rows)[number]) => {
      if (r.table_name === 'task_run') r.is_nullable = modelNullable(r.table_name, r.column_name) ? 'YES' : 'NO';
      const type =
        r.data_type === 'USER-DEFINED'
          ? `enum:${r.udt_name}`
          : r.data_type.startsWith('timestamp')
            ? `${r.data_type}(${r.datetime_precision})`
            : r.data_type;
      return `${r.table_name}.${r.column_name} ${type}${r.is_nullable === 'YES' ? ' NULL' : ''}`;
    };
    const expected = schema.models.flatMap((m) =>
      m.fields.map((f) => `${m.table}.${f.column} ${expectedPgType(f, schema.enums)}${f.optional ? ' NULL' : ''}`),
    );
    expect(rows.map(describe).sort()).toEqual(expected.sort());
  });

  it('keeps task_state at fillfactor 40, with room on each page for the versions a claim writes', async () => {
    // Migration 20261209000000_task_state_fillfactor_40: at 50 some claimed versions left their page,
    // each costing a logged row lock and a whole row of WAL (goal 4 of issue 12).
    const [row] = await query<{ options: string[] | null }>(
      `SELECT reloptions AS options FROM pg_class WHERE oid = 'task_state'::regclass`,
    );
    expect(row?.options).toEqual(['fillfactor=40']);
  });

  it('has every @@unique and @@index of the models', async () => {
    const rows = await query<{ table_name: string; indexdef: string }>(
      `SELECT tablename AS table_name, indexdef FROM pg_indexes WHERE schemaname = current_schema()`,
    );
    for (const model of schema.models) {
      for (const index of model.indexes) {
        const pattern = `${index.unique ? 'CREATE UNIQUE INDEX' : 'CREATE INDEX'} .* ON \\S*${model.table} USING btree \\(${index.columns.join(', ')}\\)$`;
        const found = rows.some((r) => r.table_name === model.table && new RegExp(pattern).test(r.indexdef));
        expect(found, `${model.table} (${index.columns.join(', ')})`).toBe(true);
      }
    }
  });
});
