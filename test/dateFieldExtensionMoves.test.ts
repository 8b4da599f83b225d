import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dateFieldExtension } from '../src/dateFields/prismaExtension.js';
import type { ModelRecord } from '../src/generated/prisma/client.js';
import { createDateFieldTemplate, dateFieldTasks } from './support/dateFields.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

const NOW = new Date('2029-06-01T00:00:00Z');
/** The external model an app's rows of the low-code model `model` are reported as: models.Contract → mirror.Contract. */
const mirror = (model: string) => model.replace(/^models\./, 'mirror.');

/**
 * A source whose `model` (or `tenantId`) is a function of the row: an update can move a row to another
 * model. Its tasks under the model it left are cancelled, and that model no longer remembers it (so a
 * reconcile of it does not plan them again), as if the row had been deleted there and created here.
 */
describe.each(backends)('the date-field Prisma extension, for a row an update moves to another model (%s)', (backend) => {
  let t: TestApp;
  let db: ReturnType<typeof extend>;
  const extend = (app: TestApp['app']) =>
    app.db.prisma.$extends(
      dateFieldExtension(app.dateFieldSvc, {
        ModelRecord: {
          model: (row: ModelRecord) => mirror(row.model),
          tenantId: (row: ModelRecord) => row.tenantId,
          toRecord: (row: ModelRecord) => row.data as Record<string, unknown>,
        },
      }),
    );
  const statuses = async (id: string) => (await dateFieldTasks(t, { sourceRowId: id })).map((x) => x.status);
  const remembered = (model: string, rowId: string) => t.app.db.prisma.dateFieldSource.count({ where: { model, rowId } });

  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW });
    db = extend(t.app);
    for (const name of ['models.Contract', 'models.Lease']) {
      ok(
        await t.gql(
          `mutation { saveModel(input: { name: "${name}", fields: [{ name: "title", type: TEXT }, { name: "expireDate", type: DATE }] }) { name } }`,
        ),
      );
    }
    await createDateFieldTemplate(t, {}, { model: 'mirror.Contract' });
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    await t.app.db.prisma.task.deleteMany({});
    await t.app.db.prisma.dateFieldSource.deleteMany({});
    await t.app.db.prisma.modelRecord.deleteMany({});
  });

  it('update: the task of the model it left is cancelled, and that model forgets the row', async () => {
    const row = await db.modelRecord.create({ data: { model: 'models.Contract', data: { expireDate: '2030-03-10' } } });
    expect(await statuses(row.id)).toEqual(['SCHEDULED']);
    await db.modelRecord.update({ where: { id: row.id }, data: { model: 'models.Lease' } });
    expect(await statuses(row.id)).toEqual(['CANCELLED']);
    expect(await remembered('mirror.Contract', row.id)).toBe(0);
    // and back: planned again under the model it returns to
    await db.modelRecord.update({ where: { id: row.id }, data: { model: 'models.Contract' }, select: { id: true } });
    expect(await statuses(row.id)).toEqual(['CANCELLED', 'SCHEDULED']);
  });

  it('updateMany and updateManyAndReturn: every row moved away has its task cancelled', async () => {
    await db.modelRecord.createMany({
      data: Array.from({ length: 4 }, (_, i) => ({ model: 'models.Contract', data: { title: `${i}`, expireDate: '2030-03-10' } })),
    });
    expect(await t.app.db.prisma.task.count({ where: { status: 'SCHEDULED' } })).toBe(4);
    const moved = await db.modelRecord.updateMany({ where: { data: { path: ['title'], equals: '0' } }, data: { model: 'models.Lease' } });
    expect(moved).toEqual({ count: 1 });
    const returned = await db.modelRecord.updateManyAndReturn({
      where: { data: { path: ['title'], equals: '1' } },
      data: { model: 'models.Lease' },
      select: { id: true },
    });
    expect(returned).toHaveLength(1);
    expect(await t.app.db.prisma.task.count({ where: { status: 'SCHEDULED' } })).toBe(2);
    expect(await t.app.db.prisma.task.count({ where: { status: 'CANCELLED' } })).toBe(2);
    expect(await t.app.db.prisma.dateFieldSource.count({ where: { model: 'mirror.Contract' } })).toBe(2);
  });
});
