import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_TEMPLATE, writeCounts } from './support/dateFields.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

/** A date-field template's condition is checked when the template is saved: a mistake is refused, not a template that matches nothing. */
describe.each(backends)('date-field conditions as input (%s)', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(backend, { env: { SCHEDULER_ENABLED: 'false' } });
    ok(
      await t.gql(
        `mutation { saveModel(input: { name: "models.Contract", fields: [{ name: "status", type: TEXT }, { name: "expireDate", type: DATE }] }) { name } }`,
      ),
    );
  });
  afterAll(() => t?.close());

  const create = (condition: unknown) =>
    t.gql(CREATE_TEMPLATE, {
      input: {
        fullName: 'tasks.ContractReminder',
        title: 'Contract reminder',
        repeatType: 'DATE_FIELD',
        funcName: 'chronograph.echo',
        dateField: { model: 'models.Contract', field: 'expireDate', condition },
      },
    });

  it.each([
    ['a top-level $or', { $or: [{ status: 'active' }, { status: 'new' }] }, 'dateField.condition.$or'],
    ['a top-level $and', { $and: [{ status: 'active' }] }, 'dateField.condition.$and'],
    ['an unknown operator', { status: { $like: 'a%' } }, 'dateField.condition.status.$like'],
  ])('refuses %s, naming it, and writes nothing', async (_name, condition, field) => {
    const before = { ...(await writeCounts(t)), templates: await t.app.db.prisma.taskTemplate.count() };
    const result = await create(condition);
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    expect({ ...(await writeCounts(t)), templates: await t.app.db.prisma.taskTemplate.count() }).toEqual(before);
  });

  it('takes field conditions with operators', async () => {
    const created = ok(await create({ status: { $in: ['active', 'new'] } })).createTaskTemplate;
    expect(created.dateField.condition).toEqual({ status: { $in: ['active', 'new'] } });
  });
});
