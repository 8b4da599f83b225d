import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDateFieldTemplate, UPDATE_TEMPLATE } from './support/dateFields.js';
import { createTestApp, errorCode, ok, type TestApp } from './support/testApp.js';

/** The record fields a DATE_FIELD template names are capped like other names (see test/apiReviewNames.test.ts). */
describe('date-field field names (pglite)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp('pglite', { env: { SCHEDULER_ENABLED: 'false' } });
  });
  afterAll(() => t?.close());

  const patchTemplate = (patch: Record<string, unknown>) => t.gql(UPDATE_TEMPLATE, { fullName: 'tasks.ContractReminder', patch });
  const dateField = (rule: Record<string, unknown> = {}) => ({
    model: 'models.Contract',
    field: 'expireDate',
    offset: { amount: 3, unit: 'DAYS', direction: 'BEFORE' },
    timeOfDay: '09:00',
    ...rule,
  });

  it('dateField.field is at most 200 characters (BAD_USER_INPUT naming it)', async () => {
    const long = 'a'.repeat(201);
    const created = await t.gql(`mutation($input: TaskTemplateInput!) { createTaskTemplate(input: $input) { id } }`, {
      input: {
        fullName: 'tasks.ContractReminder',
        title: 'Contract reminder',
        repeatType: 'DATE_FIELD',
        funcName: 'chronograph.echo',
        dateField: dateField({ field: long }),
      },
    });
    expect(errorCode(created)).toBe('BAD_USER_INPUT');
    expect(created.errors![0]!.extensions!.field).toBe('dateField.field');
    expect(created.errors![0]!.message).toMatch(/201 characters long; .* at most 200/);
    expect(await t.app.db.prisma.taskTemplate.count({ where: { origin: 'API' } })).toBe(0);

    await createDateFieldTemplate(t);
    const updated = await patchTemplate({ dateField: dateField({ field: `x.${'b'.repeat(300)}` }) });
    expect(errorCode(updated)).toBe('BAD_USER_INPUT');
    expect(updated.errors![0]!.extensions!.field).toBe('dateField.field');
    const tz = await patchTemplate({ dateField: dateField({ timezoneField: 'z'.repeat(201) }) });
    expect(tz.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'dateField.timezoneField' });
    // 200 is allowed
    ok(await patchTemplate({ dateField: dateField({ field: 'c'.repeat(200) }) }));
  });
});
