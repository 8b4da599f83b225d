import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_ENV, createKey } from './support/auth.js';
import { createTestApp, type TestApp } from './support/testApp.js';

const N = 6;

/**
 * Concurrent creates of one name on PostgreSQL: the existence check before the insert cannot rule out
 * a create committing in between, so the unique index decides, and its violation is the same coded
 * answer a sequential duplicate gets, never a masked error.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('concurrent creates of one name (postgres)', () => {
  let t: TestApp;
  let editor: Record<string, string>;

  beforeAll(async () => {
    t = await createTestApp('postgres', { env: AUTH_ENV });
    editor = (await createKey(t, 'acme', 'EDITOR')).headers;
  });
  afterAll(() => t?.close());

  it('createTaskTemplate: exactly one succeeds, the others get CONFLICT on fullName', async () => {
    for (let round = 0; round < 3; round++) {
      const fullName = `tasks.Race${round}`;
      const results = await Promise.all(
        Array.from({ length: N }, (_, i) =>
          t.gql(
            `mutation($i: TaskTemplateInput!) { createTaskTemplate(input: $i) { id } }`,
            { i: { fullName, title: `racer ${i}`, funcName: 'chronograph.echo' } },
            editor,
          ),
        ),
      );
      const created = results.filter((r) => !r.errors);
      expect(created).toHaveLength(1);
      for (const r of results.filter((x) => x.errors)) {
        expect(r.errors![0]!.extensions).toMatchObject({ code: 'CONFLICT', field: 'fullName' });
        expect(r.errors![0]!.message).toBe(`A task template named ${fullName} already exists`);
      }
      expect(await t.app.db.prisma.taskTemplate.count({ where: { tenantId: 'acme', fullName } })).toBe(1);
      // The same answer as a sequential duplicate.
      const again = await t.gql(
        `mutation($i: TaskTemplateInput!) { createTaskTemplate(input: $i) { id } }`,
        { i: { fullName, title: 'late', funcName: 'chronograph.echo' } },
        editor,
      );
      expect(again.errors![0]!.extensions).toMatchObject({ code: 'CONFLICT', field: 'fullName' });
    }
  });

  it('saveModel: concurrent saves of a new model all succeed, one model results', async () => {
    for (let round = 0; round < 3; round++) {
      const name = `models.Race${round}`;
      const results = await Promise.all(
        Array.from({ length: N }, () =>
          t.gql(
            `mutation($i: ModelDefinitionInput!) { saveModel(input: $i) { id name } }`,
            { i: { name, fields: [{ name: 'due', type: 'DATE' }] } },
            editor,
          ),
        ),
      );
      for (const r of results) expect(r.errors).toBeUndefined();
      expect(new Set(results.map((r) => r.data.saveModel.id)).size).toBe(1);
      expect(await t.app.db.prisma.modelDefinition.count({ where: { tenantId: 'acme', name } })).toBe(1);
    }
  });
});
