import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DateFieldResult } from '../src/dateFields/applyDateFields.js';
import type { DateFieldSvc } from '../src/dateFields/DateFieldSvc.js';
import { dateFieldExtension } from '../src/dateFields/prismaExtension.js';
import type { ModelRecord } from '../src/generated/prisma/client.js';
import { createDateFieldTemplate, dateFieldTasks } from './support/dateFields.js';
import { backends, createTestApp, ok, type TestApp } from './support/testApp.js';

const NOW = new Date('2029-06-01T00:00:00Z');
/** The external model an app's rows of the low-code model `model` are reported as: models.Contract → mirror.Contract. */
const mirror = (model: string) => model.replace(/^models\./, 'mirror.');

/**
 * The app's Prisma model here is Chronograph's own ModelRecord, written directly through Prisma
 * (bypassing ModelSvc) by a client extended with the date-field extension: the extension, not ModelSvc,
 * must keep the tasks in line. Its rows are reported as records of mirror.Contract, a model Chronograph
 * does not keep (the low-code model models.Contract itself is refused: its records are ModelSvc's). Any
 * Prisma model of an app registers the same way.
 */
describe.each(backends)('the date-field Prisma client extension (%s)', (backend) => {
  let t: TestApp;
  let db: ReturnType<typeof extend>;
  const seen: { model: string; result: DateFieldResult }[] = [];
  const extend = (app: TestApp['app'], dateFields: Pick<DateFieldSvc, 'forTenant'> = app.dateFieldSvc) =>
    app.db.prisma.$extends(
      dateFieldExtension(
        dateFields,
        {
          ModelRecord: {
            model: (row: ModelRecord) => mirror(row.model),
            tenantId: (row: ModelRecord) => row.tenantId,
            toRecord: (row: ModelRecord) => row.data as Record<string, unknown>,
          },
        },
        (model, result) => seen.push({ model, result }),
      ),
    );

  beforeAll(async () => {
    t = await createTestApp(backend, { now: () => NOW });
    db = extend(t.app);
    ok(
      await t.gql(
        `mutation { saveModel(input: { name: "models.Contract", fields: [{ name: "title", type: TEXT }, { name: "expireDate", type: DATE }] }) { name } }`,
      ),
    );
    await createDateFieldTemplate(t, {}, { model: 'mirror.Contract' });
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    seen.length = 0;
    await t.app.db.prisma.task.deleteMany({});
    await t.app.db.prisma.modelRecord.deleteMany({});
  });

  /**
   * A client whose first write's layer waits until `release`: the date-field layer of the next writes
   * runs first, as when two requests or processes write one row and the earlier one's layer is slower.
   */
  function heldFirstLayer() {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const gated = {
      forTenant: (tenantId: string) => {
        const svc = t.app.dateFieldSvc.forTenant(tenantId);
        return {
          saveRecords: async (model: string, records: Parameters<DateFieldSvc['saveRecords']>[1]) => {
            if (calls++ === 0) await gate;
            return svc.saveRecords(model, records);
          },
        };
      },
    } as unknown as Pick<DateFieldSvc, 'forTenant'>;
    return { racing: extend(t.app, gated), release, calls: () => calls };
  }

  const liveOf = async (id: string) =>
    (await dateFieldTasks(t, { sourceRowId: id, status: 'SCHEDULED' })).map((x) => x.startTime.toISOString());

  it('create, update and upsert schedule and reschedule; delete cancels', async () => {
    const row = await db.modelRecord.create({ data: { model: 'models.Contract', data: { title: 'A', expireDate: '2030-03-10' } } });
    expect(await liveOf(row.id)).toEqual(['2030-03-07T09:00:00.000Z']);
    expect(seen).toMatchObject([{ model: 'mirror.Contract', result: { created: 1 } }]);

    const [first] = await dateFieldTasks(t, { sourceRowId: row.id });
    await db.modelRecord.update({ where: { id: row.id }, data: { data: { title: 'A', expireDate: '2030-04-20' } } });
    const [moved] = await dateFieldTasks(t, { sourceRowId: row.id });
    expect(moved).toMatchObject({ id: first!.id, status: 'SCHEDULED' });
    expect(moved!.startTime.toISOString()).toBe('2030-04-17T09:00:00.000Z');
    expect(moved!.events.map((e) => e.type)).toEqual(['CREATED', 'RESCHEDULED']);

    // a select still answers with the selected fields only
    const selected = await db.modelRecord.update({
      where: { id: row.id },
      data: { data: { title: 'B', expireDate: '2030-04-20' } },
      select: { id: true },
    });
    expect(selected).toEqual({ id: row.id });
    expect(seen.at(-1)!.result).toMatchObject({ unchanged: 1 });

    await db.modelRecord.upsert({
      where: { id: row.id },
      create: { model: 'models.Contract', data: {} },
      update: { data: { title: 'B', expireDate: null } },
    });
    expect(await liveOf(row.id)).toEqual([]);
    const up = await db.modelRecord.upsert({
      where: { id: '00000000-0000-7000-8000-00000000000a' },
      create: { id: '00000000-0000-7000-8000-00000000000a', model: 'models.Contract', data: { expireDate: '2030-05-01' } },
      update: {},
    });
    expect(await liveOf(up.id)).toEqual(['2030-04-28T09:00:00.000Z']);

    const gone = await db.modelRecord.delete({ where: { id: up.id }, select: { model: true } });
    expect(gone).toEqual({ model: 'models.Contract' });
    expect((await dateFieldTasks(t, { sourceRowId: up.id })).map((x) => x.status)).toEqual(['CANCELLED']);
  });

  it('createMany, updateMany and deleteMany run the layer for every row they touch', async () => {
    const created = await db.modelRecord.createMany({
      data: Array.from({ length: 30 }, (_, i) => ({
        model: 'models.Contract',
        data: { title: i % 2 ? 'odd' : 'even', expireDate: '2030-03-10' },
      })),
    });
    expect(created).toEqual({ count: 30 });
    expect(await t.app.db.prisma.task.count({ where: { status: 'SCHEDULED' } })).toBe(30);

    const updated = await db.modelRecord.updateMany({
      where: { data: { path: ['title'], equals: 'odd' } },
      data: { data: { title: 'odd', expireDate: '2030-08-01' } },
    });
    expect(updated).toEqual({ count: 15 });
    const times = await t.app.db.prisma.task.groupBy({ by: ['startTime'], where: { status: 'SCHEDULED' }, _count: { _all: true } });
    expect(times.map((g) => [g.startTime.toISOString(), g._count._all]).sort()).toEqual([
      ['2030-03-07T09:00:00.000Z', 15],
      ['2030-07-29T09:00:00.000Z', 15],
    ]);
    expect(await t.app.db.prisma.task.count({ where: { source: 'DATE_FIELD' } })).toBe(30);

    const deleted = await db.modelRecord.deleteMany({ where: { data: { path: ['title'], equals: 'even' } } });
    expect(deleted).toEqual({ count: 15 });
    expect(await t.app.db.prisma.task.count({ where: { status: 'SCHEDULED' } })).toBe(15);
    expect(await t.app.db.prisma.task.count({ where: { status: 'CANCELLED' } })).toBe(15);

    const returned = await db.modelRecord.createManyAndReturn({
      data: [{ model: 'models.Contract', data: { expireDate: '2030-01-02' } }],
      select: { id: true },
    });
    expect(Object.keys(returned[0]!)).toEqual(['id']);
    expect(await liveOf(returned[0]!.id)).toEqual(['2029-12-30T09:00:00.000Z']);
  });

  it("leaves models it was not told about alone, and refuses to run half outside a caller's transaction", async () => {
    const events = await t.app.db.prisma.taskEvent.count();
    await db.modelDefinition.update({
      where: { tenantId_name: { tenantId: 'default', name: 'models.Contract' } },
      data: { title: 'Contracts' },
    });
    expect(seen).toEqual([]);
    await expect(
      db.$transaction(async (tx) => {
        await tx.modelRecord.create({ data: { model: 'models.Contract', data: { expireDate: '2030-03-10' } } });
      }),
    ).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await t.app.db.prisma.modelRecord.count()).toBe(0);
    expect(await t.app.db.prisma.taskEvent.count()).toBe(events);
    // inside a transaction of one's own, the layer joins it explicitly
    await t.app.db.prisma.$transaction(async (tx) => {
      const row = await tx.modelRecord.create({ data: { model: 'models.Contract', data: { expireDate: '2030-03-10' } } });
      await t.app.dateFieldSvc.saveExternal(tx, 'mirror.Contract', [{ rowId: row.id, data: { ...(row.data as object), id: row.id } }]);
    });
    expect(await t.app.db.prisma.task.count({ where: { status: 'SCHEDULED' } })).toBe(1);
  });

  it('a record whose date does not parse fails the call after the write, and the layer writes nothing for it', async () => {
    const error = await db.modelRecord
      .create({ data: { model: 'models.Contract', data: { expireDate: 'someday' } } })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BAD_USER_INPUT' });
    const [row] = await t.app.db.prisma.modelRecord.findMany();
    expect(row).toBeDefined();
    expect(await t.app.db.prisma.dateFieldSource.count({ where: { rowId: row!.id } })).toBe(0);
    expect(await dateFieldTasks(t, { sourceRowId: row!.id })).toEqual([]);
  });

  it("refuses a Prisma model reported as a low-code model of the tenant: that model's records are ModelSvc's", async () => {
    const direct = t.app.db.prisma.$extends(dateFieldExtension(t.app.dateFieldSvc, { ModelRecord: { model: 'models.Contract' } }));
    const events = await t.app.db.prisma.taskEvent.count();
    const error = await direct.modelRecord
      .create({ data: { model: 'models.Contract', data: { expireDate: '2030-03-10' } } })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CONFLICT', details: { field: 'model', model: 'models.Contract' } });
    expect(await t.app.db.prisma.task.count()).toBe(0);
    expect(await t.app.db.prisma.taskEvent.count()).toBe(events);
    expect(await t.app.db.prisma.dateFieldSource.count({ where: { model: 'models.Contract' } })).toBe(0);
  });

  it('two writes of one row whose layer runs end in reverse order leave its task where the row is', async () => {
    const row = await db.modelRecord.create({ data: { model: 'models.Contract', data: { expireDate: '2030-03-10' } } });
    const { racing, release, calls } = heldFirstLayer();
    // A Prisma call runs once something waits for it (then).
    const first = racing.modelRecord.update({ where: { id: row.id }, data: { data: { expireDate: '2030-04-20' } } }).then((r) => r);
    await vi.waitFor(() => expect(calls()).toBe(1), { timeout: 10_000 });
    await racing.modelRecord.update({ where: { id: row.id }, data: { data: { expireDate: '2030-05-20' } } });
    expect(await liveOf(row.id)).toEqual(['2030-05-17T09:00:00.000Z']);
    release();
    await first;
    // The first write's layer planned 2030-04-20, which the row no longer holds: it looks again after its
    // commit and applies what the row holds now.
    expect(await liveOf(row.id)).toEqual(['2030-05-17T09:00:00.000Z']);
    const [task] = await dateFieldTasks(t, { sourceRowId: row.id });
    expect(task!.events.map((e) => e.type)).toEqual(['CREATED', 'RESCHEDULED', 'RESCHEDULED', 'RESCHEDULED']);
    const remembered = await t.app.db.prisma.dateFieldSource.findFirstOrThrow({ where: { rowId: row.id } });
    expect(remembered.data).toMatchObject({ expireDate: '2030-05-20' });
  });

  it('a row deleted while an earlier write of it is still in its layer ends with its task cancelled', async () => {
    const row = await db.modelRecord.create({ data: { model: 'models.Contract', data: { expireDate: '2030-03-10' } } });
    const { racing, release, calls } = heldFirstLayer();
    // A Prisma call runs once something waits for it (then).
    const first = racing.modelRecord.update({ where: { id: row.id }, data: { data: { expireDate: '2030-04-20' } } }).then((r) => r);
    await vi.waitFor(() => expect(calls()).toBe(1), { timeout: 10_000 });
    await racing.modelRecord.delete({ where: { id: row.id } });
    release();
    await first;
    // The first write's layer read the row before the delete and may plan a task from it; after its
    // commit it reads the row again, finds it gone, and cancels that task: nothing of the row stays live.
    const tasks = await dateFieldTasks(t, { sourceRowId: row.id });
    expect(tasks.length).toBeGreaterThan(0);
    expect(new Set(tasks.map((x) => x.status))).toEqual(new Set(['CANCELLED']));
  });

  it("a write whose layer runs after another writer's bad value succeeds; the bad write fails with its own error", async () => {
    const row = await db.modelRecord.create({ data: { model: 'models.Contract', data: { expireDate: '2030-03-10' } } });
    const { racing, release, calls } = heldFirstLayer();
    const first = racing.modelRecord.update({ where: { id: row.id }, data: { data: { expireDate: '2030-04-20' } } }).then((r) => r);
    await vi.waitFor(() => expect(calls()).toBe(1), { timeout: 10_000 });
    const bad = await db.modelRecord.update({ where: { id: row.id }, data: { data: { expireDate: 'someday' } } }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(bad).toMatchObject({ code: 'BAD_USER_INPUT' });
    release();
    // Its own data was good: it succeeds, though what it reads back afterwards cannot be planned.
    await expect(first).resolves.toMatchObject({ id: row.id });
    expect(await liveOf(row.id)).toEqual(['2030-04-17T09:00:00.000Z']);
  });
});
