import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_ENV, createKey } from './support/auth.js';
import { backends, createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

const dotted = (length: number) => `tasks.${'x'.repeat(length - 'tasks.'.length)}`;
const TEMPLATE = `mutation($i: TaskTemplateInput!) { createTaskTemplate(input: $i) { fullName } }`;
const MODEL = `mutation($i: ModelDefinitionInput!) { saveModel(input: $i) { name } }`;

/**
 * Dotted names (a template's fullName, a model's name, a DATE_FIELD template's model) are at most 200
 * characters: longer ones are BAD_USER_INPUT naming the field, not a masked error from PostgreSQL
 * refusing an index entry of that size.
 */
describe.each(backends)('name length (%s)', (backend) => {
  let t: TestApp;
  let editor: Record<string, string>;
  const counts = async () => ({
    templates: await t.app.db.prisma.taskTemplate.count(),
    models: await t.app.db.prisma.modelDefinition.count(),
  });

  beforeAll(async () => {
    t = await createTestApp(backend, { env: AUTH_ENV });
    editor = (await createKey(t, 'acme', 'EDITOR')).headers;
  });
  afterAll(() => t?.close());

  it.each([
    ['createTaskTemplate fullName', TEMPLATE, { fullName: dotted(10_000), title: 'x', funcName: 'chronograph.echo' }, 'fullName'],
    ['saveModel name', MODEL, { name: `models.${'M'.repeat(10_000)}`, fields: [{ name: 'due', type: 'DATE' }] }, 'name'],
    [
      'DATE_FIELD template dateField.model',
      TEMPLATE,
      {
        fullName: 'tasks.Remind',
        title: 'x',
        funcName: 'chronograph.echo',
        repeatType: 'DATE_FIELD',
        dateField: { model: `models.${'M'.repeat(10_000)}`, field: 'due' },
      },
      'dateField.model',
    ],
  ])('%s of 10,000 characters is BAD_USER_INPUT and writes nothing', async (_name, mutation, input, field) => {
    const before = await counts();
    const result = await t.gql(mutation, { i: input }, editor);
    expect(errorCode(result)).toBe('BAD_USER_INPUT');
    expect(result.errors![0]!.extensions!.field).toBe(field);
    expect(result.errors![0]!.message).toContain('at most 200');
    expect(result.errors![0]!.message.length).toBeLessThan(300);
    expect(await counts()).toEqual(before);
  });

  it('a name of 200 characters is fine, 201 is not', async () => {
    expect(
      ok(await t.gql(TEMPLATE, { i: { fullName: dotted(200), title: 'x', funcName: 'chronograph.echo' } }, editor)).createTaskTemplate,
    ).toEqual({ fullName: dotted(200) });
    const refused = await t.gql(TEMPLATE, { i: { fullName: dotted(201), title: 'x', funcName: 'chronograph.echo' } }, editor);
    expect(errorCode(refused)).toBe('BAD_USER_INPUT');
    expect(refused.errors![0]!.extensions!.field).toBe('fullName');
  });
});
